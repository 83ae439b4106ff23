# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run integration targets of lxcex.share in qemu guests with Debian 12's and Debian 13's kernels.

    python scripts/kernels.py COLLECTION_DIR [--kernels bookworm,trixie] [--targets a,b] [--timeout S]

The Debian 13 guest is a real Debian 13 host with its own userland
(scripts/debian13.py: the role over SSH, a restart, a real reboot, then the
targets inside); what follows describes the Debian 12 guest, whose userland
is this machine's (Debian 12).

For each suite: the current kernel package of that Debian release
(linux-image-amd64's dependency) is downloaded with an apt configuration of
our own (the machine's sources stay untouched) and cached under
/var/tmp/lxcex-kernels.  The guest (TCG: KVM does not work on these machines)
mounts this machine's / read-only over virtio-9p under a tmpfs overlay, so it
runs this machine's own Python, LXC and venv and nothing it does reaches the
host; a fresh ext4 disk is its /var/tmp, where the tests keep their lxcpaths and
sources (9p cannot be idmapped), with the directories of this machine's
/var/tmp that the run needs (a checkout there, its venv) bound back into it.
Inside, each target's runme.sh runs directly (emulation makes every process
dear: no ansible-test around it) from COLLECTION_DIR (a staged copy at
.../ansible_collections/lxcex/share).  The guests run side by side.  Prints,
per kernel, each target with its counts, and at the end one line
'N passed, M failed, K skipped' over every scenario of every guest; exits 1
when one failed or a guest did not finish (naming what it did not reach).
"""

from __future__ import absolute_import, division, print_function

import argparse
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

CACHE = '/var/tmp/lxcex-kernels'
SUITES = {'bookworm': 'Debian 12', 'trixie': 'Debian 13'}
# Modules the Debian kernels build as modules that the guest needs, in load order (missing ones are skipped).
MODULES = ('virtio', 'virtio_ring', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_blk',
           'netfs', 'fscache', '9pnet', '9pnet_virtio', '9p', 'overlay', 'crc16', 'crc32c_generic', 'libcrc32c',
           'mbcache', 'jbd2', 'ext4')
MARK = 'LXCEX-GUEST'
# Suites whose guest boots their own userland as a real host (scripts/debian13.py), not this machine's.
USERLAND = {'trixie': ', its own userland'}


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, **kw).stdout.decode('utf-8', 'replace')


def apt(suite):
    """apt-get/apt-cache options of a private configuration for suite (lists and archives under CACHE)."""
    base = os.path.join(CACHE, 'apt-' + suite)
    for d in ('lists/partial', 'cache/archives/partial'):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    sources = os.path.join(base, 'sources.list')
    with open(sources, 'w') as f:
        f.write('deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s main\n'
                % suite)
    return ['-o', 'Dir::Etc::SourceList=' + sources, '-o', 'Dir::Etc::SourceParts=/dev/null',
            '-o', 'Dir::State::Lists=' + os.path.join(base, 'lists'), '-o', 'Dir::Cache=' + os.path.join(base, 'cache'),
            '-o', 'Dir::State::status=/dev/null', '-o', 'APT::Sandbox::User=root', '-o', 'Debug::NoLocking=1']


def kernel(suite):
    """(vmlinuz, modules dir, release) of the suite's current kernel, downloaded and unpacked once."""
    opts = apt(suite)
    stamp = os.path.join(CACHE, 'apt-%s.updated' % suite)
    if not os.path.exists(stamp) or time.time() - os.path.getmtime(stamp) > 86400:
        sh(['apt-get'] + opts + ['-q', 'update'])
        with open(stamp, 'w') as f:
            f.write('')
    depends = sh(['apt-cache'] + opts + ['depends', 'linux-image-amd64'])
    names = re.findall(r'Depends: (linux-image-[0-9][^\s]*)', depends)
    if not names:
        raise RuntimeError('%s: no kernel behind linux-image-amd64:\n%s' % (suite, depends))
    package = names[0]
    root = os.path.join(CACHE, package)
    if not glob.glob(root + '/boot/vmlinuz-*'):
        tmp = tempfile.mkdtemp(dir=CACHE)
        try:
            sh(['apt-get'] + opts + ['-q', 'download', package], cwd=tmp)
            debs = glob.glob(tmp + '/*.deb')
            os.makedirs(root + '.part', exist_ok=True)
            for deb in debs:
                sh(['dpkg-deb', '-x', deb, root + '.part'])
            # trixie splits modules into their own package on some releases
            if not glob.glob(root + '.part/lib/modules/*/kernel') and not glob.glob(root + '.part/usr/lib/modules/*/kernel'):
                mods = re.findall(r'Depends: (linux-modules-[0-9][^\s]*)', sh(['apt-cache'] + opts + ['depends', package]))
                for m in mods:
                    sh(['apt-get'] + opts + ['-q', 'download', m], cwd=tmp)
                for deb in glob.glob(tmp + '/linux-modules-*.deb'):
                    sh(['dpkg-deb', '-x', deb, root + '.part'])
            os.rename(root + '.part', root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    vmlinuz = glob.glob(root + '/boot/vmlinuz-*')[0]
    release = os.path.basename(vmlinuz)[len('vmlinuz-'):]
    # bookworm ships /lib/modules, trixie (merged /usr) /usr/lib/modules
    for modules in (os.path.join(root, 'lib/modules', release), os.path.join(root, 'usr/lib/modules', release)):
        if os.path.isdir(modules):
            return vmlinuz, modules, release
    raise RuntimeError('%s: no modules directory for %s in %s' % (suite, release, root))


# The start of every guest's /init: busybox, the kernel filesystems, the modules.
INIT_HEAD = r'''#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod /mods/$m.ko 2>/dev/null; done
'''
INIT = INIT_HEAD + r'''mkdir -p /host /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host || { echo "LXCEX-GUEST no 9p"; echo o > /proc/sysrq-trigger; }
mount -t tmpfs -o size=2g upper /upper
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/host,upperdir=/upper/u,workdir=/upper/w /newroot || { echo "LXCEX-GUEST no overlay"; echo o > /proc/sysrq-trigger; }
cp /guest.sh /newroot/lxcex-guest.sh
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/sh /lxcex-guest.sh
'''

GUEST = r'''#!/bin/sh
# Runs in the guest, in this machine's userland under an overlay.
export PATH=%(path)s
export HOME=/root LANG=C.UTF-8
exec > /dev/ttyS0 2>&1
mount -t tmpfs run /run && mkdir -p /run/lock
mount -t tmpfs mnt /mnt
# The ext4 disk becomes /var/tmp; what the run needs of this machine's /var/tmp (a checkout, its venv) is bound back.
mkdir -p /.lxcex-host-var-tmp && mount --bind /var/tmp /.lxcex-host-var-tmp
mount -t ext4 /dev/vda /var/tmp && chmod 1777 /var/tmp
for d in %(keep)s; do
  [ -n "$d" ] || continue
  mkdir -p "/var/tmp/$d" && mount --bind "/.lxcex-host-var-tmp/$d" "/var/tmp/$d"
done
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs shm /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount --make-rshared /
ip link set lo up 2>/dev/null
echo "%(mark)s kernel $(uname -r)"
cd %(coll)s
# Emulation makes every process start dear: modules are piped to their Python, not copied and run from files.
export ANSIBLE_PIPELINING=True ANSIBLE_COLLECTIONS_PATH=%(collections)s ANSIBLE_TEST_PYTHON_INTERPRETER=$(command -v python)
export LXCEX_LIVE_CHANGES=2 LXCEX_LIVE_SETUID_CHANGES=1
for t in %(targets)s; do
  echo "%(mark)s start $t"
  start=$(date +%%s)
  bash tests/integration/targets/$t/runme.sh
  echo "%(mark)s target $t rc=$? seconds=$(( $(date +%%s) - start ))"
done
echo "%(mark)s done"
sync
echo o > /proc/sysrq-trigger
sleep 30
'''

COUNTS = re.compile(r'^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?')
PRINT = threading.Lock()


def say(text):
    with PRINT:
        print(text, flush=True)


def kept_var_tmp(paths):
    """The entries of /var/tmp that paths lie in (a checkout or venv there), to bind back into the guest."""
    out = []
    for p in paths:
        p = os.path.realpath(p) if p else ''
        if p.startswith('/var/tmp/'):
            top = p[len('/var/tmp/'):].split('/')[0]
            if top and top not in out:
                out.append(top)
    return out


def initramfs(modules_dir, run, guest_text, init=INIT):
    """The initramfs for a kernel: busybox, its modules, /init and the guest script (none: None)."""
    path = os.path.join(run, 'initrd.cpio')
    work = tempfile.mkdtemp(dir=CACHE)
    try:
        for d in ('bin', 'proc', 'sys', 'dev', 'mods'):
            os.makedirs(os.path.join(work, d))
        shutil.copy('/bin/busybox', work + '/bin/busybox')
        loaded = []
        for name in MODULES:
            found = glob.glob('%s/kernel/**/%s.ko*' % (modules_dir, name), recursive=True)
            if not found:
                continue
            src = found[0]
            dest = os.path.join(work, 'mods', name + '.ko')
            if src.endswith('.xz'):
                with open(dest, 'wb') as out:
                    subprocess.run(['xz', '-dc', src], stdout=out, check=True)
            elif src.endswith('.zst'):
                with open(dest, 'wb') as out:
                    subprocess.run(['zstd', '-dcq', src], stdout=out, check=True)
            else:
                shutil.copy(src, dest)
            loaded.append(name)
        with open(work + '/modules.list', 'w') as f:
            f.write('\n'.join(loaded) + '\n')
        with open(work + '/init', 'w') as f:
            f.write(init)
        os.chmod(work + '/init', 0o755)
        if guest_text is not None:
            with open(work + '/guest.sh', 'w') as f:
                f.write(guest_text)
        sh('cd %s && find . | cpio -o -H newc --quiet > %s' % (shlex.quote(work), shlex.quote(path)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def run_guest(suite, coll, targets, timeout, pyver):
    """Boot the suite's kernel, run the targets; (ok, release, {target: (rc, seconds, counts)})."""
    del pyver  # the guest runs the runme.sh of each target with the Python on PATH
    vmlinuz, modules_dir, release = kernel(suite)
    name = SUITES[suite]
    run = tempfile.mkdtemp(prefix='run-', dir=CACHE)
    try:
        keep = kept_var_tmp([coll, sys.executable, os.environ.get('LXCEX_ROOT', '')]
                            + os.environ['PATH'].split(':'))
        guest_text = GUEST % {'path': os.environ['PATH'], 'mark': MARK, 'coll': shlex.quote(coll),
                              'collections': shlex.quote(os.path.dirname(os.path.dirname(os.path.dirname(coll)))),
                              'keep': ' '.join(shlex.quote(k) for k in keep),
                              'targets': ' '.join(shlex.quote(t) for t in targets)}
        initrd = initramfs(modules_dir, run, guest_text)
        disk = os.path.join(run, 'disk.img')
        sh(['truncate', '-s', '8G', disk])
        sh(['mkfs.ext4', '-q', '-F', disk])
        cmd = ['timeout', str(timeout), 'qemu-system-x86_64', '-accel', 'tcg', '-cpu', 'max', '-smp', '2', '-m', '4096',
               '-nographic', '-no-reboot', '-kernel', vmlinuz, '-initrd', initrd,
               '-append', 'console=ttyS0 panic=-1 quiet',
               '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
               '-drive', 'file=%s,if=virtio,format=raw' % disk]
        bound = ', /var/tmp entries bound back: %s' % ' '.join(keep) if keep else ''
        say('=== %s (%s): kernel %s, targets %s%s' % (suite, name, release, ' '.join(targets), bound))
        t0 = time.monotonic()
        log = os.path.join(run, 'console.log')
        results = {}
        seen_kernel = None
        current = None
        counts = None
        with open(log, 'wb') as logf:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            for raw in proc.stdout:
                logf.write(raw)
                line = raw.decode('utf-8', 'replace').rstrip()
                m = COUNTS.match(line)
                if m and current:
                    counts = tuple(int(x or 0) for x in m.groups())
                    say('  %s %s: %s' % (name, current, line))
                elif MARK in line:
                    say('  %s %s' % (name, line[line.index(MARK):]))
                    m = re.search(MARK + r' start (\S+)', line)
                    if m:
                        current, counts = m.group(1), None
                    m = re.search(MARK + r' target (\S+) rc=(\d+) seconds=(\d+)', line)
                    if m:
                        results[m.group(1)] = (int(m.group(2)), int(m.group(3)), counts)
                        current = None
                    m = re.search(MARK + r' kernel (\S+)', line)
                    if m:
                        seen_kernel = m.group(1)
                elif re.search(r'(^FAILED|^ERROR: |Traceback|^SKIPPED|^=== |^passed \()', line):
                    say('  %s | %s' % (name, line[:300]))
            proc.wait()
        elapsed = time.monotonic() - t0
        ok = seen_kernel is not None and all(t in results and results[t][0] == 0 for t in targets)
        for t in targets:
            if t in results:
                rc, secs, c = results[t]
                state = 'passed' if rc == 0 else 'FAILED'
                detail = ' (%d s%s)' % (secs, ', %d passed, %d failed, %d skipped' % c if c else '')
            else:
                state, detail = 'DID NOT RUN (the guest ran out of its %d s or stopped before it)' % timeout, ''
            say('%s %s: %s %s%s' % (name, seen_kernel or release, t, state, detail))
        say('=== %s: %s in %.0f s' % (suite, 'passed' if ok else 'FAILED', elapsed))
        kept = os.path.join(CACHE, 'console-%s.log' % suite)
        shutil.copy(log, kept)
        if not ok:
            with open(log, 'rb') as f:
                tail = f.read()[-6000:].decode('utf-8', 'replace')
            say('--- last console output of the %s guest (all of it: %s):\n%s' % (name, kept, tail))
        return ok, seen_kernel or release, results
    finally:
        shutil.rmtree(run, ignore_errors=True)


def tally(targets, results):
    """(passed, failed, skipped) of the scenarios of the targets; a target without counts is one test."""
    p = f = k = 0
    for t in targets:
        rc, dummy, c = results.get(t, (1, 0, None))
        if c:
            p, f, k = p + c[0], f + c[1] + (1 if rc and not c[1] else 0), k + c[2]
        elif rc == 0:
            p += 1
        elif rc is None:  # a step that did not run
            k += 1
        else:
            f += 1
    return p, f, k


def main():
    sys.modules.setdefault('kernels', sys.modules[__name__])  # debian13 imports this module: the same one
    import debian13  # pylint: disable=import-outside-toplevel
    p = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    p.add_argument('collection')
    p.add_argument('--kernels', default='bookworm,trixie')
    p.add_argument('--targets', default='lxc_share_kernel')
    p.add_argument('--timeout', type=int, default=2400, help='seconds per guest')
    p.add_argument('--prepare', action='store_true', help='only fetch the kernels and make the userland, run nothing')
    args = p.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    os.chmod(CACHE, 0o755)
    pyver = '%d.%d' % sys.version_info[:2]
    targets = args.targets.split(',')
    suites = args.kernels.split(',')
    for suite in suites:  # downloads, one after the other, before the guests start side by side
        t0 = time.monotonic()
        kernel(suite)
        if suite in USERLAND:
            debian13.rootfs()
        if args.prepare:
            print('%s: kernel%s ready in %.0f s' % (suite, ' and userland' if suite in USERLAND else '',
                                                    time.monotonic() - t0))
    if args.prepare:
        return 0
    outcome = {}

    def one(suite):
        try:
            if suite in USERLAND:  # the suite's own userland, a real host: its steps, then the targets inside
                ok, release, steps = debian13.run(os.path.abspath(args.collection), args.timeout, targets)
                outcome[suite] = (ok, release, debian13.results(steps), [s[0] for s in steps])
            else:
                outcome[suite] = run_guest(suite, os.path.abspath(args.collection), targets, args.timeout, pyver) + (
                    targets,)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
            out = getattr(e, 'stdout', b'') or b''
            if isinstance(out, bytes):
                out = out.decode('utf-8', 'replace')
            say('=== %s: cannot run: %s %s' % (suite, e, out[-2000:]))
            outcome[suite] = (False, '?', {}, targets)
    threads = [threading.Thread(target=one, args=(suite,)) for suite in suites]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary, total = [], [0, 0, 0]
    for suite in suites:
        ok, release, results, names = outcome[suite]
        counts = tally(names, results)
        total = [a + b for a, b in zip(total, counts)]
        summary.append('%s (%s%s): %s' % (SUITES.get(suite, suite), release, USERLAND.get(suite, ''), ', '.join(
            '%s %s' % (t, {0: 'passed', None: 'not run'}.get(results.get(t, (1,))[0], 'FAILED')) for t in names)))
    all_ok = all(outcome[s][0] for s in suites)
    print('kernels: ' + '; '.join(summary))
    print('%d passed, %d failed, %d skipped' % (total[0], total[1] + (0 if all_ok or total[1] else 1), total[2]))
    return 0 if all_ok else 1


if __name__ == '__main__':
    sys.exit(main())
