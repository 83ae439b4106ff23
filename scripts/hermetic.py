# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host that already uses lxcex.share with its defaults, around the test suite.

    python scripts/hermetic.py setup STATE     # before the tests
    python scripts/hermetic.py verify STATE    # after them: is everything as it was?
    python scripts/hermetic.py teardown STATE  # remove what setup made (nothing it found)

setup: when this host does not use lxcex.share with its defaults yet, it makes it
one that does, the way a user would: a busybox container in the default lxcpath
(/var/lib/lxc) with a share applied by the role with every default, so that
/mnt/share-thunks is mounted with a live thunk in it, the hook program is at
/usr/local/bin/lxcex-share, its code in /usr/local/lib/lxcex-share,
/etc/lxcex-share.conf and /var/log/lxcex-share.log exist, and the container's
config has hook blocks.  A host that already has any of those is used as it is and
nothing of it is ever removed.  Then it writes a snapshot of all of it to STATE.

verify: compares the host with the snapshot (mounts below the thunks directory,
the installed files, the configs and sharetabs of the default lxcpath, the records
under /run/lxcex-share, what the resident container's user sees) and prints each
difference; exit 1 when there is one.

teardown: the role with lxcex_share_state=absent, the container and the source,
only when setup made them.
"""

from __future__ import absolute_import, division, print_function

import hashlib
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile

THUNKS = '/mnt/share-thunks'
PROGRAM = '/usr/local/bin/lxcex-share'
CODE_DIR = '/usr/local/lib/lxcex-share'
HOST_CONFIG = '/etc/lxcex-share.conf'
LOG = '/var/log/lxcex-share.log'
LXCPATH = '/var/lib/lxc'
RECORDS = '/run/lxcex-share'
DEFAULTS = (THUNKS, PROGRAM, CODE_DIR, HOST_CONFIG)
HERE = os.path.dirname(os.path.abspath(__file__))


def sh(cmd, check=True):
    proc = subprocess.run(['bash', '-c', cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    out = proc.stdout.decode('utf-8', 'replace')
    if check and proc.returncode != 0:
        raise SystemExit('hermetic: command failed (rc=%d): %s\n%s' % (proc.returncode, cmd, out[-3000:]))
    return proc.returncode, out


def digest(path):
    try:
        with open(path, 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest()
    except IOError as e:
        return 'unreadable: %s' % e.strerror


def tree(path):
    """{relative path: sha256 or 'dir' or 'link -> target'} of a directory that is not ours."""
    out = {}
    if not os.path.lexists(path):
        return None
    if not os.path.isdir(path) or os.path.islink(path):
        return {'.': digest(path)}
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                out[rel] = 'link -> ' + os.readlink(full)
            elif os.path.isdir(full):
                out[rel] = 'dir'
            else:
                out[rel] = digest(full)
    return out


def mounts_below(prefix):
    """The mounts at or below prefix: (mount point, root, fstype, source, options), in table order."""
    out = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            if point == prefix or point.startswith(prefix + '/'):
                dash = fields.index('-')
                out.append(' '.join([point, fields[3], fields[dash + 1], fields[dash + 2], fields[5]]))
    return out


def containers():
    """{name: state} of the containers of the default lxcpath."""
    rc, out = sh('lxc-ls -P %s -f -F NAME,STATE 2>/dev/null | tail -n +2' % LXCPATH, check=False)
    return dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)


def snapshot(state):
    snap = {'mounts': mounts_below(THUNKS), 'program': tree(PROGRAM), 'code': tree(CODE_DIR),
            'host_config': tree(HOST_CONFIG), 'log': tree(LOG), 'records': tree(RECORDS), 'containers': containers(), 'lxc': {}}
    if os.path.isdir(LXCPATH):
        for name in sorted(os.listdir(LXCPATH)):
            for f in ('config', 'sharetab'):
                path = os.path.join(LXCPATH, name, f)
                if os.path.isfile(path):
                    snap['lxc']['%s/%s' % (name, f)] = digest(path)
    if state.get('container'):
        rc, out = sh('lxc-attach -P %s -n %s --clear-env -u 1000 -g 100 -- cat /home/resident/share/resident.txt'
                     % (LXCPATH, state['container']), check=False)
        snap['resident sees'] = '%d %s' % (rc, out.strip())
    return snap


def role(state, present):
    """The role with every default but the shares, on this host (as a user runs it)."""
    work = state['work']
    shares = [{'src': work + '/src', 'container': state['container'], 'user': 'resident',
               'dest': '/home/resident/share'}] if present else []
    with open(work + '/vars.json', 'w') as f:
        json.dump({'lxcex_share_shares': shares, 'lxcex_share_state': 'present' if present else 'absent'}, f)
    with open(work + '/play.yml', 'w') as f:
        f.write('- hosts: localhost\n  gather_facts: false\n  roles: [lxcex.share.lxcex_share]\n')
    sh('ansible-playbook -i localhost, -c local -e ansible_python_interpreter=%s -e @%s/vars.json %s/play.yml'
       % (shlex.quote(sys.executable), work, work))


def setup(path):
    found = [p for p in DEFAULTS if os.path.lexists(p)]
    state = {'made': not found, 'found': found}
    if found:
        print('hermetic: this host already uses lxcex.share (%s): the tests run next to it as it is'
              % ', '.join(found))
    else:
        t = random.randint(1000, 9999)
        name = 'lxcex-resident-%d' % t
        base = 900000000 + (t % 1000) * 65536
        work = tempfile.mkdtemp(prefix='lxcex-resident-', dir='/var/tmp')
        os.chmod(work, 0o755)
        state.update(container=name, work=work, base=base)
        with open(path, 'w') as f:
            json.dump(state, f)  # teardown knows what to remove even when the rest of setup fails
        conf = work + '/ct.conf'
        with open(conf, 'w') as f:
            f.write('lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n'
                    'lxc.idmap = u 0 %d 65536\nlxc.idmap = g 0 %d 65536\n' % (base, base))
        sh('mkdir -p %s && lxc-create -P %s -n %s -t busybox -f %s >/dev/null' % (LXCPATH, LXCPATH, name, conf))
        root = '%s/%s/rootfs' % (LXCPATH, name)
        sh('''set -e
            echo "resident:x:1000:100:resident:/home/resident:/bin/sh" >> %(r)s/etc/passwd
            echo "users:x:100:" >> %(r)s/etc/group
            mkdir -p %(r)s/home/resident && chown %(u)d:%(g)d %(r)s/home/resident
            mkdir %(w)s/src && echo "a file of the resident share" > %(w)s/src/resident.txt
            chown -R 7000:7000 %(w)s/src
            lxc-start -P %(p)s -n %(n)s && lxc-wait -P %(p)s -n %(n)s -s RUNNING -t 20
        ''' % dict(r=root, u=base + 1000, g=base + 100, w=work, p=LXCPATH, n=name))
        role(state, True)
        print('hermetic: made this host one that uses lxcex.share with its defaults: container %s in %s, '
              'a live share in %s, %s, %s' % (name, LXCPATH, THUNKS, PROGRAM, HOST_CONFIG))
    state['snapshot'] = snapshot(state)
    if state.get('container') and not state['snapshot']['resident sees'].startswith('0 a file of the resident'):
        raise SystemExit('hermetic: the resident share is not live: %s' % state['snapshot']['resident sees'])
    if not state['snapshot']['mounts']:
        print('hermetic: note: nothing is mounted at %s on this host' % THUNKS)
    with open(path, 'w') as f:
        json.dump(state, f, indent=1)
    return 0


def verify(path):
    with open(path) as f:
        state = json.load(f)
    before, after = state['snapshot'], snapshot(state)
    bad = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            bad.append('%s changed:\n  before: %s\n  after:  %s' % (key, before.get(key), after.get(key)))
    for line in bad:
        print('hermetic: ' + line)
    print('hermetic: %s (%d mounts below %s, %d containers in %s, program %s, host config %s)'
          % ('the host is exactly as the tests found it' if not bad else 'THE TESTS CHANGED THIS HOST',
             len(before['mounts']), THUNKS, len(before['containers']), LXCPATH,
             'present' if before['program'] else 'absent', 'present' if before['host_config'] else 'absent'))
    return 1 if bad else 0


def teardown(path):
    try:
        with open(path) as f:
            state = json.load(f)
    except (IOError, ValueError):
        return 0
    if not state.get('made') or not state.get('work'):
        return 0
    rc = 0
    if os.path.exists('%s/%s/config' % (LXCPATH, state['container'])):
        try:
            role(state, False)
        except SystemExit as e:
            print(e)
            rc = 1
        sh('lxc-stop -P %s -n %s -k' % (LXCPATH, state['container']), check=False)
        sh('lxc-destroy -P %s -n %s -f' % (LXCPATH, state['container']), check=False)
    if os.path.isdir(THUNKS) and not os.path.ismount(THUNKS):
        sh('rmdir %s' % THUNKS, check=False)
    for p in (PROGRAM, HOST_CONFIG, CODE_DIR):
        if os.path.lexists(p):
            print('hermetic: the uninstall left %s' % p)
            rc = 1
    if mounts_below(THUNKS) or mounts_below(state['work']):
        print('hermetic: mounts left: %s' % (mounts_below(THUNKS) + mounts_below(state['work'])))
        return 1
    sh('rm -rf --one-file-system %s' % shlex.quote(state['work']), check=False)
    # The log the role's hook wrote for the resident container (the role keeps logs on uninstall).
    if os.path.isfile(LOG) and state['container'] in open(LOG, errors='replace').read():
        lines = open(LOG, errors='replace').read().splitlines()
        if all(state['container'] in l or not l.strip() for l in lines):
            os.unlink(LOG)
    return rc


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ('setup', 'verify', 'teardown'):
        print(__doc__)
        return 2
    return {'setup': setup, 'verify': verify, 'teardown': teardown}[sys.argv[1]](sys.argv[2])


if __name__ == '__main__':
    sys.exit(main())
