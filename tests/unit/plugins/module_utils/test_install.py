# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook program's installation: the code packed deterministically, files written only when they differ, every
file put back when the program does not run, the legacy tree removed only when it is ours."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.lxcex.share.plugins.module_utils import _install
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError

MODULE_UTILS = os.path.dirname(os.path.abspath(_install.__file__))


def params(tmp_path, **kw):
    p = dict(program=str(tmp_path / 'bin' / 'lxcex-share'), code_dir=str(tmp_path / 'lib' / 'lxcex-share'), python=sys.executable,
             host_config=str(tmp_path / 'etc' / 'lxcex-share.conf'), lxcpath=None, thunks_dir='/mnt/share-thunks',
             thunks_size='1M', backend='native', mount_idmapped=None, log_file='/var/log/lxcex-share.log',
             deadline=30.0)
    p.update(kw)
    return p


def test_code_is_every_module_util_byte_for_byte_and_no_pyc():
    files = _install.code_files()
    on_disk = sorted(n for n in os.listdir(MODULE_UTILS) if n.endswith('.py') and n != '__init__.py')
    assert sorted(files) == on_disk
    for name in on_disk:
        with open(os.path.join(MODULE_UTILS, name), 'rb') as f:
            assert files[name] == f.read()


def test_pack_is_deterministic_and_importable(tmp_path):
    a = _install.pack(_install.code_files())
    b = _install.pack(dict(reversed(list(_install.code_files().items()))))
    assert a == b
    path = tmp_path / 'x.pyz'
    path.write_bytes(a)
    with zipfile.ZipFile(str(path)) as z:
        names = z.namelist()
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in z.infolist())
    assert not [n for n in names if n.endswith('.pyc') or '__pycache__' in n]
    out = subprocess.check_output([sys.executable, '-c', 'import sys; sys.path.insert(0, %r); '
                                   'from ansible_collections.lxcex.share.plugins.module_utils import _cli; '
                                   'print(_cli.__file__)' % str(path)], cwd=str(tmp_path))
    assert str(path) in out.decode()


def test_incomplete_code_is_refused(monkeypatch):
    files = _install.code_files()
    del files['_errors.py']
    monkeypatch.setattr(_install.pkgutil, 'iter_modules',
                        lambda path: [(None, n[:-3], False) for n in sorted(files)])
    with pytest.raises(ShareError, match='_errors.py'):
        _install.code_files()


def test_install_writes_then_nothing_to_do(tmp_path):
    p = params(tmp_path)
    r = _install.install(p, check_mode=True)
    assert r['changed'] and len(r['files']) == 3 and not os.path.exists(p['program'])
    r = _install.install(p)
    assert r['changed'] and sorted(r['files']) == sorted([p['program'], p['host_config'],
                                                          os.path.join(p['code_dir'], 'lxcex-share.pyz')])
    assert os.stat(p['program']).st_mode & 0o777 == 0o755
    assert subprocess.check_output([p['program'], '--version']).decode().strip().endswith(_install._cli.VERSION)
    with open(p['host_config']) as f:
        assert 'thunks_dir = /mnt/share-thunks' in f.read()
    st = os.stat(os.path.join(p['code_dir'], 'lxcex-share.pyz'))
    r = _install.install(p)
    assert not r['changed'] and not r['files']
    assert os.stat(os.path.join(p['code_dir'], 'lxcex-share.pyz')).st_mtime_ns == st.st_mtime_ns
    # A changed setting rewrites only the settings.
    r = _install.install(params(tmp_path, deadline=12.0))
    assert r['files'] == [p['host_config']]


def test_a_program_that_does_not_run_puts_everything_back(tmp_path):
    p = params(tmp_path)
    _install.install(p)
    with open(p['program'], 'rb') as f:
        before = f.read()
    fake = tmp_path / 'python-that-fails'
    fake.write_text('#!/bin/sh\nexit 3\n')
    fake.chmod(0o755)
    with pytest.raises(ShareError, match='does not run'):
        _install.install(params(tmp_path, python=str(fake)))
    with open(p['program'], 'rb') as f:
        assert f.read() == before
    fresh = params(tmp_path / 'new', python=str(fake))
    with pytest.raises(ShareError):
        _install.install(fresh)
    assert not os.path.exists(str(tmp_path / 'new'))


def test_missing_python_and_bad_paths_are_refused(tmp_path):
    with pytest.raises(ShareError, match='not an executable'):
        _install.install(params(tmp_path, python='/nonexistent/python3'))
    with pytest.raises(ShareError, match='absolute'):
        _install.install(params(tmp_path, program='bin/lxcex-share'))
    (tmp_path / 'bin').mkdir()
    os.symlink('/etc/passwd', str(tmp_path / 'bin' / 'lxcex-share'))
    with pytest.raises(ShareError, match='not a regular file'):
        _install.install(params(tmp_path))
    assert os.readlink(str(tmp_path / 'bin' / 'lxcex-share')) == '/etc/passwd'


def test_legacy_tree_removed_only_when_ours(tmp_path):
    p = params(tmp_path)
    top = tmp_path / 'lib' / 'lxcex-share' / 'ansible_collections'
    tree = top / 'lxcex' / 'share' / 'plugins' / 'module_utils'
    tree.mkdir(parents=True)
    (tree / '_cli.py').write_text('x = 1\n')
    (tree / '__pycache__').mkdir()
    (tree / '__pycache__' / '_cli.cpython-311.pyc').write_bytes(b'\0')
    assert _install.remove_legacy(p, check_mode=True) == (str(top), None)
    assert tree.exists()
    (tree / 'notes.txt').write_text('mine\n')
    removed, warning = _install.remove_legacy(p)
    assert removed is None and 'left in place' in warning and (tree / 'notes.txt').exists()
    (tree / 'notes.txt').unlink()
    removed, warning = _install.remove_legacy(p)
    assert removed and warning is None and not top.exists()


def test_uninstall(tmp_path):
    p = params(tmp_path)
    _install.install(p)
    assert sorted(_install.uninstall(p, check_mode=True)) == sorted(_install.uninstall(p))
    assert not os.path.exists(p['program']) and not os.path.exists(p['code_dir'])
    assert _install.uninstall(p) == []
    # A code_dir of another name is left (it may be shared with other programs).
    other = params(tmp_path, code_dir=str(tmp_path / 'lib'))
    _install.install(other)
    _install.uninstall(other)
    assert os.path.isdir(other['code_dir']) and not os.listdir(other['code_dir'])


def test_program_version_is_the_collection_version():
    galaxy = os.path.join(MODULE_UTILS, '..', '..', 'galaxy.yml')
    with open(galaxy) as f:
        version = [l.split(':', 1)[1].strip() for l in f if l.startswith('version:')][0]
    assert _install._cli.VERSION == version
