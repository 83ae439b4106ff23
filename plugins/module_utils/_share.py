# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shares: a host directory shown to one user of an LXC container as their own.

A share ``src -> container:dest for user`` is made of up to three things:

- a *thunk*: an idmapped bind mount of src at THUNKS_DIR/CONTAINER/NAME (NAME
  is dest, escaped into one path component so that thunks never nest inside
  one another) mapping the owner of src to the user's host ids, one uid and
  one gid;
- a *live* mount: a clone of the thunk attached at dest inside the running
  container (see _live);
- a *sharetab* line, so that the container's hooks bring it back at start.

``Engine`` validates every request before changing anything and applies a
whole list in one pass: configs, passwd files and mountinfo are read once,
one user namespace is created per distinct idmap and each container's
mount namespace is entered once.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import resource

from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils import _plan
from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils import _team
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._idmap import Idmap
from ansible_collections.lxcex.share.plugins.module_utils._live import ContainerStopped, ContainerView
from ansible_collections.lxcex.share.plugins.module_utils._lxc import Container, find_init_pid, monitor_pids
from ansible_collections.lxcex.share.plugins.module_utils._mountinfo import MountTable
from ansible_collections.lxcex.share.plugins.module_utils._passwd import Accounts
from ansible_collections.lxcex.share.plugins.module_utils._request import Requests
from ansible_collections.lxcex.share.plugins.module_utils._resolve import open_dir
from ansible_collections.lxcex.share.plugins.module_utils._sharetab import DirLock
from ansible_collections.lxcex.share.plugins.module_utils._thunk import Thunks
from ansible_collections.lxcex.share.plugins.module_utils._thunkfs import (
    DEFAULT_THUNKS_DIR, DEFAULT_THUNKS_SIZE, SHARETAB, ThunksFs, thunk_name)
from ansible_collections.lxcex.share.plugins.module_utils._validate import canonical_target, check_text, check_thunks_size


def _raise_fd_limit():
    """A pass keeps an fd per distinct src: take the hard limit of open files as the soft one."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def host_spec():
    """The options of a host that every module shares (documented once: the lxcex.share.host fragment)."""
    return dict(lxcpath=dict(type='path', aliases=['lxc_path']),
                thunks_dir=dict(type='path', default=DEFAULT_THUNKS_DIR),
                thunks_size=dict(type='str', default=DEFAULT_THUNKS_SIZE))


class Engine(Requests, ThunksFs):
    """Shares applied in passes: the facts of a pass, applying with rollback, the live mounts (see _plan).

    Checking a request and the pre-flight are in _request (Requests); the thunks filesystem in _thunkfs
    (ThunksFs); what a share needs inside a running container is planned by _plan.live_plan.
    """

    def __init__(self, lxcpath, thunks_dir=DEFAULT_THUNKS_DIR, thunks_size=DEFAULT_THUNKS_SIZE,
                 check_mode=False, thunks=None, pids=None, backend='native', run_command=None, mount_idmapped=None,
                 timeout=None):
        check_text('lxcpath', lxcpath)
        check_text('thunks_dir', thunks_dir)
        self.thunks_size = check_thunks_size(thunks_size)
        self.lxcpath = lxcpath.rstrip('/') or '/'
        self.thunks_dir = canonical_target(thunks_dir)
        self.timeout = timeout
        self.check_mode = check_mode
        self.thunks = thunks or Thunks(check_mode=check_mode, backend=backend, run_command=run_command,
                                       mount_idmapped=mount_idmapped)
        self.state = self.thunks.state
        self._containers = {}
        self._accounts = {}
        self._views = {}
        self._monitors = None
        self.released = []
        self._rootfs = None
        self._srcs = {}
        self._pids = dict(pids or {})
        self._fds = []
        self._probed = {}
        self._idmapped = None
        self._share_points = None
        self._points_of = None
        _raise_fd_limit()

    # -- facts, each read once per pass ------------------------------------

    def container(self, name):
        """The container's config facts, read once per pass (also for the rootfs index of _rootfs_owner)."""
        if name not in self._containers:
            self._containers[name] = Container.load(name, self.lxcpath)
        return self._containers[name]

    def init_pid(self, container):
        """The container's init pid (given by the hook, else from the process table), None when stopped."""
        if container.name in self._pids:
            return self._pids[container.name]
        if self._monitors is None:
            self._monitors = monitor_pids()
        return find_init_pid(container.lxcpath, container.name, self._monitors)

    def view(self, container):
        """ContainerView of a running container, or None when it is stopped."""
        if container.name not in self._views:
            pid = self.init_pid(container)
            view = None
            if pid:
                view = ContainerView(container.name, pid) if self.timeout is None else \
                    ContainerView(container.name, pid, timeout=self.timeout)
            self._views[container.name] = view
        return self._views[container.name]

    def accounts(self, container):
        if container.name not in self._accounts:
            if container.rootfs:
                root_fd = open_dir(container.rootfs)
            else:
                view = self.view(container)
                if view is None:
                    raise ShareError('container %s: rootfs type %s is not a directory and the container is not running; '
                                     'cannot read its users' % (container.name, container.rootfs_type))
                root_fd = os.dup(view.root_fd)
            try:
                self._accounts[container.name] = Accounts.read(root_fd, container.name)
            finally:
                os.close(root_fd)
        return self._accounts[container.name]

    def stats(self):
        """What this engine did so far: the structural costs the performance tests assert."""
        reads = dict(MountTable.reads)
        views = [v for v in self._views.values() if v is not None]
        return {'host_mountinfo_reads': reads.get('self', 0),
                'container_mountinfo_reads': dict((v.name, reads.get(str(v.pid), 0)) for v in views),
                'userns_created': self.thunks.userns.created,
                'container_entries': dict((v.name, v.entries) for v in views),
                'containers_read': len(self._containers),
                'passwd_reads': len(self._accounts)}

    def close(self):
        for view in self._views.values():
            if view is not None:
                view.close()
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        self.thunks.close()

    # -- applying --------------------------------------------------------------

    def apply(self, shares):
        """Apply validated shares in one pass; return one result dict per share.

        A share that cannot be applied gets ``failed`` and ``msg`` in its
        result and leaves nothing behind (a thunk made for it is removed, its
        sharetab line is not written); the others go on.  A container that
        stops during the pass fails all of its shares.
        """
        results = dict((id(s), self._result(s)) for s in shares)
        changed_srcs = self._setup_team_srcs(shares, results)
        by_container = {}
        for share in shares:
            by_container.setdefault(share.container.name, []).append(share)
        self._apply_containers(by_container, results)
        self._undo_failed_teams(shares, results)
        for fd, saved, group in changed_srcs:
            # Nothing half done: a source set up for a team share none of whose parts could be applied is
            # put back as it was.
            if all(results[id(s)].get('failed') for s in group):
                _team.restore_src(fd, saved)
        if not self.check_mode:
            self.state.flush()
        return [results[id(s)] for s in shares]

    def _apply_containers(self, by_container, results):
        for name in sorted(by_container):
            group = by_container[name]
            container = group[0].container
            # Reading, deciding and changing a container's mounts and its
            # sharetab is one step under the container's lock, so that two
            # runs at once never stack two mounts at one dest.  The work
            # inside the container is bounded in time (see _live).
            if self.check_mode:
                self._apply_container(container, group, results)
            else:
                with DirLock(container.directory):
                    self._apply_container(container, group, results)

    def _undo_failed_teams(self, shares, results):
        """A team share is all or nothing: when one of its parts failed, what this run did for the others is undone
        (their sharetab line, thunk and live mount as they were before), and they fail too."""
        failed_at = {}
        for share in shares:
            res = results[id(share)]
            if share.team_id is not None and res.get('failed') and share.team_id not in failed_at:
                failed_at[share.team_id] = '%s:%s (%s)' % (share.container.name, share.dest, res.get('msg'))
        undo, undone = {}, []
        for share in shares:
            res = results[id(share)]
            if share.team_id not in failed_at or res.get('failed'):
                continue
            _fail(res, 'not applied: the same team share failed at %s' % failed_at[share.team_id])
            made = any(res['before'].get(k) != res['after'].get(k) for k in ('sharetab', 'live'))
            if not made or self.check_mode:
                res['changed'] = False
                continue
            before = res['before'].get('sharetab')
            try:
                if before:
                    back = self.prepare(_sharetab.request_of(share.container.name, _sharetab.parse_line(before),
                                                             persist=True))
                else:
                    back = self.prepare({'container': share.container.name, 'dest': share.dest, 'state': 'absent',
                                         'persist': share.persist, 'live': True})
            except ShareError as e:
                res['msg'] += '; what this run did here could not be undone: %s' % e
                continue
            undo.setdefault(share.container.name, []).append(back)
            undone.append((share, back))
        if not undo:
            return
        back_results = dict((id(b), self._result(b)) for dummy, b in undone)
        self._apply_containers(undo, back_results)
        for share, back in undone:
            res, out = results[id(share)], back_results[id(back)]
            if out.get('failed'):
                res['msg'] += '; what this run did here could not be undone: %s' % out['msg']
            else:
                res['changed'] = False
                res['msg'] += '; undone here'
                res['after'] = res['before']

    def _setup_team_srcs(self, shares, results):
        """Make each team share's source directory the team's (once per source); a failure fails its shares.

        Returns [(src fd, what setup_src saved, the shares of that source)] for the sources it changed.
        """
        done = {}
        changed_srcs = {}
        for share in shares:
            if not share.team or share.state != 'present' or not share.setup_src:
                continue
            res = results[id(share)]
            st = os.fstat(share.src_fd)
            key = (st.st_dev, st.st_ino)
            if key not in done:
                try:
                    changed, before, after, warning, saved = _team.setup_src(share.src_fd, share.src, share.src_gid,
                                                                             self.check_mode)
                except ShareError as e:
                    done[key] = e
                else:
                    done[key] = None
                    res['before']['src'], res['after']['src'] = before, after
                    if changed:
                        res['changed'] = True
                    if saved is not None:
                        changed_srcs[key] = (share.src_fd, saved, [])
                    if warning:
                        res.setdefault('warnings', []).append(warning)
            if key in changed_srcs:
                changed_srcs[key][2].append(share)
            if done[key] is not None:
                _fail(res, str(done[key]))
        return list(changed_srcs.values())

    def _apply_container(self, container, group, results):
        # The record first: a share whose sharetab line cannot be written (a full filesystem) is not made live,
        # and the line of a share that then fails live is put back as it was.
        persist = [s for s in group if s.persist and not results[id(s)].get('failed')]
        existed = os.path.lexists(os.path.join(container.directory, SHARETAB))
        try:
            old = self._apply_sharetab(container, persist, results)
        except (OSError, ShareError) as e:
            reason = getattr(e, 'strerror', None) or str(e)
            for share in persist:
                _fail(results[id(share)], 'cannot write the sharetab of container %s: %s; nothing was changed for '
                      'this share' % (container.name, reason))
            group = [s for s in group if not results[id(s)].get('failed')]
            old = {}
        try:
            view = self.view(container) if any(s.live for s in group) else None
            if view is not None:
                self._apply_running(container, view, group, results)
            else:
                for share in group:
                    if share.state == 'absent':
                        self._thunk_absent(share, results[id(share)])
        except ShareError as e:
            for share in group:
                if not results[id(share)].get('failed'):
                    _fail(results[id(share)], str(e))
        undo = dict((s.dest, old[s.dest]) for s in persist if results[id(s)].get('failed') and s.dest in old)
        if undo and not self.check_mode:
            try:
                _sharetab.update(os.path.join(container.directory, SHARETAB), undo, drop_empty=not existed)
            except (OSError, ShareError) as e:
                for share in persist:
                    if share.dest in undo:
                        results[id(share)]['msg'] += ('; its sharetab line could not be put back either (%s): the '
                                                      'next run repairs it' % (getattr(e, 'strerror', None) or e))
        for share in persist:
            res = results[id(share)]
            if share.dest in undo:
                res['after']['sharetab'] = res['before'].get('sharetab')
            elif share.dest in old and res['before'].get('sharetab') != res['after'].get('sharetab'):
                res['changed'] = True

    @staticmethod
    def _result(share):
        return {'container': share.container.name, 'dest': share.dest, 'state': share.state, 'changed': False,
                'thunk': share.thunk, 'src': share.src, 'idmap': share.idmap.entries() if share.idmap else None,
                'preflight': share.preflight,
                'before': {'sharetab': None, 'live': {'mounted': False}},
                'after': {'sharetab': None, 'live': {'mounted': False}}}

    def _apply_sharetab(self, container, shares, results):
        """Write the sharetab lines of shares; returns {dest: the entry it had before (or None)}."""
        if not shares:
            return {}
        path = os.path.join(container.directory, SHARETAB)
        changes = dict((s.dest, s.entry if s.state == 'present' else None) for s in shares)
        dummy, per_dest = _sharetab.update(path, changes, check_mode=self.check_mode)
        before = {}
        for share in shares:
            old, new = per_dest[share.dest]
            before[share.dest] = old
            res = results[id(share)]
            res['before']['sharetab'] = old.format() if old else None
            res['after']['sharetab'] = new.format() if new else None
        return before

    @staticmethod
    def live_key(share):
        """Record key of a live mount; records of one container share one state file."""
        return '%s/live\0%s' % (share.container.directory, share.dest)

    def _apply_running(self, container, view, shares, results):
        present = [s for s in shares if s.state == 'present' and s.live and not results[id(s)].get('failed')]
        new_thunks = []
        thunk_changed = {}
        if present:
            if self.ensure_thunks_fs():
                for s in present:
                    results[id(s)]['changed'] = True
            if not self.check_mode:
                self._container_dir(container)
        for share in present:
            try:
                changed, before, dummy = self.thunks.present(share.thunk, share.src, share.idmap, share.readonly,
                                                             create_path=True, src_fd=share.src_fd,
                                                             nosuid=share.nosuid)
            except ShareError as e:
                _fail(results[id(share)], str(e))
                continue
            thunk_changed[id(share)] = changed
            if changed:
                results[id(share)]['changed'] = True
                if not before.get('mounted'):
                    new_thunks.append(share)
        try:
            self._apply_live(container, view, [s for s in shares if not results[id(s)].get('failed')], results,
                             thunk_changed)
        except ShareError:
            for share in new_thunks:
                self._undo_thunk(share)
            raise
        for share in new_thunks:
            if results[id(share)].get('failed'):
                self._undo_thunk(share)
        for share in shares:
            if share.state == 'absent':
                self._thunk_absent(share, results[id(share)])

    def _undo_thunk(self, share):
        if self.check_mode:
            return
        try:
            self.thunks.absent(share.thunk)
        except ShareError:
            return
        self._rmdir_thunk(share)

    def _live_current(self, view, share, probed):
        """The live mount at dest as the container sees it: a state dict.

        probed: what view.probe() found at dest.
        """
        if isinstance(probed, ShareError):
            raise probed
        if probed is None:
            return {'mounted': False}
        resolved, mnt_id, is_root, entries = probed
        if not is_root:
            return {'mounted': False, 'entries': entries}
        record = self.state.load(self.live_key(share))
        entry = view.mounts.top(resolved)
        ours = record is not None and record.get('mount_id') == mnt_id
        clone = entry is not None and entry.idmapped and self._same_source(entry, share)
        covers = []
        if not (ours or clone):
            # Container root may have stacked a mount of its own on the share: the share is then covered, not gone.
            stack = view.mounts.stack(resolved)
            for i, e in enumerate(stack):
                if (record is not None and record.get('mount_id') == e.mount_id) or (
                        e.idmapped and self._same_source(e, share)):
                    entry, mnt_id, covers = e, e.mount_id, stack[i + 1:]
                    ours = record is not None and record.get('mount_id') == e.mount_id
                    clone = not ours
        cur = {'mounted': True, 'ours': ours or clone, 'mount_id': mnt_id, 'resolved': resolved,
               'readonly': entry.readonly if entry is not None else None,
               'nosuid': entry.nosuid if entry is not None else None, 'covers': covers}
        if ours:
            cur.update(src=record.get('src'), idmap=Idmap.from_dict(record['idmap']).entries(),
                       thunk_mount_id=record.get('thunk_mount_id'))
        return cur

    def _source_of(self, share):
        """(dev, root) of the share's data as mountinfo shows it: from the thunk, else from the live record."""
        host = self.thunks.mounts.top(share.thunk)
        if host is not None and host.idmapped:
            return host.dev, host.root
        record = self.state.load(self.live_key(share))
        if record and record.get('dev') and record.get('root'):
            return tuple(record['dev']), record['root']
        return None

    def _same_source(self, entry, share):
        source = self._source_of(share)
        return source is not None and source == (entry.dev, entry.root)

    def _copies(self, idmapped_by_dev, share):
        """Every mount in the container that shows the share's data: the one at dest and any bind of it.

        Container root can bind a share elsewhere (or stack a second one);
        removal takes them all.  Deepest mount points first.
        idmapped_by_dev: the container's idmapped mounts by device, built once per pass.
        """
        source = self._source_of(share)
        if source is None:
            return []
        dev, root = source
        prefix = root.rstrip('/') + '/'
        found = [e for e in idmapped_by_dev.get(dev, ()) if e.root == root or e.root.startswith(prefix)]
        return sorted(found, key=lambda e: (-e.mount_point.count('/'), -e.mount_id))

    def _other_shares(self, share, copies):
        """Among copies, the mounts that are other shares of the container (of the same source) and stay.

        Two shares of one source in one container look alike.  At the dest of another share that lxcex.share
        attached (it has a live record), the lowest mount is that share; whatever the container's root stacked
        on it is still a copy of this share and goes.
        """
        group = '%s/live\0' % share.container.directory
        own = self.live_key(share)
        dests = set(key.split('\0', 1)[1] for key in self.state.records(group) if key != own)
        by_id = dict((e.mount_id, e) for e in copies)
        keep = []
        for e in copies:
            parent = by_id.get(e.parent_id)
            if e.mount_point in dests and (parent is None or parent.mount_point != e.mount_point):
                keep.append(e)
        return keep

    def _apply_live(self, container, view, shares, results, thunk_changed):
        """Bring the live mounts of a running container's shares to their wanted state.

        Per-share problems fail that share; ContainerStopped fails them all.
        """
        ops = []
        live = [s for s in shares if s.live]
        probed = view.probe([s.dest for s in live]) if live else {}
        idmapped_by_dev = {}
        self._share_points, self._points_of = None, (container, live, probed)
        if live:
            for entry in view.mounts.entries:
                if entry.idmapped:
                    idmapped_by_dev.setdefault(entry.dev, []).append(entry)
        for share in live:
            res = results[id(share)]
            try:
                share_ops = self._live_ops(container, view, share, res, thunk_changed, probed.get(share.dest),
                                           idmapped_by_dev)
            except ContainerStopped:
                raise
            except ShareError as e:
                _fail(res, str(e))
                continue
            except (OSError, _kernel.KernelError) as e:
                view.check_alive()
                _fail(res, 'container %s, dest %s: %s' % (container.name, share.dest, e))
                continue
            ops.extend((share, op) for op in share_ops)
        rmdirs = [(share, op) for share, op in ops if op[0] == 'rmdirs']
        if len(rmdirs) > 1:
            # The directories removed shares created, all at once after every unmount, deepest first: a parent two
            # removed shares had in common is empty only when both are gone.
            paths = sorted(set(p for dummy, op in rmdirs for p in op[1]), key=lambda p: (p.count('/'), p))
            ops = [x for x in ops if x[1][0] != 'rmdirs'] + [(rmdirs[0][0], ('rmdirs', paths, rmdirs[0][1][2]))]
        if self.check_mode or not ops:
            return
        outcome = view.execute([op for dummy, op in ops], thunks_dir=self.thunks_dir)
        for (share, op), answer in zip(ops, outcome):
            err, msg, mnt_id = answer[:3]
            if err:
                if op[0] == 'umount_id' and err == errno.ESTALE:
                    continue
                _fail(results[id(share)], 'cannot %s %s in container %s: %s' % (
                    'attach the share at' if op[0] == 'attach' else 'unmount the share at', op[2],
                    container.name, msg or os.strerror(err)))
            elif op[0] == 'attach':
                source = self._source_of(share)
                # Directories made for the share: those of this attach, or of the one it replaced.
                created = answer[3] if len(answer) > 3 and answer[3] else share.created
                if len(answer) > 4:
                    results[id(share)]['replaced'] = answer[4]
                self.state.save({'path': self.live_key(share), 'mount_id': mnt_id, 'src': share.src,
                                 'idmap': share.idmap.to_dict(), 'readonly': share.readonly,
                                 'thunk_mount_id': self._thunk_mount_id(share), 'created': created,
                                 'dev': list(source[0]) if source else None, 'root': source[1] if source else None})
            elif op[0] != 'rmdirs' and share.state == 'absent' and not results[id(share)].get('failed'):
                self.state.delete(self.live_key(share))

    def _live_ops(self, container, view, share, res, thunk_changed, probed, idmapped_by_dev):
        """The operations one share needs inside the container (see _plan), its result filled in."""
        cur = self._live_current(view, share, probed)
        record = self.state.load(self.live_key(share))
        share.created = (record or {}).get('created') or []
        copies = []
        if share.state == 'absent' or (record is not None and cur['mounted'] and cur['ours']):
            copies = self._copies(idmapped_by_dev, share)
            others = self._other_shares(share, copies)
            copies = [e for e in copies if e not in others]
        res['before']['live'] = dict((k, cur[k]) for k in _plan.LIVE_KEYS if k in cur)
        plan = _plan.live_plan(share, cur, record, copies, self._points() if copies and share.state == 'present' else (),
                               bool(thunk_changed.get(id(share))),
                               self._thunk_mount_id(share), container.name, self.thunks_dir)
        if plan.after is not None:
            res['after']['live'] = plan.after
        for key in ('drift', 'repaired', 'revoked', 'covered'):
            if getattr(plan, key):
                res[key] = getattr(plan, key)
        if plan.warnings:
            res.setdefault('warnings', []).extend(plan.warnings)
        if plan.changed:
            res['changed'] = True
        return [] if self.check_mode else plan.ops

    def _points(self):
        """Where the shares of the container being applied are meant to be (never taken for a copy container root
        made): its sharetab's dests, read only when a share has a mount of its data elsewhere."""
        if self._share_points is None:
            container, live, probed = self._points_of
            self._share_points = set(s.dest for s in live) | set(
                e.dest for e in _sharetab.entries(os.path.join(container.directory, SHARETAB)))
            self._share_points.update(p[0] for p in probed.values() if isinstance(p, tuple))
        return self._share_points

    def _thunk_mount_id(self, share):
        record = self.state.load(share.thunk)
        return record.get('mount_id') if record else None


def _fail(res, msg):
    """Mark a share failed; what was done for it has been undone."""
    res['failed'] = True
    res['changed'] = False
    res['msg'] = msg


__all__ = ['Engine', 'ContainerStopped', 'thunk_name', 'host_spec']
