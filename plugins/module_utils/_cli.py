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
import json
import os
import sys
import syslog
import time

from ansible_collections.lxcex.share.plugins.module_utils import _apparmor
from ansible_collections.lxcex.share.plugins.module_utils import _explain
from ansible_collections.lxcex.share.plugins.module_utils import _hostconf
from ansible_collections.lxcex.share.plugins.module_utils import _info
from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils import _requirements
from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils._converge import converge
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._live import ChildTimeout, run_bounded
from ansible_collections.lxcex.share.plugins.module_utils._lxcconf import DEFAULT_DEADLINE, DEFAULT_LOG_FILE
from ansible_collections.lxcex.share.plugins.module_utils._lxc import default_lxcpath, restarted
from ansible_collections.lxcex.share.plugins.module_utils._resolve import printable as _printable, shown
from ansible_collections.lxcex.share.plugins.module_utils._share import DEFAULT_THUNKS_DIR, DEFAULT_THUNKS_SIZE, Engine
from ansible_collections.lxcex.share.plugins.module_utils._sharetab import DirLock

PROG = 'lxcex-share'
HOOK_TYPES = ('pre-start', 'pre-mount', 'mount', 'autodev', 'start-host', 'start', 'stop', 'post-stop', 'clone',
              'destroy')


VERSION = '0.2.0'
DEFAULT_CONFIG = '/etc/lxcex-share.conf'
HOOK_OUTPUT_BUDGET = 3072
HOOK_LINE_MAX = 300


def printable(msg):
    """msg with what is not printable escaped, line by line (a table or JSON keeps its lines)."""
    return '\n'.join(_printable(line) for line in str(msg).split('\n'))


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
        self.log_file = None
        self.lxc_log = None
        self._fds = {}  # log files, opened once (O_APPEND), closed at exit
        self.hook = hook

    def _log(self, level, msg):
        """As a hook: a line in the log file, and errors in the container's LXC log (lxc.log.file) too."""
        stamp = time.strftime('%Y-%m-%d %H:%M:%S')
        targets = [(self.log_file, '%s %s %s: %s\n' % (stamp, level, self.hook, msg))]
        if level in ('ERROR', 'WARN') and self.lxc_log:
            name = self.hook.split(' ', 1)[-1]
            targets.append((self.lxc_log, 'lxc-start %s %s %-8s lxcex-share - %s: %s\n' % (
                name, time.strftime('%Y%m%d%H%M%S.000'), level, self.hook, msg)))
        for path, line in targets:
            if not path:
                continue
            try:
                if path not in self._fds:
                    self._fds[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                                              | os.O_CLOEXEC, 0o640)
                os.write(self._fds[path], line.encode('utf-8', 'backslashreplace'))
            except OSError:
                pass

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

    def _syslog(self, priority, msg):
        try:
            syslog.syslog(priority, '%s: %s' % (self.hook, msg))
        except (ValueError, UnicodeError, OSError):
            pass  # the log file and the output still have it

    def info(self, msg, quiet_in_hook=False):
        msg = printable(msg)
        if self.hook:
            self._syslog(syslog.LOG_INFO, msg)
            self._log('INFO', msg)
            if quiet_in_hook:
                return
        self._emit(sys.stdout, msg)

    def warn(self, msg):
        msg = printable(msg)
        if self.hook:
            self._syslog(syslog.LOG_WARNING, msg)
            self._log('WARN', msg)
        self._emit(sys.stderr, '%s: warning: %s' % (PROG, msg))

    def error(self, msg):
        msg = printable(msg)
        if self.hook:
            self._syslog(syslog.LOG_ERR, msg)
            self._log('ERROR', msg)
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


def _parser(config=DEFAULT_CONFIG):
    p = argparse.ArgumentParser(prog=PROG, description='Share directories with users of LXC containers.')
    p.add_argument('--config', default=config,
                   help='host settings written by the lxcex_share role, the defaults of the options below '
                        '(default %(default)s)')
    p.add_argument('--json', action='store_true', help='with list or explain, print JSON')
    p.add_argument('--lxcpath', help='where the containers live (default: lxc-config lxc.lxcpath)')
    p.add_argument('--thunks-dir', default=DEFAULT_THUNKS_DIR, help='the thunks tmpfs (default %(default)s)')
    p.add_argument('--thunks-size', default=DEFAULT_THUNKS_SIZE, help='its size when mounted (default %(default)s)')
    p.add_argument('--backend', choices=('native', 'mount-idmapped'), default='native',
                   help='how thunks are made (default %(default)s)')
    p.add_argument('--mount-idmapped', help='the mount-idmapped program (default: searched in PATH)')
    p.add_argument('--strict', action='store_true', help='as a hook, fail the container start on a broken share')
    p.add_argument('--version', action='version', version='%(prog)s ' + VERSION)
    p.add_argument('--log-file', default=DEFAULT_LOG_FILE,
                   help='as a hook, where every share applied or failed is logged (default %(default)s)')
    p.add_argument('--deadline', type=float, default=DEFAULT_DEADLINE,
                   help='as a hook, seconds after which it stops, logs what was not done and lets the container '
                        'start (default %(default)s)')
    p.add_argument('--remove', action='store_true', help='remove the share CONTAINER DEST')
    p.add_argument('--ro', action='store_true', help='share read-only')
    p.add_argument('--group', help='group inside the container (default: the user\'s primary group; for a team '
                                   'share, the team\'s group in each container)')
    p.add_argument('--disk-gid', type=int, help='for a team share, the team\'s group on disk (default: the group of '
                                                'HOST_DIR)')
    p.add_argument('--no-persist', action='store_true', help='do not record the share in the sharetab')
    p.add_argument('args', nargs='*',
                   help='HOST_DIR CONTAINER USER DEST | CONTAINER DEST with --remove | '
                        'team HOST_DIR DEST CONTAINER/USER[:DISK_UID]... (--remove: team DEST MEMBER...) | '
                        'list [CONTAINER...] | explain CONTAINER USER PATH | hook')
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
        for warning in res.get('warnings', []):
            out.warn(warning)
        if res.get('failed'):
            failed += 1
            out.error('%s: %s' % (what, res['msg']))
        else:
            out.info('%s: %s %s%s' % (what, 'removed' if res['state'] == 'absent' else 'shared',
                                      'changed' if res['changed'] else 'unchanged',
                                      ' (repaired: %s)' % '; '.join(res['repaired']) if res.get('repaired') else ''),
                     quiet_in_hook=True)
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
    out.log_file = opts.log_file
    directory = os.path.dirname(os.path.abspath(config))
    lxcpath = os.path.dirname(directory)
    if os.path.basename(directory) != name:
        out.error('hook: config %s is not in a directory named %s' % (config, name))
        return 2
    if hook_type not in ('start-host', 'post-stop'):
        return 0
    try:
        left = _apparmor.leave_lxc_start()
        if left:
            out.info('left the AppArmor profile %s that lxc-start runs its hooks under: its mount rules refuse moving '
                     'a share into the container' % left, quiet_in_hook=True)
    except OSError as e:
        out.error('cannot leave the AppArmor profile of lxc-start (%s): its mount rules may refuse the shares'
                  % e.strerror)
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
    _lxc_log(out, engine, name)
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


def _lxc_log(out, engine, name):
    """Errors also go to the container's LXC log (lxc.log.file); its config is read once, by the engine."""
    try:
        out.lxc_log = engine.container(name).log_file
    except ShareError:
        pass


def _start_host(opts, env, out, lxcpath, directory, name):
    pid = env.get('LXC_PID', '')
    if not pid.isdigit():
        out.error('hook start-host: LXC_PID is not set')
        return 1 if opts.strict else 0
    engine = _engine(opts, lxcpath, pids={name: int(pid)}, timeout=max(1.0, min(opts.deadline * 0.8, 20.0)))
    _lxc_log(out, engine, name)
    if _kernel.KERNEL_AS:
        out.info('behaving as Linux %s would (LXCEX_SHARE_KERNEL_AS, for tests)' % _kernel.KERNEL_AS)
    broken = 0
    requests = []
    text = _sharetab.read(os.path.join(directory, 'sharetab'))
    for line, entry in _sharetab.parse(text):
        if entry is not None:
            requests.append(_sharetab.request_of(name, entry, persist=False))
        elif line.strip() and not line.lstrip().startswith('#'):
            broken += 1
            out.error('sharetab line %s cannot be read' % shown(line.rstrip('\n')))
    try:
        # Thunks of an earlier run of this container that no post-stop
        # released (a stop before the hook block existed) are replaced.
        stale = engine.release(name)
        if stale:
            out.info('released %d stale thunks of an earlier run' % len(stale))
        broken += _report(out, converge(engine, requests))
        if engine.released:
            out.info('released %d thunks of containers that are not running' % len(engine.released))
    except ShareError as e:
        broken += 1
        out.error(str(e))
    finally:
        engine.close()
    return 1 if broken and opts.strict else 0


def list_shares(opts, out):
    """Every share of every container (or of those named), as lxc_share_info returns them (one reader, _info).

    Exit status: 0 when every share is live or recorded, 1 when one is broken
    or a thunk is stale, 2 when a container named does not exist.
    """
    rows = _read(opts, out, lambda engine: _info.read_shares(engine, opts.args[1:]), _info.table)
    return _info.exit_status(rows)


def _read(opts, out, reader, lines):
    """What reader(engine) returns (an engine in check mode), printed as JSON (--json) or as lines(it)."""
    engine = _engine(opts, check_mode=True, backend='native')
    try:
        data = reader(engine)
    finally:
        engine.close()
    if opts.json:
        out.info(json.dumps(data, indent=2, sort_keys=True))
    else:
        for line in lines(data):
            out.info(line)
    return data


def parse_member(text):
    """CONTAINER/USER[:DISK_UID] as a member dict (checked with the others by _team.parse_members)."""
    container, sep, rest = text.partition('/')
    user, colon, disk_uid = rest.partition(':')
    if not sep or not container or not user:
        raise ShareError('member %r is not CONTAINER/USER[:DISK_UID]' % text)
    member = {'container': container, 'user': user}
    if colon:
        if not disk_uid.isdigit():
            raise ShareError('member %r: disk uid %r is not a number' % (text, disk_uid))
        member['disk_uid'] = int(disk_uid)
    return member


def team_request(opts):
    """The request of `team HOST_DIR DEST MEMBER...` (or, with --remove, `team DEST MEMBER...`); None: bad usage."""
    args = opts.args[1:]
    if opts.remove:
        if len(args) < 2:
            return None
        return {'dest': args[0], 'members': [parse_member(m) for m in args[1:]], 'state': 'absent',
                'persist': True, 'live': True, 'owner': 'manual'}
    if len(args) < 3:
        return None
    return {'src': args[0], 'dest': args[1], 'members': [parse_member(m) for m in args[2:]], 'state': 'present',
            'readonly': opts.ro, 'group': opts.group, 'disk_gid': opts.disk_gid, 'persist': not opts.no_persist,
            'live': True, 'owner': 'manual'}


def explain(opts, out):
    """Why USER of CONTAINER can or cannot read, write or create at PATH inside a share (see _explain)."""
    if len(opts.args) != 4:
        out.error('usage: %s explain CONTAINER USER PATH' % PROG)
        return 2
    _read(opts, out, lambda engine: _explain.explain(engine, *opts.args[1:]), _explain.lines)
    return 0


def main(argv=None, env=None, config=DEFAULT_CONFIG):
    """Run the program; config is the host config file whose settings are the defaults of the options."""
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ if env is None else env
    for stream in (sys.stdout, sys.stderr):
        try:  # whatever the locale: a character its encoding lacks is written escaped, never a traceback
            stream.reconfigure(errors='backslashreplace')
        except (AttributeError, ValueError):
            pass
    lacking = _requirements.problem(need_root=False)
    if lacking:
        # An old Python or kernel: said plainly; as a hook, the container starts anyway unless strict.
        sys.stderr.write('%s: %s\n' % (PROG, lacking))
        return 0 if 'hook' in argv and '--strict' not in argv else 1
    parser = _parser(config)
    first, dummy = parser.parse_known_args(argv)
    settings = _hostconf.read(first.config)
    known = set(a.dest for a in parser._actions)
    parser.set_defaults(**dict((k, v) for k, v in settings.items() if k in known and k != 'config'))
    opts = parser.parse_intermixed_args(argv)  # list --json CONTAINER, as well as --json list CONTAINER
    out = _Out()
    lacking = _requirements.problem(need_root=True)
    if lacking:
        out.error(lacking)
        return 1
    try:
        if opts.args[:1] == ['hook']:
            return hook(opts, env, out)
        if opts.args[:1] == ['list']:
            return list_shares(opts, out)
        if opts.args[:1] == ['explain']:
            return explain(opts, out)
        if opts.args[:1] == ['team']:
            request = team_request(opts)
            if request is None:
                out.error('usage: %s team HOST_DIR DEST CONTAINER/USER[:DISK_UID]... (or --remove team DEST '
                          'CONTAINER/USER...)' % PROG)
                return 2
            return 1 if _run(out, _engine(opts), [request]) else 0
        if opts.remove:
            if len(opts.args) != 2:
                out.error('usage: %s --remove CONTAINER DEST' % PROG)
                return 2
            request = {'container': opts.args[0], 'dest': opts.args[1], 'state': 'absent', 'persist': True,
                       'live': True}
        else:
            if len(opts.args) != 4:
                out.error('usage: %s HOST_DIR CONTAINER USER DEST (or --remove CONTAINER DEST, list, explain, hook)'
                          % PROG)
                return 2
            src, container, user, dest = opts.args
            request = {'src': src, 'container': container, 'user': user, 'dest': dest, 'state': 'present',
                       'readonly': opts.ro, 'group': opts.group, 'persist': not opts.no_persist, 'live': True,
                       'owner': 'manual'}
        return 1 if _run(out, _engine(opts), [request]) else 0
    except ShareError as e:
        out.error(str(e))
        return 1
