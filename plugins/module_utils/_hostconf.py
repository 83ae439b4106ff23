# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host settings file (/etc/lxcex-share.conf): written by lxc_share_hooks, read by the lxcex-share command.

``KEY = VALUE`` lines and ``#`` comments; the values are the defaults of the
command's options (lxcpath, thunks_dir, thunks_size, backend, mount_idmapped,
log_file, deadline).  Both sides of the format are here.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

MAX_SIZE = 65536


def text(p):
    """The settings of p (lxc_share_hooks' parameters) as the file's bytes."""
    lines = ['# Settings of this host for the lxcex-share command (list, manual shares):',
             '# the defaults of its options.  Written by lxcex.share.lxc_share_hooks; do not edit.']
    if p.get('lxcpath'):
        lines.append('lxcpath = %s' % p['lxcpath'])
    lines += ['thunks_dir = %s' % p['thunks_dir'], 'thunks_size = %s' % p['thunks_size'],
              'backend = %s' % p['backend']]
    if p['backend'] == 'mount-idmapped' and p.get('mount_idmapped'):
        lines.append('mount_idmapped = %s' % p['mount_idmapped'])
    lines += ['log_file = %s' % p['log_file'], 'deadline = %g' % p['deadline']]
    return ('\n'.join(lines) + '\n').encode('utf-8')


def read(path):
    """{key: value} of the file at path ('-' in keys read as '_'); {} when it does not exist or cannot be read."""
    try:
        with open(path) as f:
            data = f.read(MAX_SIZE)
    except (IOError, OSError, UnicodeDecodeError):
        return {}
    conf = {}
    for line in data.splitlines():
        line = line.strip()
        if line and not line.startswith('#') and '=' in line:
            key, value = line.split('=', 1)
            conf[key.strip().replace('-', '_')] = value.strip()
    return conf
