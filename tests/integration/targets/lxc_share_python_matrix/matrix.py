# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lxcex.share on every target Python 3.9-3.13 this machine has.

For each: lxc_share through Ansible with that interpreter (check mode,
apply, apply again with nothing to do, check again, what the user sees), then
the role with that Python as ansible_python_interpreter and as
lxcex_share_python, a container restart whose start hook runs the program
with it, and the uninstall.  A version the machine does not have is a skip
(a failure in CI).  Run by runme.sh; prints 'N passed, M failed, K skipped'.
"""

from __future__ import absolute_import, division, print_function

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import Lab, Skipped, expect, log, pythons, scenario, sh  # noqa: E402  pylint: disable=wrong-import-position

VERSIONS = ('3.9', '3.10', '3.11', '3.12', '3.13')
LAB = Lab('lxcex-pym', [('a', 'alice')], 520000000)
WORK = LAB.work
FOUND = pythons(VERSIONS)


def setup():
    LAB.setup(hooks=False, started=('a',))
    sh('mkdir -p %s/src && echo data > %s/src/data.txt && chown -R 7000:7000 %s/src' % (WORK, WORK, WORK))


def roots():
    return [WORK + '/src']


def on(version):
    python = FOUND.get(version)
    tag = version.replace('.', '')
    ct = LAB.name('a')

    def run():
        if python is None:
            raise Skipped('no Python %s on this machine (pyenv versions %s.*, /usr/bin/python%s)'
                          % (version, version, version))
        share = {'src': WORK + '/src', 'container': ct, 'user': 'alice', 'dest': '/home/alice/py%s' % tag,
                 'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks}
        for step, check, changed in (('check', True, True), ('apply', False, True), ('again', False, False),
                                     ('check again', True, False)):
            r = LAB.module('lxc_share', share, check_mode=check, python=python)
            expect(not r.get('failed') and bool(r.get('changed')) == changed,
                   'Python %s, %s: changed=%s' % (version, step, r.get('changed')), r.get('msg'), r.get('_warnings'))
        rc, out = LAB.attach('a', 'id -u; stat -c %%U /home/alice/py%s; cat /home/alice/py%s/data.txt' % (tag, tag),
                             uid=1000)
        expect(out.split() == ['1000', 'alice', 'data'], 'what alice sees (Python %s)' % version, out)
        r = LAB.module('lxc_share', dict(share, state='absent'), python=python)
        expect(not r.get('failed') and r.get('changed'), 'removal (Python %s)' % version, r.get('msg'))
        # The role, its module and the hook program on this Python.
        variables = {'lxcex_share_shares': [{'src': WORK + '/src', 'container': ct, 'user': 'alice',
                                             'dest': '/home/alice/role%s' % tag}],
                     'lxcex_share_lxcpath': LAB.lxcpath, 'lxcex_share_thunks_dir': LAB.thunks,
                     'lxcex_share_hook_path': '%s/py%s/bin/lxcex-share' % (WORK, tag),
                     'lxcex_share_lib_dir': '%s/py%s/lib/lxcex-share' % (WORK, tag),
                     'lxcex_share_host_config': '%s/py%s/lxcex-share.conf' % (WORK, tag),
                     'lxcex_share_log_file': LAB.log, 'lxcex_share_python': python}
        for run_ in (1, 2):
            rc, counts, out = LAB.role(variables, python=python)
            expect(rc == 0 and counts.get('failed') == 0, 'role run %d on Python %s' % (run_, version), out[-2500:])
            expect((counts.get('changed') > 0) == (run_ == 1), 'role run %d changed=%s' % (run_, counts.get('changed')))
        with open(variables['lxcex_share_hook_path']) as f:
            expect(f.readline().strip() == '#!' + python, 'the hook program runs with Python %s' % version)
        LAB.stop('a')
        rc, dummy, out = LAB.start('a')
        expect(rc == 0, 'start', out)
        rc, out = LAB.attach('a', 'cat /home/alice/role%s/data.txt' % tag, uid=1000)
        expect(out.strip() == 'data', 'the start hook on Python %s brought the share back' % version, out)
        rc, out = sh('%s list' % variables['lxcex_share_hook_path'], check=False)
        expect(rc == 0 and '/home/alice/role%s' % tag in out and 'live' in out, 'list on Python %s' % version, out)
        rc, counts, out = LAB.role(dict(variables, lxcex_share_state='absent'), python=python)
        expect(rc == 0 and counts.get('failed') == 0, 'uninstall on Python %s' % version, out[-2500:])
    return scenario('Python %s (%s): the module, the role and the start hook' % (version, python or 'absent'))(run)


def teardown():
    log('\npythons ran: %s; not on this machine: %s' % (
        ', '.join('%s (%s)' % (v, FOUND[v]) for v in VERSIONS if v in FOUND) or 'none',
        ', '.join(v for v in VERSIONS if v not in FOUND) or 'none'))


if __name__ == '__main__':
    sys.exit(LAB.run(setup, [on(v) for v in VERSIONS], roots, teardown=teardown))
