# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sharetab: parsing, escaping, planned changes that keep foreign lines."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError

REFERENCE = """# host-directory  user-name  dest-directory

# private share
/var/lib/lxc/bob-container/rootfs/home/bob/share alice /home/alice/share

# shared directories
/var/share/secrets alice /home/alice/secrets
/var/share/public  alice /home/alice/public
"""


def test_reference_format_is_read():
    entries = [e for dummy, e in _sharetab.parse(REFERENCE) if e]
    assert [(e.src, e.user, e.dest, e.options) for e in entries] == [
        ('/var/lib/lxc/bob-container/rootfs/home/bob/share', 'alice', '/home/alice/share', {}),
        ('/var/share/secrets', 'alice', '/home/alice/secrets', {}),
        ('/var/share/public', 'alice', '/home/alice/public', {}),
    ]


@pytest.mark.parametrize('src', ['/srv/with space', '/srv/with\ttab', '/srv/new\nline', '/srv/back\\slash',
                                 '/srv/hash#comma,equals=', '/srv/ünïcode'])
def test_round_trip_of_odd_paths(src):
    entry = _sharetab.Entry(src, 'bob', '/home/bob/my docs', {'ro': None, 'group': 'users', 'managed': None})
    line = entry.format()
    assert len(line.split()) == 4
    again = _sharetab.parse_line(line + '\n')
    assert (again.src, again.user, again.dest, again.options) == (src, 'bob', '/home/bob/my docs', entry.options)


def test_options_column():
    entry = _sharetab.parse_line('/srv/a bob /home/bob/a ro,uid=1000,managed')
    assert entry.readonly and entry.managed
    assert entry.options == {'ro': None, 'uid': '1000', 'managed': None}


def test_bad_line():
    with pytest.raises(ShareError, match='expected HOST-DIRECTORY USER DEST'):
        _sharetab.parse_line('only two')


def test_plan_keeps_every_other_line():
    new_entry = _sharetab.Entry('/srv/new', 'alice', '/home/alice/new', {'managed': None})
    text, result = _sharetab.plan(REFERENCE + 'garbage line\n', {'/home/alice/new': new_entry})
    assert text == REFERENCE + 'garbage line\n/srv/new alice /home/alice/new managed\n'
    assert result['/home/alice/new'] == (None, new_entry)


def test_plan_replaces_in_place_and_removes():
    repl = _sharetab.Entry('/srv/other', 'alice', '/home/alice/secrets', {'ro': None})
    text, result = _sharetab.plan(REFERENCE, {'/home/alice/secrets/': repl, '/home/alice/public': None})
    lines = text.splitlines()
    assert lines[6] == '/srv/other alice /home/alice/secrets ro'
    assert '/home/alice/public' not in text
    assert lines[:6] == REFERENCE.splitlines()[:6]
    assert result['/home/alice/public'][1] is None


def test_plan_is_idempotent():
    entry = _sharetab.Entry('/srv/a', 'bob', '/home/bob/a', {'managed': None})
    once, dummy = _sharetab.plan('', {'/home/bob/a': entry})
    twice, dummy = _sharetab.plan(once, {'/home/bob/a': entry})
    assert once == twice


def test_duplicate_dest_lines_collapse():
    entry = _sharetab.Entry('/srv/a', 'bob', '/home/bob/a', {'managed': None})
    text, dummy = _sharetab.plan('/srv/x bob /home/bob/a\n/srv/y bob /home/bob/a\n', {'/home/bob/a': entry})
    assert text == '/srv/a bob /home/bob/a managed\n'


def test_update_writes_atomically(tmp_path):
    path = str(tmp_path / 'sharetab')
    entry = _sharetab.Entry('/srv/a', 'bob', '/home/bob/a', {'managed': None})
    assert _sharetab.update(path, {'/home/bob/a': entry}, check_mode=True)[0]
    assert not (tmp_path / 'sharetab').exists()
    assert _sharetab.update(path, {'/home/bob/a': entry})[0]
    assert not _sharetab.update(path, {'/home/bob/a': entry})[0]
    assert [e.dest for e in _sharetab.entries(path)] == ['/home/bob/a']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['sharetab']


def test_undo_of_a_new_sharetab_removes_it(tmp_path):
    path = str(tmp_path / 'sharetab')
    entry = _sharetab.Entry('/srv/a', 'bob', '/home/bob/a', {'managed': None})
    _sharetab.update(path, {'/home/bob/a': entry})
    assert _sharetab.update(path, {'/home/bob/a': None}, drop_empty=True)[0]
    assert not (tmp_path / 'sharetab').exists()
    (tmp_path / 'sharetab').write_text('# mine\n')
    _sharetab.update(path, {'/home/bob/a': entry})
    _sharetab.update(path, {'/home/bob/a': None}, drop_empty=True)
    assert (tmp_path / 'sharetab').read_text() == '# mine\n'


@pytest.mark.parametrize('request_', [
    {'src': '/srv/a b', 'user': 'bob', 'dest': '/home/bob/a/'},
    {'src': '/srv/a', 'user': 1000, 'dest': '/d', 'readonly': True, 'group': 'staff', 'src_uid': 7000,
     'src_gid': 7001, 'allow_root': True},
])
def test_request_and_line_are_inverse(request_):
    entry = _sharetab.entry_of(request_)
    line = _sharetab.parse_line(entry.format() + '\n')
    back = _sharetab.request_of('ct', line)
    assert line.managed
    assert back['src'] == request_['src'] and back['user'] == str(request_['user'])
    assert back['dest'] == _sharetab.normalize_dest(request_['dest'])
    for key in ('readonly', 'allow_root'):
        assert back[key] == bool(request_.get(key))
    for key in ('group', 'src_uid', 'src_gid'):
        assert back[key] == request_.get(key)
    assert _sharetab.entry_of(back) == entry
