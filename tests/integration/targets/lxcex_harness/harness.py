# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lab of real unprivileged LXC containers for scenario tests of lxcex.share.

A Lab owns one work directory below /var/tmp with its own lxcpath, thunks
directory, hook program, log and host settings, and busybox containers with
id ranges of their own.  Scenarios drive the real entry points: the modules
(through ansible), the hook program (started by lxc-start) and the manual
command.  ``Lab.run`` runs the scenarios, compares checksums of the sources
before and after, always removes everything the lab made (refusing to delete
anything while a mount is left below its directory), and prints
'N passed, M failed'.
"""

from __future__ import absolute_import, division, print_function

import glob
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
import traceback

PY = sys.executable
NOBODY = 65534
HERE = os.path.dirname(os.path.abspath(__file__))


def settings():
    """What scripts/test.sh tells the targets (ansible-test passes them no variable of ours): settings.json
    beside this file, then the environment (LXCEX_SHARED, LXCEX_OPENSSH, LXCEX_BINDFS, CI, LXCEX_SCENARIOS)."""
    out = {}
    try:
        with open(os.path.join(HERE, 'settings.json')) as f:
            out.update(json.load(f))
    except (IOError, ValueError):
        pass
    for key, var in (('shared', 'LXCEX_SHARED'), ('openssh', 'LXCEX_OPENSSH'), ('bindfs', 'LXCEX_BINDFS'),
                     ('scenarios', 'LXCEX_SCENARIOS')):
        if os.environ.get(var):
            out[key] = os.environ[var]
    if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'):
        out['ci'] = True
    return out


SETTINGS = settings()
IN_CI = bool(SETTINGS.get('ci'))


def detach_below_cmd(points):
    """Shell: lazily detach every mount at or below each of points, deepest first.  Meant for a private mount
    namespace of a test's own (never this machine's), so that it starts from a clean view there: the mounts
    of a host that already uses lxcex.share (its /mnt/share-thunks) are not in its table at all."""
    pattern = '|'.join(re.escape(p.rstrip('/')) for p in points)
    return ("awk '{print $5}' /proc/self/mountinfo | grep -E '^(%s)(/|$)' | sort -r | "
            "while read -r m; do umount -l \"$(printf '%%b' \"$m\")\" 2>/dev/null || true; done" % pattern)


def forget_records(work, itself=False):
    """Remove the records under /run/lxcex-share of a test's own mounts (below work, or work itself too), all gone
    by now."""
    for path in glob.glob('/run/lxcex-share/mounts/*.json'):
        try:
            with open(path) as f:
                group = json.load(f).get('group') or ''
        except (IOError, ValueError, AttributeError):
            continue
        if group.startswith(work.rstrip('/') + '/') or (itself and group == work.rstrip('/')):
            os.unlink(path)


class Skipped(Exception):
    """A scenario that cannot run here, and says why: counted as skipped (in CI, where it must run: failed)."""


def wanted_scenarios():
    """The scenario titles asked for (LXCEX_SCENARIOS, comma-separated parts of titles); empty: all of them.

    Never taken from the command line: ansible-test passes its own arguments (-v) to runme.sh.
    """
    return [w for w in (SETTINGS.get('scenarios') or '').split(',') if w.strip()]


def log(msg):
    sys.stdout.write(msg + '\n')
    sys.stdout.flush()


def expect(cond, msg, *detail):
    if not cond:
        raise AssertionError(msg + ''.join('\n  %s' % (d,) for d in detail))


def sh(cmd, check=True, timeout=300, user=None, env=None):
    """Run a shell command; return (rc, output)."""
    if user is not None:
        cmd = 'setpriv --reuid %d --regid %d --clear-groups sh -c %s' % (user, user, shlex.quote(cmd))
    proc = subprocess.run(['bash', '-c', cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                          check=False, env=env)
    out = proc.stdout.decode('utf-8', 'replace')
    if check and proc.returncode != 0:
        raise AssertionError('command failed (rc=%d): %s\n%s' % (proc.returncode, cmd, out[-3000:]))
    return proc.returncode, out


def titled(title, uid=None):
    """pids of the processes whose command line is title (and whose real uid is uid, when given)."""
    out = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as f:
                cmdline = f.read().rstrip(b'\0').decode('utf-8', 'replace')
            owner = os.stat('/proc/%s' % entry).st_uid
        except OSError:
            continue
        if cmdline == title and (uid is None or owner == uid):
            out.append(int(entry))
    return out


def run_scenario(results, title, func):
    """Run func as the scenario title; a failure (an assertion, or an attack that succeeded) fails only it."""
    log('\n=== %s' % title)
    t0 = time.monotonic()
    try:
        func()
    except Skipped as e:
        if IN_CI:
            results.append((title, False, 'skipped in CI, where it must run: %s' % e))
            log('FAILED: skipped in CI, where it must run: %s' % e)
        else:
            results.append((title, None, str(e)))
            log('SKIPPED: %s' % e)
        return
    except Exception as e:  # a scenario that failed, or an attack that succeeded
        results.append((title, False, str(e)))
        log('FAILED: %s\n%s' % (e, traceback.format_exc()[-1500:]))
        return
    results.append((title, True, ''))
    log('passed (%.1f s)' % (time.monotonic() - t0))


def report(results, ok, tail='', scenarios=None):
    """Print each (title, passed, detail) and 'N passed, M failed, K skipped'; the exit status.

    passed is True, False or None (skipped).  A failed setup counts as a failure, and so does a run in which
    no scenario ran (scenarios: how many of the results are scenarios; default all of them).
    """
    failed = [r for r in results if r[1] is False]
    skipped = [r for r in results if r[1] is None]
    ran = len(results) if scenarios is None else scenarios
    none_ran = ran == 0
    if none_ran:
        log('FAILED: no scenario ran (LXCEX_SCENARIOS=%r)' % SETTINGS.get('scenarios', ''))
    log('\n'.join('%s: %s %s' % ({True: 'passed', False: 'FAILED', None: 'SKIPPED'}[r[1]], r[0], r[2][:300])
                  for r in results))
    log('%d passed, %d failed, %d skipped%s' % (len(results) - len(failed) - len(skipped),
                                                len(failed) + (0 if ok else 1) + (1 if none_ran else 0),
                                                len(skipped), tail))
    return 0 if ok and not failed and not none_ran else 1


def run_all(setup, scenarios, after, cleanup, results=None, tail=None):
    """Set up, run the scenarios [(title, func)] that LXCEX_SCENARIOS names (default all), add what after() returns
    ([(title, passed, detail)]), clean up even after a failure; report (the exit status)."""
    results = [] if results is None else results
    ok, ran = True, 0
    wanted = wanted_scenarios()
    try:
        setup()
        for title, func in scenarios:
            if not wanted or any(w.strip() in title for w in wanted):
                run_scenario(results, title, func)
                ran += 1
        results.extend(after())
    except Exception:
        log('setup or teardown failed:\n' + traceback.format_exc())
        ok = False
    finally:
        if not cleanup():
            ok = False
    return report(results, ok, tail() if tail else '', scenarios=ran)


def pythons(versions):
    """{version: path} of the Pythons of those versions ('3.9', ...) on this machine: PATH, then pyenv's."""
    roots = [os.environ.get('PYENV_ROOT', ''), os.path.expanduser('~/.pyenv'), '/root/.pyenv']
    try:
        roots.insert(0, subprocess.check_output(['pyenv', 'root'], stderr=subprocess.DEVNULL).decode().strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    found = {}
    for v in versions:
        candidates = ['/usr/bin/python%s' % v]
        for root in [r for r in roots if r]:
            candidates += sorted(glob.glob('%s/versions/%s.*/bin/python%s' % (root, v, v)), reverse=True)
        for c in candidates:
            if os.access(c, os.X_OK):
                found[v] = c
                break
    return found


def scenario(title):
    """Mark a function of a lab as a scenario; a failed assertion fails only that scenario."""
    def wrap(func):
        func.title = title
        return func
    return wrap


class Lab(object):
    def __init__(self, prefix, users, base_region):
        self.t = random.randint(100000, 999999)
        self.work = '/var/tmp/%s-%d' % (prefix, self.t)
        self.lxcpath = self.work + '/lxc'
        self.thunks = self.work + '/thunks'
        self.prog = self.work + '/bin/lxcex-share'
        self.log = self.work + '/lxcex-share.log'
        self.config = self.work + '/lxcex-share.conf'
        # ansible-test sets ANSIBLE_COLLECTIONS_PATH (it runs a copy of the target); run by hand from a
        # checkout, the collections directory is six levels above this file.
        here = os.path.dirname(os.path.abspath(__file__))
        self.collections = (os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(':')[0]
                            or os.path.abspath(os.path.join(here, '..', '..', '..', '..', '..', '..')))
        base = base_region + (self.t % 400) * 655360
        self.cts = {}
        for i, (key, user) in enumerate(users):
            self.cts[key] = {'name': '%s%d%s' % (prefix.split('-')[-1][:4], self.t, key), 'base': base + i * 65536,
                             'user': user}
        self.results = []
        self.background = []

    def key(self, key_or_name):
        if key_or_name in self.cts:
            return key_or_name
        return [k for k, ct in self.cts.items() if ct['name'] == key_or_name][0]

    def name(self, key):
        return self.cts[self.key(key)]['name']

    def root(self, key):
        ct = self.cts[self.key(key)]
        return ct.get('root') or '%s/%s/rootfs' % (self.lxcpath, ct['name'])

    # -- entry points -------------------------------------------------------

    def module(self, name, args, check_mode=False, diff=False, python=None):
        """Run lxcex.share.NAME with args through ansible (on python, default ours); return the task result.

        'failed' is set when it failed.
        """
        env = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT='json', ANSIBLE_NOCOLOR='1',
                   ANSIBLE_COLLECTIONS_PATH=self.collections)
        cmd = ['ansible', 'localhost', '-i', 'localhost,', '-c', 'local', '-e',
               'ansible_python_interpreter=%s' % (python or PY), '-m', 'lxcex.share.%s' % name,
               '-a', json.dumps(args)]
        if check_mode:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False,
                              timeout=int(os.environ.get('ATTACK_MODULE_TIMEOUT', '600')))
        text = proc.stdout.decode('utf-8', 'replace')
        try:
            head, dummy, body = text.partition(' => ')
            result = json.loads(body[:body.rindex('}') + 1])
            if 'FAILED' in head or 'UNREACHABLE' in head:
                result['failed'] = True
            result['_warnings'] = proc.stderr.decode('utf-8', 'replace')
            return result
        except ValueError:
            raise AssertionError('no result from ansible: %s %s' % (proc.stdout[-2000:], proc.stderr[-2000:]))

    def role(self, variables, python=None):
        """Run the role lxcex_share on this host with variables; return (rc, {changed, failed}, output)."""
        with open(self.work + '/vars.json', 'w') as f:
            json.dump(variables, f)
        with open(self.work + '/play.yml', 'w') as f:
            f.write('- hosts: localhost\n  gather_facts: false\n  roles: [lxcex.share.lxcex_share]\n')
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=self.collections, ANSIBLE_NOCOLOR='1')
        proc = subprocess.run(['ansible-playbook', '-i', 'localhost,', '-c', 'local', '-e',
                               'ansible_python_interpreter=%s' % (python or PY), '-e', '@' + self.work + '/vars.json',
                               self.work + '/play.yml'],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, check=False, timeout=600)
        out = proc.stdout.decode('utf-8', 'replace')
        recap = re.search(r'localhost\s*: ok=\d+\s+changed=(\d+).*failed=(\d+)', out)
        counts = {'changed': int(recap.group(1)), 'failed': int(recap.group(2))} if recap else {}
        return proc.returncode, counts, out

    def share(self, **kw):
        args = dict(lxcpath=self.lxcpath, thunks_dir=self.thunks)
        args.update(kw)
        check_mode = args.pop('check_mode', False)
        return self.module('lxc_share', args, check_mode)

    def hooks(self, containers, **kw):
        args = dict(containers=containers, program=self.prog, lxcpath=self.lxcpath, thunks_dir=self.thunks,
                    log_file=self.log)
        args.update(kw)
        check_mode = args.pop('check_mode', False)
        return self.module('lxc_share_hooks', args, check_mode)

    def cli(self, *args, **kw):
        flags = [] if kw.get('bare') else ['--lxcpath', self.lxcpath, '--thunks-dir', self.thunks]
        return sh(' '.join(shlex.quote(a) for a in [self.prog] + flags + list(args)), check=kw.get('check', False))

    def attach(self, key, cmd, uid=None, check=False):
        who = '-u %d -g %d ' % (uid, 100 if uid else 0) if uid is not None else ''
        return sh('lxc-attach -P %s --clear-env %s-n %s -- sh -c %s'
                  % (self.lxcpath, who, self.name(key), shlex.quote(cmd)), check=check)

    # -- containers -----------------------------------------------------------

    def init_pid(self, key):
        rc, out = sh('lxc-info -P %s -n %s -p -H' % (self.lxcpath, self.name(key)), check=False)
        return out.strip() if rc == 0 and out.strip().isdigit() else None

    def mounts_in(self, key):
        """The mountinfo lines of a running container's init."""
        with open('/proc/%s/mountinfo' % self.init_pid(key)) as f:
            return f.read().splitlines()

    def start(self, key, timeout=60):
        t0 = time.monotonic()
        rc, out = sh('timeout %d lxc-start -P %s -n %s && lxc-wait -P %s -n %s -s RUNNING -t 20'
                     % (timeout, self.lxcpath, self.name(key), self.lxcpath, self.name(key)), check=False,
                     timeout=timeout + 40)
        return rc, time.monotonic() - t0, out

    def stop(self, key):
        sh('timeout 60 lxc-stop -P %s -n %s -k' % (self.lxcpath, self.name(key)), check=False, timeout=90)
        # post-stop runs in the monitor, which may outlive lxc-stop a moment
        for dummy in range(100):
            if not titled('[lxc monitor] %s %s' % (self.lxcpath, self.name(key)), uid=0):
                return
            time.sleep(0.1)

    def restart(self, *keys):
        """Stop and start each container; fail when one does not start."""
        for key in keys:
            self.stop(key)
            rc, dummy, out = self.start(key)
            expect(rc == 0, 'start %s' % key, out)

    def host_thunks(self, key=None):
        prefix = self.thunks + '/' + (self.name(key) + '/' if key else '')
        with open('/proc/self/mountinfo') as f:
            return [l.split()[4] for l in f if l.split()[4].startswith(prefix)]

    def setup(self, elsewhere=(), hooks=True, started=()):
        """The work directory, the hook program and the containers (rootfs of those in elsewhere outside lxcpath)."""
        os.makedirs(self.work + '/bin')
        os.chmod(self.work, 0o755)
        os.makedirs(self.lxcpath)
        with open(self.prog, 'w') as f:
            # No bytecode next to the source: the role copies that directory.
            f.write('#!%s\nimport sys\nsys.dont_write_bytecode = True\nsys.path.insert(0, %r)\n'
                    'from ansible_collections.lxcex.share.plugins.module_utils._cli import main\n'
                    'sys.exit(main(config=%r))\n' % (PY, self.collections, self.config))
        os.chmod(self.prog, 0o755)
        template = None
        for key in sorted(self.cts):
            ct = self.cts[key]
            if template is not None and key not in elsewhere:
                # A copy of the first container with its ids shifted: lxc-create runs some 300 processes, which
                # emulated kernels (scripts/kernels.py) pay dearly for.
                self.clone(template, key)
                continue
            conf = '%s/%s.conf' % (self.work, ct['name'])
            with open(conf, 'w') as f:
                f.write('lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n'
                        'lxc.idmap = u 0 %d 65536\nlxc.idmap = g 0 %d 65536\n' % (ct['base'], ct['base']))
            extra = ''
            if key in elsewhere:
                ct['root'] = '%s/elsewhere/rootfs-%s' % (self.work, key)
                os.makedirs(os.path.dirname(ct['root']), exist_ok=True)
                extra = '-B dir --dir %s' % ct['root']
            sh('lxc-create -P %s -n %s -t busybox -f %s %s > %s.create.log 2>&1'
               % (self.lxcpath, ct['name'], conf, extra, conf))
            if key not in elsewhere:
                template = key
        for key in sorted(self.cts):
            ct = self.cts[key]
            ct['root'] = self.root(key)
            u, b = ct['user'], ct['base']
            sh('''set -e
                R=%(root)s
                echo "%(u)s:x:1000:100:%(u)s:/home/%(u)s:/bin/sh" >> $R/etc/passwd
                echo "users:x:100:" >> $R/etc/group
                mkdir -p $R/home/%(u)s/proj/sub
                echo "file of %(u)s" > $R/home/%(u)s/proj/%(u)s.txt
                echo nested > $R/home/%(u)s/proj/sub/nested.txt
                chown -R %(uid)d:%(gid)d $R/home/%(u)s
                chown %(b)d:%(b)d $R/etc/passwd $R/etc/group
            ''' % dict(root=self.root(key), u=u, uid=b + 1000, gid=b + 100, b=b))
        if hooks:
            r = self.hooks([self.name(k) for k in sorted(self.cts)])
            expect(not r.get('failed'), 'hooks', r.get('msg'))
        for key in started:
            rc, dummy, out = self.start(key)
            expect(rc == 0, 'start %s' % key, out)

    def clone(self, src_key, key):
        """Container key as a copy of the (pristine) busybox container src_key, its ids shifted to its own range."""
        src, ct = self.cts[src_key], self.cts[key]
        sdir = '%s/%s' % (self.lxcpath, src['name'])
        ddir = '%s/%s' % (self.lxcpath, ct['name'])
        shift = ct['base'] - src['base']
        os.mkdir(ddir)
        st = os.stat(sdir)
        os.chmod(ddir, st.st_mode & 0o7777)
        os.chown(ddir, st.st_uid + shift, st.st_gid + shift)
        shutil.copytree(sdir + '/rootfs', ddir + '/rootfs', symlinks=True)

        def shifted(i):
            return i + shift if src['base'] <= i < src['base'] + 65536 else i
        # copytree makes everything root's: each copy gets the owner of its original, shifted
        for dirpath, dirnames, filenames in os.walk(sdir + '/rootfs'):
            entries = [dirpath] + [os.path.join(dirpath, n) for n in filenames]
            entries += [os.path.join(dirpath, n) for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
            for path in entries:
                lst = os.lstat(path)
                copy = ddir + path[len(sdir):]
                os.lchown(copy, shifted(lst.st_uid), shifted(lst.st_gid))
                if not stat.S_ISLNK(lst.st_mode):
                    os.chmod(copy, stat.S_IMODE(lst.st_mode))  # chown clears set-id bits
        with open(sdir + '/config') as f:
            text = f.read()
        lines = []
        for line in text.splitlines():
            if line.startswith('lxc.idmap'):
                kind = line.split('=', 1)[1].split()[0]
                line = 'lxc.idmap = %s 0 %d 65536' % (kind, ct['base'])
            elif line.startswith('lxc.rootfs.path'):
                line = 'lxc.rootfs.path = dir:%s/rootfs' % ddir
            elif line.startswith('lxc.uts.name'):
                line = 'lxc.uts.name = "%s"' % ct['name']
            lines.append(line)
        with open(ddir + '/config', 'w') as f:
            f.write('\n'.join(lines) + '\n')
        os.chmod(ddir + '/config', 0o640)

    def remove_all_shares(self):
        """Remove every share of every sharetab of the lab (teardown), in one run of lxc_share."""
        removals = []
        for path in glob.glob(self.lxcpath + '/*/sharetab'):
            name = path.split('/')[-2]
            with open(path) as f:
                for line in f:
                    if line.strip() and not line.startswith('#'):
                        removals.append(dict(container=name, dest=line.split()[2], state='absent'))
        if removals:
            self.share(shares=removals)

    def checksums(self, roots):
        """sha256 of every file below roots."""
        out = {}
        for root in roots:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for name in sorted(filenames):
                    path = os.path.join(dirpath, name)
                    if os.path.islink(path) or not os.path.isfile(path):
                        continue
                    with open(path, 'rb') as f:
                        out[path] = hashlib.sha256(f.read()).hexdigest()
        return out

    # -- running ---------------------------------------------------------------

    def run_scenario(self, func):
        run_scenario(self.results, func.title, func)

    def run(self, setup, scenarios, roots, teardown=None):
        """Set up, run the scenarios (those LXCEX_SCENARIOS names, default all), compare checksums, clean up."""
        sums = {}

        def begin():
            setup()
            sums.update(self.checksums(roots()))

        def end():
            if teardown:
                teardown()
            after = self.checksums(roots())
            same = after == sums
            log('\n=== source checksums identical at the end: %s (%d files)' % (same, len(sums)))
            return [('source checksums identical at the end', same,
                     '' if same else str(set(after.items()) ^ set(sums.items())))]
        return run_all(begin, [(func.title, func) for func in scenarios], end, self.cleanup, self.results)

    def cleanup(self):
        for proc in self.background:
            try:
                proc.kill()
                proc.wait()
            except OSError:
                pass
        # anything still running from the work directory (a hook that hangs, a forged monitor)
        for entry in os.listdir('/proc'):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    with open('/proc/%s/cmdline' % entry, 'rb') as f:
                        cmdline = f.read()
                except OSError:
                    continue
                if self.work.encode() in cmdline and b'[lxc monitor]' not in cmdline:
                    try:
                        os.kill(int(entry), 9)
                    except OSError:
                        pass
        names = [ct['name'] for ct in self.cts.values() if os.path.exists('%s/%s/config' % (self.lxcpath, ct['name']))]
        for name in names:
            sh('timeout 60 lxc-stop -P %s -n %s -k' % (self.lxcpath, name), check=False)
        for dummy in range(5):
            with open('/proc/self/mountinfo') as f:
                points = sorted((l.split()[4] for l in f if l.split()[4].startswith(self.work + '/')), reverse=True)
            for point in points:
                sh('umount -l %s' % shlex.quote(point.encode().decode('unicode_escape')), check=False)
        with open('/proc/self/mountinfo') as f:
            left = [l for l in f if l.split()[4].startswith(self.work + '/')]
        if left:
            log('cleanup: mounts left below %s, not removing it: %s' % (self.work, left))
            return False
        for name in names:
            sh('lxc-destroy -P %s -n %s -f' % (self.lxcpath, name), check=False)
        sh('rm -rf --one-file-system %s' % self.work, check=False)
        forget_records(self.work)
        return True
