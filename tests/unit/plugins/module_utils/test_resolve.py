# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resolving container-controlled paths inside a root, on a real directory tree."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.lxcex.share.plugins.module_utils._resolve import ResolveError, open_dir, read_data_file, walk


@pytest.fixture
def root(tmp_path):
    r = tmp_path / 'root'
    (r / 'home' / 'bob').mkdir(parents=True)
    (r / 'etc').mkdir()
    (r / 'etc' / 'passwd').write_text('bob:x:1000:100::/:/bin/sh\n')
    (tmp_path / 'outside').mkdir()
    (tmp_path / 'host-passwd').write_text('host:x:0:0::/:/bin/sh\n')
    os.symlink('/etc', str(r / 'home' / 'bob' / 'abs'))
    os.symlink('../..', str(r / 'home' / 'bob' / 'up2'))
    os.symlink('../../../outside', str(r / 'home' / 'bob' / 'escape'))
    os.symlink('/../../outside', str(r / 'home' / 'bob' / 'escape-abs'))
    fd = open_dir(str(r))
    yield r, fd
    os.close(fd)


def resolved(fd, path, **kw):
    dfd, where, created = walk(fd, path, 'dest', **kw)
    os.close(dfd)
    return where, created


def test_symlinks_resolve_inside_the_root(root):
    r, fd = root
    assert resolved(fd, '/home/bob/abs') == ('/etc', [])
    assert resolved(fd, '/home/bob/up2/etc') == ('/etc', [])
    assert resolved(fd, '/home/./bob//') == ('/home/bob', [])


@pytest.mark.parametrize('path', ['/home/bob/escape', '/home/bob/escape-abs/x', '/../outside', '/home/../../outside'])
def test_escapes_are_refused(root, path):
    r, fd = root
    with pytest.raises(ResolveError, match='outside the container'):
        walk(fd, path, 'dest')


def test_missing_is_reported_as_missing(root):
    r, fd = root
    with pytest.raises(ResolveError) as info:
        walk(fd, '/home/bob/nope/deeper', 'dest')
    assert info.value.missing


def test_create_makes_directories_inside(root):
    r, fd = root
    uid, gid = os.getuid(), os.getgid()
    where, created = resolved(fd, '/home/bob/abs/new/deeper', create_owner=(uid, gid), mode=0o750)
    assert where == '/etc/new/deeper'
    assert created == ['/etc/new', '/etc/new/deeper']
    assert (r / 'etc' / 'new' / 'deeper').is_dir()
    assert oct((r / 'etc' / 'new').stat().st_mode & 0o777) == oct(0o750)


def test_data_file_is_read_inside_the_root(root):
    r, fd = root
    assert read_data_file(fd, '/etc/passwd', 'file').startswith(b'bob:')
    (r / 'etc' / 'passwd').unlink()
    os.symlink(str(r.parent / 'host-passwd'), str(r / 'etc' / 'passwd'))
    with pytest.raises(ResolveError, match='cannot read file /etc/passwd'):
        read_data_file(fd, '/etc/passwd', 'file')
