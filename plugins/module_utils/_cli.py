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
from ansible_collections.lxcex.share.plugins.module_utils._lxc import default_lxcpath, restarted
from ansible_collections.lxcex.share.plugins.module_utils._share import DEFAULT_THUNKS_DIR, DEFAULT_THUNKS_SIZE, Engine
from ansible_collections.lxcex.share.plugins.module_utils._sharetab import DirLock

PROG = 'lxcex-share'
HOOK_TYPES = ('pre-start', 'pre-mount', 'mount', 'autodev', 'start-host', 'start', 'stop', 'post-stop', 'clone',
              'destroy')


class _Out(object):
    def __init__(self, hook=None):
        self.hook = hook
        if hook:
            syslog.openlog(PROG, syslog.LOG_PID, syslog.LOG_DAEMON)

    def info(self, msg):
        sys.stdout.write(msg + '\n')
        if self.hook:
            syslog.syslog(syslog.LOG_INFO, '%s: %s' % (self.hook, msg))

    def error(self, msg):
        sys.stderr.write('%s: %s\n' % (PROG, msg))
        if self.hook:
            sys.stdout.write('error: %s\n' % msg)
            syslog.syslog(syslog.LOG_ERR, '%s: %s' % (self.hook, msg))


def _parser():
    p = argparse.ArgumentParser(prog=PROG, description='Share directories with users of LXC containers.')
    p.add_argument('--lxcpath', help='where the containers live (default: lxc-config lxc.lxcpath)')
    p.add_argument('--thunks-dir', default=DEFAULT_THUNKS_DIR, help='the thunks tmpfs (default %(default)s)')
    p.add_argument('--thunks-size', default=DEFAULT_THUNKS_SIZE, help='its size when mounted (default %(default)s)')
    p.add_argument('--backend', choices=('native', 'mount-idmapped'), default='native',
                   help='how thunks are made (default %(default)s)')
    p.add_argument('--mount-idmapped', help='the mount-idmapped program (default: searched in PATH)')
    p.add_argument('--strict', action='store_true', help='as a hook, fail the container start on a broken share')
    p.add_argument('--remove', action='store_true', help='remove the share CONTAINER DEST')
    p.add_argument('--ro', action='store_true', help='share read-only')
    p.add_argument('--group', help='group inside the container (default: the user\'s primary group)')
    p.add_argument('--no-persist', action='store_true', help='do not record the share in the sharetab')
    p.add_argument('args', nargs='*',
                   help='HOST_DIR CONTAINER USER DEST | CONTAINER DEST with --remove | list [CONTAINER...] | hook')
    return p


def _engine(opts, lxcpath=None, pids=None, check_mode=False, backend=None):
    backend = backend or opts.backend
    return Engine(lxcpath or opts.lxcpath or default_lxcpath(), opts.thunks_dir, opts.thunks_size,
                  check_mode=check_mode, pids=pids, backend=backend,
                  mount_idmapped=opts.mount_idmapped if backend == 'mount-idmapped' else None)


def _report(out, results):
    failed = 0
    for res in results:
        what = '%s:%s' % (res['container'], res['dest'])
        if res.get('failed'):
            failed += 1
            out.error('%s: %s' % (what, res['msg']))
        else:
            out.info('%s: %s %s' % (what, 'removed' if res['state'] == 'absent' else 'shared',
                                    'changed' if res['changed'] else 'unchanged'))
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
    # LXC may run at the same time, take turns on the container's lock.
    with DirLock(directory):
        if hook_type == 'post-stop':
            return _post_stop(opts, out, lxcpath, name)
        return _start_host(opts, env, out, lxcpath, directory, name)


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
        for path in engine.release(name):
            out.info('unmounted thunk %s' % path)
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
    for line, entry in _sharetab.parse(_sharetab.read(os.path.join(directory, 'sharetab'))):
        if entry is not None:
            requests.append(_sharetab.request_of(name, entry, persist=False))
        elif line.strip() and not line.lstrip().startswith('#'):
            broken += 1
            out.error('sharetab line %r cannot be read' % line.rstrip('\n'))
    if requests:
        try:
            broken += _run(out, _engine(opts, lxcpath, pids={name: int(pid)}), requests)
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
