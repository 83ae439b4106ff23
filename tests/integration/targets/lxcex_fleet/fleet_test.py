# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet playbook (lxcex.share.site) over real SSH on three hosts.

Three hosts on this machine (see lxcex_harness/fleet.py): each its own mount
namespace with its own /etc, /run, lxcpath, thunks directory, /usr/local and
/var/log, its own sshd on a loopback port, entered as a non-root operator who
becomes root with sudo, Python discovered by Ansible.  group_vars declare a
team share on every host, host_vars the shares of one host.  Converge, a run
with nothing to do, check mode, restarts that the hooks repair, one host
unreachable and one failing while the others converge, a rerun that fixes
them, a pending removal in --check --diff, and the uninstall.  Prints
'N passed, M failed'.
"""

from __future__ import absolute_import, division, print_function

import hashlib
import json
import os
import re
import signal
import sys
import time
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import expect, log, run_all  # noqa: E402  pylint: disable=wrong-import-position
from fleet import Fleet  # noqa: E402  pylint: disable=wrong-import-position

FLEET = Fleet('lxcex-fleet', 3)
H1, H2, H3 = FLEET.hosts
PROGRAM = '/usr/local/bin/lxcex-share'
CODE = '/usr/local/lib/lxcex-share/lxcex-share.pyz'
HOST_CONFIG = '/etc/lxcex-share.conf'
SEEDED = {}


def ct(host, key):
    return '%s%s%s' % (FLEET.tag, host.name, key)


def seed(host, inside, owner, files):
    path = host.path(inside)
    os.makedirs(path + '/written')
    for name, text in files.items():
        with open(os.path.join(path, name), 'w') as f:
            f.write(text)
        os.chown(os.path.join(path, name), owner, owner)
        SEEDED[os.path.join(path, name)] = hashlib.sha256(text.encode()).hexdigest()
    for p in (path, path + '/written'):
        os.chown(p, owner, owner)
        os.chmod(p, 0o775)


def seeded_intact():
    bad = []
    for path, digest in sorted(SEEDED.items()):
        try:
            with open(path, 'rb') as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    bad.append(path + ' changed')
        except IOError as e:
            bad.append('%s: %s' % (path, e))
    return bad


def setup():
    FLEET.setup()
    for h in FLEET.hosts:
        h.create('a')
        h.create('b', start=(h is not H3))  # h3's b is stopped: its shares are recorded, applied at its start
        seed(h, '/srv/team', 7000, {'team.txt': 'team of %s\n' % h.name})
        if h is not H3:
            seed(h, '/srv/only', 7001, {'only.txt': 'only on %s\n' % h.name})
    FLEET.vars_file('group_vars', 'lxc_hosts', {
        'lxcex_share_shares': '{{ fleet_team_shares + fleet_host_shares + fleet_extra_shares }}',
        'fleet_team_shares': [
            {'src': '/srv/team', 'container': '{{ fleet_ct }}a', 'user': 'alice', 'dest': '/home/alice/team'},
            {'src': '/srv/team', 'container': '{{ fleet_ct }}b', 'user': 'bob', 'dest': '/home/bob/team'}],
        'fleet_host_shares': [], 'fleet_extra_shares': []})
    FLEET.vars_file('host_vars', 'h1', {'fleet_ct': FLEET.tag + 'h1', 'fleet_host_shares': [
        {'src': '/srv/only', 'container': '{{ fleet_ct }}a', 'user': 'bob', 'dest': '/home/bob/only',
         'readonly': True}]})
    FLEET.vars_file('host_vars', 'h2', {'fleet_ct': FLEET.tag + 'h2', 'fleet_host_shares': [
        {'src': '/srv/only', 'container': '{{ fleet_ct }}b', 'user': 'alice', 'dest': '/home/alice/only'}]})
    FLEET.vars_file('host_vars', 'h3', {'fleet_ct': FLEET.tag + 'h3'})


def site(*args, **kw):
    return FLEET.playbook('lxcex.share.site', ['-f', '3'] + list(args), **kw)


def recap_ok(counts, hosts, changed=None):
    for h in hosts:
        c = counts.get(h.name)
        expect(c is not None, '%s has no line in the recap' % h.name, counts)
        expect(c['failed'] == 0 and c['unreachable'] == 0, '%s failed or was unreachable' % h.name, c)
        if changed is not None:
            wanted = 'some' if changed else 'none'
            expect((c['changed'] > 0) == changed, '%s: changed=%d, expected %s' % (h.name, c['changed'], wanted), c)


def sees(host, key, user, uid, path):
    """What user (uid, gid 100) sees at path in the container: owner name of path and its files' text."""
    rc, out = host.attach(ct(host, key), 'stat -c %%U %s && cat %s/*.txt' % (path, path), uid=uid)
    return rc, out


def hook_blocks(host):
    return [n for n in os.listdir(host.path('/var/lib/lxc'))
            if os.path.exists(host.path('/var/lib/lxc/%s/config' % n))
            and 'BEGIN lxcex.share hooks' in open(host.path('/var/lib/lxc/%s/config' % n)).read()]


def thunk_mounts(host):
    return [l for l in host.mountinfo() if ' /mnt/share-thunks' in l]


# -- scenarios -----------------------------------------------------------------------------------------------


def check_fresh():
    before = dict((h.name, sorted(os.listdir(h.path('/usr/local')))) for h in FLEET.hosts)
    configs = dict((h.name, [open(h.path('/var/lib/lxc/%s/config' % ct(h, k))).read() for k in 'ab'])
                   for h in FLEET.hosts)
    rc, counts, out = site('--check', '--diff')
    expect(rc == 0, 'check mode on fresh hosts failed', out[-3000:])
    recap_ok(counts, FLEET.hosts, changed=True)
    for h in FLEET.hosts:
        expect(sorted(os.listdir(h.path('/usr/local'))) == before[h.name], '%s: check mode installed something'
               % h.name)
        expect(not os.path.exists(h.path(HOST_CONFIG)), '%s: check mode wrote %s' % (h.name, HOST_CONFIG))
        expect(not thunk_mounts(h), '%s: check mode mounted thunks' % h.name, thunk_mounts(h))
        expect([open(h.path('/var/lib/lxc/%s/config' % ct(h, k))).read() for k in 'ab'] == configs[h.name],
               '%s: check mode changed a config' % h.name)
    expect('+++ after: /usr/local/bin/lxcex-share' in out, 'no diff of the program in --check --diff', out[-2000:])


def converge():
    rc, counts, out = site('-v')
    expect(rc == 0, 'converge failed', out[-4000:])
    recap_ok(counts, FLEET.hosts, changed=True)
    expect(len(re.findall(r'"discovered_interpreter_python": "/usr/bin/python3[.0-9]*"', out)) >= 3,
           'the Python of every host was not discovered', out[-2000:])
    for h in FLEET.hosts:
        expect('Accepted publickey for lxcexops' in h.sshd_log(), '%s: not entered as the operator' % h.name,
               h.sshd_log()[-2000:])
        with open(h.path(PROGRAM)) as f:
            expect(f.readline() == '#!/usr/bin/python3\n', '%s: program shebang' % h.name)
        with zipfile.ZipFile(h.path(CODE)) as z:
            names = z.namelist()
        expect(not [n for n in names if n.endswith('.pyc') or '__pycache__' in n], '%s: .pyc in the code' % h.name)
        expect(names, 'empty code')
        rc, out = sees(h, 'a', 'alice', 1000, '/home/alice/team')
        expect(rc == 0 and out.split()[0] == 'alice' and 'team of %s' % h.name in out,
               '%s: alice does not see the team share as hers' % h.name, out)
        rc, out = h.attach(ct(h, 'a'), 'echo from alice > /home/alice/team/written/alice.txt', uid=1000)
        expect(rc == 0, '%s: alice cannot write to the team share' % h.name, out)
        st = os.stat(h.path('/srv/team/written/alice.txt'))
        expect((st.st_uid, st.st_gid) == (7000, 7000), '%s: alice\'s file is not owned by the source owner on disk'
               % h.name, (st.st_uid, st.st_gid))
    for h in (H1, H2):
        rc, out = sees(h, 'b', 'bob', 1001, '/home/bob/team')
        expect(rc == 0 and out.split()[0] == 'bob' and 'team of' in out, '%s: bob does not see the team share'
               % h.name, out)
        rc, out = h.attach(ct(h, 'b'), 'stat -c %U /home/bob/team/written/alice.txt', uid=1001)
        expect(out.strip() == 'bob', '%s: bob does not see alice\'s file as his' % h.name, out)
    rc, out = H1.attach(ct(H1, 'a'), 'cat /home/bob/only/only.txt && touch /home/bob/only/x', uid=1001)
    expect('only on h1' in out and rc != 0, 'h1: read-only share of bob', out)
    rc, out = H2.attach(ct(H2, 'b'), 'cat /home/alice/only/only.txt', uid=1000)
    expect('only on h2' in out, 'h2: host_vars share of alice', out)
    expect(not os.path.exists(H3.path('/srv/only')) and not [l for l in thunk_mounts(H3) if 'only' in l],
           'h3 got a share of another host')
    with open(H3.path('/var/lib/lxc/%s/sharetab' % ct(H3, 'b'))) as f:
        expect('/home/bob/team' in f.read(), 'h3: the stopped container\'s share is not recorded')


def no_change():
    stamps = dict((h.name, os.stat(h.path(CODE))) for h in FLEET.hosts)
    rc, counts, out = site('-vvv')
    expect(rc == 0, 'second run failed', out[-3000:])
    recap_ok(counts, FLEET.hosts, changed=False)
    puts = re.findall(r'PUT (\S+) TO (\S+)', out)
    others = [p for p in puts if not os.path.basename(p[1].strip("'\"")).startswith('AnsiballZ_')]
    expect(not others, 'files other than the modules were transferred', others)
    for h in FLEET.hosts:
        st = os.stat(h.path(CODE))
        expect((st.st_ino, st.st_mtime_ns) == (stamps[h.name].st_ino, stamps[h.name].st_mtime_ns),
               '%s: the code was written again' % h.name)
    log('  %d transfers, all of them modules' % len(puts))


def check_converged():
    rc, counts, out = site('--check', '--diff')
    expect(rc == 0, 'check mode failed', out[-3000:])
    recap_ok(counts, FLEET.hosts, changed=False)


def restarts():
    for h in FLEET.hosts:
        # The first start after converge loads the hook lines (a with the shares that were attached live);
        # from then on the post-stop hook releases the container's thunks when it stops.
        for round_ in (1, 2):
            h.stop(ct(h, 'a'))
            if round_ == 2:
                expect(not [l for l in thunk_mounts(h) if '/%s/' % ct(h, 'a') in l],
                       '%s: thunks left after stop' % h.name, thunk_mounts(h))
            h.start(ct(h, 'a'))
            rc, out = sees(h, 'a', 'alice', 1000, '/home/alice/team')
            expect(rc == 0 and out.split()[0] == 'alice', '%s: the share did not come back at start' % h.name, out)
        with open(h.path('/var/log/lxcex-share.log')) as f:
            text = f.read()
        expect(ct(h, 'a') in text, '%s: the hook logged nothing in /var/log/lxcex-share.log' % h.name, text[-1000:])
    H3.start(ct(H3, 'b'))
    rc, out = sees(H3, 'b', 'bob', 1001, '/home/bob/team')
    expect(rc == 0 and out.split()[0] == 'bob' and 'team of h3' in out, 'h3: the stopped container did not get its '
           'recorded share at its first start', out)


def extra(hosts):
    for h in FLEET.hosts:
        FLEET.vars_file('host_vars', h.name, dict(_host_vars(h), fleet_extra_shares=[
            {'src': '/srv/extra', 'container': '{{ fleet_ct }}a', 'user': 'alice', 'dest': '/home/alice/extra'}]
            if h in hosts else []))


def _host_vars(h):
    with open('%s/inventory/host_vars/%s.yml' % (FLEET.work, h.name)) as f:
        data = json.load(f)
    data.pop('fleet_extra_shares', None)
    return data


def partial_failure():
    for h in (H1, H2):
        seed(h, '/srv/extra', 7002, {'extra.txt': 'extra on %s\n' % h.name})
    extra(FLEET.hosts)  # h3 has no /srv/extra: its run fails
    H2.stop_sshd()      # h2 cannot be reached
    live_h3 = sorted(l.split()[4] for l in thunk_mounts(H3))
    rc, counts, out = site()
    expect(rc != 0, 'the run did not report the failures', out[-2000:])
    recap_ok(counts, [H1], changed=True)
    expect(counts['h2']['unreachable'] == 1, 'h2 is not reported unreachable', counts)
    expect(counts['h3']['failed'] == 1, 'h3 is not reported failed', counts)
    expect('/srv/extra' in out, 'the failure does not name the missing source', out[-3000:])
    rc, o = sees(H1, 'a', 'alice', 1000, '/home/alice/extra')
    expect(rc == 0 and 'extra on h1' in o, 'h1 did not converge while the others failed', o)
    expect(sorted(l.split()[4] for l in thunk_mounts(H3)) == live_h3, 'h3 was left half done',
           live_h3, thunk_mounts(H3))
    rc, o = sees(H3, 'a', 'alice', 1000, '/home/alice/team')
    expect(rc == 0 and 'team of h3' in o, 'h3 lost a share in the failed run', o)
    # Fixed: h2 reachable again, h3 gets its source. A rerun converges them and has nothing to do on h1.
    H2.start_sshd()
    seed(H3, '/srv/extra', 7002, {'extra.txt': 'extra on h3\n'})
    rc, counts, out = site()
    expect(rc == 0, 'the rerun failed', out[-3000:])
    recap_ok(counts, [H2, H3], changed=True)
    recap_ok(counts, [H1], changed=False)
    for h in FLEET.hosts:
        rc, o = sees(h, 'a', 'alice', 1000, '/home/alice/extra')
        expect(rc == 0 and 'extra on %s' % h.name in o, '%s: extra share after the rerun' % h.name, o)


def pending_removal():
    extra([])
    rc, counts, out = site('--check', '--diff')
    expect(rc == 0, 'check mode failed', out[-3000:])
    recap_ok(counts, FLEET.hosts, changed=True)
    expect('/home/alice/extra' in out, 'the diff does not show the share to remove', out[-3000:])
    for h in FLEET.hosts:
        rc, o = sees(h, 'a', 'alice', 1000, '/home/alice/extra')
        expect(rc == 0, '%s: check mode removed the share' % h.name, o)
    rc, counts, out = site()
    expect(rc == 0, 'the removal failed', out[-3000:])
    recap_ok(counts, FLEET.hosts, changed=True)
    rc, counts, out = site()
    recap_ok(counts, FLEET.hosts, changed=False)
    for h in FLEET.hosts:
        rc, o = h.attach(ct(h, 'a'), 'grep -c " /home/alice/extra " /proc/self/mountinfo', uid=1000)
        expect(o.strip() == '0', '%s: the removed share is still mounted' % h.name, o)


def uninstall():
    rc, counts, out = site('-e', 'lxcex_share_state=absent')
    expect(rc == 0, 'uninstall failed', out[-3000:])
    recap_ok(counts, FLEET.hosts, changed=True)
    for h in FLEET.hosts:
        for p in (PROGRAM, CODE, HOST_CONFIG):
            expect(not os.path.exists(h.path(p)), '%s: %s left after uninstall' % (h.name, p))
        expect(not hook_blocks(h), '%s: hook blocks left' % h.name, hook_blocks(h))
        expect(not thunk_mounts(h), '%s: thunks left' % h.name, thunk_mounts(h))
        expect(os.path.exists(h.path('/srv/team/written/alice.txt')), '%s: a user\'s file is gone' % h.name)
        h.stop(ct(h, 'a'))
        h.start(ct(h, 'a'))  # a container starts without the program
    rc, counts, out = site('-e', 'lxcex_share_state=absent')
    recap_ok(counts, FLEET.hosts, changed=False)


SCENARIOS = [
    ('check mode on fresh hosts reports changes and touches nothing', check_fresh),
    ('converge three hosts over SSH as a sudo user, Python discovered, group_vars and host_vars', converge),
    ('second run: changed=0 on every host, nothing transferred but the modules, the code not rewritten', no_change),
    ('check mode on converged hosts: nothing to change', check_converged),
    ('a restarted container on each host gets its shares back from the hook', restarts),
    ('one host unreachable, one failing: the third converges; a rerun converges them', partial_failure),
    ('--check --diff shows a pending removal and changes nothing; the run removes it', pending_removal),
    ('uninstall on the fleet (lxcex_share_state=absent)', uninstall),
]


def main():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    t0 = time.monotonic()

    def begin():
        setup()
        log('fleet: %s' % ', '.join('%s on port %d' % (h.name, h.port) for h in FLEET.hosts))

    def end():
        bad = seeded_intact()
        return [('every seeded source file intact', not bad, '; '.join(bad))]
    return run_all(begin, SCENARIOS, end, FLEET.cleanup, tail=lambda: ' (%.0f s)' % (time.monotonic() - t0))


if __name__ == '__main__':
    sys.exit(main())
