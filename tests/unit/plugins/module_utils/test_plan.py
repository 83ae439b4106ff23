# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of a share inside its container, from facts alone: no root, no kernel."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.lxcex.share.plugins.module_utils import _plan
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._idmap import single

IDMAP = single(7000, 101000, 7000, 100100)
DEST = '/home/alice/share'
THUNK = '/mnt/share-thunks/ct/home-alice-share'


class Share(object):
    def __init__(self, **kw):
        self.__dict__.update(dict(state='present', dest=DEST, src='/srv/s', idmap=IDMAP, readonly=False, nosuid=True,
                                  nonempty='warn', thunk=THUNK, uid=1000, gid=100, created=[]), **kw)


class Mount(object):
    def __init__(self, mount_id, mount_point, fstype='ext4', source='/dev/vda'):
        self.mount_id, self.mount_point, self.fstype, self.source = mount_id, mount_point, fstype, source


def ours(**kw):
    cur = {'mounted': True, 'ours': True, 'mount_id': 40, 'resolved': DEST, 'readonly': False, 'nosuid': True,
           'covers': [], 'src': '/srv/s', 'idmap': IDMAP.entries(), 'thunk_mount_id': 30}
    cur.update(kw)
    return cur


RECORD = {'mount_id': 40, 'created': []}
ATTACH = ('attach', THUNK, DEST, (1000, 100), False)


def test_a_new_share_attaches():
    plan = _plan.live_plan(Share(), {'mounted': False}, None, [])
    assert plan.ops == [ATTACH] and plan.changed and not plan.drift
    assert plan.after == {'mounted': True, 'src': '/srv/s', 'idmap': IDMAP.entries(), 'readonly': False,
                          'nosuid': True}


def test_as_it_should_be_nothing_to_do():
    plan = _plan.live_plan(Share(), ours(), RECORD, [], thunk_mount_id=30)
    assert plan.ops == [] and not plan.changed and plan.before['mounted']


def test_a_new_thunk_or_other_flags_replace_the_mount():
    assert _plan.live_plan(Share(), ours(), RECORD, [], thunk_changed=True, thunk_mount_id=30).ops == [
        ('attach', THUNK, DEST, (1000, 100), True)]
    plan = _plan.live_plan(Share(readonly=True), ours(), RECORD, [], thunk_mount_id=30)
    assert plan.ops[-1][0] == 'attach' and plan.drift == ['not read-only, declared read-only']


def test_unmounted_by_container_root_is_drift_and_mounted_again():
    plan = _plan.live_plan(Share(), {'mounted': False}, RECORD, [])
    assert plan.drift == ['unmounted: nothing of the share is mounted at %s' % DEST]
    assert plan.repaired == plan.drift and plan.ops == [ATTACH]


def test_covered_the_covers_go_top_first():
    covers = [Mount(50, DEST, 'tmpfs', 'a'), Mount(51, DEST, 'tmpfs', 'b')]
    plan = _plan.live_plan(Share(), ours(covers=covers), RECORD, [], thunk_mount_id=30)
    assert plan.ops == [('umount_id', 51, DEST), ('umount_id', 50, DEST)]
    assert plan.drift[0] == 'covered by a tmpfs mount (b) at %s' % DEST and plan.changed


def test_copies_go_but_not_other_shares_nor_the_mount_at_dest():
    copies = [Mount(40, DEST), Mount(60, '/tmp/copy'), Mount(61, '/home/alice/other')]
    plan = _plan.live_plan(Share(), ours(), RECORD, copies, share_points={'/home/alice/other'}, thunk_mount_id=30)
    assert plan.ops == [('umount_id', 60, '/tmp/copy')] and plan.drift == ['copied to /tmp/copy']


def test_a_view_of_the_thunks_directory_is_no_copy():
    copies = [Mount(70, '/mnt/share-thunks/ct/home-alice-share')]
    plan = _plan.live_plan(Share(), ours(), RECORD, copies, thunk_mount_id=30, thunks_dir='/mnt/share-thunks')
    assert plan.ops == [] and not plan.drift


def test_without_a_record_no_copy_is_guessed():
    plan = _plan.live_plan(Share(), ours(), None, [Mount(60, '/tmp/copy')], thunk_mount_id=30)
    assert ('umount_id', 60, '/tmp/copy') not in plan.ops


def test_a_mount_of_container_root_at_dest_is_never_covered():
    with pytest.raises(ShareError, match='refusing to cover it'):
        _plan.live_plan(Share(), {'mounted': True, 'ours': False, 'mount_id': 9}, None, [], container='ct')


def test_a_non_empty_dest_warns_or_is_refused():
    plan = _plan.live_plan(Share(), {'mounted': False, 'entries': 3}, None, [])
    assert plan.covered == 3 and 'hides 3 entries' in plan.warnings[0] and plan.ops == [ATTACH]
    with pytest.raises(ShareError, match='nonempty_dest=refuse'):
        _plan.live_plan(Share(nonempty='refuse'), {'mounted': False, 'entries': 1001}, None, [])


def test_removal_takes_the_copies_or_the_mount_and_the_directories_it_made():
    plan = _plan.live_plan(Share(state='absent', created=['/home/alice']), ours(), RECORD,
                           [Mount(40, DEST), Mount(60, '/tmp/copy')])
    assert plan.ops == [('umount_id', 40, DEST), ('umount_id', 60, '/tmp/copy'), ('rmdirs', ['/home/alice'], DEST)]
    assert plan.revoked == [DEST, '/tmp/copy']
    assert _plan.live_plan(Share(state='absent'), ours(), RECORD, []).ops == [('umount', DEST, DEST)]
    gone = _plan.live_plan(Share(state='absent'), {'mounted': False}, None, [])
    assert gone.ops == [] and not gone.changed
    foreign = _plan.live_plan(Share(state='absent'), {'mounted': True, 'ours': False}, None, [])
    assert foreign.ops == [] and foreign.after == foreign.before
