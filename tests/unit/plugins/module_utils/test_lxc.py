# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container facts from the config, users from passwd data, thunk names."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._lxc import Container, parse_config_lines
from ansible_collections.lxcex.share.plugins.module_utils._passwd import Accounts
from ansible_collections.lxcex.share.plugins.module_utils._thunkfs import thunk_name

CONFIG = """
# comment
lxc.include = /usr/share/lxc/config/common.conf
lxc.rootfs.path = dir:/var/lib/lxc/bob/rootfs
lxc.idmap = u 0 400000 1000
lxc.idmap = u 1000 1000 1
lxc.idmap = u 1001 401001 64535
lxc.idmap = g 0 400000 65536
lxc.rootfs.options = idmap=container
"""


def container(text=CONFIG):
    return Container('bob', '/var/lib/lxc', parse_config_lines(text))


def test_config_facts():
    ct = container()
    assert ct.rootfs == '/var/lib/lxc/bob/rootfs'
    assert ct.rootfs_idmapped
    assert not ct.privileged
    assert ct.host_id('u', 0) == 400000
    assert ct.host_id('u', 1000) == 1000
    assert ct.host_id('u', 1002) == 401002
    assert ct.host_id('g', 100) == 400100


def test_id_outside_ranges():
    with pytest.raises(ShareError, match=r'uid 70000 is outside container bob.s uid ranges'):
        container().host_id('u', 70000)


def test_privileged_maps_identically():
    ct = container('lxc.rootfs.path = /srv/ct/rootfs\n')
    assert ct.privileged and ct.rootfs == '/srv/ct/rootfs'
    assert ct.host_id('u', 1000) == 1000


def test_bad_idmap_line():
    with pytest.raises(ShareError, match='cannot parse lxc.idmap'):
        container('lxc.idmap = u 0 x 10\n')


PASSWD = b"root:x:0:0:root:/root:/bin/sh\nbob:x:1000:100:Bob:/home/bob:/bin/sh\n+nis\nbroken\nnogroup:x:1001::x:/:/bin/sh\n"
GROUP = b"root:x:0:\nusers:x:100:\nstaff:x:50:bob\n"


def test_accounts():
    acc = Accounts(PASSWD, GROUP, 'bob-container')
    assert acc.user('bob') == (1000, 100, 'bob')
    assert acc.user('1000') == (1000, 100, 'bob')
    assert acc.user(2000) == (2000, None, '2000')
    assert acc.user('nogroup') == (1001, None, 'nogroup')
    assert acc.group('staff') == (50, 'staff')
    assert acc.group('77') == (77, '77')
    with pytest.raises(ShareError, match="unknown user 'eve' in container bob-container"):
        acc.user('eve')
    with pytest.raises(ShareError, match="unknown group 'wheel'"):
        acc.group('wheel')


@pytest.mark.parametrize('dest,name', [
    ('/home/bob/share', 'home-bob-share'),
    ('/home/bob/my docs', 'home-bob-my\\x20docs'),
    ('/home/bob-x', 'home-bob\\x2dx'),
    ('/.hidden', '\\x2ehidden'),
    ('/', '-'),
])
def test_thunk_name(dest, name):
    assert thunk_name(dest) == name


def test_thunk_names_never_collide_or_nest():
    dests = ['/a/b', '/a-b', '/a/b/c', '/a b', '/a_b']
    names = [thunk_name(d) for d in dests]
    assert len(set(names)) == len(names)
    assert all('/' not in n for n in names)
