# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Team shares: members, disk uid allocation, the idmap of each container, the sharetab line (pure logic)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.lxcex.share.plugins.module_utils import _sharetab, _team
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._lxc import Container
from ansible_collections.lxcex.share.plugins.module_utils._passwd import Accounts

PASSWD_A = b'root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/:/bin/sh\ncarol:x:1001:100::/:/bin/sh\n' \
           b'bob:x:1002:1002::/:/bin/sh\n'
GROUP_A = b'root:x:0:\nusers:x:100:\ndevs:x:2000:alice,carol\nbob:x:1002:\n'
PASSWD_B = b'root:x:0:0::/root:/bin/sh\nbob:x:1000:100::/:/bin/sh\n'
GROUP_B = b'root:x:0:\nusers:x:100:\n'


class FakeEngine(object):
    """Only what idmap_for reads: each container's accounts (the passwd and group texts as data)."""

    def __init__(self, accounts):
        self._accounts = accounts

    def accounts(self, container):
        return self._accounts[container.name]

    def container(self, name):
        return {'ct-a': CT_A, 'ct-b': CT_B}[name]


def container(name, base):
    return Container(name, '/nonexistent', [('lxc.idmap', 'u 0 %d 65536' % base), ('lxc.idmap', 'g 0 %d 65536' % base)])


CT_A, CT_B = container('ct-a', 100000), container('ct-b', 200000)
ENGINE = FakeEngine({'ct-a': Accounts(PASSWD_A, GROUP_A, 'ct-a'), 'ct-b': Accounts(PASSWD_B, GROUP_B, 'ct-b')})


def members(*triples):
    return [_team.Member(c, u, d, '/team') for c, u, d in triples]


def test_members_are_validated_with_the_bad_value_named():
    with pytest.raises(ShareError, match="container 'a/b'"):
        _team.parse_members([{'container': 'a/b', 'user': 'alice'}], '/t')
    with pytest.raises(ShareError, match='disk_uid 0 is root'):
        _team.parse_members([{'container': 'a', 'user': 'alice', 'disk_uid': 0}], '/t')
    with pytest.raises(ShareError, match='unknown key colour'):
        _team.parse_members([{'container': 'a', 'user': 'alice', 'colour': 1}], '/t')
    with pytest.raises(ShareError, match='no dest'):
        _team.parse_members([{'container': 'a', 'user': 'alice'}], None)
    with pytest.raises(ShareError, match='listed twice'):
        _team.parse_members([{'container': 'a', 'user': 'alice'}, {'container': 'a', 'user': 'alice'}], '/t')


def test_encode_decode_round_trip():
    ms = members(('ct-a', 'alice', 5001), ('ct-b', 'bob', 5002))
    text = _team.encode(ms)
    assert text == 'ct-a/alice/5001;ct-b/bob/5002'
    decoded = [(m.container, m.user, m.disk_uid) for m in _team.decode(text)]
    assert decoded == [('ct-a', 'alice', 5001), ('ct-b', 'bob', 5002)]
    with pytest.raises(ShareError, match='CONTAINER/USER/DISK_UID'):
        _team.decode('ct-a/alice')


def test_allocation_reuses_recorded_ids_and_takes_the_lowest_free_one():
    ms = members(('ct-a', 'alice', None), ('ct-b', 'alice', None), ('ct-a', 'carol', None), ('ct-b', 'bob', 5002))
    _team.allocate(ms, {'carol': 2000000000})
    assert [m.disk_uid for m in ms] == [2000000001, 2000000001, 2000000000, 5002]


def test_one_name_is_one_person():
    with pytest.raises(ShareError, match='same person'):
        _team.check_members(members(('ct-a', 'alice', 5001), ('ct-b', 'alice', 5009)))
    with pytest.raises(ShareError, match='both have disk_uid 5001'):
        _team.check_members(members(('ct-a', 'alice', 5001), ('ct-b', 'bob', 5001)))


def test_expand_gives_one_request_per_container_and_dest():
    req = {'src': '/srv/t', 'dest': '/team', 'members': [
        {'container': 'ct-a', 'user': 'alice', 'disk_uid': 5001},
        {'container': 'ct-a', 'user': 'carol', 'disk_uid': 5003},
        {'container': 'ct-a', 'user': 'bob', 'disk_uid': 5002, 'dest': '/home/bob/team'},
        {'container': 'ct-b', 'user': 'bob', 'disk_uid': 5002}]}
    out = _team.expand(req, {})
    assert [(r['container'], r['dest'], r['user']) for r in out] == [
        ('ct-a', '/team', 'alice'), ('ct-a', '/home/bob/team', 'bob'), ('ct-b', '/team', 'bob')]
    assert len(set(r['members'] for r in out)) == 1


def test_idmap_of_each_container():
    ms = members(('ct-a', 'alice', 5001), ('ct-a', 'carol', 5003), ('ct-b', 'bob', 5002))
    idmap, owner = _team.idmap_for(ENGINE, CT_A, ms, 5000, 'devs', 0, '/team')
    # alice, carol: themselves; bob (of ct-b): the same number, outside ct-a (nobody); the source's owner: nobody.
    assert idmap.entries() == ['u:0:65534:1', 'u:5001:101000:1', 'u:5002:5002:1', 'u:5003:101001:1',
                               'g:5000:102000:1', 'g:5001:100100:1']
    assert owner == (1000, 2000)
    # show_authors: bob (of ct-b) is ct-a's bob.
    idmap, owner = _team.idmap_for(ENGINE, CT_A, ms, 5000, 'devs', 0, '/team', show_authors=True)
    assert idmap.entries() == ['u:0:65534:1', 'u:5001:101000:1', 'u:5002:101002:1', 'u:5003:101001:1',
                               'g:5000:102000:1', 'g:5001:100100:1']
    # ct-b has no group devs: bob's primary group stands for the team; ct-b has no alice or carol: same number.
    for show in (False, True):
        idmap, owner = _team.idmap_for(ENGINE, CT_B, ms, 5000, 'devs', 0, '/team', show_authors=show)
        assert idmap.entries() == ['u:0:65534:1', 'u:5001:5001:1', 'u:5002:201000:1', 'u:5003:5003:1',
                                   'g:5000:200100:1']
        assert owner == (1000, 100)


def test_a_member_given_by_uid_is_named_by_their_own_container():
    # uid 1000 of ct-b is bob, who is uid 1002 in ct-a.
    ms = members(('ct-a', 'alice', 5001), ('ct-a', 'carol', 5003), ('ct-b', '1000', 5002))
    idmap, dummy = _team.idmap_for(ENGINE, CT_A, ms, 5000, 'devs', 5001, '/team', show_authors=True)
    assert 'u:5002:101002:1' in idmap.entries()


def test_only_members_hold_the_teams_group():
    # carol is in devs of ct-a and no member: the group would give her the team's files.
    with pytest.raises(ShareError, match='group devs .gid 2000. of container ct-a.* also holds carol, not a member'):
        _team.idmap_for(ENGINE, CT_A, members(('ct-a', 'alice', 5001), ('ct-b', 'bob', 5002)), 5000, 'devs', 0,
                        '/team')
    # ct-c: the team's group is the primary group of its member (users), which eve has too.
    ct_c = container('ct-c', 300000)
    accounts = Accounts(b'root:x:0:0::/:/bin/sh\nbob:x:1000:100::/:/bin/sh\nalice:x:1001:100::/:/bin/sh\n'
                        b'eve:x:1002:100::/:/bin/sh\n', b'root:x:0:\nusers:x:100:\n', 'ct-c')
    engine = FakeEngine({'ct-a': ENGINE.accounts(CT_A), 'ct-c': accounts})
    ms = members(('ct-c', 'bob', 5002), ('ct-a', 'alice', 5001))
    with pytest.raises(ShareError, match=r'group users \(gid 100\) of container ct-c.*primary group of its members.*'
                                         r'also holds alice, eve'):
        _team.idmap_for(engine, ct_c, ms, 5000, None, 0, '/team')
    # show_authors: ct-c's alice is shown as the member alice, so only eve is left out.
    with pytest.raises(ShareError, match='also holds eve, not'):
        _team.idmap_for(engine, ct_c, ms, 5000, None, 0, '/team', show_authors=True)


def test_idmap_refusals_name_the_member_and_the_reason():
    with pytest.raises(ShareError, match='inside the id range of container ct-b'):
        _team.idmap_for(ENGINE, CT_B, members(('ct-b', 'bob', 5002), ('ct-a', 'carol', 200500)), 5000, None, 0,
                        '/team')
    with pytest.raises(ShareError, match='root of container ct-b'):
        _team.idmap_for(ENGINE, CT_B, members(('ct-a', 'alice', 5001), ('ct-b', 'root', 5009)), 5000, 'devs', 0,
                        '/team')
    with pytest.raises(ShareError, match='root of container ct-a'):
        _team.idmap_for(ENGINE, CT_A, members(('ct-a', 'alice', 5001), ('ct-a', 'carol', 5003), ('ct-b', 'root', 5009)),
                        5000, 'devs', 0, '/team', show_authors=True)
    with pytest.raises(ShareError, match='different primary groups'):
        _team.idmap_for(ENGINE, CT_A, members(('ct-a', 'alice', 5001), ('ct-a', 'bob', 5002)), 5000, None, 0,
                        '/team')
    with pytest.raises(ShareError, match='not in group devs'):
        _team.idmap_for(ENGINE, CT_A, members(('ct-a', 'alice', 5001), ('ct-a', 'bob', 5002)), 5000, 'devs', 0,
                        '/team')


def test_team_line_round_trip():
    req = {'src': '/srv/t x', 'container': 'ct-a', 'user': 'alice', 'dest': '/team', 'group': 'devs',
           'members': 'ct-a/alice/5001;ct-b/bob/5002', 'disk_gid': 5000, 'setup_src': False, 'owner': 'role',
           'show_authors': True}
    line = _sharetab.entry_of(req).format()
    assert line == ('/srv/t\\040x alice /team authors,disk_gid=5000,group=devs,managed=role,'
                    'members=ct-a/alice/5001;ct-b/bob/5002,nosetup')
    back = _sharetab.request_of('ct-a', _sharetab.parse_line(line))
    assert (back['members'], back['disk_gid'], back['setup_src'], back['allow_setuid'], back['show_authors']) == (
        req['members'], 5000, False, False, True)
    req['show_authors'] = False
    assert 'authors' not in _sharetab.entry_of(req).format()
    assert _sharetab.request_of('ct-a', _sharetab.entry_of(req))['show_authors'] is False


def test_default_acl_gives_the_group_rwx():
    assert _team.wanted_acl(None, 0o755) == [(0x01, 7, 0xffffffff), (0x04, 7, 0xffffffff), (0x20, 5, 0xffffffff)]
    kept = [(0x01, 6, 0xffffffff), (0x02, 4, 1234), (0x04, 4, 0xffffffff), (0x10, 4, 0xffffffff), (0x20, 0, 0xffffffff)]
    assert _team.wanted_acl(kept, 0o700) == [(0x01, 6, 0xffffffff), (0x02, 4, 1234), (0x04, 7, 0xffffffff),
                                             (0x10, 7, 0xffffffff), (0x20, 0, 0xffffffff)]
    assert _team._parse_acl(_team._format_acl(kept)) == sorted(kept)


def test_more_ids_than_the_kernel_takes_fail_before_any_change():
    many = members(*[('ct-b', 'bob', 5002)] + [('ct-x%d' % i, 'u%d' % i, 6000 + i) for i in range(340)])
    with pytest.raises(ShareError, match='needs 341 uid extents; the kernel allows at most 340'):
        _team.idmap_for(ENGINE, CT_B, many, 5000, None, 5002, '/team')
