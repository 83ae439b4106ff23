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
import shlex

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._sharetab import DirLock
from ansible_collections.lxcex.share.plugins.module_utils._state import write_atomic

BEGIN = '# BEGIN lxcex.share hooks (managed by Ansible, do not edit)'
END = '# END lxcex.share hooks'
HOOKS = ('start-host', 'post-stop')


def hook_command(program, args):
    return ' '.join(shlex.quote(a) for a in [program] + list(args) + ['hook'])


def block_lines(program, args):
    command = hook_command(program, args)
    return [BEGIN] + ['lxc.hook.%s = %s' % (h, command) for h in HOOKS] + [END]


def plan(text, lines):
    """The config text with the block replaced by lines (None removes it)."""
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
        out.append(line)
    if inside:
        raise ShareError('the config has "%s" without "%s"; fix it by hand' % (BEGIN, END))
    if lines is not None and not placed:
        if out and not out[-1].endswith('\n'):
            out[-1] += '\n'
        out.extend(l + '\n' for l in lines)
    return ''.join(out)


def ensure(config, lines, check_mode=False):
    """Make the block of config be lines (None: no block). Returns (changed, before, after)."""
    directory = os.path.dirname(config)
    if not os.path.isfile(config):
        raise ShareError('unknown container: no config at %s' % config)
    with DirLock(directory):
        with open(config, 'r') as f:
            before = f.read()
        after = plan(before, lines)
        if after != before and not check_mode:
            st = os.stat(config)
            write_atomic(config, after.encode('utf-8', 'surrogateescape'), st.st_mode & 0o7777)
            os.chown(config, st.st_uid, st.st_gid)
    return after != before, before, after
