# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on lxcex.share, each on real unprivileged LXC containers.

Every attack is carried out the way a hostile party would (container root,
an unprivileged user of the source container, an unprivileged host user,
sloppy inventory input) and then checked from where it matters: what a
container user sees with lxc-attach, what the host mount table holds, and
whether lxc-start returns.  Checksums of every source are compared at the
end.  Run by runme.sh; prints 'N passed, M failed'.
"""

from __future__ import absolute_import, division, print_function

import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import NOBODY, PY, Lab, expect, log, scenario as attack, sh, titled  # noqa: E402  pylint: disable=wrong-import-position

LAB = Lab('lxcex-atk', [('a', 'alice'), ('b', 'bob'), ('c', 'carol'), ('d', 'dave')], 600000000)
WORK, LXCPATH, THUNKS, PROG, LOG = LAB.work, LAB.lxcpath, LAB.thunks, LAB.prog, LAB.log
CTS = LAB.cts
A, B, C, D = (LAB.name(k) for k in 'abcd')
background = LAB.background


def share(**kw):
    return LAB.share(**kw)


def module(name, args, check_mode=False):
    return LAB.module(name, args, check_mode)


def cli(*args, **kw):
    return LAB.cli(*args, **kw)


def attach(ct, cmd, uid=None, check=False):
    return LAB.attach(ct, cmd, uid=uid, check=check)


def init_pid(ct):
    return LAB.init_pid(ct)


def mounts_in(ct):
    return LAB.mounts_in(ct)


def start(ct, timeout=60):
    return LAB.start(ct, timeout)


def stop(ct):
    return LAB.stop(ct)


def host_thunks(ct=None):
    return LAB.host_thunks(ct)


def setup():
    LAB.setup(elsewhere=('c',), started=('a', 'b', 'c'))
    sh('''set -e
        mkdir -p %(w)s/common/sub %(w)s/revsrc/sub %(w)s/victim
        echo common > %(w)s/common/common.txt
        echo rev > %(w)s/revsrc/rev.txt
        echo "host secret" > %(w)s/victim/secret.txt
        chown -R 7000:7000 %(w)s/common %(w)s/revsrc
        chown -R 4242:4242 %(w)s/victim
        chmod 0700 %(w)s/victim
    ''' % dict(w=WORK))


def roots():
    return [WORK + '/common', WORK + '/revsrc', WORK + '/victim', CTS['c']['root'] + '/home/carol',
            CTS['a']['root'] + '/home/alice', CTS['a']['root'] + '/etc']


# -- the attacks ----------------------------------------------------------------

@attack('1. a user of the source container redirects a private share to root\'s files')
def attack_src_symlink():
    src = '%s/home/alice/proj' % CTS['a']['root']
    r = share(src=src, container=B, user='bob', dest='/home/bob/from-alice')
    expect(r.get('changed') and not r.get('failed'), 'first share', r.get('msg'))
    rc, out = attach(B, 'cat /home/bob/from-alice/alice.txt', uid=1000)
    expect('file of alice' in out, 'bob reads alice\'s file', out)
    try:
        redirected(src)
    finally:
        attach(A, 'rm -f /home/alice/proj; test -d /home/alice/proj.old && mv /home/alice/proj.old /home/alice/proj')
    r = share(src=src, container=B, user='bob', dest='/home/bob/from-alice')
    expect(not r.get('failed'), 'the restored share works again', r.get('msg'))
    r = share(container=B, dest='/home/bob/from-alice', state='absent')
    expect(not r.get('failed'), 'removal', r.get('msg'))


def redirected(src):
    # alice (not root) swaps her shared directory for a symlink to / of her container
    rc, out = attach(A, 'mv /home/alice/proj /home/alice/proj.old && ln -s / /home/alice/proj', uid=1000)
    expect(rc == 0, 'alice plants the symlink', out)
    r = share(src=src, container=B, user='bob', dest='/home/bob/from-alice')
    expect(r.get('failed') and 'symlink' in r.get('msg', ''), 'the next run refuses the redirected src', r)
    # and the hook at bob's next start refuses it too
    stop(B)
    rc, dummy, out = start(B)
    expect(rc == 0, 'B starts', out)
    rc, out = attach(B, 'ls /home/bob/from-alice; test -e /home/bob/from-alice/etc/passwd && echo LEAK', uid=1000)
    expect('LEAK' not in out and 'etc' not in out.split(), 'bob does not see A\'s root filesystem', out)
    # container root of A does the same: src now belongs to A's root
    rc, out = attach(A, 'rm /home/alice/proj && ln -s / /home/alice/proj')
    r = share(src=src, container=B, user='bob', dest='/home/bob/from-alice')
    expect(r.get('failed') and 'root of container' in r.get('msg', ''), 'a src of the container\'s root is refused', r)


@attack('2. a symlink planted in a rootfs outside lxcpath leads a share onto host data')
def attack_rootfs_elsewhere():
    root = CTS['c']['root']
    target = '../' * 20 + WORK.lstrip('/') + '/victim'
    rc, out = attach(C, 'rm -rf /home/carol/proj2 2>/dev/null; ln -s %s /home/carol/proj2' % target, uid=1000)
    expect(rc == 0, 'carol plants the symlink', out)
    r = share(src=root + '/home/carol/proj2', container=B, user='bob', dest='/home/bob/from-carol')
    expect(r.get('failed'), 'the share is refused', r)
    rc, out = attach(B, 'cat /home/bob/from-carol/secret.txt', uid=1000)
    expect('host secret' not in out, 'bob cannot read the host directory', out)
    # the same path given to the manual command
    rc, out = cli(root + '/home/carol/proj2', B, 'bob', '/home/bob/from-carol2')
    expect(rc != 0 and 'symlink' in out, 'the manual command refuses it', out)
    rc, out = attach(B, 'cat /home/bob/from-carol2/secret.txt', uid=1000)
    expect('host secret' not in out, 'bob cannot read the host directory', out)
    # a real directory of carol there is fine
    r = share(src=root + '/home/carol/proj', container=B, user='bob', dest='/home/bob/from-carol')
    expect(not r.get('failed'), 'carol\'s real directory is shared', r.get('msg'))
    rc, out = attach(B, 'cat /home/bob/from-carol/carol.txt', uid=1000)
    expect('file of carol' in out, 'bob reads carol\'s file', out)
    share(container=B, dest='/home/bob/from-carol', state='absent')


@attack('3. container root remounts a read-only share read-write')
def attack_remount_rw():
    r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/ro', readonly=True)
    expect(not r.get('failed'), 'read-only share', r.get('msg'))
    rc, out = attach(B, 'mount -o remount,bind,rw /home/bob/ro; echo rc=$?; touch /home/bob/ro/x && echo WROTE')
    expect('rc=0' not in out and 'WROTE' not in out, 'container root cannot make it writable', out)
    rc, out = attach(B, 'touch /home/bob/ro/y && echo WROTE', uid=1000)
    expect('WROTE' not in out, 'bob cannot write', out)
    rc, out = attach(B, 'mkdir -p /tmp/ro2 && mount --bind /home/bob/ro /tmp/ro2 && '
                        'mount -o remount,bind,rw /tmp/ro2; echo rc=$?; touch /tmp/ro2/z && echo WROTE; umount /tmp/ro2')
    expect('rc=0' not in out and 'WROTE' not in out, 'nor a bind of it', out)
    expect(not os.path.exists(WORK + '/common/x') and not os.path.exists(WORK + '/common/z'), 'nothing written on disk')


@attack('4. container root keeps a bind of a share across its removal')
def attack_revocation():
    r = share(src=WORK + '/revsrc', container=B, user='bob', dest='/home/bob/rev')
    expect(not r.get('failed'), 'share', r.get('msg'))
    attach(B, 'mkdir -p /tmp/keep /tmp/keep2 /tmp/keep3 && mount --bind /home/bob/rev /tmp/keep && '
              'mount --bind /home/bob/rev/sub /tmp/keep2 && mount --bind /tmp/keep /tmp/keep3', check=True)
    r = share(container=B, dest='/home/bob/rev', state='absent')
    expect(r.get('changed') and not r.get('failed'), 'removal', r)
    left = [l for l in mounts_in(B) if WORK + '/revsrc' in l.split()[3]]
    expect(not left, 'no mount of the share is left in the container', *left)
    rc, out = attach(B, 'ls /tmp/keep /tmp/keep2 /tmp/keep3', uid=1000)
    expect('rev.txt' not in out, 'the binds show nothing of the share', out)
    r = share(container=B, dest='/home/bob/rev', state='absent')
    expect(not r.get('changed'), 'a second removal changes nothing', r)


@attack('5. an unprivileged host user reads a private share through its thunk')
def attack_thunk_read():
    src = '%s/home/alice/proj' % CTS['a']['root']
    r = share(src=src, container=B, user='bob', dest='/home/bob/priv')
    expect(not r.get('failed'), 'share', r.get('msg'))
    thunk = r['thunk']
    expect(os.path.exists(thunk + '/alice.txt'), 'the thunk is there for root')
    rc, out = sh('cat %s/alice.txt' % shlex.quote(thunk), check=False, user=NOBODY)
    expect(rc != 0 and 'file of alice' not in out, 'nobody cannot read through the thunk', out)
    rc, out = sh('ls %s/%s' % (THUNKS, B), check=False, user=NOBODY)
    expect(rc != 0, 'nobody cannot list the container\'s thunks', out)
    rc, out = attach(B, 'cat /home/bob/priv/alice.txt', uid=1000)
    expect('file of alice' in out, 'bob still reads the share', out)
    share(container=B, dest='/home/bob/priv', state='absent')


FAKE = r'''
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x20000000) != 0:
    sys.exit('unshare failed')
pid = os.fork()
if pid == 0:
    libc.prctl(1, 9, 0, 0, 0)
    time.sleep(600)
    os._exit(0)
r, w = os.pipe()
os.set_inheritable(w, True)
os.dup2(r, 0)
os.execvp('cat', [sys.argv[1]])
'''


def fake_monitor(lxcpath, name):
    path = WORK + '/fake.py'
    with open(path, 'w') as f:
        f.write(FAKE)
    os.chmod(path, 0o644)
    title = '[lxc monitor] %s %s' % (lxcpath, name)
    proc = subprocess.Popen(['setpriv', '--reuid', str(NOBODY), '--regid', str(NOBODY), '--clear-groups',
                             PY, path, title], stdin=subprocess.DEVNULL)
    background.append(proc)
    for dummy in range(100):
        if titled(title, uid=NOBODY):
            return proc
        time.sleep(0.05)
    raise AssertionError('the fake monitor did not start')


@attack('6. an unprivileged host user forges a container monitor')
def attack_fake_monitor():
    fake = fake_monitor(LXCPATH, D)
    try:
        r = share(src=WORK + '/common', container=D, user='dave', dest='/home/dave/common')
        expect(not r.get('failed') and r.get('running') is False, 'the stopped container stays stopped to the module', r)
        rc, out = cli('list', D)
        expect('recorded' in out, 'list shows the share as recorded (container stopped)', out)
    finally:
        fake.kill()
        fake.wait()
    # post-stop: a forged monitor of B must not make the hook keep B's thunks
    r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/common')
    expect(not r.get('failed'), 'share', r.get('msg'))
    expect(host_thunks(B), 'B has thunks')
    fake = fake_monitor(LXCPATH, B)
    try:
        stop(B)
        for dummy in range(50):
            if not host_thunks(B):
                break
            time.sleep(0.1)
        expect(not host_thunks(B), 'post-stop released B\'s thunks', host_thunks(B))
    finally:
        fake.kill()
        fake.wait()
    rc, dummy, out = start(B)
    expect(rc == 0, 'B starts', out)


@attack('7. container-controlled input makes a start hang')
def attack_hang():
    # a recorded dest turned into a symlink with a 4000-byte target
    r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/hang')
    expect(not r.get('failed'), 'share', r.get('msg'))
    attach(B, 'umount /home/bob/hang && rmdir /home/bob/hang', check=True)
    link = CTS['b']['root'] + '/home/bob/hang'
    os.symlink('a/' * 2000, link)
    os.lchown(link, CTS['b']['base'], CTS['b']['base'])
    try:
        stop(B)
        rc, took, out = start(B, timeout=120)
        expect(rc == 0 and took < 60, 'B starts in time (took %.1f s)' % took, out)
    finally:
        os.unlink(link)
        share(container=B, dest='/home/bob/hang', state='absent')
    tab = '%s/%s/sharetab' % (LXCPATH, B)
    with open(tab) as f:
        saved = f.read()
    try:
        volume(tab, saved)
    finally:
        with open(tab, 'w') as f:
            f.write(saved)
        if not init_pid(B):
            start(B)
    slow_and_big()


def volume(tab, saved):
    # a sharetab with 2000 lines whose sources are gone
    with open(tab, 'a') as f:
        for i in range(2000):
            f.write('%s/gone/%d bob /home/bob/gone-%d\n' % (WORK, i, i))
    stop(B)
    rc, took, out = start(B, timeout=120)
    expect(rc == 0 and took < 60, 'B starts in time with 2000 broken lines (took %.1f s)' % took, out)
    with open(tab, 'w') as f:
        f.write(saved)
    # 1500 valid shares at start, and a post-stop with as many thunks
    with open(tab, 'a') as f:
        for i in range(1500):
            f.write('%s/common bob /home/bob/many/%d\n' % (WORK, i))
    stop(B)
    rc, took, out = start(B, timeout=120)
    expect(rc == 0 and took < 60, 'B starts in time with 1500 shares (took %.1f s)' % took, out)
    n = len([l for l in mounts_in(B) if ' /home/bob/many/' in l])
    expect(n == 1500, 'all 1500 shares are live (%d)' % n)
    t0 = time.monotonic()
    stop(B)
    expect(time.monotonic() - t0 < 60, 'B stops in time')
    expect(not host_thunks(B), 'post-stop released 1500 thunks', len(host_thunks(B)))
    with open(tab, 'w') as f:
        f.write(saved)
    rc, took, out = start(B)
    expect(rc == 0, 'B starts', out)


def slow_and_big():
    # work that a container slows down (here: a pause before entering it) is cut at the hook's deadline,
    # the hook exits 0 so that the start goes on, says why, and releases the container's lock
    r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/slow', live=False)
    expect(not r.get('failed'), 'recorded share', r.get('msg'))
    env = 'LXC_NAME=%s LXC_CONFIG_FILE=%s/%s/config LXC_HOOK_TYPE=start-host LXC_PID=%s LXCEX_SHARE_TEST_PAUSE=30' % (
        B, LXCPATH, B, init_pid(B))
    t0 = time.monotonic()
    rc, out = sh('env %s %s --thunks-dir %s --log-file %s --deadline 3 hook' % (env, PROG, THUNKS, LOG), check=False)
    took = time.monotonic() - t0
    expect(rc == 0 and took < 10 and 'did not finish within 3 seconds' in out,
           'the hook stops at its deadline (rc=%d, %.1f s)' % (rc, took), out)
    t0 = time.monotonic()
    r = share(container=B, dest='/home/bob/slow', state='absent')
    expect(not r.get('failed') and time.monotonic() - t0 < 10, 'the container\'s lock is free again', r.get('msg'))
    # a huge /etc/passwd: refused quickly instead of eating memory
    passwd = CTS['d']['root'] + '/etc/passwd'
    with open(passwd, 'rb') as f:
        real = f.read()
    with open(passwd, 'ab') as f:
        line = b'x' * 200 + b':x:5000:5000:' + b'y' * 100 + b':/:/bin/sh\n'
        f.write(line * (24 * 1024 * 1024 // len(line)))
    try:
        t0 = time.monotonic()
        r = share(src=WORK + '/common', container=D, user='dave', dest='/home/dave/big', live=False)
        expect(r.get('failed') and 'larger than' in r.get('msg', ''), 'a 24 MB passwd is refused', r.get('msg'))
        expect(time.monotonic() - t0 < 30, 'quickly')
    finally:
        with open(passwd, 'wb') as f:
            f.write(real)


@attack('8. bad input is refused, nothing is left behind')
def attack_bad_input():
    r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/bad', src_uid=4294967296, src_gid=7000)
    expect(r.get('failed') and 'out of range' in r.get('msg', ''), 'src_uid 2^32 is refused', r.get('msg'))
    r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/bad', src_uid=7000, src_gid=-1)
    expect(r.get('failed') and 'out of range' in r.get('msg', ''), 'src_gid -1 is refused', r.get('msg'))
    r = share(src=WORK + '/com\x00mon', container=B, user='bob', dest='/home/bob/bad')
    expect(r.get('failed') and 'NUL' in r.get('msg', ''), 'a NUL in src is refused', r)
    r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/b\x00ad')
    expect(r.get('failed') and 'NUL' in r.get('msg', ''), 'a NUL in dest is refused', r)
    config = '%s/%s/config' % (LXCPATH, B)
    with open(config, 'rb') as f:
        before = f.read()
    for key, value, said in (('thunks_size', '1M\nlxc.hook.pre-start = /bin/evil', ('line break', 'not a tmpfs size')),
                             ('program', PROG + '\nlxc.hook.pre-start = /bin/evil', ('line break',))):
        args = dict(containers=[B], program=PROG, lxcpath=LXCPATH, thunks_dir=THUNKS, log_file=LOG)
        args[key] = value
        r = module('lxc_share_hooks', args)
        expect(r.get('failed') and any(text in r.get('msg', '') for text in said),
               'a line break in %s is refused' % key, r.get('msg'))
    with open(config, 'rb') as f:
        expect(f.read() == before, 'the config is unchanged')
    # thunks_dir: an existing non-empty directory, a bad size, a world-writable tmpfs
    os.makedirs(WORK + '/full/data')
    r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/bad', thunks_dir=WORK + '/full')
    expect(r.get('failed') and 'not empty' in r.get('msg', ''), 'a non-empty thunks_dir is refused', r.get('msg'))
    rc, out = sh('findmnt -n %s/full' % WORK, check=False)
    expect(rc != 0, 'nothing is mounted on it', out)
    r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/bad', thunks_dir=WORK + '/new/thunks',
              thunks_size='1Q')
    expect(r.get('failed') and 'thunks_size' in r.get('msg', ''), 'a bad thunks_size is refused', r.get('msg'))
    expect(not os.path.exists(WORK + '/new'), 'no directory is left behind')
    os.makedirs(WORK + '/wtmp')
    sh('mount -t tmpfs -o size=1M,mode=1777 lxcex-atk %s/wtmp' % WORK)
    try:
        r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/bad', thunks_dir=WORK + '/wtmp')
        expect(r.get('failed') and 'writable by nobody else' in r.get('msg', ''), 'a world-writable tmpfs is refused',
               r.get('msg'))
        expect(not os.listdir(WORK + '/wtmp'), 'nothing was made in it')
    finally:
        sh('umount %s/wtmp' % WORK)
    # a refused dest leaves no directory in the container
    r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/newdir/' + 'x' * 300)
    expect(r.get('failed'), 'a 300-byte component is refused', r)
    rc, out = attach(B, 'test -e /home/bob/newdir && echo LEFT')
    expect('LEFT' not in out, 'no directory is left in the container', out)
    # a valid dest of 300 bytes works
    dest = '/home/bob/' + '/'.join('long-component-%02d-with-dashes' % i for i in range(10))
    expect(len(dest) >= 300, 'dest is %d bytes' % len(dest))
    r = share(src=WORK + '/common', container=B, user='bob', dest=dest)
    expect(not r.get('failed'), 'a 300-byte dest is shared', r.get('msg'))
    expect(len(os.path.basename(r['thunk'])) <= 255, 'with a bounded thunk name', r['thunk'])
    rc, out = attach(B, 'cat %s/common.txt' % dest, uid=1000)
    expect('common' in out, 'bob sees it', out)
    r = share(src=WORK + '/common', container=B, user='bob', dest=dest)
    expect(not r.get('changed'), 'idempotent', r)
    r = share(container=B, dest=dest, state='absent')
    expect(r.get('changed') and not r.get('failed'), 'removed', r.get('msg'))


@attack('9. concurrent runs stack mounts at one dest; removal leaves one behind')
def attack_concurrency():
    dest = '/home/bob/conc'
    args = [PROG, '--lxcpath', LXCPATH, '--thunks-dir', THUNKS, WORK + '/common', B, 'bob', dest]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for dummy in range(8)]
    outs = [p.communicate()[0].decode() for p in procs]
    n = len([l for l in mounts_in(B) if l.split()[4] == dest])
    expect(n == 1, 'one mount at dest after 8 concurrent runs (%d)' % n, *outs)
    # and with the hook at start running at the same time
    stop(B)
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for dummy in range(4)]
    rc, dummy, out = start(B)
    outs = [p.communicate()[0].decode() for p in procs]
    expect(rc == 0, 'B starts', out)
    n = len([l for l in mounts_in(B) if l.split()[4] == dest])
    expect(n == 1, 'one mount at dest with the start hook at the same time (%d)' % n, *outs)
    procs = [subprocess.Popen([PROG, '--lxcpath', LXCPATH, '--thunks-dir', THUNKS, '--remove', B, dest],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for dummy in range(4)]
    outs = [p.communicate()[0].decode() for p in procs]
    n = len([l for l in mounts_in(B) if l.split()[4] == dest])
    expect(n == 0, 'nothing mounted at dest after concurrent removals (%d)' % n, *outs)
    r = share(container=B, dest=dest, state='absent')
    expect(not r.get('changed'), 'and a rerun has nothing to do', r)


FOREIGN_MOUNT = r'''
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.lxcex.share.plugins.module_utils import _kernel
userns = _kernel.make_userns('7000 4000000 1\n', '7000 4000000 1\n')
fd = _kernel.open_tree(sys.argv[2])
_kernel.mount_setattr(fd, _kernel.MOUNT_ATTR_IDMAP, userns)
_kernel.move_mount(fd, sys.argv[3])
'''


def foreign_idmapped(src, target):
    """An idmapped bind mount of src at target made by another program: no record, no sharetab, no tmpfs of ours."""
    os.makedirs(target, exist_ok=True)
    with open(WORK + '/foreign-mount.py', 'w') as f:
        f.write(FOREIGN_MOUNT)
    sh('%s %s/foreign-mount.py %s %s %s' % (PY, WORK, LAB.collections, src, target))


def foreign_points():
    with open('/proc/self/mountinfo') as f:
        return sorted(l.split()[4] for l in f if l.split()[4].startswith(WORK + '/f'))


@attack('10. a refused thunks_dir, or another program\'s tmpfs as thunks_dir, releases nobody else\'s idmapped mounts')
def attack_foreign_mounts():
    os.makedirs(WORK + '/fsrc')
    foreign_idmapped(WORK + '/fsrc', WORK + '/fdir/ghostct/x')      # below a directory that is refused
    os.makedirs(WORK + '/ftmp')
    sh('mount -t tmpfs -o size=1M,mode=0755 other-software %s/ftmp' % WORK)
    foreign_idmapped(WORK + '/fsrc', WORK + '/ftmp/ghostct/y')      # in a tmpfs of another program
    before = foreign_points()
    expect(len(before) == 3 and all('idmapped' in l for l in open('/proc/self/mountinfo')
                                    if l.split()[4] in (WORK + '/fdir/ghostct/x', WORK + '/ftmp/ghostct/y')),
           'the foreign idmapped mounts are there', before)
    try:
        for thunks, said in ((WORK + '/fdir', 'is not empty'), (WORK + '/ftmp', 'mounted by something else'),
                             ('/', 'thunks directory / is refused')):
            for check in (True, False):
                r = share(src=WORK + '/common', container=B, user='bob', dest='/home/bob/foreign', thunks_dir=thunks,
                          check_mode=check)
                expect(r.get('failed') and said in r.get('msg', '') and not r.get('changed'),
                       'thunks_dir %s refused (check_mode=%s), changing nothing' % (thunks, check), r.get('msg'),
                       r.get('released_thunks'))
                expect(foreign_points() == before, 'the foreign mounts are all still there', before, foreign_points())
        r = module('lxc_share_info', {'lxcpath': LXCPATH, 'thunks_dir': WORK + '/ftmp'})
        expect(not [x for x in r.get('shares', []) if x.get('state') == 'stale'],
               'lxc_share_info lists no foreign mount as a stale thunk', r.get('shares'), r.get('msg'))
        expect(foreign_points() == before, 'still there after lxc_share_info', before, foreign_points())
        rc, out = attach(B, 'ls /home/bob')
        expect('foreign' not in out, 'no directory made in the container', out)
    finally:
        for point in reversed(foreign_points()):
            sh('umount -l %s' % point, check=False)


def share_mounts(ct, src):
    """The mounts in the container whose source is src (its root field in mountinfo), and those at /."""
    lines = [l.split() for l in mounts_in(ct)]
    return [l[4] for l in lines if l[3] == src], [l for l in lines if l[4] == '/']


@attack('11. container root swaps dest between a directory and a symlink to / while the host applies and removes')
def attack_dest_race():
    src = WORK + '/common'
    before, roots_before = share_mounts(B, src)  # the other shares of that source
    loop = ('cd /home/bob && mkdir -p rA && ln -sfn / rL && '
            'while :; do mv rA race; mv race rA; mv rL race; mv race rL; done')
    racer = subprocess.Popen(['lxc-attach', '-P', LXCPATH, '-n', B, '--', 'sh', '-c', loop],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    background.append(racer)
    rounds, applied, t0, outcomes = 0, 0, time.monotonic(), {}
    try:
        while rounds < 30 and time.monotonic() - t0 < 90:
            rounds += 1
            r = share(src=src, container=B, user='bob', dest='/home/bob/race')
            applied += 0 if r.get('failed') else 1
            outcomes[(r.get('msg') or 'applied')[:90]] = outcomes.get((r.get('msg') or 'applied')[:90], 0) + 1
            found, at_root = share_mounts(B, src)
            expect(at_root == roots_before, 'round %d: nothing mounted over the container\'s / (%s)'
                   % (rounds, r.get('msg') or 'applied'), at_root)
            r = share(container=B, dest='/home/bob/race', state='absent')
            found, at_root = share_mounts(B, src)
            expect(r.get('failed') or found == before, 'round %d: a removal that says removed leaves nothing mounted'
                   % rounds, r.get('msg'), found)
    finally:
        racer.kill()
        racer.wait()
    r = share(container=B, dest='/home/bob/race', state='absent')
    found, at_root = share_mounts(B, src)
    expect(not r.get('failed') and found == before and at_root == roots_before,
           'without the race the removal takes everything away', r.get('msg'), found)
    attach(B, 'cd /home/bob && rm -f rL race; rmdir rA race 2>/dev/null; true')
    log('dest race: %d rounds in %.0f s, %d applied; outcomes %s' % (rounds, time.monotonic() - t0, applied, outcomes))


ATTACKS = [attack_src_symlink, attack_rootfs_elsewhere, attack_remount_rw, attack_revocation, attack_thunk_read,
           attack_fake_monitor, attack_hang, attack_bad_input, attack_concurrency, attack_foreign_mounts,
           attack_dest_race]


def teardown():
    rc, out = cli('list')
    log('\n' + out)
    removals = []
    for ct in (B, D):
        if not os.path.exists('%s/%s/sharetab' % (LXCPATH, ct)):
            continue
        with open('%s/%s/sharetab' % (LXCPATH, ct)) as f:
            for line in f:
                if line.strip() and not line.startswith('#'):
                    dest = line.split()[2].encode().decode('unicode_escape')
                    removals.append(dict(container=ct, dest=dest, state='absent'))
    if removals:
        r = share(shares=removals)
        log('removed the %d remaining shares: %s' % (len(removals), 'failed' if r.get('failed') else 'ok'))


if __name__ == '__main__':
    sys.exit(LAB.run(setup, ATTACKS, roots, teardown=teardown))
