# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lxcex-share program: LXC hook and manual command.

As a manual command it is compatible with the reference script::

    lxcex-share HOST_DIR CONTAINER USER DEST [--ro] [--group G] [--no-persist]
    lxcex-share --remove CONTAINER DEST
    lxcex-share list [CONTAINER ...]

As an LXC hook (``lxc.hook.start-host`` and ``lxc.hook.post-stop`` =
``lxcex-share [OPTIONS] hook``) it reads LXC's environment (``LXC_NAME``,
``LXC_CONFIG_FILE``, ``LXC_PID``, and ``LXC_HOOK_TYPE`` with hook version 1
or the ``NAME lxc TYPE`` arguments with version 0).  At start-host it applies
the container's whole sharetab in one pass, straight into the starting
container; at post-stop it unmounts the container's thunks.  It never calls
lxc-info or lxc-attach (both hang inside a hook) and needs nothing inside the
container.  A broken share is logged and the container starts anyway, unless
``--strict`` is given.

Every share operation goes through _converge and _share, the code the
modules run.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import argparse
import os
import sys
import syslog

from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils._converge import (
    containers_with_sharetab, converge, sharetab_path)
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._live import ChildTimeout, run_bounded
from ansible_collections.lxcex.share.plugins.module_utils._lxc import default_lxcpath, restarted
from ansible_collections.lxcex.share.plugins.module_utils._resolve import shown
from ansible_collections.lxcex.share.plugins.module_utils._share import DEFAULT_THUNKS_DIR, DEFAULT_THUNKS_SIZE, Engine
from ansible_collections.lxcex.share.plugins.module_utils._sharetab import DirLock

PROG = 'lxcex-share'
HOOK_TYPES = ('pre-start', 'pre-mount', 'mount', 'autodev', 'start-host', 'start', 'stop', 'post-stop', 'clone',
              'destroy')


HOOK_OUTPUT_BUDGET = 3072
HOOK_LINE_MAX = 300
DEFAULT_DEADLINE = 30.0


class _Out(object):
    """Messages of the program.

    As a hook, what goes to stdout and stderr is bounded (LXC reads only so
    much of a hook's output before it waits for the hook to exit, so a hook
    that writes more blocks the start for ever): details go to syslog, and
    the standard streams get at most HOOK_OUTPUT_BUDGET bytes, lines cut at
    HOOK_LINE_MAX characters, then one line saying how many were left out.
    """

    def __init__(self, hook=None):
        self._hook = None
        self.budget = HOOK_OUTPUT_BUDGET
        self.dropped = 0
        self.hook = hook

    @property
    def hook(self):
        return self._hook

    @hook.setter
    def hook(self, value):
        if value and not self._hook:
            syslog.openlog(PROG, syslog.LOG_PID, syslog.LOG_DAEMON)
        self._hook = value

    def _emit(self, stream, text):
        if not self.hook:
            stream.write(text + '\n')
            return
        if len(text) > HOOK_LINE_MAX:
            text = text[:HOOK_LINE_MAX - 3] + '...'
        if len(text) + 1 > self.budget - 100:
            self.dropped += 1
            return
        self.budget -= len(text) + 1
        try:
            stream.write(text + '\n')
            stream.flush()
        except (IOError, OSError):
            pass

    def info(self, msg, quiet_in_hook=False):
        if self.hook:
            syslog.syslog(syslog.LOG_INFO, '%s: %s' % (self.hook, msg))
            if quiet_in_hook:
                return
        self._emit(sys.stdout, msg)

    def error(self, msg):
        if self.hook:
            syslog.syslog(syslog.LOG_ERR, '%s: %s' % (self.hook, msg))
        self._emit(sys.stderr, '%s: %s' % (PROG, msg))

    def finish(self):
        """Flush; as a hook, say how many messages only syslog has."""
        if self.hook and self.dropped:
            self.budget += 100
            self._emit(sys.stderr, '%s: %s: %d more messages are only in syslog' % (PROG, self.hook, self.dropped))
            self.dropped = 0
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (IOError, OSError):
                pass


def _parser():
    p = argparse.ArgumentParser(prog=PROG, description='Share directories with users of LXC containers.')
    p.add_argument('--lxcpath', help='where the containers live (default: lxc-config lxc.lxcpath)')
    p.add_argument('--thunks-dir', default=DEFAULT_THUNKS_DIR, help='the thunks tmpfs (default %(default)s)')
    p.add_argument('--thunks-size', default=DEFAULT_THUNKS_SIZE, help='its size when mounted (default %(default)s)')
    p.add_argument('--backend', choices=('native', 'mount-idmapped'), default='native',
                   help='how thunks are made (default %(default)s)')
    p.add_argument('--mount-idmapped', help='the mount-idmapped program (default: searched in PATH)')
    p.add_argument('--strict', action='store_true', help='as a hook, fail the container start on a broken share')
    p.add_argument('--deadline', type=float, default=DEFAULT_DEADLINE,
                   help='as a hook, seconds after which it stops, logs what was not done and lets the container '
                        'start (default %(default)s)')
    p.add_argument('--remove', action='store_true', help='remove the share CONTAINER DEST')
    p.add_argument('--ro', action='store_true', help='share read-only')
    p.add_argument('--group', help='group inside the container (default: the user\'s primary group)')
    p.add_argument('--no-persist', action='store_true', help='do not record the share in the sharetab')
    p.add_argument('args', nargs='*',
                   help='HOST_DIR CONTAINER USER DEST | CONTAINER DEST with --remove | list [CONTAINER...] | hook')
    return p


def _engine(opts, lxcpath=None, pids=None, check_mode=False, backend=None, timeout=None):
    backend = backend or opts.backend
    return Engine(lxcpath or opts.lxcpath or default_lxcpath(), opts.thunks_dir, opts.thunks_size,
                  check_mode=check_mode, pids=pids, backend=backend,
                  mount_idmapped=opts.mount_idmapped if backend == 'mount-idmapped' else None, timeout=timeout)


def _report(out, results):
    failed = 0
    for res in results:
        what = '%s:%s' % (res['container'], res['dest'])
        if res.get('failed'):
            failed += 1
            out.error('%s: %s' % (what, res['msg']))
        else:
            out.info('%s: %s %s' % (what, 'removed' if res['state'] == 'absent' else 'shared',
                                    'changed' if res['changed'] else 'unchanged'), quiet_in_hook=True)
    if out.hook:
        out.info('%d shares, %d failed' % (len(results), failed))
    return failed


def _run(out, engine, requests):
    try:
        return _report(out, converge(engine, requests))
    finally:
        engine.close()


def hook(opts, env, out):
    """Run as an LXC hook; returns the exit status."""
    name = env.get('LXC_NAME')
    hook_type = env.get('LXC_HOOK_TYPE')
    extra = opts.args[1:]
    if not hook_type and len(extra) >= 3 and extra[1] == 'lxc':
        name, hook_type = name or extra[0], extra[2]
    config = env.get('LXC_CONFIG_FILE')
    if not name or not hook_type or not config:
        out.error('hook: LXC_NAME, LXC_CONFIG_FILE and the hook type are needed (run me from lxc.hook.*)')
        return 2
    out.hook = '%s %s' % (hook_type, name)
    directory = os.path.dirname(os.path.abspath(config))
    lxcpath = os.path.dirname(directory)
    if os.path.basename(directory) != name:
        out.error('hook: config %s is not in a directory named %s' % (config, name))
        return 2
    if hook_type not in ('start-host', 'post-stop'):
        return 0
    # The start-host of a new instance and the post-stop of the old one, which
    # LXC may run at the same time, take turns on the container's lock.  The
    # work runs in a child under a deadline: whatever a container (or a huge
    # sharetab) does, the hook returns in time and releases the lock.

    def work():
        try:
            if hook_type == 'post-stop':
                return _post_stop(opts, out, lxcpath, name)
            return _start_host(opts, env, out, lxcpath, directory, name)
        except ShareError as e:
            out.error(str(e))
            return 1 if opts.strict and hook_type == 'start-host' else 0
        finally:
            out.finish()

    with DirLock(directory):
        try:
            return run_bounded(work, opts.deadline, 'the %s hook of container %s' % (hook_type, name))
        except ChildTimeout as e:
            out.error('%s; the container %s without the shares not done by then' % (
                e, 'starts' if hook_type == 'start-host' else 'stopped'))
        except ShareError as e:
            out.error(str(e))
        return 1 if opts.strict and hook_type == 'start-host' else 0


def _post_stop(opts, out, lxcpath, name):
    if restarted(lxcpath, name):
        out.info('the container runs again: its thunks stay')
        return 0
    try:
        # Releasing only unmounts: it needs no backend program.
        engine = _engine(opts, lxcpath, backend='native')
    except ShareError as e:
        out.error(str(e))
        return 1 if opts.strict else 0
    try:
        done = engine.release(name)
        for path in done:
            out.info('unmounted thunk %s' % path, quiet_in_hook=True)
        out.info('unmounted %d thunks' % len(done))
    except ShareError as e:
        out.error(str(e))
        return 1 if opts.strict else 0
    finally:
        engine.close()
    return 0


def _start_host(opts, env, out, lxcpath, directory, name):
    pid = env.get('LXC_PID', '')
    if not pid.isdigit():
        out.error('hook start-host: LXC_PID is not set')
        return 1 if opts.strict else 0
    broken = 0
    requests = []
    text = _sharetab.read(os.path.join(directory, 'sharetab'))
    for line, entry in _sharetab.parse(text):
        if entry is not None:
            requests.append(_sharetab.request_of(name, entry, persist=False))
        elif line.strip() and not line.lstrip().startswith('#'):
            broken += 1
            out.error('sharetab line %s cannot be read' % shown(line.rstrip('\n')))
    if requests:
        try:
            broken += _run(out, _engine(opts, lxcpath, pids={name: int(pid)},
                                        timeout=max(1.0, min(opts.deadline * 0.8, 20.0))), requests)
        except ShareError as e:
            broken += 1
            out.error(str(e))
    return 1 if broken and opts.strict else 0


def list_shares(opts, out):
    """Every share of every container (or of those named) with its state: live, recorded or broken."""
    engine = _engine(opts, check_mode=True, backend='native')
    names = opts.args[1:] or containers_with_sharetab(engine.lxcpath)
    rows = []
    try:
        for name in names:
            entries = _sharetab.entries(sharetab_path(engine, name))
            if not entries:
                continue
            try:
                running = engine.view(engine.container(name)) is not None
            except ShareError as e:
                rows.extend((name, e_.dest, e_.src, e_.user, 'broken', str(e)) for e_ in entries)
                continue
            if not running:
                rows.extend((name, e.dest, e.src, e.user, 'recorded', 'container stopped') for e in entries)
                continue
            requests = [_sharetab.request_of(name, e, persist=False) for e in entries]
            for entry, res in zip(entries, converge(engine, requests)):
                if res.get('failed'):
                    state, detail = 'broken', res['msg']
                elif res['changed']:
                    state, detail = 'broken', 'not mounted as recorded; a run of lxc_share or a restart repairs it'
                else:
                    state, detail = 'live', ''
                rows.append((name, entry.dest, entry.src, entry.user, state, detail))
    finally:
        engine.close()
    header = ('CONTAINER', 'DEST', 'SRC', 'USER', 'STATE', 'DETAIL')
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(5)]
    for row in [header] + rows:
        out.info('  '.join(str(c).ljust(w) for c, w in zip(row, widths)) + '  ' + row[5])
    return 0


def main(argv=None, env=None):
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ if env is None else env
    opts = _parser().parse_args(argv)
    out = _Out()
    try:
        if opts.args[:1] == ['hook']:
            return hook(opts, env, out)
        if opts.args[:1] == ['list']:
            return list_shares(opts, out)
        if opts.remove:
            if len(opts.args) != 2:
                out.error('usage: %s --remove CONTAINER DEST' % PROG)
                return 2
            request = {'container': opts.args[0], 'dest': opts.args[1], 'state': 'absent', 'persist': True,
                       'live': True}
        else:
            if len(opts.args) != 4:
                out.error('usage: %s HOST_DIR CONTAINER USER DEST (or --remove CONTAINER DEST, list, hook)' % PROG)
                return 2
            src, container, user, dest = opts.args
            request = {'src': src, 'container': container, 'user': user, 'dest': dest, 'state': 'present',
                       'readonly': opts.ro, 'group': opts.group, 'persist': not opts.no_persist, 'live': True}
        return 1 if _run(out, _engine(opts), [request]) else 0
    except ShareError as e:
        out.error(str(e))
        return 1
