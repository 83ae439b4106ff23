# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Day 2 on a real host: lxcex.share in the life of a host, on real unprivileged LXC containers.

Who owns a sharetab line, stale thunks of containers that stopped without a
post-stop hook, a hook program that is missing, failures that show up where
an administrator looks, lxcex-share list, destinations that are not empty or
that the share created, and uninstalling.  The role runs for real
(ansible-playbook), containers start and stop for real.  Run by runme.sh;
prints 'N passed, M failed'.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import PY, Lab, expect, scenario, sh  # noqa: E402  pylint: disable=wrong-import-position

LAB = Lab('lxcex-day2', [('a', 'alice'), ('b', 'bob'), ('x', 'xavier')], 640000000)
WORK = LAB.work
ROLE_PROG = WORK + '/rolebin/lxcex-share'
ROLE_CONF = WORK + '/role.conf'


def role(shares, **extra):
    """Run the role lxcex_share on this host with shares; return (rc, {changed, failed}, output)."""
    variables = dict(lxcex_share_shares=shares, lxcex_share_lxcpath=LAB.lxcpath, lxcex_share_thunks_dir=LAB.thunks,
                     lxcex_share_hook_path=ROLE_PROG, lxcex_share_lib_dir=WORK + '/lib', lxcex_share_python=PY,
                     lxcex_share_host_config=ROLE_CONF, lxcex_share_log_file=LAB.log)
    variables.update(extra)
    return LAB.role(variables)


def sharetab(key):
    try:
        with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name(key))) as f:
            return f.read()
    except IOError:
        return ''


def mounted_at(key, dest):
    return [l for l in LAB.mounts_in(key) if l.split()[4] == dest]


def role_shares():
    return [{'src': WORK + '/common', 'container': LAB.name('a'), 'user': 'alice', 'dest': '/home/alice/common'},
            {'src': WORK + '/common', 'container': LAB.name('b'), 'user': 'bob', 'dest': '/home/bob/common'}]


def setup():
    LAB.setup(hooks=False, started=('a', 'b', 'x'))
    sh('''set -e
        mkdir -p %(w)s/common/sub %(w)s/hand %(w)s/task
        echo common > %(w)s/common/common.txt
        echo hand > %(w)s/hand/hand.txt
        echo task > %(w)s/task/task.txt
        chown -R 7000:7000 %(w)s/common %(w)s/hand %(w)s/task
    ''' % dict(w=WORK))


def roots():
    return [WORK + '/common', WORK + '/hand', WORK + '/task', LAB.root('a') + '/home/alice']


@scenario('stale thunks: a container that ran before the hooks existed leaves none after its stop')
def stale_thunks():
    # x runs with a share before any hook block exists: no post-stop hook is loaded in it
    r = LAB.share(src=WORK + '/common', container=LAB.name('x'), user='xavier', dest='/home/xavier/common')
    expect(not r.get('failed') and LAB.host_thunks('x'), 'share into x', r.get('msg'))
    r = LAB.hooks([LAB.name('x')])
    expect(r.get('changed'), 'hook block added while x runs', r.get('msg'))
    LAB.stop('x')
    stale = LAB.host_thunks('x')
    expect(stale, 'the stop left the thunks (no post-stop hook was loaded)')
    # the next start replaces them: the start-host hook releases its container's old thunks, then applies
    rc, dummy, out = LAB.start('x')
    expect(rc == 0, 'x starts', out)
    rc, out = LAB.attach('x', 'cat /home/xavier/common/common.txt', uid=1000)
    expect('common' in out, 'the share is live again', out)
    with open(LAB.log) as f:
        expect('stale thunks of an earlier run' in f.read(), 'the hook logged the replacement')
    # x again without hooks, and a share made while it runs: its stop leaves the thunks
    LAB.hooks([LAB.name('x')], state='absent')
    LAB.stop('x')
    rc, dummy, out = LAB.start('x')
    expect(rc == 0, 'x starts without hooks', out)
    r = LAB.share(src=WORK + '/common', container=LAB.name('x'), user='xavier', dest='/home/xavier/common')
    expect(not r.get('failed') and LAB.host_thunks('x'), 'share into x', r.get('msg'))
    LAB.stop('x')
    expect(LAB.host_thunks('x'), 'the stop without hooks left the thunks')
    rc, out = LAB.cli('list')
    expect(rc == 1 and 'stale' in out, 'list reports the stale thunk and exits 1 (rc=%d)' % rc, out)
    # any run releases them: here a check mode run reports it, a run on another container does it
    r = LAB.share(src=WORK + '/common', container=LAB.name('b'), user='bob', dest='/home/bob/other', check_mode=True)
    expect(r.get('changed') and r.get('released_thunks') and LAB.host_thunks('x'), 'check mode reports, keeps', r)
    r = LAB.share(src=WORK + '/common', container=LAB.name('b'), user='bob', dest='/home/bob/other')
    expect(r.get('released_thunks') and not LAB.host_thunks('x'), 'released by a run on another container', r)
    expect(not os.path.exists('%s/%s' % (LAB.thunks, LAB.name('x'))), 'and its thunks directory removed')
    LAB.share(container=LAB.name('b'), dest='/home/bob/other', state='absent')
    LAB.share(container=LAB.name('x'), dest='/home/xavier/common', state='absent')
    rc, dummy, out = LAB.start('x')
    expect(rc == 0, 'x starts without hooks', out)


@scenario('who owns a line: shares added by hand or by a task survive two role runs; the role prunes only its own')
def ownership():
    rc, out = LAB.cli(WORK + '/hand', LAB.name('b'), 'bob', '/home/bob/hand')
    expect(rc == 0, 'manual share', out)
    r = LAB.share(src=WORK + '/task', container=LAB.name('b'), user='bob', dest='/home/bob/task')
    expect(not r.get('failed'), 'task share', r.get('msg'))
    with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('b')), 'a') as f:
        f.write('%s bob /home/bob/legacy managed\n' % (WORK + '/task'))
    tab = sharetab('b')
    expect('/home/bob/hand managed=manual' in tab and '/home/bob/task managed=task' in tab, 'owners written', tab)
    for run in (1, 2):
        rc, counts, out = role(role_shares())
        expect(rc == 0 and counts.get('failed') == 0, 'role run %d' % run, out[-3000:])
        if run == 2:
            expect(counts.get('changed') == 0, 'the second role run changes nothing', out[-3000:])
    tab = sharetab('b')
    for dest in ('/home/bob/hand', '/home/bob/task', '/home/bob/legacy', '/home/bob/common managed=role'):
        expect(dest in tab, '%s is in the sharetab after two role runs' % dest, tab)
    rc, out = LAB.attach('b', 'cat /home/bob/hand/hand.txt /home/bob/task/task.txt', uid=1000)
    expect('hand' in out and 'task' in out, 'bob still sees both', out)
    # the hook brings back every line at start, whoever wrote it
    LAB.stop('b')
    rc, dummy, out = LAB.start('b')
    expect(rc == 0, 'b restarts', out)
    rc, out = LAB.attach('b', 'cat /home/bob/hand/hand.txt /home/bob/task/task.txt /home/bob/legacy/task.txt '
                              '/home/bob/common/common.txt', uid=1000)
    expect(out.split() == ['hand', 'task', 'task', 'common'], 'every share is back after the restart', out)
    # a share removed from the inventory goes; the others stay
    rc, counts, out = role(role_shares()[:1])
    expect(rc == 0, 'role run with one share less', out[-3000:])
    tab = sharetab('b')
    expect('/home/bob/common' not in tab and '/home/bob/hand' in tab and '/home/bob/task' in tab,
           'only the role\'s share was pruned', tab)
    expect(not mounted_at('b', '/home/bob/common') and mounted_at('b', '/home/bob/hand'), 'live too')
    rc, counts, out = role(role_shares())
    expect(rc == 0, 'role run with both shares', out[-3000:])


@scenario('failures you can see: list with the role\'s settings, --json, exit codes; a broken share in the LXC log')
def visible_failures():
    rc, out = sh(ROLE_PROG + ' list --json', check=False)
    rows = json.loads(out)
    expect(rc == 0 and rows and all(r['state'] == 'live' for r in rows), 'list with no flags: all live (rc=%d)' % rc,
           out)
    expect(set(r['owner'] for r in rows) >= set(['role', 'manual', 'task', 'legacy']), 'owners shown', out)
    rc, out = sh(ROLE_PROG + ' list nosuchcontainer', check=False)
    expect(rc == 2 and 'unknown' in out, 'an unknown container exits 2 (rc=%d)' % rc, out)
    LAB.attach('b', 'umount /home/bob/hand', check=True)
    rc, out = sh(ROLE_PROG + ' list', check=False)
    expect(rc == 1 and re.search(r'/home/bob/hand .* drifted .*unmounted: nothing of the share is mounted at '
                                 r'/home/bob/hand', out), 'a share unmounted by container root: drifted, exit 1 (rc=%d)'
           % rc, out)
    expect(not [l for l in out.splitlines() if l != l.rstrip()], 'no trailing spaces in the table')
    # a share that fails at start: in the container's LXC log at ERROR, and in the log file
    config = '%s/%s/config' % (LAB.lxcpath, LAB.name('b'))
    lxclog = WORK + '/b-lxc.log'
    with open(config, 'a') as f:
        f.write('lxc.log.file = %s\nlxc.log.level = WARN\n' % lxclog)
    with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('b')), 'a') as f:
        f.write('%s/gone bob /home/bob/gone\n' % WORK)
    LAB.stop('b')
    rc, dummy, out = LAB.start('b')
    expect(rc == 0, 'b starts despite the broken share', out)
    with open(lxclog) as f:
        text = f.read()
    expect(re.search(r'ERROR +lxcex-share - start-host .*/home/bob/gone.*does not exist', text),
           'the broken share is in the container\'s LXC log at ERROR', text[-2000:])
    with open(LAB.log) as f:
        expect('/home/bob/gone' in f.read(), 'and in the log file')
    rc, out = LAB.attach('b', 'cat /home/bob/hand/hand.txt', uid=1000)
    expect('hand' in out, 'the other shares came back at start', out)
    sh("sed -i '\\#/home/bob/gone$#d' %s/%s/sharetab" % (LAB.lxcpath, LAB.name('b')))


@scenario('destinations: a non-empty dest is reported (or refused); removal removes the directories it created')
def destinations():
    LAB.attach('b', 'mkdir -p /home/bob/notes && echo todo > /home/bob/notes/todo.txt && chown -R 1000:100 /home/bob/notes',
               check=True)
    r = LAB.share(src=WORK + '/common', container=LAB.name('b'), user='bob', dest='/home/bob/notes', check_mode=True)
    expect(r.get('covered') == 1 and 'not empty' in r['_warnings'], 'check mode tells', r)
    r = LAB.share(src=WORK + '/common', container=LAB.name('b'), user='bob', dest='/home/bob/notes',
                  nonempty_dest='refuse')
    expect(r.get('failed') and 'not empty (1 entries)' in r.get('msg', ''), 'refused on request', r.get('msg'))
    expect(not mounted_at('b', '/home/bob/notes'), 'nothing mounted')
    r = LAB.share(src=WORK + '/common', container=LAB.name('b'), user='bob', dest='/home/bob/notes')
    expect(r.get('covered') == 1 and 'the share hides 1 entries' in r['_warnings'], 'a warning by default', r)
    r = LAB.share(container=LAB.name('b'), dest='/home/bob/notes', state='absent')
    rc, out = LAB.attach('b', 'cat /home/bob/notes/todo.txt')
    expect('todo' in out, 'the covered file is back after removal', out)
    # directories the share created go with it; those that were there stay
    r = LAB.share(src=WORK + '/common', container=LAB.name('b'), user='bob', dest='/home/bob/made/for/it')
    expect(not r.get('failed'), 'share creating directories', r.get('msg'))
    r = LAB.share(container=LAB.name('b'), dest='/home/bob/made/for/it', state='absent')
    rc, out = LAB.attach('b', 'ls -d /home/bob/made 2>&1; ls -d /home/bob/notes')
    expect('No such file' in out and '/home/bob/notes' in out, 'created directories removed, others kept', out)


@scenario('a missing hook program or interpreter never stops a start (unless strict)')
def missing_program():
    saved = ROLE_PROG + '.saved'
    os.rename(ROLE_PROG, saved)
    try:
        LAB.stop('a')
        rc, dummy, out = LAB.start('a')
        expect(rc == 0, 'a starts with the hook program missing', out)
        with open(LAB.log) as f:
            expect('cannot run (exit 127)' in f.read(), 'the hook line logged it')
        # a program whose interpreter is gone
        with open(ROLE_PROG, 'w') as f:
            f.write('#!/nonexistent/python3\n')
        os.chmod(ROLE_PROG, 0o755)
        LAB.stop('a')
        rc, dummy, out = LAB.start('a')
        expect(rc == 0, 'a starts with the interpreter missing', out)
        # strict: the start is refused
        LAB.hooks([LAB.name('a')], program=ROLE_PROG, strict=True)
        LAB.stop('a')
        rc, dummy, out = LAB.start('a', timeout=30)
        expect(rc != 0, 'with strict the start is refused', out)
    finally:
        os.replace(saved, ROLE_PROG)
    rc, counts, out = role(role_shares())
    expect(rc == 0, 'the role puts the hook back', out[-3000:])
    rc, dummy, out = LAB.start('a')
    expect(rc == 0, 'a starts', out)
    rc, out = LAB.attach('a', 'cat /home/alice/common/common.txt', uid=1000)
    expect('common' in out, 'with its share', out)


@scenario('uninstall: no hook line, thunk or program left; hand-made lines and data stay; containers start')
def uninstall():
    rc, counts, out = role(role_shares(), lxcex_share_state='absent')
    expect(rc == 0 and counts.get('failed') == 0, 'role with lxcex_share_state=absent', out[-3000:])
    for key in ('a', 'b', 'x'):
        with open('%s/%s/config' % (LAB.lxcpath, LAB.name(key))) as f:
            text = f.read()
        expect('lxc.hook' not in text, 'no hook line in %s' % key, text)
    expect(not LAB.host_thunks(), 'no thunk left', LAB.host_thunks())
    rc, out = sh('findmnt -n %s' % LAB.thunks, check=False)
    expect(rc != 0, 'the thunks tmpfs is unmounted', out)
    expect(not os.path.exists(ROLE_PROG) and not os.path.exists(ROLE_CONF), 'program and settings removed')
    tab = sharetab('b')
    expect('/home/bob/hand' in tab and '/home/bob/task' in tab and 'managed=role' not in tab,
           'hand-made lines stay, the role\'s are gone', tab)
    rc, counts, out = role(role_shares(), lxcex_share_state='absent')
    expect(rc == 0 and counts.get('changed') == 0, 'a second uninstall changes nothing', out[-3000:])
    for key in ('a', 'b'):
        LAB.stop(key)
        rc, dummy, out = LAB.start(key)
        expect(rc == 0, '%s starts after the uninstall' % key, out)


def teardown():
    removals = []
    for key in ('a', 'b', 'x'):
        for line in sharetab(key).splitlines():
            if line.strip() and not line.startswith('#'):
                removals.append(dict(container=LAB.name(key), dest=line.split()[2], state='absent'))
    if removals:
        LAB.share(shares=removals)


SCENARIOS = [stale_thunks, ownership, visible_failures, destinations, missing_program, uninstall]

if __name__ == '__main__':
    sys.exit(LAB.run(setup, SCENARIOS, roots, teardown=teardown))
