# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What differs between kernels, on the running kernel.

This machine runs it on its own kernel (integration step), and as if on 6.1
(lxc_share_kernel_fallbacks sets LXCEX_SHARE_KERNEL_AS=6.1); scripts/kernels.py
runs it in qemu guests with Debian 12's (6.1) and Debian 13's (6.12) kernels,
where emulation makes every process dear, so it spends its Ansible runs on what
the kernel decides: idmapped mounts of ext4 (every kernel) and tmpfs (6.3+) into
running containers by the role; idempotence and check mode (unique mount ids and
statmount from 6.8, else the records); what users see and where their writes
land; idmapped,nosuid,nodev live mounts; the pre-flight (ramfs never, tmpfs
before 6.3) naming the kernel; the post-stop and start hooks around a
simulated reboot; the records under /run lost (the idmap read back from the
kernel from 6.15); a live change while a user writes (the new mount beneath the
old one from 6.5, else the bare directory closed in between): no file hidden,
no write lost; removal from the running containers.  Prints
'N passed, M failed, K skipped'.
"""

from __future__ import absolute_import, division, print_function

import glob
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import Lab, expect, log, scenario, sh  # noqa: E402  pylint: disable=wrong-import-position

RELEASE = os.environ.get('LXCEX_SHARE_KERNEL_AS') or os.uname()[2]  # forced in tests of the fallbacks
VERSION = tuple(int(x) for x in re.match(r'(\d+)\.(\d+)', RELEASE).groups())
TMPFS_IDMAP = VERSION >= (6, 3)
BENEATH = VERSION >= (6, 5)
IDMAP_READBACK = VERSION >= (6, 15)
LAB = Lab('lxcex-kern', [('a', 'alice'), ('b', 'bob')], 580000000)
WORK = LAB.work
ROLE = {'lxcex_share_lxcpath': LAB.lxcpath, 'lxcex_share_thunks_dir': LAB.thunks,
        'lxcex_share_hook_path': WORK + '/rbin/lxcex-share', 'lxcex_share_lib_dir': WORK + '/rlib/lxcex-share',
        'lxcex_share_host_config': WORK + '/role.conf', 'lxcex_share_log_file': LAB.log}


def shares():
    out = [{'src': LAB.root('a') + '/home/alice/proj', 'container': LAB.name('b'), 'user': 'bob',
            'dest': '/home/bob/from-alice'},
           {'src': WORK + '/src/common', 'container': LAB.name('a'), 'user': 'alice', 'dest': '/home/alice/common'},
           {'src': WORK + '/src/common', 'container': LAB.name('b'), 'user': 'bob', 'dest': '/home/bob/common'},
           {'src': WORK + '/src/docs', 'container': LAB.name('b'), 'user': 'bob', 'dest': '/home/bob/docs',
            'readonly': True}]
    if TMPFS_IDMAP:
        out.append({'src': WORK + '/tmpfs/t', 'container': LAB.name('a'), 'user': 'alice', 'dest': '/home/alice/t'})
    return out


def role(**kw):
    rc, counts, out = LAB.role(dict(ROLE, lxcex_share_shares=shares(), **kw))
    expect(rc == 0 and counts.get('failed') == 0, 'the role failed', out[-3000:])
    return counts.get('changed'), out


def setup():
    log('kernel %s: tmpfs idmapped %s, idmap read back %s' % (RELEASE, TMPFS_IDMAP, IDMAP_READBACK))
    LAB.setup(hooks=False, started=('a', 'b'))
    sh('''set -e
        mkdir -p %(w)s/src/common %(w)s/src/docs %(w)s/tmpfs %(w)s/ramfs
        echo c > %(w)s/src/common/c.txt && echo d > %(w)s/src/docs/d.txt
        chown -R 7000:7000 %(w)s/src
        mount -t tmpfs -o size=4m,mode=0755 lxcex-kern-tmpfs %(w)s/tmpfs
        mkdir %(w)s/tmpfs/t && echo t > %(w)s/tmpfs/t/t.txt && chown -R 7000:7000 %(w)s/tmpfs/t
        mount -t ramfs -o mode=0755 lxcex-kern-ramfs %(w)s/ramfs
        mkdir %(w)s/ramfs/r && chown 7000:7000 %(w)s/ramfs/r
    ''' % {'w': WORK})


def roots():
    return [WORK + '/src', WORK + '/tmpfs', LAB.root('a') + '/home/alice/proj']


def sees(key, cmd):
    rc, out = LAB.attach(key, cmd, uid=1000)
    return rc, out.split()


def all_live():
    rc, out = sees('a', 'cat /home/alice/common/c.txt' + (' /home/alice/t/t.txt' if TMPFS_IDMAP else ''))
    expect(rc == 0 and out == ['c'] + (['t'] if TMPFS_IDMAP else []), 'alice sees her shares', out)
    rc, out = sees('b', 'cat /home/bob/common/c.txt /home/bob/docs/d.txt /home/bob/from-alice/alice.txt')
    expect(rc == 0 and out == ['c', 'd', 'file', 'of', 'alice'], 'bob sees his shares', out)


@scenario('the role shares ext4 (and tmpfs from 6.3) into running containers; a second run and check mode: nothing')
def converge():
    changed, out = role()
    expect(changed, 'the first run changes something', out[-2000:])
    changed, out = role()
    expect(changed == 0, 'the second run changes nothing (changed=%s)' % changed, out[-3000:])
    r = LAB.share(shares=shares(), owner='role', check_mode=True)
    expect(not r.get('failed') and not r.get('changed'), 'check mode after convergence: nothing', r.get('msg'),
           [x for x in r.get('results', []) if x.get('changed')])
    all_live()


@scenario('what users see: their own names, writes land with the owner\'s disk ids, read-only refused, '
          'live mounts idmapped,nosuid,nodev')
def users_see():
    base_a = LAB.cts['a']['base']
    rc, out = sees('b', 'stat -c %U /home/bob/common/c.txt /home/bob/from-alice/alice.txt; '
                        'echo w > /home/bob/common/by-bob.txt && echo w > /home/bob/from-alice/by-bob.txt')
    expect(rc == 0 and out == ['bob', 'bob'], 'bob sees the files as his own and writes', out)
    st = os.stat(WORK + '/src/common/by-bob.txt')
    expect((st.st_uid, st.st_gid) == (7000, 7000), 'bob\'s write in the common share is 7000:7000 on disk',
           (st.st_uid, st.st_gid))
    st = os.stat(LAB.root('a') + '/home/alice/proj/by-bob.txt')
    expect((st.st_uid, st.st_gid) == (base_a + 1000, base_a + 100), 'bob\'s write in alice\'s directory is alice\'s',
           (st.st_uid, st.st_gid))
    rc, out = sees('a', 'stat -c %U /home/alice/proj/by-bob.txt')
    expect(out == ['alice'], 'alice sees it as hers', out)
    rc, out = sees('b', 'echo x > /home/bob/docs/x.txt')
    expect(rc != 0 and not os.path.exists(WORK + '/src/docs/x.txt'), 'the read-only share refuses a write', out)
    if TMPFS_IDMAP:
        rc, out = sees('a', 'stat -c %U /home/alice/t/t.txt && echo w > /home/alice/t/by-alice.txt')
        expect(rc == 0 and out == ['alice'] and os.stat(WORK + '/tmpfs/t/by-alice.txt').st_uid == 7000,
               'alice on the tmpfs share', out)
    lines = [l for l in LAB.mounts_in('b') if ' /home/bob/' in l]
    expect(len(lines) == 3, 'three live mounts in b', lines)
    for line in lines:
        opts = line.split()[5].split(',')
        expect('idmapped' in opts and 'nosuid' in opts and 'nodev' in opts, 'idmapped,nosuid,nodev', line)
    expect('ro' in [l for l in lines if ' /home/bob/docs ' in l][0].split()[5].split(','), 'docs is read-only',
           lines)
    for path in (WORK + '/src/common/by-bob.txt', LAB.root('a') + '/home/alice/proj/by-bob.txt',
                 WORK + '/tmpfs/t/by-alice.txt'):
        if os.path.exists(path):
            os.unlink(path)


@scenario('pre-flight: ramfs (and tmpfs before 6.3) refused naming the kernel, each share alone, nothing left')
def preflight():
    bad = [('ramfs', WORK + '/ramfs/r')] + ([] if TMPFS_IDMAP else [('tmpfs', WORK + '/tmpfs/t')])
    before = sorted(os.listdir(LAB.root('a') + '/home/alice'))
    with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a'))) as f:
        tab = f.read()
    thunks = LAB.host_thunks()
    r = LAB.share(shares=[dict(src=src, container=LAB.name('a'), user='alice', dest='/home/alice/bad-' + fstype)
                          for fstype, src in bad])
    results = dict((x['dest'], x) for x in r.get('results', []))
    for fstype, src in bad:
        msg = results.get('/home/alice/bad-' + fstype, {}).get('msg') or ''
        expect(r.get('failed') and 'pre-flight' in msg and fstype in msg and src in msg and RELEASE in msg,
               '%s refused naming type, path and kernel' % fstype, r.get('msg'), msg)
        if fstype == 'tmpfs':
            expect('tmpfs supports them from Linux 6.3' in msg, 'the message names 6.3', msg)
    expect(sorted(os.listdir(LAB.root('a') + '/home/alice')) == before, 'nothing made in the container')
    with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a'))) as f:
        expect(f.read() == tab, 'the sharetab unchanged')
    expect(LAB.host_thunks() == thunks, 'no thunk made', thunks, LAB.host_thunks())


@scenario('a reboot: the containers stopped (post-stop hooks), the thunks tmpfs gone, the start hooks bring every '
          'share back; the role has nothing to do after')
def reboot():
    LAB.stop('a')
    LAB.stop('b')
    sh('umount -R %s' % LAB.thunks)
    for key in ('a', 'b'):
        rc, dummy, out = LAB.start(key)
        expect(rc == 0, 'start %s after the reboot' % key, out)
    all_live()
    if os.environ.get('LXCEX_SHARE_KERNEL_AS'):
        with open(LAB.log) as f:
            expect('behaving as Linux %s would' % RELEASE in f.read(), 'the hooks ran with the older kernel\'s paths')
    changed, out = role()
    expect(changed == 0, 'the role after the restarts changes nothing', out[-3000:])


def listed(dest):
    """The row of dest in 'lxcex-share list --json' (the reader lxc_share_info uses, without Ansible)."""
    rc, out = LAB.cli('list', '--json')
    rows = [x for x in json.loads(out[out.index('['):]) if x['dest'] == dest]
    expect(len(rows) == 1, 'one row for %s' % dest, out)
    return rc, rows[0]


@scenario('records under /run lost: reported, repaired by the next run, then the idmap known again')
def records_lost():
    lost = []
    for path in glob.glob('/run/lxcex-share/mounts/*.json'):
        with open(path) as f:
            if WORK in f.read():
                lost.append(path)
    expect(lost, 'records of the lab under /run/lxcex-share')
    for path in lost:
        os.unlink(path)
    rc, row = listed('/home/alice/common')
    expect(rc == 1 and row['state'] == 'broken' and 'not mounted as recorded' in row['detail'],
           'without its record a share is reported for repair (rc=%d)' % rc, row)
    changed, out = role()
    expect(changed, 'the next run repairs it', out[-3000:])
    rc, row = listed('/home/alice/common')
    base = LAB.cts['a']['base']
    expect(rc == 0 and row['state'] == 'live' and row['idmap'] == ['u:7000:%d:1' % (base + 1000),
                                                                   'g:7000:%d:1' % (base + 100)],
           'live, with its idmap (read back from the kernel on 6.15+, else from the new record)', row)
    all_live()


# Write number i into file w(i mod 1024) (the source stays small, however fast the writer), log each outcome.
WRITER = """i=0; while [ ! -e /home/alice/stop-writer ]; do i=$((i+1));
if { echo $i > /home/alice/live/w$((i % 1024)); } 2>/home/alice/writer.err; then echo "ok $i"; else echo "fail $i $(cat /home/alice/writer.err)"; fi;
done > /home/alice/writer.log"""


def write_through(changes):
    """alice writes files in a loop at /home/alice/live while each of changes (lxc_share arguments) is applied;
    returns (files written, [failed writes], [how each change was made], [written files not in the source])."""
    home = LAB.root('a') + '/home/alice'
    for name in ('stop-writer', 'writer.log'):
        if os.path.exists(os.path.join(home, name)):
            os.unlink(os.path.join(home, name))
    cmd = ['lxc-attach', '-P', LAB.lxcpath, '--clear-env', '-u', '1000', '-g', '100', '-n', LAB.name('a'), '--',
           'sh', '-c', WRITER]
    # The writer at the lowest priority (inherited through lxc-attach): it takes the CPU the runs leave, so that
    # emulated guests are not slowed down by it; it still runs while a change is made (the guests have 2 CPUs).
    writer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(19))
    hows = []
    try:
        time.sleep(0.5)
        for args in changes:
            r = LAB.share(**args)
            expect(not r.get('failed') and r.get('changed'), 'the live change %s' % args, r.get('msg'))
            hows.append(r.get('replaced') or (r.get('results') or [{}])[0].get('replaced'))
            time.sleep(0.2)
    finally:
        with open(os.path.join(home, 'stop-writer'), 'w'):
            pass
        try:
            writer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            writer.kill()
    with open(os.path.join(home, 'writer.log')) as f:
        lines = f.read().splitlines()
    ok = [l.split()[1] for l in lines if l.startswith('ok ')]
    failed = [l for l in lines if l.startswith('fail ')]
    last = {}  # each file's last write that the writer saw succeed: what the source must hold
    for n in ok:
        last['w%d' % (int(n) % 1024)] = n
    lost = []
    for name, n in sorted(last.items()):
        try:
            with open('%s/live/%s' % (WORK, name)) as f:
                if f.read().strip() != n:
                    lost.append('%s (write %s)' % (name, n))
        except OSError:
            lost.append('%s (write %s)' % (name, n))
    return len(ok), failed, hows, lost


@scenario('a live change while a user writes (read-only, then set-uid, switched on and off): no file hidden '
          'under the share, no write lost; from 6.5 the new mount goes beneath the old one')
def live_change():
    sh('mkdir -p %s/live && chown 7000:7000 %s/live' % (WORK, WORK))
    base = dict(src=WORK + '/live', container=LAB.name('a'), user='alice', dest='/home/alice/live')
    r = LAB.share(**base)
    expect(not r.get('failed'), 'the share', r.get('msg'))
    want = 'beneath' if BENEATH else 'guarded'
    # 10 changes of each kind; the kernel guests make fewer (LXCEX_LIVE_CHANGES, LXCEX_LIVE_SETUID_CHANGES): emulation
    # makes each one dear.  Read-only changes come in pairs (the set-uid phase needs a writable share after them).
    n_changes = int(os.environ.get('LXCEX_LIVE_CHANGES', '10'))
    n_setuid = int(os.environ.get('LXCEX_LIVE_SETUID_CHANGES', str(n_changes)))
    ok1, failed1, hows1, lost1 = write_through([dict(base, readonly=(n % 2 == 0)) for n in range(n_changes)])
    log('read-only on and off %d times: %d writes done, %d writes refused (%s)'
        % (n_changes, ok1, len(failed1), hows1[0]))
    # set-uid on and off: a new mount each time, and every write stays allowed.
    ok2, failed2, hows2, lost2 = write_through([dict(base, allow_setuid=(n % 2 == 0)) for n in range(n_setuid)])
    log('set-uid switched %d times: %d writes done, %d writes refused (%s)'
        % (n_setuid, ok2, len(failed2), hows2[0]))
    r = LAB.share(state='absent', container=LAB.name('a'), dest='/home/alice/live')
    expect(not r.get('failed') and r.get('changed'), 'removal', r.get('msg'))
    rc, out = LAB.attach('a', 'ls -A /home/alice/live 2>/dev/null | wc -l')
    expect(out.split() == ['0'], 'no file hidden under the share in the container\'s own directory', out)
    expect(not lost1 and not lost2, 'no write lost: every write the writer saw succeed is in the source',
           '%d missing, as %s' % (len(lost1 + lost2), (lost1 + lost2)[:5]))
    expect(ok1 > 0 and ok2 > 0, 'the writer wrote', ok1, ok2)
    expect(all('Read-only' in l or 'denied' in l for l in failed1), 'refused only while read-only (or, before 6.5, '
           'permission denied while the mount was swapped)', failed1[:5])
    if BENEATH:
        expect(not failed2, 'no write refused: dest never showed anything but the share', failed2[:5])
    else:
        expect(all('denied' in l for l in failed2), 'a write between the two mounts is refused, not hidden',
               failed2[:5])
    expect(all(h == want for h in hows1 + hows2), 'every change made %s' % want, hows1 + hows2)
    for name in ('stop-writer', 'writer.log', 'writer.err'):
        path = os.path.join(LAB.root('a'), 'home/alice', name)
        if os.path.exists(path):
            os.unlink(path)


@scenario('removal: the role with lxcex_share_state=absent takes every share away from the running containers')
def removal():
    changed, out = role(lxcex_share_state='absent')
    expect(changed, 'the uninstall changes something', out[-2000:])
    for key in ('a', 'b'):
        left = [l for l in LAB.mounts_in(key) if ' /home/' in l]
        expect(not left, 'no share left in %s' % key, left)
    expect(not LAB.host_thunks(), 'no thunk left', LAB.host_thunks())
    rc, out = sees('b', 'ls /home/bob/common 2>/dev/null | wc -l')
    expect(out == ['0'], 'bob\'s directory is empty again', out)


if __name__ == '__main__':
    sys.exit(LAB.run(setup, [converge, users_see, preflight, reboot, records_lost, live_change, removal], roots))
