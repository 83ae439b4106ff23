# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults and careless input, on real unprivileged busybox containers.

Each scenario is one that once lost or hid something: shares removed in one run
that left the directories they created behind; two overlapping runs of one batch
that stacked its thunks (the host's mount table was read before the container
lock was taken); the hook program's code deleted before a container start;
text from a container that was printed raw or ended a listing in a traceback;
install paths a non-root user controls (host root ran that user's code); a full
filesystem under a sharetab (a traceback, and the share left live without its line); the thunks
tmpfs out of inodes (a traceback).  Prints
'N passed, M failed, K skipped'; the sources' checksums are compared at the end.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import PY, Lab, expect, scenario, sh  # noqa: E402  pylint: disable=wrong-import-position

LAB = Lab('lxcex-flt', [('a', 'alice')], 620000000)
WORK = LAB.work


def setup():
    LAB.setup(started=('a',))
    sh('mkdir -p %(w)s/src && echo data > %(w)s/src/data.txt && chown -R 7000:7000 %(w)s/src' % {'w': WORK})


def roots():
    return [WORK + '/src']


@scenario('eight shares below one new parent, removed in one run: every directory they created is gone')
def removal_leaves_no_directory():
    home = LAB.root('a') + '/home/alice'
    before = sorted(os.listdir(home))
    shares = [dict(src=WORK + '/src', container=LAB.name('a'), user='alice', dest='/home/alice/load/%d/deep' % i)
              for i in range(8)]
    r = LAB.share(shares=shares)
    expect(not r.get('failed') and r.get('changed'), 'eight shares', r.get('msg'))
    rc, out = LAB.attach('a', 'cat /home/alice/load/7/deep/data.txt', uid=1000)
    expect(out.strip() == 'data', 'the last one is live', out)
    r = LAB.share(shares=[dict(s, state='absent') for s in shares])
    expect(not r.get('failed') and r.get('changed'), 'removed in one run', r.get('msg'))
    expect(sorted(os.listdir(home)) == before, 'no directory left below /home/alice (load is gone too)',
           before, sorted(os.listdir(home)))
    rc, out = LAB.attach('a', 'ls /home/alice')
    expect('load' not in out, 'and the container sees none', out)


@scenario('the same 20-share batch run twice at once: one thunk per path, one live mount per dest')
def overlapping_batches():
    # Two runs of one batch at once, repeated (bounded in time) so that their preparations overlap in some round.
    shares = [dict(src=WORK + '/src', container=LAB.name('a'), user='alice', dest='/home/alice/batch/%02d' % i)
              for i in range(20)]
    start = time.time()
    rounds = 0
    while rounds < 6 or (rounds < 12 and time.time() - start < 60):
        rounds += 1
        out = {}

        def run(n):
            out[n] = LAB.share(shares=shares)
        threads = [threading.Thread(target=run, args=(n,)) for n in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for n in (1, 2):
            expect(not out[n].get('failed'), 'round %d, run %d' % (rounds, n), out[n].get('msg'))
        expect(out[1].get('changed') or out[2].get('changed'), 'round %d: one of them did the work' % rounds)
        points = LAB.host_thunks('a')
        expect(len(points) == 20 and len(set(points)) == 20, 'round %d: one thunk mount on each of 20 paths '
               '(%d mounts on %d paths)' % (rounds, len(points), len(set(points))), sorted(points))
        lines = [l for l in LAB.mounts_in('a') if ' /home/alice/batch/' in l]
        expect(len(lines) == 20, 'round %d: one live mount per dest in the container (%d)' % (rounds, len(lines)))
        r = LAB.share(shares=[dict(s, state='absent') for s in shares])
        expect(not r.get('failed') and not LAB.host_thunks('a'), 'round %d: removed, no thunk left' % rounds,
               r.get('msg'), LAB.host_thunks('a'))
    print('%d rounds in %.1f s' % (rounds, time.time() - start))


@scenario('the installed code zip deleted: the container starts, the failure is logged; reinstalled, the share is back')
def code_zip_deleted():
    inst = dict(program=WORK + '/inst/bin/lxcex-share', code_dir=WORK + '/inst/lib/lxcex-share',
                host_config=WORK + '/inst/lxcex-share.conf', python=PY)
    r = LAB.hooks([LAB.name('a')], install=True, **inst)
    expect(not r.get('failed'), 'the hook program installed', r.get('msg'))
    share = dict(src=WORK + '/src', container=LAB.name('a'), user='alice', dest='/home/alice/zip')
    r = LAB.share(**share)
    expect(not r.get('failed'), 'a share', r.get('msg'))
    try:
        LAB.stop('a')
        os.unlink(inst['code_dir'] + '/lxcex-share.pyz')
        rc, took, out = LAB.start('a')
        expect(rc == 0 and LAB.init_pid('a'), 'the container starts without its code (rc=%d)' % rc, out)
        with open(LAB.log) as f:
            text = f.read()
        expect('cannot load its code from %s/lxcex-share.pyz' % inst['code_dir'] in text
               and 'the container starts without its shares' in text, 'the failure is in the log', text[-2000:])
        rc, out = sh('%s list' % inst['program'], check=False)
        expect(rc == 1 and 'cannot load its code' in out and 'Traceback' not in out, 'the command says why', out)
        r = LAB.hooks([LAB.name('a')], install=True, **inst)
        expect(not r.get('failed') and r.get('changed'), 'reinstalled', r.get('msg'))
        LAB.restart('a')
        rc, out = LAB.attach('a', 'cat /home/alice/zip/data.txt', uid=1000)
        expect(out.strip() == 'data', 'the start hook brings the share back', out)
    finally:
        LAB.share(state='absent', container=LAB.name('a'), dest='/home/alice/zip')
        LAB.hooks([LAB.name('a')])  # the lab's own hook program again


EVIL = b'/tmp/\xff\xfe-\xe2\x80\xae-evil'  # bytes that are not UTF-8, and a right-to-left override (U+202E)
RAW = (b'\xff', b'\xe2\x80\xae')


@scenario('text from a container (bytes that are not UTF-8, a right-to-left override) reaches no output raw')
def container_text():
    link = LAB.root('a') + '/home/alice/evil'
    base = LAB.cts['a']['base']
    target = LAB.root('a').encode() + EVIL
    with open(target, 'wb') as f:  # a file, so that dest cannot go on through it: the error names it
        f.write(b'x')
    os.lchown(target, base, base)
    os.symlink(EVIL, link.encode())
    os.lchown(link, base, base)  # container root's
    tab = '%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a'))
    saved = open(tab, 'rb').read() if os.path.exists(tab) else None
    try:
        r = LAB.share(src=WORK + '/src', container=LAB.name('a'), user='alice', dest='/home/alice/evil/in')
        msg = r.get('msg') or ''
        expect(r.get('failed') and '\\xff\\xfe' in msg and '\\u202e' in msg and '\u202e' not in msg,
               'the task message shows the target escaped', msg)
        with open(tab, 'ab') as f:  # a line by hand, so that list and the start hook meet the link too
            f.write(('%s alice /home/alice/evil/in\n' % (WORK + '/src')).encode())
        env = dict(os.environ, LANG='C.UTF-8', LC_ALL='C.UTF-8')
        for args in (['list'], ['list', '--json']):
            proc = subprocess.run([LAB.prog, '--lxcpath', LAB.lxcpath, '--thunks-dir', LAB.thunks] + args, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
            both = proc.stdout + proc.stderr
            expect(proc.returncode == 1 and b'Traceback' not in both and not any(b in both for b in RAW)
                   and b'/home/alice/evil/in' in proc.stdout and b'\\u202e' in proc.stdout,
                   'lxcex-share %s: rc 1, the row there, its text escaped (rc=%d)' % (' '.join(args), proc.returncode),
                   both[-2000:])
            if args[-1] == '--json':
                rows = json.loads(proc.stdout.decode('ascii'))
                expect([x for x in rows if x['dest'] == '/home/alice/evil/in' and x['state'] == 'broken'],
                       'valid JSON with the broken row', rows)
        proc = subprocess.run(['env', 'LANG=C', 'LC_ALL=C', 'PYTHONIOENCODING=ascii', LAB.prog, '--lxcpath',
                               LAB.lxcpath, '--thunks-dir', LAB.thunks, 'list'],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        expect(proc.returncode == 1 and b'Traceback' not in proc.stdout, 'in an ASCII locale too', proc.stdout[-2000:])
        r = LAB.module('lxc_share_info', {'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks})
        rows = [x for x in r.get('shares', []) if x['dest'] == '/home/alice/evil/in']
        expect(not r.get('failed') and rows and '\\u202e' in rows[0]['detail'] and '\u202e' not in rows[0]['detail'],
               'lxc_share_info: the detail escaped', r.get('msg'), rows)
        size = os.path.getsize(LAB.log) if os.path.exists(LAB.log) else 0
        LAB.restart('a')
        with open(LAB.log, 'rb') as f:
            f.seek(size)
            logged = f.read()
        expect(b'/home/alice/evil/in' in logged and b'\\u202e' in logged and not any(b in logged for b in RAW),
               'the start hook logged the error, escaped', logged[-2000:])
    finally:
        if saved is None:
            os.unlink(tab)
        else:
            with open(tab, 'wb') as f:
                f.write(saved)
        os.unlink(link)
        os.unlink(target)


@scenario('install paths another user controls are refused before anything is written')
def install_paths():
    os.makedirs(WORK + '/evil/lib')
    os.chown(WORK + '/evil/lib', 4242, 4242)          # a directory of a non-root user
    os.makedirs(WORK + '/gw/bin')
    os.chmod(WORK + '/gw', 0o775)                    # a directory root's group may write
    for key, value, said in (('code_dir', WORK + '/evil/lib/lxcex-share', 'belongs to uid 4242'),
                             ('program', WORK + '/gw/bin/lxcex-share', 'is writable by others')):
        inst = dict(program=WORK + '/ok/bin/lxcex-share', code_dir=WORK + '/ok/lib/lxcex-share',
                    host_config=WORK + '/ok/lxcex-share.conf', python=PY)
        inst[key] = value
        for check in (True, False):
            r = LAB.hooks([LAB.name('a')], install=True, check_mode=check, **inst)
            expect(r.get('failed') and said in (r.get('msg') or '') and key in r.get('msg'),
                   '%s %s refused (check_mode=%s)' % (key, value, check), r.get('msg'))
        expect(not os.path.exists(WORK + '/ok') and not os.listdir(WORK + '/evil/lib')
               and os.listdir(WORK + '/gw/bin') == [], 'nothing written')


@scenario('a full filesystem under the sharetab: the share fails with the reason and is not made live; nothing left')
def sharetab_disk_full():
    cdir = '%s/%s' % (LAB.lxcpath, LAB.name('a'))
    keep = WORK + '/keep-rootfs'
    st = os.stat(cdir)
    os.makedirs(keep)
    sh('mount --bind %s/rootfs %s' % (cdir, keep))
    saved = dict((n, open(os.path.join(cdir, n), 'rb').read()) for n in ('config', 'sharetab')
                 if os.path.exists(os.path.join(cdir, n)))
    # The container's directory on a small tmpfs of its own (its config, sharetab, and its rootfs bound back), full.
    sh('mount -t tmpfs -o size=64k,mode=%o lxcex-flt-full %s' % (stat.S_IMODE(st.st_mode), cdir))
    try:
        os.chown(cdir, st.st_uid, st.st_gid)
        for name, data in saved.items():
            with open(os.path.join(cdir, name), 'wb') as f:
                f.write(data)
        os.mkdir(cdir + '/rootfs')
        sh('mount --bind %s %s/rootfs' % (keep, cdir))
        sh('dd if=/dev/zero of=%s/fill bs=4k 2>/dev/null; true' % cdir)
        thunks = LAB.host_thunks('a')
        before = sorted(os.listdir(LAB.root('a') + '/home/alice'))
        r = LAB.share(src=WORK + '/src', container=LAB.name('a'), user='alice', dest='/home/alice/full')
        msg = r.get('msg') or ''
        expect(r.get('failed') and 'cannot write the sharetab' in msg and 'No space left' in msg
               and 'Traceback' not in msg, 'a clear failure naming the reason', msg)
        expect(not [l for l in LAB.mounts_in('a') if ' /home/alice/full ' in l], 'not live in the container')
        expect(LAB.host_thunks('a') == thunks, 'no thunk made', thunks, LAB.host_thunks('a'))
        expect(sorted(os.listdir(LAB.root('a') + '/home/alice')) == before, 'no directory made in the container')
        expect(dict((n, open(os.path.join(cdir, n), 'rb').read()) for n in saved) == saved, 'the sharetab as it was')
    finally:
        sh('umount %s/rootfs; umount %s; umount %s' % (cdir, cdir, keep), check=False)
        os.rmdir(keep)


@scenario('the thunks tmpfs out of inodes: the share fails with the reason, nothing made, no traceback')
def thunks_out_of_inodes():
    thunks = WORK + '/ithunks'
    os.makedirs(thunks)
    tab = '%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a'))
    saved = open(tab, 'rb').read() if os.path.exists(tab) else None
    before = sorted(os.listdir(LAB.root('a') + '/home/alice'))
    try:
        # A thunks tmpfs of ours (its source name) with room for its root and N-1 more inodes: none for the
        # container's directory (1), none for the thunk's own directory (2).
        for inodes in (1, 2):
            sh('mount -t tmpfs -o nr_inodes=%d,mode=0711,size=1m lxcex-share-thunks %s' % (inodes, thunks))
            try:
                r = LAB.share(src=WORK + '/src', container=LAB.name('a'), user='alice', dest='/home/alice/inodes',
                              thunks_dir=thunks)
                msg = r.get('msg') or ''
                expect(r.get('failed') and 'No space left' in msg and thunks in msg and 'Traceback' not in msg,
                       'nr_inodes=%d: a clear failure naming the thunks directory and the reason' % inodes, msg)
                expect(not [l for l in LAB.mounts_in('a') if ' /home/alice/inodes ' in l], 'not live')
                with open('/proc/self/mountinfo') as f:
                    below = [l.split()[4] for l in f if l.split()[4].startswith(thunks + '/')]
                expect(not below, 'no thunk mounted', below)
                expect(sorted(os.listdir(LAB.root('a') + '/home/alice')) == before, 'no directory in the container')
                expect((open(tab, 'rb').read() if os.path.exists(tab) else None) == saved, 'the sharetab as it was')
            finally:
                sh('umount %s' % thunks, check=False)
    finally:
        os.rmdir(thunks)


if __name__ == '__main__':
    sys.exit(LAB.run(setup, [removal_leaves_no_directory, overlapping_batches, code_zip_deleted, container_text,
                             install_paths, sharetab_disk_full, thunks_out_of_inodes], roots))
