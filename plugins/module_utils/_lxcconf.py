# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The marked block of hook entries in a container's config.

The block is the only part of the config that lxcex.share writes; every
other line stays byte for byte.  Changes are made under the container
directory's lock (the one the sharetab uses) and written atomically with
the config's mode and owner kept.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import posixpath
import shlex

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._sharetab import DirLock
from ansible_collections.lxcex.share.plugins.module_utils._state import write_atomic

BEGIN = '# BEGIN lxcex.share hooks (managed by Ansible, do not edit)'
END = '# END lxcex.share hooks'
HOOKS = ('start-host', 'post-stop')


DEFAULT_LOG_FILE = '/var/log/lxcex-share.log'
DEFAULT_DEADLINE = 30.0

# LXC runs a hook line with /bin/sh -c, appending NAME lxc TYPE.  Unless the
# hook is strict, the line runs the program through a guard: when the program
# or its interpreter cannot be run (the shell's exit 126 or 127), the guard
# says so on stderr and in the log file and exits 0, so that the container
# starts (without its shares) instead of failing.
_GUARD = ('"$0" %s "$@"; rc=$?; [ $rc -lt 126 ] && exit $rc; '
          'm="lxcex-share: the hook program $0 cannot run (exit $rc); the container starts without its shares"; '
          'echo "$m" >&2; echo "$(date "+%%Y-%%m-%%d %%H:%%M:%%S") $1 $m" >> %s 2>/dev/null; exit 0')


def hook_command(program, args, strict=False, log_file=DEFAULT_LOG_FILE):
    """The command of the hook lines (see _GUARD)."""
    words = list(args) + ['hook']
    if strict:
        return ' '.join(shlex.quote(a) for a in [program] + words)
    script = _GUARD % (' '.join(shlex.quote(a) for a in words), shlex.quote(log_file))
    return '/bin/sh -c %s %s' % (shlex.quote(script), shlex.quote(program))


def block_lines(program, args, strict=False, log_file=DEFAULT_LOG_FILE):
    command = hook_command(program, args, strict=strict, log_file=log_file)
    return [BEGIN] + ['lxc.hook.%s = %s' % (h, command) for h in HOOKS] + [END]


ORIGINAL_THUNKS_DIR = '/mnt/share-thunks'
DISABLED = '# lxcex.share disabled this line of the original lxcex-share setup: '


def original_line(line, thunks_dirs):
    """True for a config line of the original lxcex-share setup (outside the block).

    Those are hook lines that run a program named lxcex-share (the original
    ran itself as pre-start, mount, start and post-stop hook; this
    collection's own hook lines are only inside the block), and an rbind
    lxc.mount.entry of a thunks directory into the container.
    """
    text = line.strip()
    if not text or text.startswith('#') or '=' not in text:
        return False
    key, value = (x.strip() for x in text.split('=', 1))
    if key.startswith('lxc.hook.'):
        words = value.split()
        return bool(words) and posixpath.basename(words[0]) == 'lxcex-share'
    if key == 'lxc.mount.entry':
        fields = value.split()
        return (len(fields) >= 4 and 'rbind' in fields[3].split(',')
                and any(fields[0] == d or fields[0].startswith(d.rstrip('/') + '/') for d in thunks_dirs))
    return False


def plan(text, lines, takeover_dirs=None):
    """The config text with the block replaced by lines (None removes it).

    With takeover_dirs (thunks directories), the lines of the original
    lxcex-share setup are commented out with a marker, every other line kept.
    """
    out = []
    inside = False
    placed = False
    for line in text.splitlines(True):
        stripped = line.rstrip('\n')
        if stripped == BEGIN:
            inside = True
            continue
        if inside:
            if stripped == END:
                inside = False
                if lines is not None and not placed:
                    out.extend(l + '\n' for l in lines)
                    placed = True
            continue
        if takeover_dirs and original_line(line, takeover_dirs):
            line = DISABLED + line
        out.append(line)
    if inside:
        raise ShareError('the config has "%s" without "%s"; fix it by hand' % (BEGIN, END))
    if lines is not None and not placed:
        if out and not out[-1].endswith('\n'):
            out[-1] += '\n'
        out.extend(l + '\n' for l in lines)
    return ''.join(out)


BACKUP_SUFFIX = '.before-lxcex-share'


def ensure(config, lines, check_mode=False, takeover_dirs=None):
    """Make the block of config be lines (None: no block), taking over the original setup's lines.

    Before the first change that disables lines of the original setup the
    config is copied to CONFIG.before-lxcex-share (once).  Returns (changed,
    before, after, disabled lines).
    """
    directory = os.path.dirname(config)
    if not os.path.isfile(config):
        raise ShareError('unknown container: no config at %s' % config)
    with DirLock(directory):
        with open(config, 'r') as f:
            before = f.read()
        after = plan(before, lines, takeover_dirs)
        disabled = [l[len(DISABLED):] for l in after.splitlines() if l.startswith(DISABLED)]
        disabled = [l for l in disabled if DISABLED + l not in before.splitlines()]
        if after != before and not check_mode:
            st = os.stat(config)
            backup = config + BACKUP_SUFFIX
            if disabled and not os.path.exists(backup):
                write_atomic(backup, before.encode('utf-8', 'surrogateescape'), st.st_mode & 0o7777)
            write_atomic(config, after.encode('utf-8', 'surrogateescape'), st.st_mode & 0o7777)
            os.chown(config, st.st_uid, st.st_gid)
    return after != before, before, after, disabled


def has_block(config):
    """True when the config has the block."""
    try:
        with open(config, 'r') as f:
            return any(line.rstrip('\n') == BEGIN for line in f)
    except (IOError, OSError):
        return False
