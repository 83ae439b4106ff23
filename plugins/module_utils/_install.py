# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook program on a host: the program, the code it runs and the host settings.

The code is this collection's module_utils exactly as the running Python has
them: in a module, the files of the payload Ansible shipped to run that very
module.  So the hook program runs byte for byte the code the modules run, and
installing it transfers nothing besides the module itself.  The files are
packed into one zip with fixed timestamps and order (the same code always
gives the same bytes, never a .pyc), which the program puts on sys.path.

``install`` writes the zip, the host settings and the program (in that order,
each atomically, and only what differs), runs ``PROGRAM --version`` after a
change and puts every file back as it was when that fails.  ``uninstall``
removes them, and the tree of single files that versions before 0.2.0 copied.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import importlib
import io
import json
import os
import pkgutil
import re
import stat
import subprocess
import zipfile

# The hook program's entry point: importing it here makes Ansible ship all of its code with the module.
from ansible_collections.lxcex.share.plugins.module_utils import _cli
from ansible_collections.lxcex.share.plugins.module_utils import _hostconf
from ansible_collections.lxcex.share.plugins.module_utils import _lxcconf
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._state import write_atomic
from ansible_collections.lxcex.share.plugins.module_utils._validate import check_text

PACKAGE = 'ansible_collections.lxcex.share.plugins.module_utils'
CODE_NAME = 'lxcex-share.pyz'
LEGACY_TREE = 'ansible_collections'
STAMP = (1980, 1, 1, 0, 0, 0)
MAX_READ = 16 * 1024 * 1024
_IMPORT = re.compile(r'plugins\.module_utils(?:\.| import )(_[A-Za-z0-9_]+)')


def code_files():
    """{'_x.py': bytes} of every module of the module_utils package as this Python loaded it."""
    package = importlib.import_module(PACKAGE)
    names = sorted(name for dummy, name, ispkg in pkgutil.iter_modules(package.__path__) if not ispkg)
    files = {}
    for name in names:
        data = pkgutil.get_data(PACKAGE, name + '.py')
        if data is None:
            raise ShareError('cannot read the code of %s.%s' % (PACKAGE, name))
        files[name + '.py'] = data
    if '_cli.py' not in files:
        raise ShareError('the code of the hook program is incomplete: %s._cli is missing' % PACKAGE)
    for fname in sorted(files):
        for needed in _IMPORT.findall(files[fname].decode('utf-8', 'replace')):
            if needed + '.py' not in files:
                raise ShareError('the code of the hook program is incomplete: %s needs %s.py, which the '
                                 'running code does not have' % (fname, needed))
    return files


def _entry(z, name, data):
    info = zipfile.ZipInfo(name, date_time=STAMP)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, data)


def pack(files):
    """The zip of files (name -> bytes) as a package importable from sys.path, the same bytes for the same files."""
    buf = io.BytesIO()
    parts = PACKAGE.split('.')
    with zipfile.ZipFile(buf, 'w') as z:
        # Regular packages: zipimport of namespace packages differs across Pythons.
        for depth in range(1, len(parts) + 1):
            _entry(z, '/'.join(parts[:depth] + ['__init__.py']), b'')
        for name in sorted(files):
            if name != '__init__.py':
                _entry(z, '%s/%s' % ('/'.join(parts), name), files[name])
    return buf.getvalue()


PROGRAM = '''#!%(python)s
# lxcex-share: the LXC hook and manual command of lxcex.share. Installed by Ansible (lxcex.share.lxc_share_hooks);
# do not edit.  It runs the collection's own code, packed in %(code)s.
import sys

sys.path.insert(0, %(code_json)s)
try:
    from %(package)s._cli import main  # noqa: E402
except Exception as e:  # pylint: disable=broad-except
    # The code cannot be loaded (its zip deleted or damaged): a hook logs it and lets the container start (unless
    # --strict); the command fails with the reason.
    import time
    args = sys.argv[1:]
    msg = 'lxcex-share: cannot load its code from %%s: %%s: %%s' %% (%(code_json)s, type(e).__name__, e)
    if 'hook' in args and '--strict' not in args:
        msg += '; the container starts without its shares'
        log = args[args.index('--log-file') + 1] if '--log-file' in args[:-1] else %(log_json)s
        try:
            with open(log, 'a') as f:
                f.write('%%s %%s %%s\\n' %% (time.strftime('%%Y-%%m-%%d %%H:%%M:%%S'), ' '.join(args[-3:-2]), msg))
        except OSError:
            pass
        sys.stderr.write(msg + '\\n')
        sys.exit(0)
    sys.stderr.write(msg + '\\n')
    sys.exit(1)
sys.exit(main(config=%(config_json)s))
'''


def program_text(python, code, host_config):
    return (PROGRAM % {'python': python, 'code': code, 'code_json': json.dumps(code), 'package': PACKAGE,
                       'config_json': json.dumps(host_config),
                       'log_json': json.dumps(_lxcconf.DEFAULT_LOG_FILE)}).encode('utf-8')


def code_path(p):
    return os.path.join(p['code_dir'], CODE_NAME)


def wanted(p):
    """[(path, bytes, mode)] in the order they are written: the code, the settings, then the program."""
    code = code_path(p)
    return [(code, pack(code_files()), 0o644), (p['host_config'], _hostconf.text(p), 0o644),
            (p['program'], program_text(p['python'], code, p['host_config']), 0o755)]


def _current(path):
    """(bytes or None, whether the file is a root-owned regular file) of path, not following a final symlink."""
    try:
        st = os.lstat(path)
    except OSError:
        return None, False
    if not stat.S_ISREG(st.st_mode):
        return None, False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None, False
    try:
        with os.fdopen(fd, 'rb') as f:
            data = f.read(MAX_READ + 1)
    except (IOError, OSError):
        return None, False
    return data, (st.st_uid == 0 and st.st_gid == 0)


def _mode_of(path):
    try:
        return stat.S_IMODE(os.lstat(path).st_mode)
    except OSError:
        return None


def check_paths(p, installing=True):
    """Refuse paths the program cannot be installed at (installing: also directories another user controls)."""
    for key in ('program', 'code_dir', 'python', 'host_config'):
        check_text(key, p[key])
        if not p[key].startswith('/'):
            raise ShareError('%s %r is not an absolute path' % (key, p[key]))
    paths = [p['program'], code_path(p), p['host_config']]
    if len(set(os.path.normpath(x) for x in paths)) != 3:
        raise ShareError('program %r, code_dir %r and host_config %r name the same file'
                         % (p['program'], p['code_dir'], p['host_config']))
    if installing:
        for key, path in (('program', p['program']), ('code_dir', code_path(p)), ('host_config', p['host_config'])):
            check_install_dir(key, os.path.dirname(os.path.normpath(path)))


def check_install_dir(key, directory):
    """Refuse to install into a directory another user could change: host root runs what is written there.

    Every existing directory from / down to it (and every symlink on the way) must belong to root and be
    writable by nobody else; a sticky directory (/tmp, /var/tmp) may be writable by all.  Missing ones are
    made by root, 0755.
    """
    cur = '/'
    for part in [x for x in directory.split('/') if x]:
        cur = os.path.join(cur, part)
        try:
            lst = os.lstat(cur)
            st = os.stat(cur)
        except FileNotFoundError:
            return
        except OSError as e:
            raise ShareError('%s: %s cannot be read: %s' % (key, cur, e.strerror or e))
        for what, s in (('symlink', lst), ('directory', st)):
            if s.st_uid != 0:
                raise ShareError('%s: the %s %s belongs to uid %d; the hook program runs as root, so every '
                                 'directory it is installed below must belong to root and be writable by nobody else'
                                 % (key, what, cur, s.st_uid))
        if not stat.S_ISDIR(st.st_mode):
            raise ShareError('%s: %s is not a directory' % (key, cur))
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise ShareError('%s: the directory %s (mode %04o) is writable by others; the hook program runs as root, '
                             'so every directory it is installed below must be writable by root alone'
                             % (key, cur, stat.S_IMODE(st.st_mode)))


def _parents(path):
    """The missing directories above path, top first."""
    missing = []
    d = os.path.dirname(path)
    while d and d != '/' and not os.path.isdir(d):
        missing.append(d)
        d = os.path.dirname(d)
    return list(reversed(missing))


def _version(program):
    try:
        proc = subprocess.run([program, '--version'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 'cannot run it: %s' % e
    if proc.returncode != 0 or _cli.VERSION not in proc.stdout.decode('utf-8', 'replace'):
        return 'it printed (rc=%d): %s' % (proc.returncode, proc.stdout.decode('utf-8', 'replace')[-500:].strip())
    return None


def install(p, check_mode=False):
    """Install the hook program; returns {'changed', 'files', 'code_sha256', 'diff'} (ShareError: all put back)."""
    check_paths(p)
    result = {'files': [], 'diff': [], 'code_sha256': None, 'changed': False}
    todo = []
    for path, data, mode in wanted(p):
        if path.endswith(CODE_NAME):
            result['code_sha256'] = hashlib.sha256(data).hexdigest()
        before, owned = _current(path)
        if before is None and os.path.lexists(path):
            raise ShareError('%s exists and is not a regular file this module can read; it was left alone' % path)
        if before == data and owned and _mode_of(path) == mode:
            continue
        todo.append((path, data, mode, before, _mode_of(path)))
        result['files'].append(path)
        if path.endswith(CODE_NAME):
            result['diff'].append(dict(before_header=path, after_header=path,
                                       before='sha256 %s\n' % hashlib.sha256(before).hexdigest() if before else '',
                                       after='sha256 %s\n' % result['code_sha256']))
        else:
            result['diff'].append(dict(before_header=path, after_header=path,
                                       before=(before or b'').decode('utf-8', 'replace'),
                                       after=data.decode('utf-8')))
    python_ok = os.path.isfile(p['python']) and os.access(p['python'], os.X_OK)
    if not python_ok:
        raise ShareError('python %r is not an executable file on this host: the hook program could not run'
                         % p['python'])
    result['changed'] = bool(todo)
    if check_mode or not todo:
        return result
    created, written = [], []
    try:
        for path, data, mode, before, before_mode in todo:
            for d in _parents(path):
                os.mkdir(d, 0o755)
                created.append(d)
            write_atomic(path, data, mode=mode)
            written.append((path, before, before_mode))
        failure = _version(p['program'])
        if failure:
            raise ShareError('the hook program %s does not run with python %s: %s'
                             % (p['program'], p['python'], failure))
    except (OSError, IOError, ShareError) as e:
        _put_back(written, created)
        if isinstance(e, ShareError):
            raise
        raise ShareError('cannot install the hook program: %s (every file put back as it was)' % e)
    return result


def _put_back(written, created):
    for path, before, mode in reversed(written):
        try:
            if before is None:
                os.unlink(path)
            else:
                write_atomic(path, before, mode=mode if mode is not None else 0o644)
        except OSError:
            pass
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:
            pass


def _legacy_tree(code_dir):
    """The tree of single .py files that versions before 0.2.0 copied into code_dir, or None.

    Only a tree of directories and .py/.pyc files on one filesystem, owned by root, with no symlink, counts.
    """
    top = os.path.join(code_dir, LEGACY_TREE)
    try:
        st = os.lstat(top)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    entries = []
    for root, dirs, files in os.walk(top, topdown=True):
        for name in dirs + files:
            path = os.path.join(root, name)
            s = os.lstat(path)
            if s.st_dev != st.st_dev or s.st_uid != 0 or stat.S_ISLNK(s.st_mode):
                return None
            if stat.S_ISREG(s.st_mode) and not name.endswith(('.py', '.pyc')):
                return None
            if not (stat.S_ISREG(s.st_mode) or stat.S_ISDIR(s.st_mode)):
                return None
            entries.append((path, stat.S_ISDIR(s.st_mode)))
    return top, entries


def legacy(p):
    """The tree left by versions before 0.2.0: (path or None, whether it is only ours)."""
    top = os.path.join(p['code_dir'], LEGACY_TREE)
    if not os.path.lexists(top):
        return None, True
    return top, _legacy_tree(p['code_dir']) is not None


def remove_legacy(p, check_mode=False):
    """Remove the legacy tree when it holds only our code; returns (removed path or None, warning or None)."""
    top, ours = legacy(p)
    if top is None:
        return None, None
    if not ours:
        return None, ('%s holds files that are not code of lxcex.share (or symlinks, or other filesystems); '
                      'it was left in place' % top)
    if not check_mode:
        dummy, entries = _legacy_tree(p['code_dir'])
        try:
            for path, is_dir in sorted(entries, key=lambda e: e[0].count('/'), reverse=True):
                if is_dir:
                    os.rmdir(path)
                else:
                    os.unlink(path)
            os.rmdir(top)
        except OSError as e:
            return None, 'cannot remove %s, the code that versions before 0.2.0 installed: %s' % (top, e)
    return top, None


def uninstall(p, check_mode=False):
    """Remove the program, the code and the settings (regular files only); returns the paths removed."""
    check_paths(p, installing=False)
    removed = []
    for path in (p['program'], code_path(p), p['host_config']):
        if os.path.islink(path) or os.path.isfile(path):
            removed.append(path)
            if not check_mode:
                try:
                    os.unlink(path)
                except OSError as e:
                    raise ShareError('cannot remove %s: %s' % (path, e))
    if not check_mode and os.path.basename(p['code_dir'].rstrip('/')) == 'lxcex-share':
        # Only a directory of our own name: code_dir may be a directory the administrator shares with others.
        try:
            os.rmdir(p['code_dir'])
        except OSError:
            pass
    return removed
