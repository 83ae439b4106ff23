# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.lxcex.share.plugins.module_utils._idmap import Idmap, IdmapError, parse, single


def test_u_and_g_entries():
    m = parse(['u:1000:201000:1', 'g:100:200100:1'])
    assert m.uid == ((1000, 201000, 1),)
    assert m.gid == ((100, 200100, 1),)
    assert m.entries() == ['u:1000:201000:1', 'g:100:200100:1']
    assert m.proc_maps() == ('1000 201000 1\n', '100 200100 1\n')


def test_b_expands_to_both_and_compares_equal():
    assert parse(['b:1000:201000:5']) == parse(['g:1000:201000:5', 'u:1000:201000:5'])
    assert parse(['b:1000:201000:5']) != parse(['u:1000:201000:5', 'g:1000:201000:4'])


def test_order_does_not_matter_and_hashable():
    a = parse(['u:2000:302000:1', 'u:1000:301000:1', 'g:1:5:1'])
    b = parse(['g:1:5:1', 'u:1000:301000:1', 'u:2000:302000:1'])
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1


def test_single():
    assert single(1000, 401000, 100, 400100) == parse(['u:1000:401000:1', 'g:100:400100:1'])


def test_round_trip_dict():
    m = parse(['u:1:2:3', 'g:4:5:6'])
    assert Idmap.from_dict(m.to_dict()) == m


def test_largest_id_allowed():
    m = parse(['u:4294967294:1000:1', 'g:1000:4294967294:1'])
    assert m.uid == ((4294967294, 1000, 1),)
    assert m.gid == ((1000, 4294967294, 1),)


@pytest.mark.parametrize('entries, message', [
    ([], 'idmap is empty'),
    (['x:1:2:3'], "kind 'x' is not u, g or b"),
    (['u:1:2'], 'expected KIND:FROM:TO:COUNT'),
    (['u:1:2:3:4'], 'expected KIND:FROM:TO:COUNT'),
    (['u:a:2:3'], "FROM 'a' is not a non-negative integer"),
    (['u:1:-2:3'], "TO '-2' is not a non-negative integer"),
    (['u:1:2:0'], 'COUNT must be at least 1'),
    (['u:1:2:-1'], "COUNT '-1' is not a non-negative integer"),
    (['u:1:2: 3'], "COUNT ' 3' is not a non-negative integer"),
    (['u:\u0661:2:3'], 'is not a non-negative integer'),
    (['u:4294967295:1:1'], 'goes above the largest id 4294967294'),
    (['u:1:4294967290:10'], 'TO range 4294967290-4294967299 goes above'),
    (['u:10:100:10', 'u:19:200:1'], 'overlap on the FROM side'),
    (['u:10:100:10', 'b:30:109:1'], 'overlap on the TO side'),
    (['g:10:100:10', 'b:15:300:1'], 'idmap gid entries'),
    (['u:%d:%d:1' % (i + 1, i + 100000) for i in range(341)], '341 uid extents'),
    (['u:0:1000:1'], 'maps host id 0 (root)'),
    (['g:1000:0:1'], 'maps host id 0 (root)'),
    (['b:5:1000:1', 'u:0:2000:1'], 'maps host id 0 (root)'),
    ([42], 'is not a string'),
])
def test_rejected(entries, message):
    with pytest.raises(IdmapError) as exc:
        parse(entries)
    assert message in str(exc.value)


def test_root_allowed_when_asked():
    assert parse(['b:0:100000:65536'], allow_root=True).uid == ((0, 100000, 65536),)


def test_340_extents_allowed():
    assert len(parse(['u:%d:%d:1' % (i + 1, i + 100000) for i in range(340)]).uid) == 340


def test_adjacent_ranges_do_not_overlap():
    m = parse(['u:10:100:10', 'u:20:110:10'])
    assert sorted(m.uid) == [(10, 100, 10), (20, 110, 10)]
