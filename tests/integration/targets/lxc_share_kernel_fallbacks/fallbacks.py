# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lxcex.share as on Linux 6.1, on this machine's kernel: the fallback paths in every quick run.

LXCEX_SHARE_KERNEL_AS=6.1 (set for everything this test starts: Ansible and its
modules, lxc-start and so the hooks, the command) makes the code do without
what 6.1 lacks: unique mount ids and statmount (6.8), the idmap read back from
the kernel (6.15), idmapped tmpfs (6.3).  The role converges and a second run
and check mode report nothing to do; restarts bring the shares back; with the
records under /run lost, lxc_share_info says the idmap is unknown and the next
run repairs the share once; a tmpfs source fails naming Linux 6.3 and leaves
nothing.  Run by runme.sh; prints 'N passed, M failed'.
"""

from __future__ import absolute_import, division, print_function

import glob
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import Lab, expect, scenario, sh  # noqa: E402  pylint: disable=wrong-import-position

AS = os.environ.setdefault('LXCEX_SHARE_KERNEL_AS', '6.1')
LAB = Lab('lxcex-old', [('a', 'alice'), ('b', 'bob')], 540000000)
WORK = LAB.work
ROLE = {'lxcex_share_lxcpath': LAB.lxcpath, 'lxcex_share_thunks_dir': LAB.thunks,
        'lxcex_share_hook_path': WORK + '/rbin/lxcex-share', 'lxcex_share_lib_dir': WORK + '/rlib/lxcex-share',
        'lxcex_share_host_config': WORK + '/role.conf', 'lxcex_share_log_file': LAB.log}


def shares():
    return [{'src': WORK + '/src/common', 'container': LAB.name('a'), 'user': 'alice', 'dest': '/home/alice/common'},
            {'src': WORK + '/src/common', 'container': LAB.name('b'), 'user': 'bob', 'dest': '/home/bob/common'},
            {'src': WORK + '/src/private', 'container': LAB.name('b'), 'user': 'bob', 'dest': '/home/bob/ro',
             'readonly': True}]


def setup():
    LAB.setup(hooks=False, started=('a', 'b'))
    sh('mkdir -p %(w)s/src/common %(w)s/src/private %(w)s/tmpfs && echo c > %(w)s/src/common/c.txt && '
       'echo p > %(w)s/src/private/p.txt && chown -R 7000:7000 %(w)s/src' % {'w': WORK})


def roots():
    return [WORK + '/src']


def records():
    """The record files under /run/lxcex-share/mounts that are about this lab."""
    out = []
    for path in glob.glob('/run/lxcex-share/mounts/*.json'):
        with open(path) as f:
            if WORK in f.read():
                out.append(path)
    return out


@scenario('the role is idempotent without unique mount ids and statmount: second run and check mode report nothing')
def role_idempotent():
    for run in (1, 2, 3):
        rc, counts, out = LAB.role(dict(ROLE, lxcex_share_shares=shares()))
        expect(rc == 0 and counts.get('failed') == 0, 'role run %d' % run, out[-3000:])
        expect((counts.get('changed') > 0) == (run == 1), 'role run %d: changed=%s' % (run, counts.get('changed')),
               out[-4000:])
    r = LAB.share(shares=[dict(s) for s in shares()], owner='role', check_mode=True)
    expect(not r.get('changed'), 'check mode after convergence reports nothing', r)
    rc, out = LAB.attach('b', 'cat /home/bob/common/c.txt /home/bob/ro/p.txt; touch /home/bob/ro/x', uid=1000)
    expect(out.split()[:2] == ['c', 'p'] and rc != 0, 'bob reads both, cannot write the read-only one', out)


@scenario('restarts: the hook (as on 6.1) brings every share back, and the role has nothing to do after')
def restarts():
    LAB.restart('a', 'b')
    with open(LAB.log) as f:
        expect('behaving as Linux %s would' % AS in f.read(), 'the hook ran with the older kernel\'s paths')
    rc, out = LAB.attach('a', 'cat /home/alice/common/c.txt', uid=1000)
    expect(out.strip() == 'c', 'alice after the restart', out)
    rc, counts, out = LAB.role(dict(ROLE, lxcex_share_shares=shares()))
    expect(rc == 0 and counts.get('changed') == 0, 'the role after restarts changes nothing', out[-4000:])


@scenario('records under /run lost: the idmap is reported unknown, the next run repairs once, then nothing to do')
def records_lost():
    lost = records()
    expect(lost, 'records of the lab under /run/lxcex-share')
    for path in lost:
        os.unlink(path)
    r = LAB.module('lxc_share_info', {'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks})
    rows = [x for x in r['shares'] if x['dest'] == '/home/alice/common']
    expect(rows and rows[0]['idmap'] is None, 'without statmount and records the idmap is unknown', rows)
    rc, counts, out = LAB.role(dict(ROLE, lxcex_share_shares=shares()))
    expect(rc == 0 and counts.get('failed') == 0, 'repair run', out[-3000:])
    rc, counts, out = LAB.role(dict(ROLE, lxcex_share_shares=shares()))
    expect(rc == 0 and counts.get('changed') == 0, 'after the repair, nothing to do', out[-4000:])
    r = LAB.module('lxc_share_info', {'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks})
    rows = [x for x in r['shares'] if x['dest'] == '/home/alice/common']
    base = LAB.cts['a']['base']
    expect(rows[0]['state'] == 'live' and rows[0]['idmap'] == ['u:7000:%d:1' % (base + 1000),
                                                               'g:7000:%d:1' % (base + 100)],
           'the idmap is known again', rows)
    rc, out = LAB.attach('a', 'stat -c %U /home/alice/common/c.txt', uid=1000)
    expect(out.strip() == 'alice', 'alice still sees her share', out)


@scenario('a tmpfs source, as on 6.1: fails naming Linux 6.3, leaves nothing')
def tmpfs_source():
    sh('mount -t tmpfs lxcex-old-src %s/tmpfs && mkdir %s/tmpfs/d && chown 7000:7000 %s/tmpfs/d'
       % (WORK, WORK, WORK))
    try:
        before = sorted(os.listdir(LAB.root('a') + '/home/alice'))
        r = LAB.share(src=WORK + '/tmpfs/d', container=LAB.name('a'), user='alice', dest='/home/alice/t')
        expect(r.get('failed') and 'tmpfs supports them from Linux 6.3' in r['msg'] and AS in r['msg'],
               'the message says tmpfs needs 6.3', r.get('msg'))
        expect(sorted(os.listdir(LAB.root('a') + '/home/alice')) == before, 'nothing made in the container')
        with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a'))) as f:
            expect('/home/alice/t' not in f.read(), 'no sharetab line')
        expect(not [p for p in LAB.host_thunks('a') if p.endswith('home-alice-t')], 'no thunk')
    finally:
        sh('umount %s/tmpfs' % WORK)


def teardown():
    rc, counts, out = LAB.role(dict(ROLE, lxcex_share_shares=shares(), lxcex_share_state='absent'))
    expect(rc == 0, 'uninstall', out[-2000:])
    expect(not records(), 'records of the lab left', records())


if __name__ == '__main__':
    sys.exit(LAB.run(setup, [role_idempotent, restarts, records_lost, tmpfs_source], roots, teardown=teardown,
                     wanted=sys.argv[1:]))
