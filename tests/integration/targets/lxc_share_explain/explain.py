# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The explainer against reality: for each cause of a "no", what lxcex-share explain answers is what the user meets.

Each situation is set up on real shares of real containers; the explainer
answers read, write, create a file, create a directory (and execute) for a
user and a path, and then that user tries each of them inside the
container, as a login of theirs (lxc-attach, su: the groups of the
container's /etc/group), with nothing left behind.  Answers must agree in
every case and the reason must name the cause.  lxc_share_info's explain
gives the same answer as the command; a stopped container is explained from
its records.  Run by runme.sh; prints 'N passed, M failed'.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import shlex
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import Lab, expect, log, scenario, sh  # noqa: E402  pylint: disable=wrong-import-position

LAB = Lab('lxcex-explain', [('a', 'alice'), ('b', 'bob'), ('c', 'carol')], 540000000)
WORK = LAB.work
SRC = WORK + '/src'
OPS = ('read', 'write', 'create_file', 'create_dir')
ACL_DEFAULT = 'system.posix_acl_default'
ACL_ACCESS = 'system.posix_acl_access'
UNDEF = 0xffffffff


def acl(entries):
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', *e) for e in entries)


def setup():
    LAB.setup(started=('a', 'b', 'c'))
    ra, ba = LAB.root('a'), LAB.cts['a']['base']
    # a: alice 1000 (users 100; listed in devs 200), guest 1001 and dave 1002 with groups of their own.
    sh('''set -e
        echo "guest:x:1001:1001:guest:/home/guest:/bin/sh" >> %(ra)s/etc/passwd
        echo "dave:x:1002:1002:dave:/home/dave:/bin/sh" >> %(ra)s/etc/passwd
        printf "devs:x:200:alice\\nguest:x:1001:\\ndave:x:1002:\\n" >> %(ra)s/etc/group
        chown %(ba)d:%(ba)d %(ra)s/etc/passwd %(ra)s/etc/group
        S=%(src)s
        mkdir -p $S/own/closed $S/own/locked $S/own/acl $S/own/bin $S/grp $S/ro $S/team/nosgid $S/team2 $S/team3
        echo "team3" > $S/team3/README; chmod 0755 $S/team3
        echo "team2" > $S/team2/README; chmod 0755 $S/team2
        echo mine > $S/own/mine.txt; echo nobody > $S/own/nobody.txt; echo ro > $S/own/ro.txt
        echo badgroup > $S/own/badgroup.txt; echo closed > $S/own/closed/f; echo g > $S/grp/g.txt
        echo ro > $S/ro/f.txt; echo team > $S/team/a.txt
        cp %(ra)s/bin/busybox $S/own/bin/busybox
        chown -R 7000:7000 $S/own $S/grp $S/ro
        chmod 0755 $S/own $S/own/acl; chmod 0644 $S/own/mine.txt
        chown 7777:7000 $S/own/nobody.txt; chmod 0666 $S/own/nobody.txt
        chmod 0444 $S/own/ro.txt
        chown 7000:7777 $S/own/badgroup.txt; chmod 0666 $S/own/badgroup.txt
        chown -R 7777:7777 $S/own/closed; chmod 0700 $S/own/closed
        chmod 0555 $S/own/locked
        chmod 4755 $S/own/bin/busybox
        chown 7777:7000 $S/grp/g.txt; chmod 0640 $S/grp/g.txt; chmod 0770 $S/grp
        chown 0:5000 $S/team $S/team/nosgid; chmod 0775 $S/team/nosgid
        chown 5001:5000 $S/team/a.txt; chmod 0664 $S/team/a.txt
    ''' % dict(ra=ra, ba=ba, src=SRC))
    # a default ACL on own/acl naming disk uid 7777, which the share does not map
    os.setxattr(SRC + '/own/acl', ACL_DEFAULT, acl([(0x01, 7, UNDEF), (0x02, 7, 7777), (0x04, 5, UNDEF),
                                                   (0x10, 7, UNDEF), (0x20, 5, UNDEF)]))
    a = LAB.name('a')
    for kw in (dict(src=SRC + '/own', container=a, user='alice', dest='/home/alice/own'),
               dict(src=SRC + '/grp', container=a, user='alice', dest='/home/alice/grp', group='devs'),
               dict(src=SRC + '/ro', container=a, user='alice', dest='/home/alice/ro', readonly=True),
               dict(src=SRC + '/team', dest='/home/team', disk_gid=5000, group='devs',
                    members=[{'container': a, 'user': 'alice', 'disk_uid': 5001},
                             {'container': LAB.name('b'), 'user': 'bob', 'disk_uid': 5002}])):
        r = LAB.share(**kw)
        expect(not r.get('failed'), 'share %s' % kw['dest'], r.get('msg'))


def roots():
    return [SRC]


PROBE = r'''
p=%(p)s
if [ -d "$p" ]; then d="$p"; else d="${p%%/*}"; fi
r=-; w=-; x=-
if [ %(exists)d = 1 ]; then
  if [ -d "$p" ]; then ls "$p" >/dev/null 2>&1 && r=yes || r=no
  else cat "$p" >/dev/null 2>&1 && r=yes || r=no
       ( : >> "$p" ) 2>/dev/null && w=yes || w=no
  fi
fi
f="$d/.explain-probe-$$"
if e=$( ( : > "$f" ) 2>&1 ); then cf=yes; rm -f "$f"; else cf=no; fi
if mkdir "$d/.explain-dir-$$" 2>/dev/null; then cd=yes; rmdir "$d/.explain-dir-$$"; else cd=no; fi
echo "read=$r write=$w create_file=$cf create_dir=$cd"
echo "error=$e"
'''


def real(key, user, path, exists):
    """What user really can do at path, as a login of theirs in the container: {op: True/False/None}, error text.

    exists: whether the path exists (the user may not be able to tell); read and write are tried only then."""
    script = PROBE % dict(p=shlex.quote(path), exists=1 if exists else 0)
    rc, out = sh('lxc-attach -P %s --clear-env -n %s -- su -s /bin/sh %s -c %s'
                 % (LAB.lxcpath, LAB.name(key), user, shlex.quote(script)), check=False)
    lines = out.splitlines()
    found = [l for l in lines if l.startswith('read=')]
    expect(rc == 0 and found, 'the probe ran as %s' % user, out)
    got = dict(kv.split('=') for kv in found[0].split())
    error = [l for l in lines if l.startswith('error=')]
    return dict((k, {'yes': True, 'no': False, '-': None}[v]) for k, v in got.items()), \
        (error[0][6:] if error else '')


def explained(key, user, path):
    rc, out = LAB.cli('explain', LAB.name(key), user, path, '--json')
    expect(rc == 0, 'lxcex-share explain %s %s %s (rc=%d)' % (key, user, path, rc), out)
    return json.loads(out)


def agree(key, user, path, causes=None, notes=(), error=None):
    """Explain, then try; every answer agrees and the reason of each "no" named in causes says why."""
    answer = explained(key, user, path)
    seen, err = real(key, user, path, answer['exists'])
    for op in OPS:
        if op == 'write' and answer['type'] != 'file':
            continue
        expect(answer['answers'][op]['allowed'] is seen[op], '%s: explain says %s, the user meets %s'
               % (op, answer['answers'][op]['allowed'], seen[op]), answer['answers'][op], err)
    for op, word in (causes or {}).items():
        text = ' '.join(r['why'] + ' ' + r['change'] for r in answer['answers'][op]['reasons'])
        expect(answer['answers'][op]['allowed'] is False and word in text, '%s: the reason names %r' % (op, word),
               answer['answers'][op])
    for word in notes:
        expect(any(word in n['why'] for n in answer['notes']), 'a note names %r' % word, answer['notes'])
    if error:
        expect(error in err, 'the error the user met is %r' % error, err)
    return answer


@scenario('explain: a current group the share does not map (EOVERFLOW); a supplementary group that reads')
def groups():
    # The share maps devs (alice's supplementary group), not users (her current group).
    a = agree('a', 'alice', '/home/alice/grp', causes={'create_file': 'EOVERFLOW', 'create_dir': 'EOVERFLOW'},
              notes=('users (gid 100)',), error='Value too large')
    expect(a['group'].startswith('devs') and [g['mapped'] for g in a['groups']] == [False, True], 'groups', a)
    # g.txt: owner not mapped, group devs, 0640: alice reads it only through her supplementary group devs.
    g = agree('a', 'alice', '/home/alice/grp/g.txt', causes={'write': 'disk uid 7777'})
    expect(g['answers']['read']['allowed'] is True and g['owner'].startswith('nobody'), 'read through devs', g)


@scenario('explain: an owner or a group on disk the share does not map (nobody, writes refused)')
def unmapped_ids():
    n = agree('a', 'alice', '/home/alice/own/nobody.txt', causes={'write': 'disk uid 7777'})
    expect(n['answers']['read']['allowed'] is True and n['owner'].startswith('nobody (disk uid 7777'), 'nobody', n)
    agree('a', 'alice', '/home/alice/own/badgroup.txt', causes={'write': 'disk gid 7777'})


@scenario('explain: mode bits of a file and of directories (no write, no search on the way)')
def modes():
    agree('a', 'alice', '/home/alice/own/ro.txt', causes={'write': 'as its owner'})
    agree('a', 'alice', '/home/alice/own/locked', causes={'create_file': 'mode 0555', 'create_dir': 'mode 0555'})
    agree('a', 'alice', '/home/alice/own/closed/f', causes={'read': 'enter /home/alice/own/closed'})
    agree('a', 'alice', '/home/alice/own/mine.txt')


@scenario('explain: a read-only share (EROFS)')
def readonly():
    agree('a', 'alice', '/home/alice/ro/f.txt', causes={'write': 'read-only', 'create_file': 'EROFS'},
          error='Read-only file system')


@scenario('explain: a team directory without set-gid: new files get the member\'s own group')
def setgid():
    agree('a', 'alice', '/home/team/nosgid', notes=('is not set-gid',))
    rc, out = sh('lxc-attach -P %s --clear-env -n %s -- su -s /bin/sh alice -c %s' % (
        LAB.lxcpath, LAB.name('a'), shlex.quote('f=/home/team/nosgid/.g-$$; : > $f && stat -c %G $f; rm -f $f; '
                                                'f=/home/team/.g-$$; : > $f && stat -c %G $f; rm -f $f')), check=False)
    expect(rc == 0 and out.split() == ['users', 'devs'], 'a new file in nosgid is users\', in the team\'s '
           'set-gid directory devs\'', out)


@scenario('explain: a default ACL entry the share does not map ends up in every new file')
def default_acl():
    agree('a', 'alice', '/home/alice/own/acl', notes=('user:7777:rwx',))
    rc, out = sh('lxc-attach -P %s --clear-env -n %s -- su -s /bin/sh alice -c %s' % (
        LAB.lxcpath, LAB.name('a'), shlex.quote(': > /home/alice/own/acl/new.txt')), check=False)
    expect(rc == 0, 'created', out)
    try:
        raw = os.getxattr(SRC + '/own/acl/new.txt', ACL_ACCESS)
        ids = [struct.unpack('<HHI', raw[4 + i:12 + i]) for i in range(0, len(raw) - 4, 8)]
        expect((0x02, 7, 7777) in ids, 'the new file has the entry user:7777:rwx', ids)
    finally:
        os.unlink(SRC + '/own/acl/new.txt')


@scenario('explain: a user of the container who is not a member of the team share')
def not_member():
    agree('a', 'dave', '/home/team/a.txt', causes={'write': 'as other', 'create_file': 'EOVERFLOW'},
          notes=('not a member of this team share',))
    agree('a', 'alice', '/home/team/a.txt')


@scenario('explain: nosuid: a set-uid program of the share runs with the caller\'s rights')
def nosuid():
    answer = explained('a', 'guest', '/home/alice/own/bin/busybox')
    expect(answer['answers']['execute']['allowed'] is True and any('mounted nosuid' in n['why']
                                                                   for n in answer['notes']), 'nosuid note', answer)
    rc, out = sh('lxc-attach -P %s --clear-env -n %s -- su -s /bin/sh guest -c %s' % (
        LAB.lxcpath, LAB.name('a'), shlex.quote('/home/alice/own/bin/busybox id -u')), check=False)
    expect(rc == 0 and out.strip() == '1001', 'it ran, as guest (1001), not as its owner alice (1000)', out)


@scenario('explain: lxc_share_info gives the same answer; a stopped container from its records; clear refusals')
def module_and_stopped():
    want = explained('a', 'alice', '/home/alice/grp')
    r = LAB.module('lxc_share_info', {'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks,
                                      'explain': {'container': LAB.name('a'), 'user': 'alice',
                                                  'path': '/home/alice/grp'}})
    expect(not r.get('failed') and r['explanation'] == want, 'the module and the command agree', r.get('msg'))
    expect(r['shares'] and all(x['container'] == LAB.name('a') for x in r['shares']), 'rows of a', r['shares'])
    text = LAB.cli('explain', LAB.name('a'), 'alice', '/home/alice/grp/g.txt')[1]
    log(text)
    expect('EOVERFLOW' in text and 'create file' in text and 'change:' in text and
           not [l for l in text.splitlines() if l != l.rstrip()], 'the table', text)
    running = explained('b', 'bob', '/home/team/a.txt')
    LAB.stop('b')
    stopped = explained('b', 'bob', '/home/team/a.txt')
    expect(stopped == running and running['answers']['write']['allowed'] is True, 'stopped: the same answer',
           running, stopped)
    rc, dummy, out = LAB.start('b')
    expect(rc == 0, 'b starts again', out)
    for args, word in ((('a', 'alice', '/etc/passwd'), 'not inside a share'),
                       (('a', 'nosuchuser', '/home/alice/own'), 'unknown user'),
                       (('a', 'alice', '/home/alice/own/../../etc'), 'not inside a share'),
                       (('nosuch', 'alice', '/x'), 'unknown container')):
        rc, out = LAB.cli('explain', LAB.name(args[0]) if args[0] in 'ab' else args[0], args[1], args[2])
        expect(rc == 1 and word in out and 'Traceback' not in out, 'refused: %s' % word, out)


def team2_state():
    """What a team share of src/team2 may leave: sharetab lines, mounts in a, b, c, host thunks, the source."""
    lines = []
    for key in 'abc':
        path = '%s/%s/sharetab' % (LAB.lxcpath, LAB.name(key))
        if os.path.exists(path):
            with open(path) as f:
                lines += [l for l in f if 'team2' in l]
    mounts = [l.split()[4] for key in 'abc' for l in LAB.mounts_in(key) if 'team2' in l]
    thunks = [t for t in LAB.host_thunks() if 'team2' in t]
    st = os.stat(SRC + '/team2')
    try:
        acl_raw = os.getxattr(SRC + '/team2', ACL_DEFAULT)
    except OSError:
        acl_raw = None
    return lines, mounts, thunks, (st.st_uid, st.st_gid, st.st_mode, acl_raw)


@scenario('a team share whose third member\'s dest is a file leaves nothing in the first two containers')
def team_all_or_nothing():
    sh('echo not a directory > %s/home/carol/teamfile' % LAB.root('c'))
    before = team2_state()
    expect(before[:3] == ([], [], []), 'nothing of team2 yet', before)
    members = [{'container': LAB.name('a'), 'user': 'alice', 'disk_uid': 5101},
               {'container': LAB.name('b'), 'user': 'bob', 'disk_uid': 5102},
               {'container': LAB.name('c'), 'user': 'carol', 'disk_uid': 5103, 'dest': '/home/carol/teamfile'}]
    args = dict(src=SRC + '/team2', dest='/home/team2', disk_gid=5100, members=members)
    for check_mode in (True, False):
        r = LAB.share(check_mode=check_mode, **args)
        expect(r.get('failed') and 'teamfile' in r.get('msg', ''), 'the team share fails naming the file '
               '(check_mode=%s)' % check_mode, r.get('msg'))
        expect(team2_state() == before, 'nothing left in any container, the source as it was', before, team2_state())
    per = r.get('results') or []
    undone = [x for x in per if 'undone here' in (x.get('msg') or '')]
    expect(len(undone) == 2 and all(x['changed'] is False for x in per), 'the first two undone, nothing changed',
           per)
    sh('rm %s/home/carol/teamfile' % LAB.root('c'))
    r = LAB.share(**args)
    expect(not r.get('failed') and r.get('changed'), 'with a directory there, the team share applies', r.get('msg'))
    lines, mounts, dummy, dummy2 = team2_state()
    expect(len(lines) == 3 and sorted(mounts) == ['/home/carol/teamfile', '/home/team2', '/home/team2'],
           'all three', lines, mounts)


@scenario('lxcex-share team: the manual command adds, lists (every member) and removes a team share')
def cli_team():
    a, b = LAB.name('a'), LAB.name('b')
    members = ['%s/alice:5201' % a, '%s/bob:5202' % b]
    rc, out = LAB.cli('team', SRC + '/team3', '/home/team3', *members)
    expect(rc == 1 and 'set disk_gid' in out, 'a source of root\'s group is refused (rc=%d)' % rc, out)
    rc, out = LAB.cli('--disk-gid', '5200', 'team', SRC + '/team3', '/home/team3', *members)
    expect(rc == 0 and 'shared changed' in out, 'added (rc=%d)' % rc, out)
    rc, out = LAB.cli('--disk-gid', '5200', 'team', SRC + '/team3', '/home/team3', *members)
    expect(rc == 0 and 'changed' not in out.replace('unchanged', ''), 'again: unchanged (rc=%d)' % rc, out)
    rc, out = LAB.cli('list', a, b)
    rows = [l for l in out.splitlines() if '/home/team3' in l]
    expect(rc == 0 and len(rows) == 2 and all(','.join(members) in l and ' live ' in l for l in rows),
           'list shows both rows with every member', out)
    rows = [x for x in json.loads(LAB.cli('--json', 'list', a)[1]) if x['dest'] == '/home/team3']
    expect(rows and rows[0]['members'] == [{'container': a, 'user': 'alice', 'disk_uid': 5201},
                                           {'container': b, 'user': 'bob', 'disk_uid': 5202}], 'JSON members', rows)
    rc, out = LAB.attach('a', 'echo hi > /home/team3/alice.txt && cat /home/team3/alice.txt', uid=1000)
    expect(rc == 0 and 'hi' in out, 'alice writes in it', out)
    expect(os.stat(SRC + '/team3/alice.txt').st_uid == 5201, 'her file is disk uid 5201 on the host')
    os.unlink(SRC + '/team3/alice.txt')
    refused = ((('team', SRC + '/team3'), 2, 'usage'),
               (('team', SRC + '/team3', '/home/t', 'nouser'), 1, 'not CONTAINER/USER'))
    for args, code, word in refused:
        rc, out = LAB.cli(*args)
        expect(rc == code and word in out and 'Traceback' not in out, 'refused: %s (rc=%d)' % (word, rc), out)
    rc, out = LAB.cli('--remove', 'team', '/home/team3', '%s/alice' % a, '%s/bob' % b)
    expect(rc == 0 and out.count('removed changed') == 2, 'removed from both (rc=%d)' % rc, out)
    left = [l for key in 'ab' for l in LAB.mounts_in(key) if 'team3' in l]
    tabs = [l for key in 'ab' for l in open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name(key))) if 'team3' in l]
    expect(not left and not tabs and not [t for t in LAB.host_thunks() if 'team3' in t], 'nothing left', left, tabs)


def teardown():
    LAB.remove_all_shares()


SCENARIOS = [groups, unmapped_ids, modes, readonly, setgid, default_acl, not_member, nosuid, module_and_stopped,
             team_all_or_nothing, cli_team]

if __name__ == '__main__':
    sys.exit(LAB.run(setup, SCENARIOS, roots, teardown=teardown))
