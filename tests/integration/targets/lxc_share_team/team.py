# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Team shares, nosuid/nodev and the pre-flight, on real unprivileged containers.

Container a has members alice and carol (group devs, primary group users),
container b has member bob (group devs); each container also has users of
the other members' names, with other uids.  The members create files and
directories in the team share, see every file with its author's name
(show_authors), edit each other's
files; the share comes back after restarts; a set-uid program left in a
share runs without its owner's rights; a source on a filesystem without
idmapped mounts (ramfs) fails in the pre-flight and leaves nothing; limits
fail before any change; the role takes a team share from the inventory and
lxc_share_info shows it.  Without show_authors the root of one container
gains no member's files of another by adding users; a member removed from
the team while still in its group fails the run by name.  Run by runme.sh; prints 'N passed, M failed'.
"""

from __future__ import absolute_import, division, print_function

import glob
import os
import shlex
import stat
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import SETTINGS, Lab, expect, scenario, sh  # noqa: E402  pylint: disable=wrong-import-position

LAB = Lab('lxcex-team', [('a', 'alice'), ('b', 'bob')], 580000000)
WORK = LAB.work
TEAM = WORK + '/srv/team-x'
DEST = '/home/team-x'
RAMFS = WORK + '/ramfs'
MEMBERS = [{'container': None, 'user': 'alice', 'disk_uid': 5001},
           {'container': None, 'user': 'carol', 'disk_uid': 5003},
           {'container': None, 'user': 'bob', 'disk_uid': 5002}]
IN_A = {'alice': 1000, 'carol': 1001, 'bob': 1002}      # uids in container a
IN_B = {'bob': 1000, 'alice': 1001, 'carol': 1002}      # uids in container b


def members():
    out = [dict(m) for m in MEMBERS]
    out[0]['container'] = out[1]['container'] = LAB.name('a')
    out[2]['container'] = LAB.name('b')
    return out


def team(**kw):
    args = dict(src=TEAM, dest=DEST, disk_gid=5000, group='devs', members=members(), show_authors=True)
    args.update(kw)
    return args


def setup():
    LAB.setup(started=('a', 'b'))
    ra, rb, ba, bb = LAB.root('a'), LAB.root('b'), LAB.cts['a']['base'], LAB.cts['b']['base']
    # a: alice (from the lab) 1000, carol 1001, bob 1002, all in users; devs has alice and carol.
    # b: bob (from the lab) 1000, alice 1001, carol 1002, all in users; devs has bob.
    # Each team share of a scenario has a group of its own in each container (tp, tq, crew, ...): only members
    # may hold the team's group.
    sh('''set -e
        echo "carol:x:1001:100:carol:/home/carol:/bin/sh" >> %(ra)s/etc/passwd
        echo "bob:x:1002:100:bob:/home/bob:/bin/sh" >> %(ra)s/etc/passwd
        printf "devs:x:2000:alice,carol\\ntp:x:2101:alice\\ntq:x:2102:carol\\ncrew:x:2200:alice\\n" >> %(ra)s/etc/group
        printf "crew2:x:2300:alice,carol\\n" >> %(ra)s/etc/group
        echo "alice:x:1001:100:alice:/home/alice:/bin/sh" >> %(rb)s/etc/passwd
        echo "carol:x:1002:100:carol:/home/carol:/bin/sh" >> %(rb)s/etc/passwd
        printf "devs:x:2000:bob\\ntp:x:2101:bob\\ntq:x:2102:alice\\ncrew:x:2200:bob\\ncrew2:x:2300:bob\\n" >> %(rb)s/etc/group
        chown %(ba)d:%(ba)d %(ra)s/etc/passwd %(ra)s/etc/group
        chown %(bb)d:%(bb)d %(rb)s/etc/passwd %(rb)s/etc/group
        mkdir -p %(team)s %(ramfs)s %(work)s/srv/plain
        echo "admin's notes" > %(team)s/README
        chmod 0755 %(team)s
        echo "plain data" > %(work)s/srv/plain/data.txt
        chown -R 7000:7000 %(work)s/srv/plain
    ''' % dict(ra=ra, rb=rb, ba=ba, bb=bb, team=TEAM, ramfs=RAMFS, work=WORK))
    sh('mount -t ramfs lxcex-team-ramfs %s && mkdir %s/src && echo data > %s/src/f && chown -R 7000:7000 %s/src'
       % (RAMFS, RAMFS, RAMFS, RAMFS))


def bindfs():
    """The bindfs unpacked by bootstrap.sh: the harness settings' (scripts/test.sh), or the venv's."""
    candidates = [SETTINGS.get('bindfs', '')]
    candidates.append(os.path.join(os.path.dirname(os.path.dirname(sys.executable)), 'bindfs'))
    for c in candidates:
        if c and os.access(os.path.join(c, 'usr/bin/bindfs'), os.X_OK):
            return c
    raise AssertionError('no bindfs: run scripts/bootstrap.sh, which unpacks bindfs into .venv/bindfs (looked in %s)'
                         % [c for c in candidates if c])


def roots():
    return [WORK + '/srv/plain']


def as_user(key, user, cmd):
    """Run cmd in container key as user, with the groups of the container's /etc/group (su), as root starts it."""
    return LAB.attach(key, 'su -s /bin/sh %s -c %s' % (user, shlex.quote(cmd)))


def host_state():
    with open('/proc/self/mountinfo') as f:
        mounts = sorted(l.split()[4] for l in f if LAB.thunks in l)
    tabs = {}
    for path in sorted(glob.glob(LAB.lxcpath + '/*/sharetab')):
        with open(path) as f:
            tabs[path] = f.read()
    st = os.stat(TEAM)
    return mounts, tabs, (st.st_gid, stat.S_IMODE(st.st_mode))


def live_options(key, dest):
    for line in LAB.mounts_in(key):
        fields = line.split()
        if fields[4] == dest:
            return fields[5].split(',')
    return None


@scenario('team share: check mode changes nothing, apply, again (changed=false), check again')
def converge():
    before = host_state()
    r = LAB.share(check_mode=True, **team())
    expect(not r.get('failed') and r.get('changed'), 'check mode says changed', r.get('msg'))
    expect(len(r['results']) == 2, 'one share per container and dest', r['results'])
    expect(all('idmapped mounts work' in (x.get('preflight') or '') for x in r['results']),
           'check mode tells the pre-flight found idmapped mounts working', r['results'])
    expect(host_state() == before, 'check mode touched nothing', before, host_state())
    r = LAB.share(**team())
    expect(not r.get('failed') and r.get('changed'), 'apply', r.get('msg'), r.get('results'))
    st = os.stat(TEAM)
    expect(st.st_gid == 5000 and st.st_mode & 0o2070 == 0o2070, 'source is the team\'s: group 5000, setgid, g+rwx',
           oct(st.st_mode), st.st_gid)
    acl = os.getxattr(TEAM, 'system.posix_acl_default')
    expect(len(acl) == 4 + 3 * 8 and acl[4 + 8:4 + 12] == b'\x04\x00\x07\x00', 'default ACL: group rwx', acl)
    for n in (2, 3):
        r = LAB.share(check_mode=(n == 3), **team())
        expect(not r.get('failed') and not r.get('changed'), 'run %d changes nothing' % n, r.get('results'))
    for key, uid in (('a', 'alice'), ('b', 'bob')):
        opts = live_options(key, DEST)
        expect(opts and 'nosuid' in opts and 'nodev' in opts and 'idmapped' in opts,
               'live mount in %s is idmapped, nosuid, nodev' % key, opts)


@scenario('team share: three members in two containers create files and directories; nobody gets EOVERFLOW')
def create():
    for key, user in (('a', 'alice'), ('a', 'carol'), ('b', 'bob')):
        rc, out = as_user(key, user, 'cd %s && echo "by %s" > %s.txt && mkdir %s.d && echo "in dir of %s" > %s.d/f '
                          '&& id -gn' % (DEST, user, user, user, user, user))
        expect(rc == 0, '%s creates a file and a directory' % user, out)
        expect('Value too large' not in out, 'no EOVERFLOW for %s' % user, out)
    for user, disk in (('alice', 5001), ('carol', 5003), ('bob', 5002)):
        for path in ('%s/%s.txt' % (TEAM, user), '%s/%s.d' % (TEAM, user), '%s/%s.d/f' % (TEAM, user)):
            st = os.stat(path)
            expect((st.st_uid, st.st_gid) == (disk, 5000), '%s is %d:5000 on disk' % (path, disk),
                   (st.st_uid, st.st_gid))
            expect(st.st_mode & 0o060 == 0o060, '%s is group-writable' % path, oct(st.st_mode))
        expect(os.stat('%s/%s.d' % (TEAM, user)).st_mode & stat.S_ISGID, '%s.d is set-gid' % user)


@scenario('team share: every member sees every file with its author\'s name, in both containers')
def authorship():
    for key, user in (('a', 'alice'), ('a', 'carol'), ('b', 'bob')):
        rc, out = as_user(key, user, 'cd %s && for f in alice carol bob; do stat -c "%%n %%U %%G" $f.txt $f.d/f; done'
                          % DEST)
        expect(rc == 0, '%s lists the share' % user, out)
        lines = out.split('\n')
        for author in ('alice', 'carol', 'bob'):
            expect('%s.txt %s ' % (author, author) in out, '%s sees %s.txt as %s\'s' % (user, author, author), out)
            expect('%s.d/f %s ' % (author, author) in out, '%s sees %s.d/f as %s\'s' % (user, author, author), out)
        group = 'devs'
        expect(all(l.endswith(' ' + group) for l in lines if l.strip()), 'group is the team\'s (%s) in %s'
               % (group, key), out)


@scenario('team share: members edit each other\'s group-writable files and write in each other\'s directories')
def edit():
    for key, user, other in (('b', 'bob', 'alice'), ('a', 'carol', 'bob'), ('a', 'alice', 'carol'),
                             ('a', 'alice', 'bob')):
        rc, out = as_user(key, user, 'cd %s && echo "%s was here" >> %s.txt && echo x > %s.d/from-%s && '
                          'grep -c "%s was here" %s.txt' % (DEST, user, other, other, user, user, other))
        expect(rc == 0, '%s edits %s\'s file and writes in %s\'s directory' % (user, other, other), out)
    with open(TEAM + '/alice.txt') as f:
        expect('bob was here' in f.read(), 'bob\'s edit is on disk')
    # The README the admin left (root's) is readable, not writable: root is nobody in the containers.
    rc, out = as_user('a', 'alice', 'cat %s/README && stat -c %%u %s/README && echo more >> %s/README'
                      % (DEST, DEST, DEST))
    expect(rc != 0 and 'admin' in out and '65534' in out and 'denied' in out,
           'root\'s file shows as nobody (65534), readable, not writable', out)


@scenario('team share: back after restarts of both containers, with the same authors')
def restarts():
    LAB.restart('a', 'b')
    rc, out = as_user('b', 'bob', 'stat -c "%%U %%G" %s/alice.txt && echo again >> %s/carol.txt' % (DEST, DEST))
    expect(rc == 0 and out.split()[:2] == ['alice', 'devs'], 'bob after the restart', out)
    rc, out = as_user('a', 'carol', 'stat -c "%%U %%G" %s/bob.txt && mkdir %s/after-restart' % (DEST, DEST))
    expect(rc == 0 and out.split()[:2] == ['bob', 'devs'], 'carol after the restart', out)
    r = LAB.share(**team())
    expect(not r.get('failed') and not r.get('changed'), 'the hooks restored it exactly', r.get('results'))
    opts = live_options('b', DEST)
    expect(opts and 'nosuid' in opts, 'restored nosuid', opts)


@scenario('nosuid: a set-uid program left in a share does not run with its owner\'s rights (and does with allow_setuid)')
def setuid():
    # busybox drops a set-uid euid itself, but the saved uid shows what exec gave it.
    sh('cp "$(command -v busybox)" %s/cat && chown 5001:5000 %s/cat && chmod 4755 %s/cat' % (TEAM, TEAM, TEAM))
    rc, out = as_user('b', 'bob', '%s/cat /proc/self/status | grep ^Uid' % DEST)
    uids = out.split()[1:5]
    expect(rc == 0 and uids == ['1000'] * 4, 'bob runs alice\'s set-uid program as himself (nosuid)', out)
    plain = dict(src=WORK + '/srv/plain', container=LAB.name('b'), user='bob', dest='/home/bob/plain')
    r = LAB.share(allow_setuid=True, **plain)
    expect(not r.get('failed'), 'a share with allow_setuid', r.get('msg'))
    sh('cp "$(command -v busybox)" %s/srv/plain/cat && chown 7000:7000 %s/srv/plain/cat && chmod 4755 %s/srv/plain/cat'
       % (WORK, WORK, WORK))
    rc, out = as_user('b', 'alice', '/home/bob/plain/cat /proc/self/status | grep ^Uid')
    expect(rc == 0 and out.split()[3] == '1000', 'control: with allow_setuid, exec gives the owner\'s uid', out)
    r = LAB.share(**plain)
    expect(not r.get('failed') and r.get('changed'), 'allow_setuid off again remounts', r.get('msg'))
    rc, out = as_user('b', 'alice', '/home/bob/plain/cat /proc/self/status | grep ^Uid')
    expect(rc == 0 and out.split()[1:5] == ['1001'] * 4, 'nosuid again', out)
    r = LAB.share(state='absent', container=LAB.name('b'), dest='/home/bob/plain')
    expect(not r.get('failed'), 'remove plain', r.get('msg'))
    os.unlink(WORK + '/srv/plain/cat')
    os.unlink(TEAM + '/cat')


@scenario('pre-flight: a source on ramfs fails alone before anything changes, in check mode too')
def preflight():
    before = host_state()
    bad = dict(src=RAMFS + '/src', container=LAB.name('a'), user='alice', dest='/home/alice/ram')
    for check in (True, False):
        r = LAB.share(check_mode=check, **bad)
        msg = r.get('msg') or ''
        expect(r.get('failed') and 'pre-flight' in msg and 'ramfs' in msg and RAMFS + '/src' in msg
               and 'Linux' in msg, 'ramfs refused (check_mode=%s) naming type, path and kernel' % check, msg)
    r = LAB.share(shares=[dict(bad, dest='/home/alice/ram2'),
                          dict(src=WORK + '/srv/plain', container=LAB.name('a'), user='alice', dest='/home/alice/ok')])
    expect(r.get('failed'), 'the batch fails', r.get('msg'))
    res = dict((x['dest'], x) for x in r['results'])
    expect(res['/home/alice/ram2'].get('failed') and not res['/home/alice/ok'].get('failed'),
           'only the ramfs share failed', r['results'])
    r = LAB.share(state='absent', container=LAB.name('a'), dest='/home/alice/ok')
    expect(not r.get('failed'), 'remove ok', r.get('msg'))
    after = host_state()
    expect(after == before, 'nothing left behind: mounts, sharetabs and the source unchanged', before, after)
    rc, out = LAB.attach('a', 'ls /home/alice')
    expect('ram' not in out, 'no directory made in the container', out)


@scenario('pre-flight: a FUSE source (bindfs, no idmap support) fails before anything changes, in check mode too')
def preflight_fuse():
    where = bindfs()
    sh('mkdir -p %s/fuse-lower/src %s/fuse && chown 7000:7000 %s/fuse-lower/src' % (WORK, WORK, WORK))
    sh('LD_LIBRARY_PATH=%s/lib/x86_64-linux-gnu %s/usr/bin/bindfs %s/fuse-lower %s/fuse'
       % (where, where, WORK, WORK))
    try:
        before = host_state()
        for check in (True, False):
            r = LAB.share(check_mode=check, **team(src=WORK + '/fuse/src', dest='/home/team-fuse'))
            msg = str(r.get('msg')) + str([x.get('msg') for x in r.get('results', [])])
            expect(r.get('failed') and 'pre-flight: filesystem fuse of %s/fuse/src' % WORK in msg and 'FUSE' in msg,
                   'the FUSE source refused (check_mode=%s) naming type, path and kernel' % check, msg)
        expect(host_state() == before, 'nothing changed', before, host_state())
        rc, out = LAB.attach('a', 'ls -d /home/team-fuse', check=False)
        expect(rc != 0, 'no directory made in the container', out)
    finally:
        sh('umount %s/fuse' % WORK, check=False)


@scenario('limits fail before any change (same disk uid, a disk uid inside a range, ...); a failed apply puts the source back')
def limits():
    before = host_state()
    ms = members()
    ms[2]['disk_uid'] = 5001
    r = LAB.share(**team(members=ms))
    expect(r.get('failed') and 'both have disk_uid 5001' in (r.get('msg') or ''), 'same disk uid', r.get('msg'))
    ms = members()
    ms.append({'container': LAB.name('b'), 'user': 'dave', 'disk_uid': 5004})
    r = LAB.share(**team(members=ms))
    expect(r.get('failed') and 'unknown user' in (r.get('msg') or ''), 'unknown member', r.get('msg'))
    ms = members()
    ms.append({'container': LAB.name('b'), 'user': 'root', 'disk_uid': 5004})
    r = LAB.share(**team(members=ms, dest='/home/team-y'))
    expect(r.get('failed'), 'a member root of b is refused (in a, root is container root)', r.get('msg'))
    ms = members()
    ms[2]['disk_uid'] = LAB.cts['a']['base'] + 4242
    ms[2]['user'] = 'erin'
    sh('echo "erin:x:1003:100::/:/bin/sh" >> %s/etc/passwd' % LAB.root('b'))
    r = LAB.share(**team(members=ms, dest='/home/team-z'))
    expect(r.get('failed') and 'inside the id range' in (r.get('msg') or ''), 'disk uid inside a\'s range',
           r.get('msg'))
    r = LAB.share(**team(dest='/home/team-w', group='users', members=[dict(members()[0]), dict(members()[2])],
                         disk_gid=0))
    expect(r.get('failed') and 'gid 0' in (r.get('msg') or ''), 'disk_gid 0 refused', r.get('msg'))
    expect(host_state() == before, 'nothing changed by the refused team shares', before, host_state())
    # A team share that fails when applied (its dest is another mount in the container) puts its source back.
    sh('mkdir -p %s/srv/team-fail && chmod 0755 %s/srv/team-fail' % (WORK, WORK))
    fail = dict(src=WORK + '/srv/team-fail', dest='/dev', disk_gid=5400, group='tp',
                members=[{'container': LAB.name('a'), 'user': 'alice', 'disk_uid': 5001}])
    r = LAB.share(**fail)
    st = os.stat(WORK + '/srv/team-fail')
    try:
        acl = os.getxattr(WORK + '/srv/team-fail', 'system.posix_acl_default')
    except OSError:
        acl = None
    expect(r.get('failed') and 'mount point of something else' in str(r.get('msg')), 'applying fails', r.get('msg'))
    expect((st.st_gid, stat.S_IMODE(st.st_mode), acl) == (0, 0o755, None), 'the source is as it was',
           (st.st_gid, oct(st.st_mode), acl))
    expect(host_state() == before, 'and nothing else changed', before, host_state())


@scenario('two runs at once allocate disk uids: one name one id, different names different ids, sharetabs whole')
def concurrent():
    sh('mkdir -p %s/srv/team-p %s/srv/team-q' % (WORK, WORK))
    p = dict(src=WORK + '/srv/team-p', dest='/home/team-p', disk_gid=5200, group='tp',
             members=[{'container': LAB.name('a'), 'user': 'alice'}, {'container': LAB.name('b'), 'user': 'bob'}])
    q = dict(src=WORK + '/srv/team-q', dest='/home/team-q', disk_gid=5300, group='tq',
             members=[{'container': LAB.name('a'), 'user': 'carol'}, {'container': LAB.name('b'), 'user': 'alice'}])
    out = {}
    threads = [threading.Thread(target=lambda k=k, v=v: out.__setitem__(k, LAB.share(**v))) for k, v in
               (('p', p), ('q', q))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expect(not out['p'].get('failed') and not out['q'].get('failed'), 'both runs', out['p'].get('msg'),
           out['q'].get('msg'))
    ids = {}
    for key in ('a', 'b'):
        with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name(key))) as f:
            lines = [l.split() for l in f if l.strip()]
        expect(len(lines) == 2, 'two whole lines in the sharetab of %s' % key, lines)
        for line in lines:
            for m in dict(o.split('=', 1) for o in line[3].split(',') if '=' in o)['members'].split(';'):
                c, user, disk = m.split('/')
                expect(ids.setdefault(user, disk) == disk, 'one id for %s' % user, ids, m)
    expect(sorted(ids) == ['alice', 'bob', 'carol'] and len(set(ids.values())) == 3, 'three people, three ids', ids)
    for v in (p, q):
        r = LAB.share(state='absent', **v)
        expect(not r.get('failed') and r.get('changed'), 'removal', r.get('msg'))


@scenario('disk uids: allocation skips every container\'s id range, /etc/subuid, /etc/subgid and host users; a '
          'disk_uid given there is refused')
def disk_uids():
    far = '%s/far%d' % (LAB.lxcpath, LAB.t)  # a container (never started) whose range starts where allocation does
    os.makedirs(far)
    with open(far + '/config', 'w') as f:
        f.write('lxc.idmap = u 0 2000000000 10\nlxc.idmap = g 0 2000000000 10\n')
    sh('mkdir -p %s/srv/team-f' % WORK)
    f = dict(src=WORK + '/srv/team-f', dest='/home/team-f', disk_gid=5400, group='tp',
             members=[{'container': LAB.name('a'), 'user': 'alice'}, {'container': LAB.name('b'), 'user': 'bob'}])
    try:
        for disk_uid, said in ((2000000003, 'inside the id range of container far%d' % LAB.t),
                               (500000, 'inside the range of root in /etc/subuid'),
                               (1, 'the uid of a user of this host')):
            args = dict(f)
            args['members'] = [dict(m) for m in f['members']]
            args['members'][0]['disk_uid'] = disk_uid
            r = LAB.share(**args)
            expect(r.get('failed') and said in (r.get('msg') or '') and 'disk_uid %d' % disk_uid in r['msg'],
                   'disk_uid %d refused (%s)' % (disk_uid, said), r.get('msg'))
            expect('/home/team-f' not in open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a'))).read(), 'no line')
        r = LAB.share(**f)
        expect(not r.get('failed'), 'allocated', r.get('msg'))
        with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a'))) as tab:
            line = [l.split() for l in tab if ' /home/team-f ' in l][0]
        ids = [int(m.split('/')[2]) for m in dict(o.split('=', 1) for o in line[3].split(',') if '=' in o)[
            'members'].split(';')]
        expect(all(i >= 2000000010 for i in ids), 'the allocated disk uids skip the range of far (%s)' % ids, line)
        r = LAB.share(state='absent', **f)
        expect(not r.get('failed') and r.get('changed'), 'removal', r.get('msg'))
    finally:
        os.unlink(far + '/config')
        os.rmdir(far)


def new_team(name, disk_gid, group, *members):
    """The options of a team share of a new source WORK/srv/NAME at /home/NAME; members: (lab key, user)."""
    src = WORK + '/srv/' + name
    sh('mkdir -p %s' % src)
    return dict(src=src, dest='/home/' + name, disk_gid=disk_gid, group=group,
                members=[{'container': LAB.name(key), 'user': user} for key, user in members])


@scenario('4b: without show_authors, container root that adds a member\'s name gains none of their files; with it, '
          'exactly what its documentation says')
def hostile_root():
    h = new_team('team-h', 5500, 'crew', ('a', 'alice'), ('b', 'bob'))
    src = h['src']
    r = LAB.share(**h)
    expect(not r.get('failed') and r.get('changed'), 'team-h', r.get('msg'))
    rc, out = as_user('a', 'alice', 'cd /home/team-h && echo "alice only" > secret && chmod 600 secret && '
                      'echo "for the team" > open.txt && stat -c %U secret')
    expect(rc == 0 and out.strip() == 'alice', 'alice writes a private file and a team file', out)
    sums = LAB.checksums([src])
    # b's root has made users named like a's members (alice 1001 and carol 1002 of b); the run repeats.
    r = LAB.share(**h)
    expect(not r.get('failed') and not r.get('changed'), 'the run again changes nothing', r.get('msg'))
    for who, cmd in (('alice', 'cat /home/team-h/secret'), ('alice', 'echo x >> /home/team-h/open.txt'),
                     ('alice', 'echo x > /home/team-h/new'), ('carol', 'cat /home/team-h/secret')):
        rc, out = as_user('b', who, cmd)
        expect(rc != 0 and ('denied' in out or 'Value too large' in out),
               '%s of b (a name of a member of a) cannot: %s' % (who, cmd), out)
    rc, out = LAB.attach('b', 'cat /home/team-h/secret; chown 0 /home/team-h/secret; echo x >> /home/team-h/secret')
    expect('alice only' not in out and out.count('ermi') + out.count('denied') >= 2,
           'b\'s root reads, chowns and writes none of alice\'s private file', out)
    rc, out = as_user('b', 'bob', 'stat -c "%u %U" /home/team-h/secret; echo "bob too" >> /home/team-h/open.txt')
    expect(rc == 0 and out.split()[0] == '65534', 'bob, the member of b, sees alice\'s files as nobody and edits '
           'the team file', out)
    sums[os.path.join(src, 'open.txt')] = LAB.checksums([src])[os.path.join(src, 'open.txt')]
    expect(LAB.checksums([src]) == sums, 'alice\'s files intact on disk', sums)
    # show_authors: b's alice is alice (what the option's documentation says it grants to b's root).
    r = LAB.share(show_authors=True, **h)
    expect(not r.get('failed') and r.get('changed'), 'show_authors remaps', r.get('msg'))
    rc, out = as_user('b', 'alice', 'stat -c %U /home/team-h/secret && cat /home/team-h/secret')
    expect(rc == 0 and 'alice only' in out, 'with show_authors, b\'s alice is alice (documented grant)', out)
    r = LAB.share(state='absent', **h)
    expect(not r.get('failed') and r.get('changed'), 'removal', r.get('msg'))
    expect(LAB.checksums([src]) == sums, 'source intact after removal')


@scenario('4c: a member removed from members but still in the team\'s group fails the run by name; out of the group, '
          'the next run takes their access away')
def removed_member():
    m = new_team('team-m', 5600, 'crew2', ('a', 'alice'), ('a', 'carol'), ('b', 'bob'))
    src = m['src']
    r = LAB.share(**m)
    expect(not r.get('failed') and r.get('changed'), 'team-m with carol', r.get('msg'))
    rc, out = as_user('a', 'alice', 'echo "by alice" > /home/team-m/alice.txt')
    expect(rc == 0, 'alice writes', out)
    rc, out = as_user('a', 'carol', 'echo "carol was here" >> /home/team-m/alice.txt')
    expect(rc == 0, 'carol, a member, edits alice\'s file', out)
    before = host_state()
    sums = LAB.checksums([src])
    gone = dict(m)
    gone['members'] = [dict(x) for x in m['members'] if x['user'] != 'carol']
    for check in (True, False):
        r = LAB.share(check_mode=check, **gone)
        msg = str(r.get('msg')) + str([x.get('msg') for x in r.get('results', [])])
        expect(r.get('failed') and 'carol' in msg and 'crew2' in msg and LAB.name('a') in msg,
               'carol still in crew2 of a: the run fails naming her, the group and the container (check=%s)' % check,
               msg)
    expect(host_state() == before and LAB.checksums([src]) == sums, 'the refused run changed nothing')
    sh("sed -i 's/^crew2:x:2300:alice,carol$/crew2:x:2300:alice/' %s/etc/group" % LAB.root('a'))
    r = LAB.share(**gone)
    expect(not r.get('failed') and r.get('changed'), 'out of the group, carol leaves the team', r.get('msg'))
    for cmd in ('echo more >> /home/team-m/alice.txt', 'echo x > /home/team-m/carol-new'):
        rc, out = as_user('a', 'carol', cmd)
        expect(rc != 0, 'carol no longer can: %s' % cmd, out)
    rc, out = as_user('a', 'alice', 'echo more >> /home/team-m/alice.txt')
    expect(rc == 0, 'alice still can', out)
    r = LAB.share(state='absent', **gone)
    expect(not r.get('failed') and r.get('changed'), 'removal', r.get('msg'))


@scenario('team share from the inventory through the role; allocated disk uids; lxc_share_info shows it')
def role():
    inv = {'src': WORK + '/srv/team-r', 'dest': '/home/team-r', 'group': 'devs', 'disk_gid': 5100, 'show_authors': True,
           'members': [{'container': LAB.name('a'), 'user': 'alice'}, {'container': LAB.name('b'), 'user': 'bob'},
                       {'container': LAB.name('a'), 'user': 'carol', 'dest': '/home/carol/team-r'}]}
    sh('mkdir -p %s/srv/team-r' % WORK)
    variables = {'lxcex_share_shares': [inv],
                 'lxcex_share_lxcpath': LAB.lxcpath, 'lxcex_share_thunks_dir': LAB.thunks,
                 'lxcex_share_hook_path': WORK + '/role/bin/lxcex-share',
                 'lxcex_share_lib_dir': WORK + '/role/lib/lxcex-share',
                 'lxcex_share_host_config': WORK + '/role/lxcex-share.conf', 'lxcex_share_log_file': LAB.log}
    for n in (1, 2):
        rc, counts, out = LAB.role(variables)
        expect(rc == 0 and counts.get('failed') == 0, 'role run %d' % n, out[-3000:])
        expect((counts.get('changed') > 0) == (n == 1), 'role run %d changed=%s' % (n, counts.get('changed')),
               out[-2000:])
    with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a'))) as f:
        text = f.read()
    expect('alice/2000000000' in text and 'bob/2000000001' in text and 'carol/2000000002' in text,
           'disk uids allocated from 2000000000 and recorded', text)
    rc, out = as_user('a', 'carol', 'echo hi > /home/carol/team-r/c.txt && stat -c "%U %G" /home/carol/team-r/c.txt')
    expect(rc == 0 and out.split() == ['carol', 'devs'], 'carol at her own dest', out)
    rc, out = as_user('b', 'bob', 'stat -c "%U %G" /home/team-r/c.txt')
    expect(rc == 0 and out.split() == ['carol', 'devs'], 'bob sees carol\'s file', out)
    st = os.stat(WORK + '/srv/team-r/c.txt')
    expect((st.st_uid, st.st_gid) == (2000000002, 5100), 'on disk', (st.st_uid, st.st_gid))
    LAB.stop('b')
    rc, dummy, out = LAB.start('b')
    expect(rc == 0, 'restart b', out)
    r = LAB.module('lxc_share_info', {'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks})
    rows = [x for x in r.get('shares', []) if x.get('members')]
    expect(len(rows) == 3 and all(x['state'] == 'live' for x in rows), 'info: the team shares, all live',
           r.get('shares'))
    expect(sorted(m['user'] for m in rows[0]['members']) in (['alice', 'bob', 'carol'],), 'info: members', rows[0])
    expect(all(x['setuid'] is False for x in rows), 'info: nosuid', rows)
    # The team leaves: the role prunes it when it is no longer in the inventory.
    rc, counts, out = LAB.role(dict(variables, lxcex_share_shares=[]))
    expect(rc == 0 and counts.get('failed') == 0, 'role without team-r', out[-3000:])
    rc, out = LAB.attach('a', 'grep team-r /proc/self/mountinfo')
    expect(rc != 0, 'team-r is gone from a', out)
    rc, counts, out = LAB.role(dict(variables, lxcex_share_state='absent'))
    expect(rc == 0 and counts.get('failed') == 0, 'role uninstall', out[-3000:])


@scenario('removal: the team share goes from both containers; every file of the source intact')
def removal():
    sums = LAB.checksums([TEAM])
    names = sorted(os.listdir(TEAM))
    r = LAB.share(state='absent', **team())
    expect(not r.get('failed') and r.get('changed'), 'removal', r.get('msg'), r.get('results'))
    r = LAB.share(state='absent', **team())
    expect(not r.get('failed') and not r.get('changed'), 'removal again changes nothing', r.get('results'))
    expect(LAB.checksums([TEAM]) == sums and sorted(os.listdir(TEAM)) == names, 'source checksums intact')
    for key in ('a', 'b'):
        expect(live_options(key, DEST) is None, 'unmounted in %s' % key)
    expect(not LAB.host_thunks(), 'no thunk left', LAB.host_thunks())


def teardown():
    sh('umount %s' % RAMFS, check=False)
    LAB.remove_all_shares()


SCENARIOS = [converge, create, authorship, edit, restarts, setuid, preflight, preflight_fuse, limits, removal, concurrent,
             disk_uids, hostile_root, removed_member, role]

if __name__ == '__main__':
    sys.exit(LAB.run(setup, SCENARIOS, roots, teardown=teardown))
