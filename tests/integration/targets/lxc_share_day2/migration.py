# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking over a host set up with the real original lxcex-share, on a real container.

The container is set up the original way, with the unmodified script from
../shared/reference (its four hook lines, the rbind lxc.mount.entry of the
thunks directory, a 3-column sharetab, the script copied into the
container) and brauner's mount-idmapped built from its reference source,
and used: bob sees the share.  Then the role converges the running
container, adding a share of its own.  The container must stop and start the
first time with every share visible, also after a simulated reboot.

The original hardcodes /mnt/share-thunks: the test runs in a mount namespace of
its own with a fresh /mnt (no mount of this machine below /mnt in its table),
so a host that uses /mnt/share-thunks itself never stops it and never sees what
it does.  Without ../shared/reference it is skipped, saying why (in CI, where it
must run, that is a failure).
"""

from __future__ import absolute_import, division, print_function

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import (  # noqa: E402  pylint: disable=wrong-import-position
    PY, SETTINGS, Lab, Skipped, detach_below_cmd, expect, forget_records, report, run_scenario, scenario, sh)

ORIGINAL_THUNKS = '/mnt/share-thunks'


SHARED = SETTINGS.get('shared', '')
NAMESPACE_MARK = 'LXCEX_MIGRATION_NAMESPACE'
ORIGINAL = os.path.join(SHARED, 'reference', 'lxcex-share', 'lxcex-share')
MOUNT_IDMAPPED = os.path.join(SHARED, 'reference', 'mount-idmapped', 'mount-idmapped.c')

LAB = Lab('lxcex-migr', [('m', 'bob')], 680000000)
WORK = LAB.work
ROLE_PROG = WORK + '/rolebin/lxcex-share'
FINDMNT_FILES = None


def role(shares):
    return LAB.role(dict(lxcex_share_shares=shares, lxcex_share_lxcpath=LAB.lxcpath, lxcex_share_thunks_dir=ORIGINAL_THUNKS,
                         lxcex_share_hook_path=ROLE_PROG, lxcex_share_lib_dir=WORK + '/lib', lxcex_share_python=PY,
                         lxcex_share_host_config=WORK + '/role.conf', lxcex_share_log_file=LAB.log))


def original_start(key):
    """Start the container the original way: its hooks find mount-idmapped in PATH."""
    env = dict(os.environ, PATH='%s/bin:%s' % (WORK, os.environ.get('PATH', '')))
    t0 = time.monotonic()
    rc, out = sh('timeout 60 lxc-start -P %s -n %s -l INFO -o %s/%s.log && lxc-wait -P %s -n %s -s RUNNING -t 20'
                 % (LAB.lxcpath, LAB.name(key), WORK, LAB.name(key), LAB.lxcpath, LAB.name(key)), check=False,
                 env=env)
    return rc, time.monotonic() - t0, out


def sees(what):
    rc, out = LAB.attach('m', 'cat %s' % ' '.join(what), uid=1000)
    return out.split()


def setup():
    LAB.setup(hooks=False)
    root = LAB.root('m')
    base = LAB.cts['m']['base']
    sh('gcc -O2 -o %s/bin/mount-idmapped %s' % (WORK, MOUNT_IDMAPPED))
    os.makedirs(WORK + '/orig')
    shutil.copy(ORIGINAL, WORK + '/orig/lxcex-share')
    os.chmod(WORK + '/orig/lxcex-share', 0o755)
    # The original's start hook runs inside the container and needs findmnt there (busybox has none; its
    # libraries come from the host through the template's read-only binds of /lib and /usr/lib).
    shutil.copy('/usr/bin/findmnt', root + '/usr/bin/findmnt')
    # What the original's mount hook copies into the container, as it is on hosts set up with it.
    os.makedirs(root + '/usr/local/bin')
    shutil.copy(ORIGINAL, root + '/usr/local/bin/lxcex-share')
    sh('chown -R %d:%d %s/usr/local' % (base, base, root))
    sh('''set -e
        mkdir -p %(w)s/orig-src %(w)s/role-src
        echo orig > %(w)s/orig-src/orig.txt
        echo role > %(w)s/role-src/role.txt
        chown -R 7000:7000 %(w)s/orig-src %(w)s/role-src
    ''' % dict(w=WORK))
    config = '%s/%s/config' % (LAB.lxcpath, LAB.name('m'))
    with open(config, 'a') as f:
        f.write('lxc.hook.pre-start = %(p)s\nlxc.hook.mount     = %(p)s\nlxc.hook.start     = /usr/local/bin/lxcex-share\n'
                'lxc.hook.post-stop = %(p)s\n'
                'lxc.mount.entry = %(t)s/%(n)s mnt/share-thunks none create=dir,rbind 0 0\n'
                % dict(p=WORK + '/orig/lxcex-share', t=ORIGINAL_THUNKS, n=LAB.name('m')))
    with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('m')), 'w') as f:
        f.write('# host-directory  user-name  dest-directory\n%s/orig-src bob /home/bob/orig\n' % WORK)
    sh('mkdir -p %s/home/bob/orig && chown %d:%d %s/home/bob/orig' % (root, base + 1000, base + 100, root))


def roots():
    return [WORK + '/orig-src', WORK + '/role-src']


@scenario('a host set up with the original lxcex-share, converged by the role, stops and starts the first time')
def migrate():
    rc, took, out = original_start('m')
    expect(rc == 0, 'the container starts the original way', out)
    expect(sees(['/home/bob/orig/orig.txt']) == ['orig'], 'bob sees the share made by the original')
    rc, before_root = LAB.attach('m', 'ls /')
    config = '%s/%s/config' % (LAB.lxcpath, LAB.name('m'))
    with open(config) as f:
        original_config = f.read()
    shares = [{'src': WORK + '/role-src', 'container': LAB.name('m'), 'user': 'bob', 'dest': '/home/bob/role'}]
    rc, counts, out = role(shares)
    expect(rc == 0, 'the role converges the running container', out[-3000:])
    expect('original lxcex-share copied into the container' in out, 'the copy in the container is reported', out[-3000:])
    expect(os.path.exists(LAB.root('m') + '/usr/local/bin/lxcex-share'), 'and left in place')
    with open(config) as f:
        text = f.read()
    disabled = [l for l in text.splitlines() if l.startswith('# lxcex.share disabled')]
    expect(len(disabled) == 5, 'the four hook lines and the rbind entry are commented out', text)
    with open(config + '.before-lxcex-share') as f:
        expect(f.read() == original_config, 'the config was backed up first')
    kept = [l for l in original_config.splitlines() if 'lxcex-share' not in l and 'share-thunks' not in l]
    expect(all(l in text.splitlines() for l in kept), 'every other line kept')
    expect(sees(['/home/bob/orig/orig.txt', '/home/bob/role/role.txt']) == ['orig', 'role'], 'both shares live')
    rc, counts, out = role(shares)
    expect(rc == 0 and counts.get('changed') == 0, 'a second role run changes nothing', out[-3000:])
    t0 = time.monotonic()
    LAB.stop('m')
    took = time.monotonic() - t0
    expect(took < 10, 'the first stop is quick (%.1f s)' % took)
    rc, took, out = LAB.start('m')
    expect(rc == 0, 'the first start after the takeover works', out)
    expect(sees(['/home/bob/orig/orig.txt', '/home/bob/role/role.txt']) == ['orig', 'role'],
           'with the same shares visible (the 3-column line adopted as it is)')
    rc, after_root = LAB.attach('m', 'ls /')
    expect(after_root == before_root, 'no stray directory in the container\'s root', before_root, after_root)
    # a reboot: the container stopped, every thunk and the thunks tmpfs gone
    LAB.stop('m')
    sh('umount -R %s' % ORIGINAL_THUNKS, check=False)
    rc, took, out = LAB.start('m')
    expect(rc == 0, 'start after a reboot', out)
    expect(sees(['/home/bob/orig/orig.txt', '/home/bob/role/role.txt']) == ['orig', 'role'], 'shares after a reboot')
    rc, out = sh(ROLE_PROG + ' list', check=False)
    expect(rc == 0 and out.count(' live') == 2, 'lxcex-share list: both live', out)


def main():
    if os.environ.get(NAMESPACE_MARK) != '1':
        # Again, in a mount namespace of its own (private: nothing it mounts reaches this machine).
        env = dict(os.environ)
        env[NAMESPACE_MARK] = '1'
        os.execvpe('unshare', ['unshare', '--mount', '--propagation', 'private', '--', PY,
                               os.path.abspath(__file__)], env)
    if not SHARED or not os.path.isfile(ORIGINAL) or not os.path.isfile(MOUNT_IDMAPPED):
        results = []

        def absent():
            raise Skipped('the migration test runs the real original lxcex-share from ../shared/reference, which is '
                          'not here (shared=%r; scripts/test.sh finds ../shared beside the checkout); nothing else '
                          'depends on it' % SHARED)
        run_scenario(results, migrate.title, absent)
        return report(results, True)
    # A fresh /mnt: none of this machine's mounts below it (its /mnt/share-thunks) is in this namespace's table.
    sh(detach_below_cmd(['/mnt']) + ' && mount -t tmpfs -o mode=0755,size=1m lxcex-migration-mnt /mnt')
    expect(not os.path.lexists(ORIGINAL_THUNKS), '%s in the test\'s own /mnt' % ORIGINAL_THUNKS)

    def teardown():
        LAB.stop('m')
        sh('umount -R %s' % ORIGINAL_THUNKS, check=False)
        # the thunks of the lab's container live in this namespace's own /mnt: their records (under the host's
        # /run) are the lab's, also when a scenario failed before its stop released them
        forget_records('%s/%s' % (ORIGINAL_THUNKS, LAB.name('m')), itself=True)

    return LAB.run(setup, [migrate], roots, teardown=teardown)


if __name__ == '__main__':
    sys.exit(main())
