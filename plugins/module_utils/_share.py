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
import posixpath
import stat

from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._idmap import Idmap, single
from ansible_collections.lxcex.share.plugins.module_utils._live import ContainerStopped, ContainerView
from ansible_collections.lxcex.share.plugins.module_utils._lxc import Container, find_init_pid, monitor_pids
from ansible_collections.lxcex.share.plugins.module_utils._mountinfo import MountTable
from ansible_collections.lxcex.share.plugins.module_utils._passwd import Accounts
from ansible_collections.lxcex.share.plugins.module_utils._resolve import ResolveError, open_dir, walk
from ansible_collections.lxcex.share.plugins.module_utils._thunk import Thunks
from ansible_collections.lxcex.share.plugins.module_utils._validate import canonical_target, is_inside

DEFAULT_THUNKS_DIR = '/mnt/share-thunks'
DEFAULT_THUNKS_SIZE = '1M'
SHARETAB = 'sharetab'


def thunk_name(dest):
    """dest as one path component, escaped like systemd-escape --path."""
    path = dest.strip('/')
    if not path:
        return '-'
    out = []
    for i, ch in enumerate(path):
        if ch == '/':
            out.append('-')
        elif (ch.isascii() and ch.isalnum()) or ch == '_' or (ch == '.' and i > 0):
            out.append(ch)
        else:
            out.extend('\\x%02x' % b for b in ch.encode('utf-8', 'surrogateescape'))
    return ''.join(out)


class Share(object):
    """One validated request."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def key(self):
        return (self.container.directory, self.dest)


class Engine(object):
    def __init__(self, lxcpath, thunks_dir=DEFAULT_THUNKS_DIR, thunks_size=DEFAULT_THUNKS_SIZE,
                 check_mode=False, thunks=None, pids=None, backend='native', run_command=None, mount_idmapped=None):
        self.lxcpath = lxcpath.rstrip('/') or '/'
        self.thunks_dir = canonical_target(thunks_dir)
        self.thunks_size = thunks_size
        self.check_mode = check_mode
        self.thunks = thunks or Thunks(check_mode=check_mode, backend=backend, run_command=run_command,
                                       mount_idmapped=mount_idmapped)
        self.state = self.thunks.state
        self._containers = {}
        self._accounts = {}
        self._views = {}
        self._monitors = None
        self._pids = dict(pids or {})
        self._fds = []

    # -- facts, each read once per pass ------------------------------------

    def container(self, name):
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
            self._views[container.name] = ContainerView(container.name, pid) if pid else None
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

    # -- validation ----------------------------------------------------------

    def _open_src(self, src):
        """O_PATH fd of src; a path into a container's rootfs is resolved inside that rootfs."""
        norm = posixpath.normpath(src)
        root = None
        if is_inside(norm, self.lxcpath) and norm != self.lxcpath:
            name = norm[len(self.lxcpath):].lstrip('/').split('/', 1)[0]
            try:
                owner = self.container(name)
            except ShareError:
                owner = None
            if owner is not None and owner.rootfs and is_inside(norm, posixpath.normpath(owner.rootfs)):
                root = posixpath.normpath(owner.rootfs)
        try:
            if root is None:
                return os.open(norm, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            root_fd = open_dir(root)
            try:
                rel = norm[len(root):].lstrip('/') or '.'
                return _kernel.openat2(root_fd, rel, os.O_PATH | os.O_DIRECTORY,
                                       _kernel.RESOLVE_IN_ROOT | _kernel.RESOLVE_NO_MAGICLINKS)
            finally:
                os.close(root_fd)
        except (OSError, _kernel.KernelError) as e:
            if e.errno == errno.ENOENT:
                raise ShareError('src %s does not exist' % src)
            if e.errno == errno.ENOTDIR:
                raise ShareError('src %s is not a directory' % src)
            raise ShareError('src %s cannot be opened: %s' % (src, os.strerror(e.errno)))

    def prepare(self, params):
        """Validate one request (dict of lxc_share parameters); no side effects."""
        name = params.get('container')
        dest = params.get('dest')
        if not name:
            raise ShareError('container is required')
        if not dest or not dest.startswith('/'):
            raise ShareError('dest %r is not an absolute path' % (dest,))
        dest = posixpath.normpath(dest)
        if dest == '/':
            raise ShareError('dest / cannot be shared onto')
        container = self.container(name)
        state = params.get('state') or 'present'
        share = Share(container=container, dest=dest, state=state, thunk=self.thunk_path(container, dest),
                      persist=params.get('persist', True), live=params.get('live', True),
                      readonly=bool(params.get('readonly')), src=params.get('src'), user=params.get('user'),
                      group=params.get('group'), idmap=None, entry=None, src_fd=None)
        if state == 'absent':
            return share
        src = params.get('src')
        if not src or not src.startswith('/'):
            raise ShareError('src %r is not an absolute path' % (src,))
        if params.get('user') in (None, ''):
            raise ShareError('user is required with state=present')
        src_fd = self._open_src(src)
        self._fds.append(src_fd)
        # Where src really is, from the fd resolved safely, not from the path again.
        if is_inside(os.readlink('/proc/self/fd/%d' % src_fd), self.thunks_dir):
            raise ShareError('src %s is inside the thunks directory %s' % (src, self.thunks_dir))
        st = os.fstat(src_fd)
        if not stat.S_ISDIR(st.st_mode):
            raise ShareError('src %s is not a directory' % src)
        src_uid = st.st_uid if params.get('src_uid') is None else int(params['src_uid'])
        src_gid = st.st_gid if params.get('src_gid') is None else int(params['src_gid'])
        accounts = self.accounts(container)
        uid, gid, user_name = accounts.user(params['user'])
        if params.get('group') not in (None, ''):
            gid, dummy = accounts.group(params['group'])
        if gid is None:
            raise ShareError('user %s of container %s has no primary group in its /etc/passwd; set group'
                             % (params['user'], name))
        host_uid = container.host_id('u', uid)
        host_gid = container.host_id('g', gid)
        idmap = single(src_uid, host_uid, src_gid, host_gid)
        if idmap.involves_root() and not params.get('allow_root'):
            raise ShareError('share of %s to %s:%s maps host root (on-disk %d:%d -> host %d:%d); set allow_root to allow it'
                             % (src, name, dest, src_uid, src_gid, host_uid, host_gid))
        share.__dict__.update(src=src, src_fd=src_fd, idmap=idmap, uid=uid, gid=gid, host_uid=host_uid,
                              host_gid=host_gid, src_uid=src_uid, src_gid=src_gid,
                              entry=_sharetab.entry_of(params, src_uid, src_gid))
        return share

    def thunk_path(self, container, dest):
        return posixpath.join(self.thunks_dir, container.name, thunk_name(dest))

    # -- applying --------------------------------------------------------------

    def apply(self, shares):
        """Apply validated shares in one pass; return one result dict per share.

        A share that cannot be applied gets ``failed`` and ``msg`` in its
        result and leaves nothing behind (a thunk made for it is removed, its
        sharetab line is not written); the others go on.  A container that
        stops during the pass fails all of its shares.
        """
        results = dict((id(s), self._result(s)) for s in shares)
        by_container = {}
        for share in shares:
            by_container.setdefault(share.container.name, []).append(share)
        for name in sorted(by_container):
            group = by_container[name]
            container = group[0].container
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
            self._apply_sharetab(container, [s for s in group if s.persist and not results[id(s)].get('failed')],
                                 results)
        if not self.check_mode:
            self.state.flush()
        return [results[id(s)] for s in shares]

    @staticmethod
    def _result(share):
        return {'container': share.container.name, 'dest': share.dest, 'state': share.state, 'changed': False,
                'thunk': share.thunk, 'src': share.src, 'idmap': share.idmap.entries() if share.idmap else None,
                'before': {'sharetab': None, 'live': {'mounted': False}},
                'after': {'sharetab': None, 'live': {'mounted': False}}}

    def _apply_sharetab(self, container, shares, results):
        if not shares:
            return
        path = os.path.join(container.directory, SHARETAB)
        changes = dict((s.dest, s.entry if s.state == 'present' else None) for s in shares)
        dummy, per_dest = _sharetab.update(path, changes, check_mode=self.check_mode)
        for share in shares:
            old, new = per_dest[share.dest]
            res = results[id(share)]
            res['before']['sharetab'] = old.format() if old else None
            res['after']['sharetab'] = new.format() if new else None
            if res['before']['sharetab'] != res['after']['sharetab']:
                res['changed'] = True

    def ensure_thunks_fs(self):
        """The thunks directory: a tmpfs, mode 0711, rshared. Returns changed."""
        mounts = self.thunks.mounts
        entry = mounts.top(self.thunks_dir)
        changed = False
        if entry is not None and entry.fstype != 'tmpfs':
            raise ShareError('thunks directory %s is a mount point of %s, not a tmpfs' % (self.thunks_dir, entry.fstype))
        try:
            if entry is None:
                changed = True
                if not self.check_mode:
                    if not os.path.isdir(self.thunks_dir):
                        os.makedirs(self.thunks_dir, 0o711)
                    _kernel.mount('lxcex-share-thunks', self.thunks_dir, 'tmpfs', 0,
                                  'size=%s,mode=0711' % self.thunks_size)
                    _kernel.mount(None, self.thunks_dir, None, _kernel.MS_SHARED | _kernel.MS_REC)
                    self.thunks._mounts = None
            elif not any(o.startswith('shared:') for o in entry.optional):
                changed = True
                if not self.check_mode:
                    _kernel.mount(None, self.thunks_dir, None, _kernel.MS_SHARED | _kernel.MS_REC)
                    self.thunks._mounts = None
        except (OSError, _kernel.KernelError) as e:
            raise ShareError('cannot set up the thunks directory %s: %s' % (self.thunks_dir, e))
        return changed

    def _container_dir(self, container):
        """THUNKS_DIR/CONTAINER, owned by the container's root, 0711. Returns True when created."""
        path = posixpath.join(self.thunks_dir, container.name)
        if os.path.isdir(path) or self.check_mode:
            return False
        os.mkdir(path, 0o711)
        uid, gid = container.root_host_ids()
        os.chown(path, uid, gid)
        os.chmod(path, 0o711)
        return True

    def _remove_container_dir(self, container):
        if self.check_mode:
            return
        try:
            os.rmdir(posixpath.join(self.thunks_dir, container.name))
        except OSError:
            pass

    def _thunk_absent(self, share, res):
        changed, before, dummy = self.thunks.absent(share.thunk)
        if changed:
            res['changed'] = True
        self._rmdir_thunk(share)
        if not self.check_mode:
            self.state.delete(self.live_key(share))

    def _rmdir_thunk(self, share):
        """rmdir THUNKS_DIR/CONTAINER/NAME and THUNKS_DIR/CONTAINER when empty and unmounted."""
        if self.check_mode or self.thunks.current(share.thunk) is not None:
            return
        try:
            os.rmdir(share.thunk)
        except OSError:
            pass
        self._remove_container_dir(share.container)

    def release(self, name):
        """Unmount every thunk of a container (after it stopped) and rmdir their directories.

        Returns the thunk paths unmounted.  Only idmapped mounts are touched.
        """
        directory = posixpath.join(self.thunks_dir, name)
        done = []
        for path in reversed(self.thunks.mounts.below(directory)):
            if posixpath.dirname(path) != directory:
                continue
            changed, dummy, dummy2 = self.thunks.absent(path)
            if changed:
                done.append(path)
            if not self.check_mode:
                try:
                    os.rmdir(path)
                except OSError:
                    pass
        if not self.check_mode:
            try:
                os.rmdir(directory)
            except OSError:
                pass
        return done

    @staticmethod
    def live_key(share):
        """Record key of a live mount; records of one container share one state file."""
        return '%s/live\0%s' % (share.container.directory, share.dest)

    def _apply_running(self, container, view, shares, results):
        present = [s for s in shares if s.state == 'present' and s.live]
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
                                                             create_path=True, src_fd=share.src_fd)
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

    def _live_current(self, view, share):
        """The live mount at dest as the container sees it: a state dict."""
        try:
            fd, resolved, dummy = walk(view.root_fd, share.dest, 'dest')
        except ResolveError as e:
            view.check_alive()
            if not e.missing:
                raise ShareError('container %s: %s' % (share.container.name, e))
            return {'mounted': False}
        try:
            mnt_id, is_root, dummy = _kernel.statx_mount('', dirfd=fd)
        finally:
            os.close(fd)
        if not is_root:
            return {'mounted': False}
        record = self.state.load(self.live_key(share))
        entry = view.mounts.top(resolved)
        ours = record is not None and record.get('mount_id') == mnt_id
        clone = entry is not None and entry.idmapped and self._same_source(entry, share)
        cur = {'mounted': True, 'ours': ours or clone, 'mount_id': mnt_id,
               'readonly': entry.readonly if entry is not None else None}
        if ours:
            cur.update(src=record.get('src'), idmap=Idmap.from_dict(record['idmap']).entries(),
                       thunk_mount_id=record.get('thunk_mount_id'))
        return cur

    def _same_source(self, entry, share):
        host = self.thunks.mounts.top(share.thunk)
        return host is not None and host.dev == entry.dev and host.root == entry.root

    def _apply_live(self, container, view, shares, results, thunk_changed):
        """Bring the live mounts of a running container's shares to their wanted state.

        Per-share problems fail that share; ContainerStopped fails them all.
        """
        ops = []
        fds = []
        try:
            for share in shares:
                if not share.live:
                    continue
                res = results[id(share)]
                try:
                    op = self._live_op(container, view, share, res, thunk_changed, fds)
                except ContainerStopped:
                    raise
                except ShareError as e:
                    _fail(res, str(e))
                    continue
                except (OSError, _kernel.KernelError) as e:
                    view.check_alive()
                    _fail(res, 'container %s, dest %s: %s' % (container.name, share.dest, e))
                    continue
                if op is not None:
                    ops.append((share, op))
            if self.check_mode or not ops:
                return
            outcome = view.execute([op for dummy, op in ops])
            for (share, op), (err, msg, mnt_id) in zip(ops, outcome):
                if err:
                    _fail(results[id(share)], 'cannot %s %s in container %s: %s' % (
                        'attach the share at' if op[0] == 'attach' else 'unmount the share at', share.dest,
                        container.name, msg or os.strerror(err)))
                elif op[0] == 'attach':
                    self.state.save({'path': self.live_key(share), 'mount_id': mnt_id, 'src': share.src,
                                     'idmap': share.idmap.to_dict(), 'readonly': share.readonly,
                                     'thunk_mount_id': self._thunk_mount_id(share)})
                else:
                    self.state.delete(self.live_key(share))
        finally:
            for fd in fds:
                os.close(fd)

    def _live_op(self, container, view, share, res, thunk_changed, fds):
        """The operation one share needs inside the container, or None."""
        cur = self._live_current(view, share)
        res['before']['live'] = dict((k, cur[k]) for k in ('mounted', 'src', 'idmap', 'readonly') if k in cur)
        if share.state == 'absent':
            if cur['mounted'] and cur['ours']:
                res['changed'] = True
                return ('umount', share.dest)
            if cur['mounted']:
                res['after']['live'] = res['before']['live']
            return None
        want = {'mounted': True, 'src': share.src, 'idmap': share.idmap.entries(), 'readonly': share.readonly}
        res['after']['live'] = want
        if cur['mounted'] and not cur['ours']:
            raise ShareError('dest %s in container %s is already a mount point of something else; refusing to cover it'
                             % (share.dest, container.name))
        same = (cur['mounted'] and cur.get('src') == share.src and cur.get('idmap') == want['idmap']
                and cur.get('readonly') == share.readonly and not thunk_changed.get(id(share))
                and cur.get('thunk_mount_id') == self._thunk_mount_id(share))
        if same:
            return None
        res['changed'] = True
        if self.check_mode:
            return None
        tree = _kernel.open_tree(share.thunk)
        fds.append(tree)
        # The clone must not join the thunk's peer group: nothing the
        # container mounts below dest may propagate back to the host.
        _kernel.mount_setattr(tree, 0, what=share.thunk, propagation=_kernel.MS_PRIVATE)
        return ('attach', tree, share.dest, (share.uid, share.gid), cur['mounted'])

    def _thunk_mount_id(self, share):
        record = self.state.load(share.thunk)
        return record.get('mount_id') if record else None


def _fail(res, msg):
    """Mark a share failed; what was done for it has been undone."""
    res['failed'] = True
    res['changed'] = False
    res['msg'] = msg


def apply_one(engine, params):
    """Validate and apply a single share; return its result."""
    share = engine.prepare(params)
    return engine.apply([share])[0]


__all__ = ['Engine', 'ContainerStopped', 'thunk_name', 'apply_one']
