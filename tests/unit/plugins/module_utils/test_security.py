# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks, bounds and the src resolution rules, on real directory trees."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._passwd import Accounts, parse_db
from ansible_collections.lxcex.share.plugins.module_utils._resolve import (
    MAX_CREATE, MAX_SHOWN, ResolveError, open_dir, resolve_src, shown, walk)
from ansible_collections.lxcex.share.plugins.module_utils._thunkfs import MAX_THUNK_NAME, thunk_name
from ansible_collections.lxcex.share.plugins.module_utils._validate import check_id, check_text, check_thunks_size

CT_ROOT = 4000000


@pytest.mark.parametrize('value', [0, 1000, 4294967294, '17'])
def test_ids_in_range(value):
    assert check_id('src_uid', value) == int(value)


@pytest.mark.parametrize('value', [4294967295, 4294967296, -1, 1.5, 'x', '1e3'])
def test_ids_out_of_range(value):
    with pytest.raises(ShareError, match='src_uid'):
        check_id('src_uid', value)


@pytest.mark.parametrize('value', ['/a\0b', '/a\nlxc.hook.pre-start = /x', 'a\rb'])
def test_text_refused(value):
    with pytest.raises(ShareError, match='dest .* contains'):
        check_text('dest', value)


@pytest.mark.parametrize('value', ['1M', '512k', '2g', '10%', '100'])
def test_thunks_size_ok(value):
    assert check_thunks_size(value) == value


@pytest.mark.parametrize('value', ['1Q', '1M,mode=0777', '1M\nx', '', None, '-1M'])
def test_thunks_size_refused(value):
    with pytest.raises(ShareError, match='thunks_size'):
        check_thunks_size(value)


def test_long_dests_get_bounded_distinct_names():
    short = '/home/bob/' + 'x' * 200
    assert thunk_name(short) == 'home-bob-' + 'x' * 200
    a = '/home/bob/' + '/'.join('long-component-%02d' % i for i in range(20))
    b = a + 'y'
    assert len(thunk_name(a)) <= MAX_THUNK_NAME and len(thunk_name(b)) <= MAX_THUNK_NAME
    assert thunk_name(a) != thunk_name(b)


def test_shown_cuts_and_escapes():
    assert shown('a\nb') == 'a\\x0ab'
    long = shown('a/' * 2000)
    assert len(long) < MAX_SHOWN + 40 and long.endswith('(4000 characters)')


def test_passwd_keeps_only_names_and_ids():
    users, uids = parse_db(b'root:x:0:0::/:/bin/sh\nbob:x:1000:100:' + b'g' * 10000 + b':/:/bin/sh\n'
                           b'big:x:99999999999:1::/:/bin/sh\nbob:x:2000:200::/:/bin/sh\n', 4)
    assert users == {'root': (0, 0), 'bob': (1000, 100)}
    assert uids == {0: 'root', 1000: 'bob', 2000: 'bob'}
    acc = Accounts(b'bob:x:1000:100::/:/bin/sh\n', b'users:x:100:\n', 'ct')
    assert acc.user('bob') == (1000, 100, 'bob')


def test_walk_creates_a_bounded_number_of_directories(tmp_path):
    root = tmp_path / 'r'
    root.mkdir()
    fd = open_dir(str(root))
    try:
        deep = '/' + '/'.join('d%d' % i for i in range(MAX_CREATE + 5))
        with pytest.raises(ResolveError, match='directories to create'):
            walk(fd, deep, 'dest', create_owner=(os.getuid(), os.getgid()))
        assert not os.listdir(str(root)), 'what was created is removed again'
    finally:
        os.close(fd)


@pytest.fixture
def tree(tmp_path):
    """A host tree with a container rootfs: symlinks of host root, of container root and of a user."""
    host = tmp_path / 'host'
    rootfs = tmp_path / 'lxc' / 'ct' / 'rootfs'
    (rootfs / 'home' / 'alice' / 'proj').mkdir(parents=True)
    (rootfs / 'etc').mkdir()
    (host / 'data').mkdir(parents=True)
    os.symlink(str(host / 'data'), str(host / 'root-link'))
    os.symlink('/', str(rootfs / 'home' / 'alice' / 'user-link'))
    os.lchown(str(rootfs / 'home' / 'alice' / 'user-link'), CT_ROOT + 1000, CT_ROOT + 1000)
    os.symlink('/home/alice/proj', str(rootfs / 'home' / 'alice' / 'root-link'))
    os.lchown(str(rootfs / 'home' / 'alice' / 'root-link'), CT_ROOT, CT_ROOT)
    os.symlink('../../../../../../../../../..' + str(host / 'data'), str(rootfs / 'home' / 'alice' / 'climb'))
    os.lchown(str(rootfs / 'home' / 'alice' / 'climb'), CT_ROOT, CT_ROOT)
    os.symlink(str(host / 'data'), str(host / 'user-link'))
    os.lchown(str(host / 'user-link'), 1234, 1234)
    st = os.stat(str(rootfs))
    owners = {(st.st_dev, st.st_ino): ('ct', CT_ROOT)}
    return host, rootfs, lambda s: owners.get((s.st_dev, s.st_ino))


def _resolved(path, owner):
    res = resolve_src(str(path), owner)
    try:
        return os.readlink('/proc/self/fd/%d' % res.fd), res.container
    finally:
        os.close(res.fd)


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to give symlinks other owners')
def test_src_rules(tree):
    host, rootfs, owner = tree
    assert _resolved(host / 'root-link', owner) == (str(host / 'data'), None)
    with pytest.raises(ResolveError, match='owned by uid 1234'):
        resolve_src(str(host / 'user-link'), owner)
    assert _resolved(rootfs / 'home' / 'alice' / 'proj', owner) == (str(rootfs / 'home' / 'alice' / 'proj'), 'ct')
    assert _resolved(rootfs / 'home' / 'alice' / 'root-link', owner)[0] == str(rootfs / 'home' / 'alice' / 'proj')
    with pytest.raises(ResolveError, match='not by the root of container ct'):
        resolve_src(str(rootfs / 'home' / 'alice' / 'user-link'), owner)
    with pytest.raises(ResolveError, match='climbs above the root filesystem'):
        resolve_src(str(rootfs / 'home' / 'alice' / 'climb'), owner)
    with pytest.raises(ResolveError, match='climbs above'):
        resolve_src(str(rootfs / 'home' / '..' / '..' / 'rootfs' / 'etc'), owner)
