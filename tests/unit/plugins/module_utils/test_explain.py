# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The explainer's decisions, without root or a kernel: facts in, answers and reasons out."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat

from ansible_collections.lxcex.share.plugins.module_utils import _explain
from ansible_collections.lxcex.share.plugins.module_utils._idmap import Idmap

BASE = 100000                   # the container's ids start here on the host
SRC_UID, SRC_GID = 7000, 7000   # the source's owner on disk


class St(object):
    def __init__(self, mode, uid=SRC_UID, gid=SRC_GID):
        self.st_mode, self.st_uid, self.st_gid = mode, uid, gid


def node(path, mode, uid=SRC_UID, gid=SRC_GID, acl=None, default_acl=None):
    return _explain.Node(path, St(mode, uid, gid), acl, default_acl)


def caller(uid=1000, gid=100, groups=((100, 'users'),), name='alice'):
    groups = [(g, n, BASE + g) for g, n in groups]

    def inside(kind, host):
        return BASE <= host < BASE + 65536
    return _explain.Caller(name, uid, gid, groups, BASE + uid, BASE + gid, [h for dummy, dummy2, h in groups], inside)


def view(uid=1000, gid=100, readonly=False, nosuid=True, extra_uid=(), extra_gid=()):
    idmap = Idmap([(SRC_UID, BASE + uid, 1)] + list(extra_uid), [(SRC_GID, BASE + gid, 1)] + list(extra_gid))
    names = {1000: 'alice', 100: 'users', 200: 'devs'}

    def to_container(kind, host):
        return host - BASE if BASE <= host < BASE + 65536 else None
    return _explain.View(idmap, readonly, nosuid, to_container, names.get, names.get)


def share(*children):
    return [node('/home/alice/share', stat.S_IFDIR | 0o755)] + list(children)


def ok(answers, *ops):
    return all(answers[op]['allowed'] is True for op in ops)


def why(answers, op):
    return ' '.join(r['why'] for r in answers[op]['reasons'])


def test_own_file_everything_allowed():
    answers, notes = _explain.decide(caller(), view(), share(node('/home/alice/share/f', stat.S_IFREG | 0o644)))
    assert ok(answers, 'read', 'write', 'create_file', 'create_dir')
    assert answers['execute']['allowed'] is False and 'no execute (x) bit' in why(answers, 'execute')


def test_current_group_not_mapped_is_eoverflow():
    # shared with group devs (200): alice's current group users (100) is not mapped
    c = caller(groups=((100, 'users'), (200, 'devs')))
    answers, notes = _explain.decide(c, view(gid=200), share(node('/home/alice/share/f', stat.S_IFREG | 0o640)))
    assert answers['read']['allowed'] is True
    assert answers['create_file']['allowed'] is False and 'EOVERFLOW' in why(answers, 'create_file')
    assert 'group: users' in answers['create_file']['reasons'][0]['change']
    assert any('users (gid 100)' in n['why'] for n in notes)


def test_owner_not_mapped_refuses_writes_whatever_the_mode():
    f = node('/home/alice/share/f', stat.S_IFREG | 0o666, uid=7777)
    answers, dummy = _explain.decide(caller(), view(), share(f))
    assert answers['read']['allowed'] is True
    assert answers['write']['allowed'] is False and 'disk uid 7777' in why(answers, 'write')
    assert 'nobody (disk uid 7777' in view().who('u', 7777)


def test_mode_bits_owner_without_write():
    answers, dummy = _explain.decide(caller(), view(), share(node('/home/alice/share/f', stat.S_IFREG | 0o444)))
    assert answers['write']['allowed'] is False and 'as its owner' in why(answers, 'write')
    assert answers['write']['reasons'][0]['change'] == 'chmod u+w /home/alice/share/f'


def test_directory_without_write_and_search():
    d = node('/home/alice/share/d', stat.S_IFDIR | 0o555)
    answers, dummy = _explain.decide(caller(), view(), share(d))
    assert answers['read']['allowed'] is True and answers['create_dir']['allowed'] is False
    closed = node('/home/alice/share/c', stat.S_IFDIR | 0o700, uid=7777)
    answers, dummy = _explain.decide(caller(), view(), share(closed, node('/home/alice/share/c/f', stat.S_IFREG | 0o644)))
    assert answers['read']['allowed'] is False and 'enter /home/alice/share/c' in why(answers, 'read')


def test_readonly_share():
    f = node('/home/alice/share/f', stat.S_IFREG | 0o644)
    answers, dummy = _explain.decide(caller(), view(readonly=True), share(f))
    assert answers['read']['allowed'] is True
    for op in ('write', 'create_file', 'create_dir'):
        assert answers[op]['allowed'] is False and 'EROFS' in answers[op]['reasons'][0]['why']


def test_group_bits_through_a_supplementary_group_and_other():
    c = caller(groups=((100, 'users'), (200, 'devs')))
    f = node('/home/alice/share/f', stat.S_IFREG | 0o060, uid=7001)  # owner unmapped, group rw
    answers, dummy = _explain.decide(c, view(extra_uid=[(7001, 300000, 1)]), share(f))
    assert answers['read']['allowed'] is True and answers['write']['allowed'] is True
    answers, dummy = _explain.decide(caller(groups=((100, 'users'),)), view(gid=200), share(f))
    assert answers['read']['allowed'] is False and 'as other' in why(answers, 'read')


def test_missing_path_answers_creation_only():
    answers, dummy = _explain.decide(caller(), view(), share(), missing='new.txt')
    assert answers['read']['allowed'] is None and answers['create_file']['allowed'] is True


def test_setgid_default_acl_and_team_notes():
    acl = [(0x01, 7, 0xffffffff), (0x02, 7, 7777), (0x04, 7, 0xffffffff), (0x20, 5, 0xffffffff)]
    d = node('/home/alice/share', stat.S_IFDIR | 0o775, default_acl=acl)
    answers, notes = _explain.decide(caller(), view(), [d], team=(False, False, ['ct/alice', 'ct2/bob'], 'team'))
    text = ' '.join(n['why'] for n in notes)
    assert 'is not set-gid' in text and "not the team's group" in text
    assert 'user:7777:rwx' in text
    assert 'not a member of this team share' in text


def test_nosuid_note():
    f = node('/home/alice/share/prog', stat.S_IFREG | stat.S_ISUID | 0o755)
    answers, notes = _explain.decide(caller(uid=1001, name='guest'), view(), share(f))
    assert answers['execute']['allowed'] is True
    assert any('mounted nosuid' in n['why'] for n in notes)


def test_access_acl_named_user_and_mask():
    acl = [(0x01, 6, 0xffffffff), (0x02, 6, 7001), (0x04, 4, 0xffffffff), (0x10, 4, 0xffffffff),
           (0x20, 0, 0xffffffff)]
    f = node('/home/alice/share/f', stat.S_IFREG | 0o640, uid=7777, acl=acl)
    v = view(extra_uid=[(7777, 300001, 1)])
    c = caller()
    c.host_uid = BASE + 1000
    v.idmap = Idmap([(7001, BASE + 1000, 1), (7777, 300001, 1)], [(SRC_GID, BASE + 100, 1)])
    answers, dummy = _explain.decide(c, v, share(f))
    assert answers['read']['allowed'] is True
    assert answers['write']['allowed'] is False and 'ACL entry user:7001' in why(answers, 'write')


def test_container_root_overrides_only_what_it_sees():
    root = caller(uid=0, gid=0, groups=((0, 'root'),), name='root')
    f = node('/home/alice/share/f', stat.S_IFREG | 0o600)
    answers, dummy = _explain.decide(root, view(), share(f))
    assert answers['read']['allowed'] is True and answers['create_file']['allowed'] is False   # root's ids unmapped


def test_lines_and_acl_parsing():
    raw = b'\x02\x00\x00\x00' + b'\x01\x00\x07\x00\xff\xff\xff\xff' + b'\x02\x00\x07\x00\x61\x1e\x00\x00'
    assert _explain.parse_acl(raw) == [(1, 7, 0xffffffff), (2, 7, 7777)]
    assert _explain.parse_acl(b'junk') is None
    f = node('/home/alice/share/f', stat.S_IFREG | 0o644)
    answers, notes = _explain.decide(caller(), view(readonly=True), share(f))
    answer = dict(container='ct', user='alice', uid=1000, groups=[dict(name='users', gid=100, mapped=True)],
                  path='/home/alice/share/f', share='/home/alice/share', src='/srv/s', readonly=True, nosuid=True,
                  idmap=['u:7000:101000:1'], exists=True, type='file', disk_path='/srv/s/f', owner='alice (uid 1000)',
                  group='users (gid 100)', mode='0644', answers=answers, notes=notes)
    text = _explain.lines(answer)
    assert any(line.split()[:3] == ['write', 'no', 'the'] for line in text)
    assert all(line == line.rstrip() for line in text)


def test_walk_share_refuses_symlinks_and_dotdot(tmp_path):
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / 'f').write_text(u'x')
    os.symlink('/etc/passwd', str(tmp_path / 'link'))
    fd = os.open(str(tmp_path), os.O_PATH | os.O_DIRECTORY)
    try:
        chain, missing = _explain.walk_share(fd, '/s', '/s/d/f')
        assert [n.path for n in chain] == ['/s', '/s/d', '/s/d/f'] and missing is None
        chain, missing = _explain.walk_share(fd, '/s', '/s/d/new')
        assert missing == 'new'
        for bad in ('/s/link', '/s/../etc'):
            try:
                _explain.walk_share(fd, '/s', bad)
            except _explain.ShareError as e:
                assert 'symlink' in str(e) or '..' in str(e)
            else:
                raise AssertionError(bad)
    finally:
        os.close(fd)
