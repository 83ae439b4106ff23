# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lxc_share's parameters as requests, refused before anything is read: no root, no kernel."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._request import SHARE_SPEC, requests_of


def params(**kw):
    p = dict((k, v.get('default')) for k, v in SHARE_SPEC.items())
    p.update(shares=None, exclusive='none', owner='task')
    p.update(kw)
    return p


def test_one_share_is_one_request_with_every_key():
    requests, batch = requests_of(params(container='ct', dest='/d', src='/s', user='alice'))
    assert not batch and len(requests) == 1
    assert set(requests[0]) == set(SHARE_SPEC) | {'owner'} and requests[0]['owner'] == 'task'


def test_shares_and_a_team_at_the_top_are_batches():
    requests, batch = requests_of(params(shares=[dict(container='ct', dest='/d', src='/s', user='a')], owner='role'))
    assert batch and requests == [dict(container='ct', dest='/d', src='/s', user='a', owner='role')]
    requests, batch = requests_of(params(src='/s', dest='/d', members=[{'container': 'ct', 'user': 'a'}]))
    assert batch


@pytest.mark.parametrize('kw, words', [
    (dict(container='ct', dest='/d', user='a'), 'missing: src'),
    (dict(container='ct', dest='/d', src='/s', user='a', exclusive='all'), 'exclusive=all needs shares'),
    (dict(container='ct', dest='/d', src='/s', user='a', owner='Bad Owner'), "owner 'Bad Owner'"),
    (dict(members=[{'container': 'ct', 'user': 'a'}], user='a', dest='/d', src='/s'), 'cannot be combined with user'),
    (dict(shares=[dict(container='ct', dest='/d')], ), None),
    (dict(shares=[dict(container='ct', src='/s', user='a')]), 'shares[0] (dest None): missing dest'),
])
def test_refusals_name_the_value(kw, words):
    if words is None:
        with pytest.raises(ShareError, match='missing src, user'):
            requests_of(params(**kw))
        return
    with pytest.raises(ShareError) as e:
        requests_of(params(**kw))
    assert words in str(e.value)
