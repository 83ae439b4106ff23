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
