# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-container sharetab: ``SRC USER DEST [OPTIONS]`` lines.

Readable by the reference format (three columns, ``#`` comments, blank
lines).  A fourth column holds comma-separated options: ``ro``,
``group=G``, ``uid=N`` and ``gid=N`` (src ids), ``allow_root``,
``nonempty=refuse`` (do not cover a non-empty dest), ``suid`` (set-uid
bits honoured: no nosuid), for team shares ``members=C/USER/DISK_UID;...``,
``disk_gid=N``, ``nosetup`` (source directory left as it is) and
``authors`` (members of other containers shown by name), and
``managed=OWNER`` for lines lxcex.share wrote, OWNER saying who: ``role``
(the lxcex_share role), ``task`` (an lxc_share task), ``manual`` (the
lxcex-share command).  A run that prunes removes only the lines of its own
owner; a bare ``managed`` (written by 0.1.0) and hand-written lines are
never pruned.  Whitespace and backslashes in
fields are escaped as octal like fstab (``\\040``).

Changes touch only the lines of the given destinations, keep every other line
and comment byte for byte, and are written atomically under an exclusive
lock, so concurrent runs never lose a line.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import os
import posixpath
import re

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._mountinfo import unescape
from ansible_collections.lxcex.share.plugins.module_utils._state import write_atomic

_ESCAPE = re.compile(r'[\s\\#,=]')


def escape(field):
    return _ESCAPE.sub(lambda m: '\\%03o' % ord(m.group(0)), field)


class Entry(object):
    __slots__ = ('src', 'user', 'dest', 'options')

    def __init__(self, src, user, dest, options=None):
        self.src = src
        self.user = user
        self.dest = dest
        self.options = dict(options or {})

    @property
    def readonly(self):
        return 'ro' in self.options

    @property
    def managed(self):
        return 'managed' in self.options

    @property
    def owner(self):
        """Who wrote the line: 'role', 'task', 'manual' (managed=OWNER); 'legacy' for a bare 'managed'
        (lxcex.share 0.1.0); None for a hand-written line."""
        if 'managed' not in self.options:
            return None
        return self.options['managed'] or 'legacy'

    def format(self):
        fields = [escape(self.src), escape(str(self.user)), escape(self.dest)]
        if self.options:
            opts = []
            for key in sorted(self.options):
                value = self.options[key]
                opts.append(escape(key) if value is None else '%s=%s' % (escape(key), escape(str(value))))
            fields.append(','.join(opts))
        return ' '.join(fields)

    def __eq__(self, other):
        return isinstance(other, Entry) and self.format() == other.format()

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        return 'Entry(%r)' % self.format()


DEFAULT_OWNER = 'task'


def entry_of(request, src_uid=None, src_gid=None):
    """The managed sharetab line of a validated share request (the inverse of request_of)."""
    options = {'managed': request.get('owner') or DEFAULT_OWNER}
    if request.get('readonly'):
        options['ro'] = None
    if request.get('group') not in (None, ''):
        options['group'] = str(request['group'])
    if request.get('src_uid') is not None:
        options['uid'] = str(src_uid if src_uid is not None else request['src_uid'])
    if request.get('src_gid') is not None:
        options['gid'] = str(src_gid if src_gid is not None else request['src_gid'])
    if request.get('allow_root'):
        options['allow_root'] = None
    if request.get('nonempty_dest') == 'refuse':
        options['nonempty'] = 'refuse'
    if request.get('allow_setuid'):
        options['suid'] = None
    if request.get('members'):
        options['members'] = request['members']
        if request.get('disk_gid') is not None:
            options['disk_gid'] = str(request['disk_gid'])
        if request.get('setup_src') is False:
            options['nosetup'] = None
        if request.get('show_authors'):
            options['authors'] = None
    return Entry(request['src'], str(request['user']), normalize_dest(request['dest']), options)


def request_of(container, entry, **extra):
    """The share request a sharetab line stands for (the inverse of entry_of)."""
    opts = entry.options
    req = {'src': entry.src, 'container': container, 'user': entry.user, 'dest': entry.dest, 'state': 'present',
           'readonly': 'ro' in opts, 'group': opts.get('group'), 'allow_root': 'allow_root' in opts,
           'src_uid': int(opts['uid']) if (opts.get('uid') or '').isdigit() else None,
           'src_gid': int(opts['gid']) if (opts.get('gid') or '').isdigit() else None,
           'persist': True, 'live': True, 'owner': entry.owner,
           'nonempty_dest': 'refuse' if opts.get('nonempty') == 'refuse' else 'warn',
           'allow_setuid': 'suid' in opts}
    if opts.get('members'):
        req.update(members=opts['members'], setup_src='nosetup' not in opts, show_authors='authors' in opts,
                   disk_gid=int(opts['disk_gid']) if (opts.get('disk_gid') or '').isdigit() else None)
    req.update(extra)
    return req


def normalize_dest(dest):
    return posixpath.normpath(dest) if dest else dest


def parse_line(line):
    """An Entry, or None for blank and comment lines; ShareError when malformed."""
    text = line.strip()
    if not text or text.startswith('#'):
        return None
    fields = text.split()
    if len(fields) not in (3, 4):
        raise ShareError('sharetab line %r: expected HOST-DIRECTORY USER DEST [OPTIONS]' % line.rstrip('\n'))
    options = {}
    if len(fields) == 4:
        for opt in fields[3].split(','):
            if not opt:
                continue
            key, sep, value = opt.partition('=')
            options[unescape(key)] = unescape(value) if sep else None
    return Entry(unescape(fields[0]), unescape(fields[1]), normalize_dest(unescape(fields[2])), options)


def parse(text):
    """[(line, Entry or None)] keeping every line as it was; bad lines give None entries and are kept."""
    out = []
    for line in text.splitlines(True):
        try:
            entry = parse_line(line)
        except ShareError:
            entry = None
        out.append((line, entry))
    return out


MAX_SIZE = 4 * 1024 * 1024


def read(path):
    """The text of a sharetab ('' when there is none); ShareError when larger than MAX_SIZE."""
    try:
        with open(path, 'rb') as f:
            data = f.read(MAX_SIZE + 1)
    except (IOError, OSError):
        return ''
    if len(data) > MAX_SIZE:
        raise ShareError('sharetab %s is larger than %d bytes; refusing to read it' % (path, MAX_SIZE))
    return data.decode('utf-8', 'surrogateescape')


def entries(path):
    """The entries of a sharetab, in file order (bad lines skipped)."""
    return [e for dummy, e in parse(read(path)) if e is not None]


class DirLock(object):
    """An exclusive flock on a directory (the container's), held for a change.

    Locking the directory itself leaves no lock file behind; every writer of
    the container's sharetab and config, and every pass that reads, decides
    and changes a container's mounts, takes this lock.  It is reentrant
    within a process (and its forks): a pass that holds the lock of a
    container may write that container's sharetab.
    """

    _held = {}  # {(st_dev, st_ino): [fd, depth]}

    class Busy(Exception):
        """Another process holds the lock (only with blocking=False)."""

    def __init__(self, directory, blocking=True):
        self.directory = directory
        self.blocking = blocking
        self.key = None

    def __enter__(self):
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        st = os.fstat(fd)
        self.key = (st.st_dev, st.st_ino)
        held = DirLock._held.get(self.key)
        if held is not None:
            os.close(fd)
            held[1] += 1
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise DirLock.Busy(self.directory)
        except BaseException:
            os.close(fd)
            raise
        DirLock._held[self.key] = [fd, 1]
        return self

    def __exit__(self, *exc):
        held = DirLock._held[self.key]
        held[1] -= 1
        if held[1] == 0:
            del DirLock._held[self.key]
            fcntl.flock(held[0], fcntl.LOCK_UN)
            os.close(held[0])


def plan(text, changes):
    """Apply {dest: Entry or None} to a sharetab text.

    The first line of a dest is replaced (or dropped for None); further lines
    of that dest are dropped; a dest with no line gets one appended.  Returns
    (new_text, {dest: (old Entry or None, new Entry or None)}).
    """
    changes = dict((normalize_dest(d), e) for d, e in changes.items())
    result = dict((d, (None, e)) for d, e in changes.items())
    seen = set()
    out = []
    for line, entry in parse(text):
        if entry is None or entry.dest not in changes:
            out.append(line)
            continue
        dest = entry.dest
        if dest in seen:
            continue
        seen.add(dest)
        result[dest] = (entry, changes[dest])
        if changes[dest] is not None:
            out.append(changes[dest].format() + '\n')
    if out and not out[-1].endswith('\n'):
        out[-1] += '\n'
    for dest in sorted(changes):
        if dest not in seen and changes[dest] is not None:
            out.append(changes[dest].format() + '\n')
    return ''.join(out), result


def update(path, changes, check_mode=False, drop_empty=False):
    """Apply {dest: Entry or None} to the sharetab at path under a lock.

    Returns (changed, {dest: (old, new)}).  Writes nothing in check mode.
    With drop_empty, a sharetab left with no text is removed (an undo that
    puts back a file this run created).
    """
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise ShareError('cannot update %s: directory %s does not exist' % (path, directory))
    if check_mode:
        text = read(path)
        new, result = plan(text, changes)
        return new != text, result
    with DirLock(directory):
        text = read(path)
        new, result = plan(text, changes)
        if drop_empty and not new and os.path.isfile(path):
            os.unlink(path)
            return bool(text), result
        if new != text:
            mode = 0o644
            try:
                mode = os.stat(path).st_mode & 0o7777
            except OSError:
                pass
            write_atomic(path, new.encode('utf-8', 'surrogateescape'), mode)
        return new != text, result
