# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The built collection: what the tarball holds, and the role run from the installed tarball.

``ansible-galaxy collection build`` of this collection, then ``ansible-galaxy
collection install`` of the tarball into a directory of the lab, then the
role (and ansible-doc, and lxcex.share.site) from that installed copy only, on
a real busybox container: the share is live, comes back at a restart through
the installed hook program, and the uninstall leaves nothing.  Run by
runme.sh; prints 'N passed, M failed'.
"""

from __future__ import absolute_import, division, print_function

import glob
import os
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import Lab, expect, scenario, sh  # noqa: E402  pylint: disable=wrong-import-position

LAB = Lab('lxcex-inst', [('a', 'alice')], 500000000)
WORK = LAB.work
SOURCE = os.path.join(LAB.collections, 'ansible_collections', 'lxcex', 'share')
INSTALLED = WORK + '/installed'
STATE = {}
LEFT_OUT = ('bench/', 'scripts/', '.ci/', 'extensions/', 'tests/output/', '.venv', 'settings.json')
KEPT = ('plugins/modules/lxc_share.py', 'plugins/modules/lxc_share_info.py', 'plugins/module_utils/_install.py',
        'plugins/doc_fragments/requirements.py', 'roles/lxcex_share/tasks/main.yml', 'playbooks/site.yml',
        'meta/runtime.yml', 'README.md', 'CHANGELOG.md', 'changelogs/changelog.yaml', 'LICENSE', 'MANIFEST.json')


def setup():
    LAB.setup(hooks=False, started=('a',))
    sh('mkdir -p %s/src && echo data > %s/src/data.txt && chown -R 7000:7000 %s/src' % (WORK, WORK, WORK))


def roots():
    return [WORK + '/src']


@scenario('ansible-galaxy collection build: the tarball has the collection, not the benchmark or dev scripts')
def build():
    rc, out = sh('cd %s && ansible-galaxy collection build --output-path %s/build' % (SOURCE, WORK), check=False)
    expect(rc == 0, 'build', out)
    tarballs = glob.glob(WORK + '/build/lxcex-share-*.tar.gz')
    expect(len(tarballs) == 1, 'one tarball', tarballs)
    STATE['tarball'] = tarballs[0]
    with tarfile.open(tarballs[0]) as t:
        names = t.getnames()
    bad = [n for n in names if any(n.startswith(p) or p in n for p in LEFT_OUT) or n.endswith('.pyc')]
    expect(not bad, 'the tarball holds what build_ignore leaves out', bad)
    missing = [k for k in KEPT if k not in names]
    expect(not missing, 'the tarball lacks parts of the collection', missing)


@scenario('the role from the INSTALLED tarball: share live, back after a restart, uninstall leaves nothing')
def installed_role():
    expect('tarball' in STATE, 'no tarball built')
    # Only the install directory is configured, so the checkout's copy does not count as already installed.
    rc, out = sh('ANSIBLE_COLLECTIONS_PATH=%s ansible-galaxy collection install --offline --force -p %s %s'
                 % (INSTALLED, INSTALLED, STATE['tarball']), check=False)
    expect(rc == 0, 'install', out)
    LAB.collections = INSTALLED  # from here on, Ansible finds only the installed copy
    rc, out = sh('ANSIBLE_COLLECTIONS_PATH=%s ansible-doc lxcex.share.lxc_share_info' % INSTALLED, check=False)
    expect(rc == 0 and 'RETURN VALUES' in out, 'ansible-doc from the installed copy', out[-1000:])
    variables = {'lxcex_share_shares': [{'src': WORK + '/src', 'container': LAB.name('a'), 'user': 'alice',
                                         'dest': '/home/alice/inst'}],
                 'lxcex_share_lxcpath': LAB.lxcpath, 'lxcex_share_thunks_dir': LAB.thunks,
                 'lxcex_share_hook_path': WORK + '/ibin/lxcex-share', 'lxcex_share_lib_dir': WORK + '/ilib/lxcex-share',
                 'lxcex_share_host_config': WORK + '/ilxcex-share.conf', 'lxcex_share_log_file': LAB.log}
    rc, counts, out = LAB.role(variables)
    expect(rc == 0 and counts.get('failed') == 0 and counts.get('changed'), 'the installed role', out[-3000:])
    rc, counts, out = LAB.role(variables)
    expect(rc == 0 and counts.get('changed') == 0, 'a second run changes nothing', out[-3000:])
    rc, out = LAB.attach('a', 'cat /home/alice/inst/data.txt', uid=1000)
    expect(out.strip() == 'data', 'alice sees the share', out)
    LAB.stop('a')
    rc, dummy, out = LAB.start('a')
    expect(rc == 0, 'restart', out)
    rc, out = LAB.attach('a', 'cat /home/alice/inst/data.txt', uid=1000)
    expect(out.strip() == 'data', 'the installed hook program brought the share back', out)
    rc, counts, out = LAB.role(dict(variables, lxcex_share_state='absent'))
    expect(rc == 0 and counts.get('failed') == 0, 'uninstall', out[-3000:])
    expect(not os.path.exists(variables['lxcex_share_hook_path']) and not LAB.host_thunks(), 'nothing left')


if __name__ == '__main__':
    sys.exit(LAB.run(setup, [build, installed_role], roots))
