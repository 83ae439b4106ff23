# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lxcex-share command's parsing and the host settings file, without root."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.lxcex.share.plugins.module_utils import _cli, _hostconf
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError


def opts(argv):
    return _cli._parser('/nonexistent').parse_intermixed_args(argv)


def test_members_of_a_team_share():
    assert _cli.parse_member('ct-a/alice') == {'container': 'ct-a', 'user': 'alice'}
    assert _cli.parse_member('ct-b/bob:5002') == {'container': 'ct-b', 'user': 'bob', 'disk_uid': 5002}
    for bad in ('alice', '/alice', 'ct/', 'ct/bob:x'):
        with pytest.raises(ShareError):
            _cli.parse_member(bad)


def test_team_requests():
    req = _cli.team_request(opts(['--disk-gid', '5000', 'team', '/srv/t', '/home/t', 'a/alice', 'b/bob:7']))
    assert req['src'] == '/srv/t' and req['dest'] == '/home/t' and req['disk_gid'] == 5000
    assert req['members'] == [{'container': 'a', 'user': 'alice'}, {'container': 'b', 'user': 'bob', 'disk_uid': 7}]
    gone = _cli.team_request(opts(['--remove', 'team', '/home/t', 'a/alice']))
    assert gone['state'] == 'absent' and 'src' not in gone
    assert _cli.team_request(opts(['team', '/srv/t', '/home/t'])) is None


def test_options_after_the_words():
    o = opts(['list', '--json', 'ct-a'])
    assert o.json and o.args == ['list', 'ct-a']


def test_host_settings_written_and_read_back(tmp_path):
    p = dict(lxcpath='/var/lib/lxc', thunks_dir='/mnt/t', thunks_size='1M', backend='native', log_file='/var/log/x',
             deadline=30.0)
    path = tmp_path / 'conf'
    path.write_bytes(_hostconf.text(p))
    assert _hostconf.read(str(path)) == {'lxcpath': '/var/lib/lxc', 'thunks_dir': '/mnt/t', 'thunks_size': '1M',
                                         'backend': 'native', 'log_file': '/var/log/x', 'deadline': '30'}
    assert _hostconf.read(str(tmp_path / 'missing')) == {}
