# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet of LXC hosts on this one machine, reached over real SSH.

Each host is a mount namespace of its own in which directories of the fleet's
work directory are bind-mounted over /etc (a copy of this machine's, with an
operator account, its sudoers entry and an sshd config), /run, /var/lib/lxc,
/usr/local, /var/log, /mnt, /srv, /home and /root.  So every host has its own
lxcpath, thunks directory, /run/lxcex-share, hook program, host settings and
log at the role's default paths, and nothing of it is visible on this machine.
A keeper process holds the namespace; the host's own sshd (unpacked from
Debian's openssh-server by scripts/bootstrap.sh, never installed) listens on a
loopback port inside it.  Ansible enters a host as the non-root operator with
a key and becomes root with sudo, like on a real fleet.  Containers are
created and started inside the host's namespace, so their hooks run there.

The keeper and sshd die with the process that made them (PR_SET_PDEATHSIG);
``cleanup`` stops and destroys the containers, stops the hosts and removes
the work directory, refusing to when a mount is left below it.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import time

from harness import PY, SETTINGS, detach_below_cmd, expect, log, sh

USER = 'lxcexops'
# Directory of the work directory -> path it covers inside a host.
OVERLAYS = (('etc', '/etc'), ('run', '/run'), ('lxc', '/var/lib/lxc'), ('usrlocal', '/usr/local'),
            ('log', '/var/log'), ('mnt', '/mnt'), ('srv', '/srv'), ('home', '/home'), ('root', '/root'))
HERE = os.path.dirname(os.path.abspath(__file__))


def openssh_dir():
    """Where sshd and sftp-server are: the harness settings' (scripts/test.sh), the venv's, or /."""
    candidates = [SETTINGS.get('openssh', '')]
    candidates += [os.path.join(os.path.dirname(os.path.dirname(PY)), 'openssh'), '/']
    for c in candidates:
        if c and os.access(os.path.join(c, 'usr/sbin/sshd'), os.X_OK) \
                and os.access(os.path.join(c, 'usr/lib/openssh/sftp-server'), os.X_OK):
            return c
    raise AssertionError('no sshd: run scripts/bootstrap.sh, which unpacks openssh-server into .venv/openssh '
                         '(looked in %s)' % [c for c in candidates if c])


def free_port():
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_uid(passwd_text, start=46000):
    used = set()
    for line in passwd_text.splitlines():
        parts = line.split(':')
        if len(parts) > 3 and parts[2].isdigit():
            used.add(int(parts[2]))
        if len(parts) > 3 and parts[3].isdigit():
            used.add(int(parts[3]))
    uid = start
    while uid in used:
        uid += 1
    return uid


class Host(object):
    def __init__(self, fleet, name, index):
        self.fleet = fleet
        self.name = name
        self.index = index
        self.dir = os.path.join(fleet.work, name)
        self.port = None
        self.keeper = None
        self.sshd = None
        self.containers = {}

    def path(self, inside):
        """The path on this machine of a path inside the host (below one of its overlays)."""
        for sub, point in OVERLAYS:
            if inside == point or inside.startswith(point + '/'):
                return self.dir + '/' + sub + inside[len(point):]
        raise ValueError('%s is not below a directory of the host' % inside)

    def run(self, cmd, check=True, timeout=300):
        """Run a shell command as root inside the host's mount namespace."""
        return sh('nsenter -t %d -m -- sh -c %s' % (self.keeper.pid, shlex.quote(cmd)), check=check,
                  timeout=timeout)

    def attach(self, ct, cmd, uid=None, gid=100, check=False):
        who = '-u %d -g %d ' % (uid, gid) if uid is not None else ''
        return self.run('lxc-attach --clear-env %s-n %s -- sh -c %s' % (who, ct, shlex.quote(cmd)), check=check)

    def mountinfo(self):
        """The mount table of the host's namespace."""
        with open('/proc/%d/mountinfo' % self.keeper.pid) as f:
            return f.read().splitlines()

    # -- life -------------------------------------------------------------------

    def setup(self, ssh_dir, pubkey):
        os.makedirs(self.dir)
        for sub, dummy in OVERLAYS:
            if sub != 'etc':
                os.mkdir(os.path.join(self.dir, sub), 0o700 if sub == 'root' else 0o755)
        # The host's /etc: this machine's, plus the operator, its sudo rule and the sshd config.
        shutil.copytree('/etc', self.dir + '/etc', symlinks=True)
        etc = self.dir + '/etc'
        for name in ('lxcex-share.conf',):
            if os.path.lexists(os.path.join(etc, name)):
                os.unlink(os.path.join(etc, name))
        with open(etc + '/passwd') as f:
            uid = free_uid(f.read())
        self.uid = uid
        with open(etc + '/passwd', 'a') as f:
            f.write('%s:x:%d:%d:fleet operator:/home/%s:/bin/sh\n' % (USER, uid, uid, USER))
        with open(etc + '/passwd') as f:
            text = f.read()
        if not any(line.startswith('sshd:') for line in text.splitlines()):
            # sshd's privilege separation user, as openssh-server's postinst would add it
            with open(etc + '/passwd', 'a') as f:
                f.write('sshd:x:%d:65534::/run/sshd:/usr/sbin/nologin\n' % free_uid(text, uid + 1))
        with open(etc + '/group', 'a') as f:
            f.write('%s:x:%d:\n' % (USER, uid))
        with open(etc + '/shadow', 'a') as f:
            f.write('%s:*:19000:0:99999:7:::\n' % USER)
        os.makedirs(etc + '/sudoers.d', exist_ok=True)
        with open(etc + '/sudoers.d/lxcex-fleet', 'w') as f:
            f.write('%s ALL=(ALL:ALL) NOPASSWD: ALL\n' % USER)
        os.chmod(etc + '/sudoers.d/lxcex-fleet', 0o440)
        os.makedirs(etc + '/ssh', exist_ok=True)
        sh('ssh-keygen -q -t ed25519 -N "" -C %s -f %s/ssh/lxcex_fleet_host_key' % (self.name, etc))
        self.port = free_port()
        with open(etc + '/ssh/lxcex_fleet_sshd_config', 'w') as f:
            f.write('\n'.join([
                'Port %d' % self.port, 'ListenAddress 127.0.0.1', 'HostKey /etc/ssh/lxcex_fleet_host_key',
                'PidFile /run/lxcex-fleet-sshd.pid', 'UsePAM no', 'PasswordAuthentication no',
                'KbdInteractiveAuthentication no', 'PermitRootLogin no', 'PubkeyAuthentication yes',
                'AuthorizedKeysFile .ssh/authorized_keys', 'AllowUsers %s' % USER, 'StrictModes yes',
                'Subsystem sftp %s/usr/lib/openssh/sftp-server' % ssh_dir, 'MaxStartups 100', 'MaxSessions 100',
                'LogLevel VERBOSE', '']))
        home = self.dir + '/home/' + USER
        os.makedirs(home + '/.ssh')
        with open(home + '/.ssh/authorized_keys', 'w') as f:
            f.write(pubkey)
        os.chmod(home + '/.ssh', 0o700)
        os.chmod(home + '/.ssh/authorized_keys', 0o600)
        for p in (home, home + '/.ssh', home + '/.ssh/authorized_keys'):
            os.chown(p, uid, uid)
        os.mkdir(self.dir + '/run/sshd', 0o755)
        # The namespace, held by a keeper that dies with us; it starts from a clean view of its own below
        # each overlay (none of this machine's mounts below /mnt, /run, ... is in its table).
        binds = detach_below_cmd([point for dummy, point in OVERLAYS]) + ' && ' + ' && '.join(
            'mount --bind %s %s' % (shlex.quote(os.path.join(self.dir, sub)), point) for sub, point in OVERLAYS)
        self.keeper = subprocess.Popen(
            ['setpriv', '--pdeathsig', 'KILL', 'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
             '%s && echo ready && exec sleep 2147483647' % binds],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = self.keeper.stdout.readline().decode('utf-8', 'replace')
        expect(line.strip() == 'ready', 'host %s: its namespace could not be made: %s%s'
               % (self.name, line, self.keeper.stdout.read(2000) if self.keeper.poll() is not None else ''))
        self.start_sshd(ssh_dir)
        with open(self.dir + '/etc/ssh/lxcex_fleet_host_key.pub') as f:
            key = f.read().split()
        return '[127.0.0.1]:%d %s %s\n' % (self.port, key[0], key[1])

    def start_sshd(self, ssh_dir=None):
        ssh_dir = ssh_dir or self.fleet.ssh_dir
        logf = open(self.dir + '-sshd.log', 'ab')
        self.sshd = subprocess.Popen(
            ['setpriv', '--pdeathsig', 'KILL', 'nsenter', '-t', str(self.keeper.pid), '-m', '--',
             ssh_dir + '/usr/sbin/sshd', '-D', '-e', '-f', '/etc/ssh/lxcex_fleet_sshd_config'],
            stdout=logf, stderr=logf)
        logf.close()
        for dummy in range(100):
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return
            except OSError:
                expect(self.sshd.poll() is None, 'host %s: sshd stopped' % self.name, self.sshd_log()[-3000:])
                time.sleep(0.1)
        raise AssertionError('host %s: sshd does not listen on port %d' % (self.name, self.port))

    def stop_sshd(self):
        """Stop the host's sshd and every session it serves (the controller's multiplexed connection included)."""
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.kill()
            self.sshd.wait()
        self.sshd = None
        if self.keeper is None or self.keeper.poll() is not None:
            return
        ns = os.readlink('/proc/%d/ns/mnt' % self.keeper.pid)
        binary = os.path.realpath(self.fleet.ssh_dir + '/usr/sbin/sshd')
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                if os.readlink('/proc/%s/ns/mnt' % entry) == ns and os.readlink('/proc/%s/exe' % entry) == binary:
                    os.kill(int(entry), 9)
            except OSError:
                pass

    def sshd_log(self):
        try:
            with open(self.dir + '-sshd.log') as f:
                return f.read()
        except IOError:
            return ''

    def create(self, key, users=(('alice', 1000), ('bob', 1001)), start=True):
        """A busybox container of this host (its name and id range unique on this machine), with users."""
        base = self.fleet.base + self.index * 1048576 + len(self.containers) * 65536
        name = '%s%s%s' % (self.fleet.tag, self.name, key)
        conf = '%s/%s.conf' % (self.fleet.work, name)
        with open(conf, 'w') as f:
            f.write('lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n'
                    'lxc.idmap = u 0 %d 65536\nlxc.idmap = g 0 %d 65536\n' % (base, base))
        self.run('lxc-create -n %s -t busybox -f %s > %s.create.log 2>&1' % (name, conf, conf))
        root = '%s/%s/rootfs' % (self.dir + '/lxc', name)
        with open(root + '/etc/passwd', 'a') as f:
            for user, uid in users:
                f.write('%s:x:%d:100:%s:/home/%s:/bin/sh\n' % (user, uid, user, user))
        with open(root + '/etc/group', 'a') as f:
            f.write('users:x:100:\n')
        for user, uid in users:
            os.makedirs('%s/home/%s' % (root, user))
            os.chown('%s/home/%s' % (root, user), base + uid, base + 100)
        os.chown(root + '/etc/passwd', base, base)
        os.chown(root + '/etc/group', base, base)
        self.containers[key] = {'name': name, 'base': base}
        if start:
            self.start(name)
        return name

    def start(self, name):
        self.run('lxc-start -n %s && lxc-wait -n %s -s RUNNING -t 30' % (name, name), timeout=120)

    def stop(self, name):
        self.run('lxc-stop -n %s -k' % name, check=False, timeout=120)
        # post-stop runs in the monitor, which may outlive lxc-stop a moment
        for dummy in range(100):
            rc, out = self.run('lxc-info -n %s -s -H' % name, check=False)
            if 'STOPPED' in out and not self.run('pgrep -f "^\\[lxc monitor\\] /var/lib/lxc %s$"' % name,
                                                 check=False)[1].strip():
                return
            time.sleep(0.1)

    def teardown(self):
        """Stop and destroy the containers, then sshd and the keeper (the namespace and its mounts go with them)."""
        if self.keeper is not None and self.keeper.poll() is None:
            for ct in self.containers.values():
                self.run('timeout 60 lxc-stop -n %s -k; lxc-destroy -n %s -f' % (ct['name'], ct['name']),
                         check=False, timeout=180)
        self.stop_sshd()
        if self.keeper is not None and self.keeper.poll() is None:
            self.keeper.kill()
            self.keeper.wait()


class Fleet(object):
    """Hosts h1..hN on this machine, each its own mount namespace and sshd; see the module docstring."""

    def __init__(self, prefix, count):
        self.t = random.randint(100000, 999999)
        self.tag = 'f%d' % self.t
        # Host and container id ranges of their own, inside root's range in /etc/subuid (scripts/bootstrap.sh).
        self.base = 720000000 + (self.t % 60) * 4194304
        self.work = '/var/tmp/%s-%d' % (prefix, self.t)
        self.hosts = [Host(self, 'h%d' % (i + 1), i) for i in range(count)]
        self.ssh_dir = None
        self.collections = os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(':')[0] or os.path.abspath(
            os.path.join(HERE, '..', '..', '..', '..', '..', '..'))

    def host(self, name):
        return [h for h in self.hosts if h.name == name][0]

    def setup(self):
        self.ssh_dir = openssh_dir()
        os.makedirs(self.work)
        os.chmod(self.work, 0o755)  # unprivileged container roots must reach their rootfs
        os.makedirs(self.work + '/cp', 0o700)
        sh('ssh-keygen -q -t ed25519 -N "" -C lxcex-fleet -f %s/id_ed25519' % self.work)
        with open(self.work + '/id_ed25519.pub') as f:
            pub = f.read()
        known = [h.setup(self.ssh_dir, pub) for h in self.hosts]
        with open(self.work + '/known_hosts', 'w') as f:
            f.write(''.join(known))
        os.makedirs(self.work + '/inventory/group_vars')
        os.makedirs(self.work + '/inventory/host_vars')
        self.write_inventory()

    def write_inventory(self, hosts=None):
        hosts = hosts or self.hosts
        inv = {'all': {'children': {'lxc_hosts': {'hosts': dict(
            (h.name, {'ansible_host': '127.0.0.1', 'ansible_port': h.port}) for h in hosts)}}, 'vars': {
            'ansible_user': USER, 'ansible_ssh_private_key_file': self.work + '/id_ed25519',
            'ansible_ssh_common_args': '-o UserKnownHostsFile=%s/known_hosts -o StrictHostKeyChecking=yes '
                                       '-o ControlPath=%s/cp/%%C' % (self.work, self.work)}}}
        with open(self.work + '/inventory/hosts.yml', 'w') as f:
            json.dump(inv, f, indent=1)

    def vars_file(self, kind, name, data):
        with open('%s/inventory/%s/%s.yml' % (self.work, kind, name), 'w') as f:
            json.dump(data, f, indent=1)

    def playbook(self, playbook='lxcex.share.site', args=(), env=None, timeout=900, quiet=False):
        """ansible-playbook against the fleet; returns (rc, {host: counts}, output)."""
        e = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=self.collections, ANSIBLE_NOCOLOR='1',
                 ANSIBLE_HOST_KEY_CHECKING='True', ANSIBLE_RETRY_FILES_ENABLED='False')
        # The hosts' Python is discovered, as on a real fleet (ansible-test sets a placeholder interpreter).
        e.pop('ANSIBLE_PYTHON_INTERPRETER', None)
        e.update(env or {})
        cmd = ['ansible-playbook', '-i', self.work + '/inventory', playbook] + list(args)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=e, check=False,
                              timeout=timeout)
        out = proc.stdout.decode('utf-8', 'replace')
        counts = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[1] == ':' and '=' in parts[2]:
                counts[parts[0]] = dict((k, int(v)) for k, v in (p.split('=') for p in parts[2:]))
        if not quiet:
            log('  %s %s -> rc=%d in %.1f s; %s' % (playbook, ' '.join(args), proc.returncode, time.monotonic() - t0,
                                                    json.dumps(counts, sort_keys=True)))
        return proc.returncode, counts, out

    def cleanup(self):
        for h in self.hosts:
            try:
                h.teardown()
            except Exception as e:  # keep tearing down the other hosts
                log('cleanup of %s: %s' % (h.name, e))
        # Nothing of a host is mounted on this machine: its mounts were in its namespace.
        with open('/proc/self/mountinfo') as f:
            left = [l for l in f if l.split()[4].startswith(self.work + '/')]
        if left:
            log('cleanup: mounts left below %s, not removing it: %s' % (self.work, left))
            return False
        if os.path.isdir(self.work):
            sh('rm -rf --one-file-system %s' % shlex.quote(self.work), check=False)
        return not os.path.exists(self.work)


if __name__ == '__main__':
    # By hand: python fleet.py N  -- make N hosts, print how to reach them, wait for Enter, remove them.
    fleet = Fleet('lxcex-fleet-try', int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    try:
        fleet.setup()
        print('inventory: %s/inventory  (python %s)' % (fleet.work, PY))
        sys.stdin.readline()
    finally:
        fleet.cleanup()
