# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lxc_share_info and lxcex-share list on real containers in every state, and what the modules require.

live (running container), recorded (stopped container), broken (unmounted
inside the container; a source that is gone), stale (a thunk left by a stop
that ran no post-stop hook), unknown (a container named that does not
exist); the module and the command give the same rows (one reader); nothing
changes.  Then: module_defaults of the lxc action group and the aliases
(name, lxc_path); a clean failure without root and on Python 3.8; every key
the modules return is documented.  Run by runme.sh; prints 'N passed, M failed'.
"""

from __future__ import absolute_import, division, print_function

import glob
import json
import os
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lxcex_harness'))
from harness import PY, Lab, Skipped, expect, scenario, sh  # noqa: E402  pylint: disable=wrong-import-position

LAB = Lab('lxcex-info', [('a', 'alice'), ('b', 'bob'), ('c', 'carol'), ('d', 'dave')], 560000000)
WORK = LAB.work
# The program installed by lxc_share_hooks (install=true) in the lab, runnable by any user and any Python.
INST = dict(program=WORK + '/inst/bin/lxcex-share', code_dir=WORK + '/inst/lib/lxcex-share',
            host_config=WORK + '/inst/lxcex-share.conf', python='/usr/bin/python3')
STANDARD_KEYS = {'changed', 'failed', 'msg', 'invocation', 'diff', 'warnings', 'deprecations', 'skipped',
                 'ansible_facts', '_warnings', 'exception', 'rc', 'stdout', 'stderr'}


def src(name):
    return '%s/src/%s' % (WORK, name)


def setup():
    # d runs from before any hook block: its stop leaves stale thunks.
    LAB.setup(hooks=False, started=('a', 'c', 'd'))
    sh('mkdir -p %s && for s in live rec brk gone dd cov cpy unm; do mkdir -p %s/$s && echo $s > %s/$s/$s.txt; done && '
       'chown -R 7000:7000 %s' % (WORK + '/src', WORK + '/src', WORK + '/src', WORK + '/src'))
    r = LAB.hooks([LAB.name(k) for k in 'abc'])
    expect(not r.get('failed'), 'hooks', r.get('msg'))
    for key, user, name in (('a', 'alice', 'live'), ('b', 'bob', 'rec'), ('c', 'carol', 'brk'),
                            ('c', 'carol', 'gone'), ('d', 'dave', 'dd')):
        r = LAB.share(src=src(name), container=LAB.name(key), user=user, dest='/home/%s/%s' % (user, name))
        expect(not r.get('failed'), 'share %s' % name, r.get('msg'))
    rc, out = LAB.attach('c', 'umount /home/carol/brk')            # drifted: unmounted by container root
    expect(rc == 0, 'umount inside c', out)
    sh('mv %s %s.moved' % (src('gone'), src('gone')))              # broken: the source is gone
    # a hand-written line (no managed=): made by a task, then its owner taken off the line
    r = LAB.share(src=src('live'), container=LAB.name('a'), user='alice', dest='/home/alice/byhand',
                  readonly=True, owner='hand-test')
    expect(not r.get('failed'), 'hand line applied live', r.get('msg'))
    LAB.stop('d')  # stale: no post-stop hook was loaded in d (and no module runs after this, which would release it)
    with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a'))) as f:
        text = f.read()
    with open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a')), 'w') as f:
        f.write(text.replace('managed=hand-test,', '').replace(',managed=hand-test', '')
                .replace(' managed=hand-test', ''))


def roots():
    return [WORK + '/src']


def host_state():
    """What the reader must not change: the host's lxcex mounts, the sharetabs, the records."""
    with open('/proc/self/mountinfo') as f:
        mounts = sorted(l.split()[4] for l in f if WORK in l)
    tabs = {}
    for path in sorted(glob.glob(LAB.lxcpath + '/*/sharetab')):
        with open(path) as f:
            tabs[path] = f.read()
    return mounts, tabs


def by_dest(rows):
    return dict(((r['container'], r['dest']), r) for r in rows)


def documented(module):
    """The top-level keys of RETURN (and of contains of list/dict returns, as name.key) of a module."""
    path = os.path.join(LAB.collections, 'ansible_collections/lxcex/share/plugins/modules/%s.py' % module)
    with open(path) as f:
        text = f.read()
    ret = yaml.safe_load(text.split("RETURN = r'''", 1)[1].split("'''", 1)[0])
    return ret


@scenario('lxc_share_info: live, recorded, broken, stale and unknown, on real containers; changes nothing')
def info_states():
    before = host_state()
    names = [LAB.name(k) for k in 'abcd'] + ['nosuch-container']
    r = LAB.module('lxc_share_info', {'containers': names, 'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks})
    expect(not r.get('failed') and r.get('changed') is False, 'info run', r.get('msg'))
    rows = by_dest(r['shares'])
    a, b, c, d = (LAB.name(k) for k in 'abcd')
    base_a = LAB.cts['a']['base']
    live = rows[(a, '/home/alice/live')]
    expect(live['state'] == 'live' and live['idmap'] == ['u:7000:%d:1' % (base_a + 1000), 'g:7000:%d:1' % (base_a + 100)]
           and live['owner'] == 'task' and live['readonly'] is False and live['src'] == src('live')
           and live['thunk'].startswith(LAB.thunks + '/'), 'live share, idmap read back', live)
    hand = rows[(a, '/home/alice/byhand')]
    expect(hand['state'] == 'live' and hand['owner'] == 'hand' and hand['readonly'] is True, 'hand line', hand)
    expect(rows[(b, '/home/bob/rec')]['state'] == 'recorded', 'stopped container', rows[(b, '/home/bob/rec')])
    brk = rows[(c, '/home/carol/brk')]
    expect(brk['state'] == 'drifted' and 'unmounted: nothing of the share is mounted at /home/carol/brk'
           in brk['detail'], 'unmounted inside', brk)
    gone = rows[(c, '/home/carol/gone')]
    expect(gone['state'] == 'broken' and 'gone' in gone['detail'], 'source gone, named', gone)
    stale = [x for x in r['shares'] if x['state'] == 'stale']
    expect(len(stale) == 1 and stale[0]['container'] == d and '/home-dave-dd' in stale[0]['thunk'], 'stale', stale)
    expect(rows[(d, '/home/dave/dd')]['state'] == 'recorded', 'd is stopped', rows[(d, '/home/dave/dd')])
    unknown = rows[('nosuch-container', None)]
    expect(unknown['state'] == 'unknown', 'unknown container', unknown)
    expect(r['summary'] == {'live': 2, 'recorded': 2, 'drifted': 1, 'broken': 1, 'stale': 1, 'unknown': 1}, 'summary',
           r['summary'])
    keys = set(documented('lxc_share_info')['shares']['contains'])
    for row in r['shares']:
        expect(set(row) == keys, 'a row has exactly the documented keys', set(row) ^ keys)
    check = LAB.module('lxc_share_info', {'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks}, check_mode=True)
    expect(check['shares'] == [x for x in r['shares'] if x['container'] != 'nosuch-container'],
           'check mode and every container: the same rows', check.get('shares'))
    failing = LAB.module('lxc_share_info', {'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks,
                                            'fail_on_broken': True})
    expect(failing.get('failed') and '/home/carol/gone' in failing['msg'] and failing.get('shares'),
           'fail_on_broken fails naming the share, rows returned', failing.get('msg'))
    expect(host_state() == before, 'nothing changed on the host', before, host_state())


@scenario('lxcex-share list: the same rows (one reader), JSON, a table without trailing spaces, exit codes')
def list_command():
    r = LAB.module('lxc_share_info', {'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks})
    rc, out = LAB.cli('list', '--json')
    expect(rc == 1, 'list exits 1 with a broken share and a stale thunk (rc=%d)' % rc, out)
    expect(json.loads(out) == r['shares'], 'list --json gives the rows of lxc_share_info', out[:1500])
    rc, out = LAB.cli('list')
    lines = out.splitlines()
    expect(lines[0].split() == ['CONTAINER', 'DEST', 'SRC', 'USER', 'GROUP', 'RO', 'OWNER', 'STATE', 'MEMBERS',
                                'DETAIL'],
           'table header', lines[:1])
    expect(not [l for l in lines if l != l.rstrip()], 'no trailing spaces', lines)
    expect(len(lines) == 1 + len(r['shares']), 'one line per row', lines)
    rc, out = LAB.cli('list', 'nosuch-container')
    expect(rc == 2 and 'unknown' in out, 'an unknown container: exit 2 (rc=%d)' % rc, out)
    rc, out = LAB.cli('list', LAB.name('a'))
    expect(rc == 0, 'only live shares: exit 0 (rc=%d)' % rc, out)
    rc, out = LAB.cli('--version')
    expect(rc == 0 and out.startswith('lxcex-share '), '--version', out)


@scenario('module_defaults of the action group lxcex.share.lxc, with the aliases name and lxc_path')
def group_defaults():
    play = WORK + '/group.yml'
    with open(play, 'w') as f:
        f.write('''- hosts: localhost
  gather_facts: false
  module_defaults:
    group/lxcex.share.lxc:
      lxc_path: %(lxcpath)s
      thunks_dir: %(thunks)s
  tasks:
    - name: A share, the container by its alias
      lxcex.share.lxc_share:
        name: %(a)s
        src: %(src)s
        user: alice
        dest: /home/alice/grouped
      register: shared
    - name: Read it back
      lxcex.share.lxc_share_info:
        name: %(a)s
      register: info
    - name: Remove it
      lxcex.share.lxc_share:
        name: %(a)s
        dest: /home/alice/grouped
        state: absent
    - name: Hooks take the same defaults
      lxcex.share.lxc_share_hooks:
        names: [%(a)s]
      check_mode: true
    - ansible.builtin.assert:
        that:
          - shared is changed
          - info.shares | selectattr('dest', 'equalto', '/home/alice/grouped') | map(attribute='state') | list
            == ['live']
''' % dict(lxcpath=LAB.lxcpath, thunks=LAB.thunks, a=LAB.name('a'), src=src('live')))
    rc, out = sh('ANSIBLE_COLLECTIONS_PATH=%s ansible-playbook -i localhost, -c local -e ansible_python_interpreter=%s '
                 '%s' % (LAB.collections, PY, play), check=False)
    expect(rc == 0 and 'failed=0' in out, 'the play with module_defaults', out[-3000:])
    mounted = [l.split()[4] for l in LAB.mounts_in('a')]
    expect('/home/alice/live' in mounted and '/home/alice/grouped' not in mounted,
           'removing a share of the same source as another took only its own mount', mounted)


@scenario('without root: the modules and the command say that root is needed')
def not_root():
    r = LAB.hooks([LAB.name('a')], install=True, **INST)
    expect(not r.get('failed'), 'install the program for any user', r.get('msg'))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=LAB.collections, ANSIBLE_NOCOLOR='1')
    proc = subprocess.run(['ansible', 'localhost', '-i', 'localhost,', '-c', 'local', '-m', 'lxcex.share.lxc_share_info',
                           '-a', json.dumps({'lxcpath': LAB.lxcpath}), '--become', '--become-user', 'nobody',
                           '-e', 'ansible_pipelining=true', '-e', 'ansible_python_interpreter=/usr/bin/python3'],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, check=False)
    out = proc.stdout.decode('utf-8', 'replace')
    expect(proc.returncode != 0 and 'needs root on the host' in out and 'uid 65534' in out,
           'the module says root is needed', out[-2000:])
    rc, out = sh('%s list' % INST['program'], user=65534, check=False)
    expect(rc == 1 and 'needs root on the host' in out and 'Traceback' not in out, 'the command too (rc=%d)' % rc,
           out)


def old_python():
    found = sorted(glob.glob('/root/.pyenv/versions/3.8*/bin/python3.8') + glob.glob('/usr/bin/python3.8'))
    return found[0] if found else None


@scenario('Python 3.8 on the host: a clean failure naming the version, nothing installed, hooks never block')
def python_38():
    py38 = old_python()
    if py38 is None:
        raise Skipped('no Python 3.8 on this machine (pyenv versions 3.8*, /usr/bin/python3.8)')
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=LAB.collections, ANSIBLE_NOCOLOR='1')
    proc = subprocess.run(['ansible', 'localhost', '-i', 'localhost,', '-c', 'local', '-m', 'lxcex.share.lxc_share',
                           '-a', json.dumps({'container': LAB.name('a'), 'src': src('live'), 'user': 'alice',
                                             'dest': '/home/alice/py38', 'lxcpath': LAB.lxcpath,
                                             'thunks_dir': LAB.thunks}),
                           '-e', 'ansible_python_interpreter=%s' % py38],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, check=False)
    out = proc.stdout.decode('utf-8', 'replace')
    expect(proc.returncode != 0 and 'needs Python 3.9 or newer' in out and 'Python 3.8' in out
           and 'Traceback' not in out, 'the module fails cleanly on 3.8', out[-2000:])
    expect('/home/alice/py38' not in open('%s/%s/sharetab' % (LAB.lxcpath, LAB.name('a'))).read(), 'no line')
    other = {'program': WORK + '/old/bin/lxcex-share', 'code_dir': WORK + '/old/lib/lxcex-share',
             'host_config': WORK + '/old/lxcex-share.conf', 'python': py38}
    r = LAB.hooks([LAB.name('a')], install=True, **other)
    expect(r.get('failed') and 'needs Python 3.9' in r['msg'] and not os.path.exists(WORK + '/old'),
           'installing a hook program for 3.8 fails and leaves nothing', r.get('msg'))
    rc, out = sh('%s %s list' % (py38, INST['program']), check=False)
    expect(rc == 1 and 'needs Python 3.9' in out and 'Traceback' not in out, 'the command on 3.8', out)
    rc, out = sh('%s %s hook' % (py38, INST['program']), check=False)
    expect(rc == 0 and 'needs Python 3.9' in out, 'the hook on 3.8 lets the container start', out)


@scenario('every key the modules return is documented in RETURN')
def returns_documented():
    results = {
        'lxc_share': [LAB.share(src=src('live'), container=LAB.name('a'), user='alice', dest='/home/alice/doc'),
                      LAB.share(container=LAB.name('a'), dest='/home/alice/doc', state='absent'),
                      LAB.share(shares=[{'src': src('live'), 'container': LAB.name('a'), 'user': 'alice',
                                         'dest': '/home/alice/doc2'}],
                                hooks=dict(install=True, **dict((k, v) for k, v in INST.items())))],
        'lxc_share_hooks': [LAB.hooks([LAB.name('a')], install=True, **INST)],
        'lxc_share_info': [LAB.module('lxc_share_info', {'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks})],
        'idmapped_thunk': [LAB.module('idmapped_thunk', {'path': WORK + '/thunk-doc', 'src': src('live'),
                                                         'idmap': ['b:7000:1007000:1']}),
                           LAB.module('idmapped_thunk', {'path': WORK + '/thunk-doc', 'state': 'absent'})],
    }
    LAB.share(container=LAB.name('a'), dest='/home/alice/doc2', state='absent')
    for module, runs in results.items():
        doc = documented(module)
        for r in runs:
            expect(not r.get('failed'), '%s ran' % module, r.get('msg'))
            extra = set(r) - set(doc) - STANDARD_KEYS
            expect(not extra, '%s returns keys its RETURN does not document: %s' % (module, sorted(extra)), r)
            for key in ('shares', 'results'):
                if key in r and key in doc and doc[key].get('contains'):
                    for item in r[key]:
                        more = set(item) - set(doc[key]['contains']) - STANDARD_KEYS
                        expect(not more, '%s.%s items return undocumented keys %s' % (module, key, sorted(more)))
    thunk = results['idmapped_thunk'][0]
    expect('mode' not in thunk and 'uid' not in thunk and thunk.get('state') is None,
           'idmapped_thunk does not leak the file attributes of path', thunk)


def registered(module, args, check_mode=False, diff=False):
    """The registered result of one task (ad-hoc output drops the diff)."""
    out = WORK + '/registered.json'
    with open(WORK + '/args.json', 'w') as f:
        json.dump(args, f)
    with open(WORK + '/registered.yml', 'w') as f:
        f.write('- hosts: localhost\n  gather_facts: false\n  tasks:\n'
                '    - lxcex.share.%s: "{{ lookup(\'file\', \'%s/args.json\') | from_json }}"\n'
                '      register: r\n      ignore_errors: true\n'
                '    - ansible.builtin.copy: {content: "{{ r | to_json }}", dest: %s}\n'
                '      check_mode: false\n' % (module, WORK, out))
    rc, text = sh('ANSIBLE_COLLECTIONS_PATH=%s ansible-playbook -i localhost, -c local -e ansible_python_interpreter=%s '
                  '%s %s %s' % (LAB.collections, PY, '--check' if check_mode else '', '--diff' if diff else '',
                                WORK + '/registered.yml'), check=False)
    expect(os.path.exists(out), 'no result', text[-2000:])
    with open(out) as f:
        result = json.load(f)
    os.unlink(out)
    return result


@scenario('the batch --diff: one before/after per changed share, under its own container:dest')
def batch_diff():
    a = LAB.name('a')
    shares = [{'src': src('live'), 'container': a, 'user': 'alice', 'dest': '/home/alice/live', 'readonly': True},
              {'src': src('rec'), 'container': a, 'user': 'alice', 'dest': '/home/alice/added'},
              {'src': src('live'), 'container': a, 'user': 'alice', 'dest': '/home/alice/same'}]
    r = LAB.share(**shares[2])
    expect(not r.get('failed'), 'the unchanged share', r.get('msg'))
    for check_mode in (True, False):
        r = registered('lxc_share', {'shares': shares, 'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks},
                       check_mode=check_mode, diff=True)
        expect(not r.get('failed'), 'batch', r.get('msg'))
        diffs = dict((d['before_header'], d) for d in r['diff'])
        expect(sorted(diffs) == ['%s:/home/alice/added' % a, '%s:/home/alice/live' % a],
               'one entry per changed share, none for the unchanged one', sorted(diffs))
        added, changed = diffs['%s:/home/alice/added' % a], diffs['%s:/home/alice/live' % a]
        expect(added['before']['sharetab'] is None and '/home/alice/added' in added['after']['sharetab']
               and src('rec') in added['after']['sharetab'], 'the added share under its own header', added)
        expect(changed['before']['live'].get('readonly') is False and changed['after']['live'].get('readonly') is True
               and '/home/alice/live' in changed['after']['sharetab'] and src('rec') not in str(changed),
               'the changed share under its own header, nothing of the other', changed)
    LAB.share(shares=[dict(shares[0], readonly=False), dict(shares[1], state='absent'),
                      dict(shares[2], state='absent')])


@scenario('drifted: covered, copied and unmounted by container root; said exactly, repaired by the next run, then live')
def drift():
    a = LAB.name('a')
    shares = [{'src': src(n), 'container': a, 'user': 'alice', 'dest': '/home/alice/' + n} for n in ('cov', 'cpy', 'unm')]
    r = LAB.share(shares=shares)
    expect(not r.get('failed') and not [x for x in r['results'] if 'drift' in x or 'repaired' in x],
           'three new shares: nothing drifted, nothing repaired', r.get('results'))
    rc, out = LAB.attach('a', 'mount -t tmpfs drifttmp /home/alice/cov && mkdir -p /tmp/copy && '
                              'mount -o bind /home/alice/cpy /tmp/copy && umount /home/alice/unm')
    expect(rc == 0, 'container root covers, copies and unmounts', out)

    def rows():
        got = LAB.module('lxc_share_info', {'containers': [a], 'lxcpath': LAB.lxcpath, 'thunks_dir': LAB.thunks})
        return dict((x['dest'], x) for x in got['shares'])
    now = rows()
    for dest, detail in (('/home/alice/cov', 'covered by a tmpfs mount (drifttmp) at /home/alice/cov'),
                         ('/home/alice/cpy', 'copied to /tmp/copy'),
                         ('/home/alice/unm', 'unmounted: nothing of the share is mounted at /home/alice/unm')):
        expect(now[dest]['state'] == 'drifted' and detail in now[dest]['detail'], '%s drifted: %s' % (dest, detail),
               now[dest])
    expect(now['/home/alice/live']['state'] == 'live', 'the other shares stay live', now['/home/alice/live'])
    rc, out = LAB.cli('list', a)
    expect(rc == 1 and 'drifted' in out, 'list exits 1 (rc=%d)' % rc, out)
    check = LAB.share(shares=shares, check_mode=True)
    expect(check.get('changed') and [x.get('repaired') for x in check['results']] == [
        ['covered by a tmpfs mount (drifttmp) at /home/alice/cov'], ['copied to /tmp/copy'],
        ['unmounted: nothing of the share is mounted at /home/alice/unm']], 'check mode says what it would repair',
        check.get('results'))
    r = LAB.share(shares=shares)
    expect(not r.get('failed') and r.get('changed') and all(x.get('repaired') for x in r['results']),
           'the next run repairs each, saying what it did', r.get('results'))
    now = rows()
    expect(all(now['/home/alice/' + n]['state'] == 'live' for n in ('cov', 'cpy', 'unm')), 'then live', now)
    points = [l.split()[4] for l in LAB.mounts_in('a')]
    expect('/tmp/copy' not in points and points.count('/home/alice/cov') == 1 and '/home/alice/unm' in points,
           'the copy and the cover gone, the share back', points)
    again = LAB.share(shares=shares)
    expect(not again.get('failed') and not again.get('changed'), 'again: nothing to do', again.get('results'))
    # a mount of container root at dest before the share is never covered
    r = LAB.share(container=a, dest='/home/alice/cov', state='absent')
    expect(not r.get('failed'), 'removed', r.get('msg'))
    rc, out = LAB.attach('a', 'mkdir -p /home/alice/cov && mount -t tmpfs rootown /home/alice/cov')
    r = LAB.share(**shares[0])
    expect(rc == 0 and r.get('failed') and 'refusing to cover it' in r.get('msg', ''),
           'root\'s own mount is not covered', r, out, LAB.mounts_in('a'))
    LAB.attach('a', 'umount /home/alice/cov && rmdir /home/alice/cov')
    LAB.share(container=a, dest='/home/alice/cpy', state='absent')
    LAB.share(container=a, dest='/home/alice/unm', state='absent')


def teardown():
    LAB.remove_all_shares()
    LAB.hooks([LAB.name(k) for k in 'abc'], state='absent', install=True, **INST)


SCENARIOS = [info_states, list_command, group_defaults, not_root, python_38, returns_documented, batch_diff, drift]

if __name__ == '__main__':
    sys.exit(LAB.run(setup, SCENARIOS, roots, teardown=teardown))
