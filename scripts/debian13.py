# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Debian 13 as a real LXC host: its own userland in a qemu guest, reached over SSH, really rebooted.

    python scripts/debian13.py COLLECTION_DIR [--timeout S] [--targets a,b]

The guest boots Debian 13's kernel and Debian 13's own userland: a debootstrap
of trixie (cached under /var/tmp/lxcex-kernels, made again when the package
list changes or after 30 days) with its LXC 6.0, Python 3.13, ansible-core, systemd as init and
AppArmor on as Debian boots it.  Each run makes a fresh ext4 disk of it with a
non-root user ``lxcex`` (sudo, a key made for this run) and sshd on a loopback
port forward.  This machine is the controller, as for a fleet's hosts:

  boot         the guest is up and sshd answers (host key checked)
  containers   two unprivileged busybox containers in /var/lib/lxc with Debian's
               default AppArmor profile (generated), lxc.start.auto = 1, users
               and a team group inside
  role         ansible-playbook lxcex.share.site (become, the role's defaults):
               private, common, read-only and team shares
  again        the same run changes nothing
  users        what the containers' users see and may do (lxc-attach -u -g)
  restart      a container stopped and started: its shares are back
  reboot       systemctl reboot: Debian's lxc.service autostarts the containers,
               every share is live, every source file as it was
  apparmor     AppArmor is enabled and the containers run confined by LXC's
               generated profile
  TARGETS      (--targets) integration targets run inside the guest with its
               own Python and ansible-core (runme.sh, as root)

Prints each step with its time, and at the end 'N passed, M failed, K skipped';
exits 1 when a step failed.
"""

from __future__ import absolute_import, division, print_function

import argparse
import hashlib
import json
import re
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernels  # noqa: E402  (the kernel package, the initramfs, the cache)

SUITE = 'trixie'
NAME = 'Debian 13'
PACKAGES = ('systemd-sysv', 'udev', 'lxc', 'apparmor', 'python3', 'openssh-server', 'sudo', 'busybox-static', 'uidmap',
            'iproute2', 'kmod', 'ca-certificates', 'ansible-core', 'python3-cffi-backend')
MIRROR = 'http://deb.debian.org/debian'
MAX_AGE = 30 * 86400  # the cached userland is made again after this, with the point release's updates
# Mounts the real root read-write and hands over to systemd.
INIT = kernels.INIT_HEAD + r'''mkdir -p /newroot
mount -t ext4 -o rw /dev/vda /newroot || { echo "LXCEX-GUEST no root disk"; echo o > /proc/sysrq-trigger; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
'''
SHARES_SETUP = r'''
set -eu
for ct in ct-a:1000000 ct-b:1100000; do
  n=${ct%%:*}; base=${ct#*:}
  cat > /root/$n.conf <<EOF
lxc.idmap = u 0 $base 65536
lxc.idmap = g 0 $base 65536
lxc.net.0.type = empty
lxc.apparmor.profile = generated
lxc.apparmor.allow_nesting = 1
lxc.start.auto = 1
EOF
  lxc-create -n $n -t busybox -f /root/$n.conf >/dev/null
  lxc-start -n $n
done
for n in ct-a ct-b; do lxc-wait -n $n -s RUNNING -t 60; done
lxc-attach -n ct-a -- sh -c 'echo alice:x:1000:1000::/home/alice:/bin/sh >> /etc/passwd &&
  printf "alice:x:1000:\ndevs:x:3000:alice\n" >> /etc/group && mkdir -p /home/alice/share &&
  echo "alice wrote this" > /home/alice/share/alice.txt && chown -R 1000:1000 /home/alice'
lxc-attach -n ct-b -- sh -c 'echo bob:x:1001:1001::/home/bob:/bin/sh >> /etc/passwd &&
  printf "bob:x:1001:\ndevs:x:3000:bob\n" >> /etc/group && mkdir -p /home/bob && chown 1001:1001 /home/bob'
mkdir -p /srv/common /srv/docs /srv/team
echo "common file" > /srv/common/common.txt && chown -R 5000:5000 /srv/common
echo "read me" > /srv/docs/readme.txt && chown -R 5001:5001 /srv/docs
chown 0:5002 /srv/team && chmod 2775 /srv/team
'''


def sh(cmd, **kw):
    return kernels.sh(cmd, **kw)


def rootfs():
    """The cached debootstrap of trixie with PACKAGES (made once per package list)."""
    key = hashlib.sha256(('1 %s %s' % (MIRROR, ','.join(PACKAGES))).encode()).hexdigest()[:12]
    root = os.path.join(kernels.CACHE, 'trixie-userland-' + key)
    stamp = os.path.join(root, '.lxcex-complete')
    if os.path.exists(stamp) and time.time() - os.path.getmtime(stamp) < MAX_AGE:
        return root
    part = root + '.part'
    if os.path.isdir(part):
        sh(['rm', '-rf', '--one-file-system', part])
    t0 = time.monotonic()
    sh(['debootstrap', '--variant=minbase', '--include=' + ','.join(PACKAGES), SUITE, part, MIRROR])
    for deb in os.listdir(os.path.join(part, 'var/cache/apt/archives')):
        if deb.endswith('.deb'):
            os.unlink(os.path.join(part, 'var/cache/apt/archives', deb))
    with open(os.path.join(part, '.lxcex-complete'), 'w') as f:
        f.write('debootstrap of %s with %s\n' % (SUITE, ','.join(PACKAGES)))
    if os.path.isdir(root):  # older than MAX_AGE: the new one takes its place
        sh(['rm', '-rf', '--one-file-system', root])
    os.rename(part, root)
    kernels.say('  %s: userland made with debootstrap in %.0f s (cached in %s)' % (NAME, time.monotonic() - t0, root))
    return root


def write(path, text, mode=0o644, owner=None, append=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'a' if append else 'w') as f:
        f.write(text)
    os.chmod(path, mode)
    if owner:
        os.chown(path, *owner)


def image(run, root, modules_dir, release, pubkey, coll):
    """A fresh disk of the cached userland with this run's files; returns its path."""
    tree = os.path.join(run, 'tree')
    sh(['cp', '-a', '--reflink=auto', root, tree])
    os.makedirs(os.path.join(tree, 'usr/lib/modules'), exist_ok=True)
    sh(['cp', '-a', modules_dir, os.path.join(tree, 'usr/lib/modules', release)])
    sh(['depmod', '-b', tree, release])
    write(tree + '/etc/hostname', 'debian13\n')
    write(tree + '/etc/hosts', '127.0.0.1 localhost\n127.0.1.1 debian13\n')
    write(tree + '/etc/fstab', '/dev/vda / ext4 rw,errors=remount-ro 0 0\n')
    write(tree + '/etc/systemd/network/10-eth0.network',
          '[Match]\nName=eth0\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n')
    sh(['systemctl', '--root=' + tree, 'enable', 'systemd-networkd.service'])
    # The SSH user of the controller: not root, sudo without a password (become), this run's key.
    write(tree + '/etc/passwd', 'lxcex:x:1000:1000:lxcex:/home/lxcex:/bin/bash\n', append=True)
    write(tree + '/etc/shadow', 'lxcex:*:20000:0:99999:7:::\n', 0o640, append=True)
    write(tree + '/etc/group', 'lxcex:x:1000:\n', append=True)
    write(tree + '/etc/gshadow', 'lxcex:!::\n', 0o640, append=True)
    os.makedirs(tree + '/home/lxcex/.ssh', 0o700)
    write(tree + '/home/lxcex/.ssh/authorized_keys', pubkey, 0o600, (1000, 1000))
    for d in ('/home/lxcex/.ssh', '/home/lxcex'):
        os.chown(tree + d, 1000, 1000)
    write(tree + '/etc/sudoers.d/lxcex', 'lxcex ALL=(ALL:ALL) NOPASSWD: ALL\n', 0o440)
    write(tree + '/etc/ssh/sshd_config.d/lxcex.conf', 'PasswordAuthentication no\nUseDNS no\n')
    # root's id ranges for its unprivileged containers (LXC 6.0 maps them with newuidmap, which checks these);
    # the test lab's ranges lie in the same region as on the controller
    write(tree + '/etc/subuid', 'root:100000:1000000000\n')
    write(tree + '/etc/subgid', 'root:100000:1000000000\n')
    if coll:  # the collection for the targets run inside, at the path the controller stages it
        inner = tree + '/opt/lxcex/ansible_collections/lxcex/share'
        os.makedirs(os.path.dirname(inner))
        sh(['cp', '-a', '-H', coll, inner])
    disk = os.path.join(run, 'disk.img')
    sh(['truncate', '-s', '12G', disk])
    sh(['mkfs.ext4', '-q', '-F', '-L', 'debian13', '-d', tree, disk])
    sh(['rm', '-rf', '--one-file-system', tree])
    return disk


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Guest(object):
    """The qemu guest and the ways to reach it."""

    def __init__(self, run, vmlinuz, initrd, disk, port, key, known_hosts, log):
        self.run, self.port, self.key, self.known_hosts, self.log = run, port, key, known_hosts, log
        self.cmd = ['qemu-system-x86_64', '-accel', 'tcg', '-cpu', 'max', '-smp', '2', '-m', '3072', '-nographic',
                    '-kernel', vmlinuz, '-initrd', initrd,
                    '-append', 'root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1',
                    '-drive', 'file=%s,if=virtio,format=raw' % disk,
                    '-netdev', 'user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22' % port, '-device', 'virtio-net-pci,netdev=n0']
        self.proc = None

    def start(self):
        self.logf = open(self.log, 'wb')
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.logf.close()

    def ssh_args(self):
        return ['ssh', '-p', str(self.port), '-i', self.key, '-o', 'UserKnownHostsFile=' + self.known_hosts,
                '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20',
                '-o', 'ServerAliveInterval=15', 'lxcex@127.0.0.1']

    def root(self, script, timeout=300, check=True):
        """Run a shell script as root in the guest (ssh as lxcex, sudo); returns (rc, output)."""
        cmd = self.ssh_args() + ['sudo', 'sh', '-c', shlex.quote(script)]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            if check:
                raise AssertionError('timed out after %d s: %s' % (timeout, script[:200]))
            return 124, ''
        out = p.stdout.decode('utf-8', 'replace')
        if check and p.returncode:
            raise AssertionError('rc=%d: %s\n%s' % (p.returncode, script[:300], out[-3000:]))
        return p.returncode, out

    def wait_ssh(self, timeout, not_boot_id=None):
        """Wait until sshd answers (and, after a reboot, from another boot); returns the boot id."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError('qemu ended (rc=%s)' % self.proc.returncode)
            rc, out = self.root('cat /proc/sys/kernel/random/boot_id', timeout=30, check=False)
            if rc == 0 and out.strip() and out.strip() != not_boot_id:
                return out.strip()
            time.sleep(3)
        raise AssertionError('sshd did not answer within %d s' % timeout)


def inventory(path, guest):
    host = {'ansible_host': '127.0.0.1', 'ansible_port': guest.port, 'ansible_user': 'lxcex',
            'ansible_ssh_private_key_file': guest.key,
            'ansible_ssh_common_args': '-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes' % guest.known_hosts,
            # the role's defaults: /var/lib/lxc, /mnt/share-thunks, /usr/local/bin/lxcex-share, /usr/bin/python3
            'lxcex_share_shares': [
                {'src': '/srv/common', 'container': 'ct-a', 'user': 'alice', 'dest': '/home/alice/common'},
                {'src': '/srv/common', 'container': 'ct-b', 'user': 'bob', 'dest': '/home/bob/common'},
                {'src': '/srv/docs', 'container': 'ct-b', 'user': 'bob', 'dest': '/home/bob/docs', 'readonly': True},
                {'src': '/var/lib/lxc/ct-a/rootfs/home/alice/share', 'container': 'ct-b', 'user': 'bob',
                 'dest': '/home/bob/from-alice'},
                {'src': '/srv/team', 'dest': '/home/team', 'group': 'devs',
                 'members': [{'container': 'ct-a', 'user': 'alice'}, {'container': 'ct-b', 'user': 'bob'}]}]}
    with open(path, 'w') as f:
        json.dump({'lxc_hosts': {'hosts': {'debian13': host}}}, f, indent=1)


def playbook(coll, inv, args=()):
    """ansible-playbook lxcex.share.site against the guest; (rc, recap counts, output)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.dirname(os.path.dirname(os.path.dirname(coll))),
               ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='False', ANSIBLE_PIPELINING='True',
               ANSIBLE_PYTHON_INTERPRETER='auto_silent')
    proc = subprocess.run(['ansible-playbook', '-i', inv, 'lxcex.share.site'] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env, check=False, timeout=1200)
    out = proc.stdout.decode('utf-8', 'replace')
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0] == 'debian13' and parts[1] == ':':
            counts = dict((k, int(v)) for k, v in (p.split('=') for p in parts[2:]))
    return proc.returncode, counts, out


def expect(cond, what, *detail):
    if not cond:
        raise AssertionError(what + ''.join('\n  %s' % (d,) for d in detail))


SUMS = ('cd /srv && find common docs team /var/lib/lxc/ct-a/rootfs/home/alice/share -type f -print0 | sort -z | '
        'xargs -0 sha256sum')


def as_user(guest, ct, uid, script, check=False, gid=None):
    """Run script in ct as uid with group gid (default: uid's own; lxc-attach sets no supplementary groups)."""
    return guest.root('lxc-attach -n %s -u %d -g %d --clear-env -- sh -c %s'
                      % (ct, uid, uid if gid is None else gid, shlex.quote(script)), check=check)


def owned(uid, out):
    """ls -ln shows the file as uid's, with uid's own group."""
    return re.search(r'\s%d\s+%d\s' % (uid, uid), out)


def users_see(guest, tag):
    """What alice (ct-a) and bob (ct-b) see and may do in every share."""
    rc, out = as_user(guest, 'ct-b', 1001, 'cat /home/bob/common/common.txt && ls -ln /home/bob/common/common.txt')
    expect(rc == 0 and 'common file' in out and owned(1001, out), 'bob reads the common file as his own', out)
    rc, out = as_user(guest, 'ct-b', 1001, 'echo %s > /home/bob/common/bob-%s.txt' % (tag, tag))
    expect(rc == 0, 'bob writes in the common share', out)
    rc, out = as_user(guest, 'ct-a', 1000, 'ls -ln /home/alice/common/bob-%s.txt && cat /home/alice/common/bob-%s.txt'
                      % (tag, tag))
    expect(rc == 0 and owned(1000, out) and tag in out, 'alice sees bob\'s file as hers', out)
    rc, out = as_user(guest, 'ct-b', 1001, 'cat /home/bob/docs/readme.txt && touch /home/bob/docs/x')
    expect(rc != 0 and 'read me' in out and 'Read-only' in out, 'bob reads docs and cannot write there', out)
    rc, out = as_user(guest, 'ct-b', 1001, 'cat /home/bob/from-alice/alice.txt && ls -ln /home/bob/from-alice/alice.txt')
    expect(rc == 0 and 'alice wrote this' in out and owned(1001, out), 'bob reads alice\'s private share as his',
           out)
    rc, out = as_user(guest, 'ct-a', 1000, 'echo a > /home/team/alice-%s.txt && ls -ln /home/team/' % tag, gid=3000)
    expect(rc == 0 and re.search(r'\s1000\s+3000\s', out), 'alice writes in the team share; the team group is '
           'devs (3000)', out)
    rc, out = as_user(guest, 'ct-b', 1001, 'cat /home/team/alice-%s.txt && echo b > /home/team/bob-%s.txt && ls -l '
                      '/home/team/' % (tag, tag), gid=3000)
    expect(rc == 0 and 'devs' in out and 'bob' in out, 'bob reads alice\'s team file and writes his own', out)
    return 'alice and bob read, write, and see owners as expected in 4 kinds of share'


def live_shares(guest):
    """{container: [dests of idmapped mounts in its init's mount table]}."""
    out = {}
    for ct in ('ct-a', 'ct-b'):
        rc, text = guest.root('cat /proc/$(lxc-info -n %s -p -H)/mountinfo' % ct, check=False)
        out[ct] = sorted(l.split()[4] for l in text.splitlines() if 'idmapped' in l.split(' - ')[0])
    return out


WANT = {'ct-a': ['/home/alice/common', '/home/team'],
        'ct-b': ['/home/bob/common', '/home/bob/docs', '/home/bob/from-alice', '/home/team']}


def run(coll, timeout=2400, targets=()):
    """Boot the guest and run every step; (ok, kernel release, [(step, ok, seconds, detail)])."""
    vmlinuz, modules_dir, release = kernels.kernel(SUITE)
    root = rootfs()
    run_dir = tempfile.mkdtemp(prefix='d13-', dir=kernels.CACHE)
    steps = []
    t_all = time.monotonic()
    guest = None
    try:
        key = os.path.join(run_dir, 'key')
        sh(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'lxcex-controller', '-f', key])
        with open(key + '.pub') as f:
            pubkey = f.read()
        with open(os.path.join(root, 'etc/ssh/ssh_host_ed25519_key.pub')) as f:
            hostkey = ' '.join(f.read().split()[:2])
        port = free_port()
        known_hosts = os.path.join(run_dir, 'known_hosts')
        with open(known_hosts, 'w') as f:
            f.write('[127.0.0.1]:%d %s\n' % (port, hostkey))
        t0 = time.monotonic()
        disk = image(run_dir, root, modules_dir, release, pubkey, coll if targets else None)
        initrd = kernels.initramfs(modules_dir, run_dir, None, init=INIT)
        kernels.say('  %s: disk of its own userland made in %.0f s' % (NAME, time.monotonic() - t0))
        guest = Guest(run_dir, vmlinuz, initrd, disk, port, key, known_hosts, os.path.join(run_dir, 'console.log'))
        inv = os.path.join(run_dir, 'inventory.yml')
        inventory(inv, guest)
        deadline = time.monotonic() + timeout
        state = {}

        def boot():
            guest.start()
            state['boot_id'] = guest.wait_ssh(min(600, deadline - time.monotonic()))
            rc, out = guest.root('. /etc/os-release; echo "$PRETTY_NAME"; uname -r; lxc-start --version; '
                                 'python3 --version; systemctl is-system-running --wait; true', timeout=300)
            state['versions'] = ' / '.join(l.strip() for l in out.splitlines() if l.strip())
            return state['versions']

        def containers():
            guest.root(SHARES_SETUP, timeout=600)
            rc, out = guest.root('lxc-ls -f', timeout=60)
            expect(out.count('RUNNING') == 2, 'two containers running', out)
            return 'ct-a and ct-b running, unprivileged, lxc.start.auto = 1'

        def role():
            rc, counts, out = playbook(coll, inv)
            expect(rc == 0 and counts.get('changed', 0) > 0 and not counts.get('failed'), 'the role converges (rc=%d)'
                   % rc, out[-4000:])
            live = live_shares(guest)
            expect(live == WANT, 'every share live', live)
            return 'rc=0, %s' % json.dumps(counts, sort_keys=True)

        def again():
            rc, counts, out = playbook(coll, inv)
            expect(rc == 0 and counts.get('changed', 1) == 0, 'the second run changes nothing', out[-4000:])
            return 'changed=0, ok=%d' % counts.get('ok', 0)

        def users():
            return users_see(guest, 'run')

        def restart():
            guest.root('lxc-stop -n ct-b -t 30 && lxc-start -n ct-b && lxc-wait -n ct-b -s RUNNING -t 60')
            live = live_shares(guest)
            expect(live == WANT, 'the shares of ct-b are back after its restart', live)
            users_see(guest, 'restart')
            return 'ct-b stopped and started; its 4 shares back through the start hook'

        def reboot():
            sums = guest.root(SUMS)[1]
            guest.root('systemctl reboot', check=False, timeout=60)
            new = guest.wait_ssh(min(900, deadline - time.monotonic()), not_boot_id=state['boot_id'])
            expect(new != state['boot_id'], 'another boot')
            end = time.monotonic() + 300
            while time.monotonic() < end:
                rc, out = guest.root('lxc-ls -f', check=False)
                if out.count('RUNNING') == 2:
                    break
                time.sleep(5)
            expect(out.count('RUNNING') == 2, 'both containers autostarted by lxc.service', out)
            live = live_shares(guest)
            expect(live == WANT, 'every share live after the reboot', live)
            after = guest.root(SUMS)[1]
            expect(after == sums, 'every source file as it was', sums, after)
            users_see(guest, 'reboot')
            rc, log = guest.root('tail -n 20 /var/log/lxcex-share.log', check=False)
            return 'rebooted (boot id changed); lxc.service started both; %d shares live; checksums equal' % sum(
                len(v) for v in live.values())

        def apparmor():
            rc, out = guest.root('cat /sys/module/apparmor/parameters/enabled; for c in ct-a ct-b; do '
                                 'cat /proc/$(lxc-info -n $c -p -H)/attr/current; echo; done')
            lines = [l for l in out.splitlines() if l.strip()]
            expect(lines and lines[0] == 'Y', 'AppArmor enabled', out)
            expect(all('lxc-' in l and '(enforce)' in l for l in lines[1:3]), 'both containers confined by LXC\'s '
                   'generated profile in enforce mode', out)
            return 'enabled; %s' % lines[1]

        def target(name):
            def one():
                rc, out = guest.root('cd /opt/lxcex/ansible_collections/lxcex/share && ANSIBLE_COLLECTIONS_PATH=/opt/lxcex '
                                     'ANSIBLE_TEST_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_PIPELINING=True '
                                     'LXCEX_LIVE_CHANGES=2 LXCEX_LIVE_SETUID_CHANGES=1 '
                                     'bash tests/integration/targets/%s/runme.sh 2>&1' % name,
                                     timeout=max(60, deadline - time.monotonic()), check=False)
                for line in out.splitlines():
                    if line.startswith(('FAILED', 'passed: ', 'SKIPPED', 'Traceback')):
                        kernels.say('  %s %s | %s' % (NAME, name, line[:300]))
                last = [l for l in out.splitlines() if kernels.COUNTS.match(l)]
                # the counts first, so that they are tallied whatever the outcome
                expect(rc == 0, '%s (%s: rc=%d)' % (last[-1] if last else 'no counts', name, rc), out[-3000:])
                return last[-1] if last else 'rc=0'
            return one

        plan = [('boot', boot), ('containers', containers), ('role', role), ('again', again), ('users', users),
                ('restart', restart), ('reboot', reboot), ('apparmor', apparmor)]
        plan += [(t, target(t)) for t in targets]
        failed = False
        for name, func in plan:
            t0 = time.monotonic()
            if failed or time.monotonic() > deadline:
                steps.append((name, None, 0, 'not run: %s' % ('an earlier step failed' if failed else 'out of time')))
                kernels.say('%s %s: NOT RUN (%s)' % (NAME, name, steps[-1][3][9:]))
                continue
            try:
                detail = func()
                steps.append((name, True, time.monotonic() - t0, detail))
            except (AssertionError, subprocess.SubprocessError, OSError) as e:
                failed = name in ('boot', 'containers', 'role')  # the rest needs them
                steps.append((name, False, time.monotonic() - t0, str(e)))
            ok, secs, detail = steps[-1][1:]
            kernels.say('%s %s: %s (%.0f s) %s' % (NAME, name, 'passed' if ok else 'FAILED', secs,
                                                   detail if ok else '\n  ' + detail.replace('\n', '\n  ')))
        ok = all(s[1] for s in steps)
        kernels.say('=== %s userland: %s in %.0f s' % (SUITE, 'passed' if ok else 'FAILED', time.monotonic() - t_all))
        return ok, release, steps
    finally:
        if guest:
            guest.stop()
            kept = os.path.join(kernels.CACHE, 'console-%s-userland.log' % SUITE)
            shutil.copy(guest.log, kept)
            if not all(s[1] for s in steps):
                with open(guest.log, 'rb') as f:
                    kernels.say('--- last console output of the %s guest (all of it: %s):\n%s' % (
                        NAME, kept, f.read()[-4000:].decode('utf-8', 'replace')))
        sh(['rm', '-rf', '--one-file-system', run_dir])


def results(steps):
    """{step: (rc or None when not run, seconds, (passed, failed, skipped) of a target or None)}."""
    out = {}
    for name, good, secs, detail in steps:
        m = kernels.COUNTS.match(detail or '')
        out[name] = (0 if good else (None if good is None else 1), secs,
                     tuple(int(x or 0) for x in m.groups()) if m else None)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    p.add_argument('collection')
    p.add_argument('--timeout', type=int, default=2400)
    p.add_argument('--targets', default='')
    args = p.parse_args()
    os.makedirs(kernels.CACHE, exist_ok=True)
    try:
        ok, release, steps = run(os.path.abspath(args.collection), args.timeout,
                                 [t for t in args.targets.split(',') if t])
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        out = getattr(e, 'stdout', b'') or b''
        print('=== %s: cannot run: %s %s' % (NAME, e, out.decode('utf-8', 'replace')[-2000:]))
        print('0 passed, 1 failed, 0 skipped')
        return 1
    print('%d passed, %d failed, %d skipped' % kernels.tally([s[0] for s in steps], results(steps)))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
