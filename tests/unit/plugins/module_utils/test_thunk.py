# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of _thunk: desired vs current comparison and error messages."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno

from ansible_collections.lxcex.share.plugins.module_utils._kernel import KernelError
from ansible_collections.lxcex.share.plugins.module_utils._thunk import differences, kernel_message

WANT = {'src': '/srv/a', 'idmap': ['u:1000:201000:1', 'g:100:200100:1'], 'readonly': False}


def current(**kw):
    cur = {'mounted': True, 'same_src': True, 'idmap': list(WANT['idmap']), 'readonly': False}
    cur.update(kw)
    return cur


def test_nothing_mounted():
    assert differences(WANT, None) == ['mounted']


def test_identical():
    assert differences(WANT, current()) == []


def test_each_difference_is_named():
    assert differences(WANT, current(same_src=False)) == ['src']
    assert differences(WANT, current(idmap=['u:1000:301000:1', 'g:100:200100:1'])) == ['idmap']
    assert differences(WANT, current(readonly=True)) == ['readonly']
    assert differences(WANT, current(same_src=False, readonly=True)) == ['src', 'readonly']


def test_unknown_idmap_counts_as_different():
    assert differences(WANT, current(idmap=None)) == ['idmap']


def test_kernel_messages():
    msg = kernel_message(KernelError(errno.EINVAL, 'mount_setattr', '/srv/a'), src='/srv/a', fstype='vfat', where='/srv')
    assert msg == 'filesystem vfat of /srv/a (mounted at /srv) does not support idmapped mounts'
    assert 'Linux 5.12' in kernel_message(KernelError(errno.ENOSYS, 'open_tree', '/srv/a'))
    assert 'need root' in kernel_message(KernelError(errno.EPERM, 'mount_setattr', '/srv/a'))
    assert 'No such file' in kernel_message(KernelError(errno.ENOENT, 'move_mount', '/x'))


def test_unsupported_filesystem_says_what_the_kernel_needs(monkeypatch):
    from ansible_collections.lxcex.share.plugins.module_utils import _kernel
    from ansible_collections.lxcex.share.plugins.module_utils._thunk import unsupported_text
    monkeypatch.setattr(_kernel, 'KERNEL_AS', '5.13.0')
    assert unsupported_text('btrfs', '/s', '/') == ('filesystem btrfs of /s (mounted at /) does not support idmapped '
                                                    'mounts: btrfs supports them from Linux 5.15, and this host runs '
                                                    '5.13.0')
    assert unsupported_text('ext4', '/s', '/') == 'filesystem ext4 of /s (mounted at /) does not support idmapped mounts'
    assert unsupported_text('ramfs', '/s', '/r', explain=True).endswith(
        ': Linux 5.13.0 has no idmapped mounts for ramfs (NFS, 9p, FUSE without idmap support, ramfs and proc never '
        'had them); put the source on ext4, xfs, btrfs or tmpfs (6.3)')
