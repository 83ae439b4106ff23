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
import hashlib
import os
import posixpath
import resource
import stat

from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils import _team
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._idmap import Idmap, single
from ansible_collections.lxcex.share.plugins.module_utils._live import MAX_COUNTED, ContainerStopped, ContainerView
from ansible_collections.lxcex.share.plugins.module_utils._lxc import Container, find_init_pid, monitor_pids
from ansible_collections.lxcex.share.plugins.module_utils._mountinfo import MountTable
from ansible_collections.lxcex.share.plugins.module_utils._passwd import Accounts
from ansible_collections.lxcex.share.plugins.module_utils._resolve import open_dir, resolve_src
from ansible_collections.lxcex.share.plugins.module_utils._sharetab import DirLock
from ansible_collections.lxcex.share.plugins.module_utils._thunk import (
    Thunks, ThunkError, UnsupportedFilesystem, unsupported_text)
from ansible_collections.lxcex.share.plugins.module_utils._validate import (
    canonical_target, check_id, check_text, check_thunks_size, is_inside)

DEFAULT_THUNKS_DIR = '/mnt/share-thunks'
DEFAULT_THUNKS_SIZE = '1M'

THUNKS_SOURCE = 'lxcex-share-thunks'  # the source name of our thunks tmpfs in the mount table
SHARETAB = 'sharetab'


MAX_THUNK_NAME = 255


def thunk_name(dest):
    """dest as one path component, escaped like systemd-escape --path.

    A name longer than MAX_THUNK_NAME bytes is cut and ends with a hash of
    dest, so that any valid dest has a thunk (NAME_MAX is 255).
    """
    name = _escaped(dest)
    if len(name) > MAX_THUNK_NAME:
        digest = hashlib.sha256(dest.encode('utf-8', 'surrogateescape')).hexdigest()[:16]
        name = name[:MAX_THUNK_NAME - 18] + '--' + digest
    return name


def _escaped(dest):
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


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError:
        return None


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


class Share(object):
    """One validated request."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def key(self):
        return (self.container.directory, self.dest)


class Engine(object):
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

    # -- validation ----------------------------------------------------------

    def _rootfs_owner(self, st):
        """(container name, on-disk uid of its root) when st is the rootfs directory of a container of lxcpath."""
        if self._rootfs is None:
            self._rootfs = {}
            try:
                names = os.listdir(self.lxcpath)
            except OSError:
                names = []
            for name in names:
                try:
                    ct = self.container(name)
                except ShareError:
                    continue
                if not ct.rootfs:
                    continue
                try:
                    rst = os.stat(ct.rootfs)
                except OSError:
                    continue
                root_uid = 0 if ct.rootfs_idmapped else ct.root_host_ids()[0]
                self._rootfs[(rst.st_dev, rst.st_ino)] = (name, root_uid)
        return self._rootfs.get((st.st_dev, st.st_ino))

    def _open_src(self, src):
        """Resolve src safely (see _resolve.resolve_src); wherever a container's rootfs lives.

        Each distinct src is resolved once per pass; its fd is kept until close().
        """
        key = posixpath.normpath(src)
        if key not in self._srcs:
            try:
                self._srcs[key] = resolve_src(key, self._rootfs_owner)
            except OSError as e:
                raise ShareError('src %s cannot be opened: %s' % (src, os.strerror(e.errno)))
            self._fds.append(self._srcs[key].fd)
        return self._srcs[key]

    def prepare(self, params):
        """Validate one request (dict of lxc_share parameters); no side effects."""
        name = params.get('container')
        dest = params.get('dest')
        for key in ('container', 'dest', 'src', 'user', 'group'):
            check_text(key, params.get(key))
        for key in ('src_uid', 'src_gid', 'disk_gid'):
            check_id(key, params.get(key))
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
                      group=params.get('group'), idmap=None, entry=None, src_fd=None, created=[],
                      nonempty=params.get('nonempty_dest') or 'warn', nosuid=not params.get('allow_setuid'),
                      team=bool(params.get('members')), setup_src=params.get('setup_src', True) is not False,
                      preflight=None)
        if state == 'absent':
            return share
        src = params.get('src')
        if not src or not src.startswith('/'):
            raise ShareError('src %r is not an absolute path' % (src,))
        if params.get('user') in (None, '') and not share.team:
            raise ShareError('user is required with state=present')
        where = self._open_src(src)
        src_fd = where.fd
        # Where src really is, from the fd resolved safely, not from the path again.
        if is_inside(os.readlink('/proc/self/fd/%d' % src_fd), self.thunks_dir):
            raise ShareError('src %s is inside the thunks directory %s' % (src, self.thunks_dir))
        st = os.fstat(src_fd)
        if not stat.S_ISDIR(st.st_mode):
            raise ShareError('src %s is not a directory' % src)
        if share.team:
            return self._prepare_team(share, params, where, st)
        if (where.container is not None and params.get('src_uid') is None and st.st_uid == where.root_uid
                and not params.get('allow_root')):
            raise ShareError('src %s belongs to the root of container %s (on-disk uid %d), not to a user of it; '
                             'sharing it would give root\'s files to %s; set src_uid, or allow_root to allow it'
                             % (src, where.container, st.st_uid, params['user']))
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
        self._preflight(share)
        return share

    def _prepare_team(self, share, params, where, st):
        """A team share in one container (see _team): its idmap from all the members."""
        if where.container is not None:
            raise ShareError('src %s lies in the rootfs of container %s; a team share\'s source must be a host '
                             'directory' % (share.src, where.container))
        members = _team.decode(params['members'])
        disk_gid = st.st_gid if params.get('disk_gid') is None else int(params['disk_gid'])
        if disk_gid == 0 and not params.get('allow_root'):
            raise ShareError('team share of %s: the team\'s group on disk would be gid 0 (root)%s; set disk_gid to the '
                             'team\'s gid' % (share.src, ', the group of src' if params.get('disk_gid') is None else ''))
        idmap, (uid, gid) = _team.idmap_for(self, share.container, members, disk_gid, params.get('group'), st.st_uid,
                                            share.dest, show_authors=bool(params.get('show_authors')))
        share.__dict__.update(src_fd=where.fd, idmap=idmap, uid=uid, gid=gid, src_uid=st.st_uid, src_gid=disk_gid,
                              members=members, entry=_sharetab.entry_of(dict(params, disk_gid=disk_gid)))
        self._preflight(share)
        return share

    def _idmapped_devs(self, dev):
        """Whether the host has an idmapped mount of the filesystem dev (the table read once per pass)."""
        if self._idmapped is None:
            self._idmapped = set(e.dev for e in self.thunks.mounts.entries if e.idmapped)
        return dev in self._idmapped

    def _preflight(self, share):
        """Whether the source's filesystem takes idmapped mounts, probed once per filesystem and pass.

        The probe is what the thunk will do: a detached idmapped clone of the source, never attached.
        A filesystem without support fails the share here, before anything changes (and in check mode).
        """
        real = os.readlink('/proc/self/fd/%d' % share.src_fd)
        under = self.thunks.mounts.containing(real)
        key = under.mount_id if under is not None else None
        if key not in self._probed and under is not None and self._idmapped_devs(under.dev):
            self._probed[key] = None        # an idmapped mount of this filesystem exists: it takes them
        if key not in self._probed:
            try:
                os.close(self.thunks._detached(share.src_fd, share.idmap, False, share.src, under))
                self._probed[key] = None
            except ThunkError as e:
                self._probed[key] = e
        fstype = under.fstype if under is not None else 'unknown'
        where = under.mount_point if under is not None else '?'
        failure = self._probed[key]
        if isinstance(failure, UnsupportedFilesystem):
            raise ShareError('pre-flight: ' + unsupported_text(fstype, share.src, where, explain=True))
        if failure is not None:
            raise ShareError('pre-flight: an idmapped mount of %s (%s, mounted at %s) failed: %s'
                             % (share.src, fstype, where, failure))
        share.preflight = 'idmapped mounts work on %s (%s, mounted at %s)' % (share.src, fstype, where)

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
        changed_srcs = self._setup_team_srcs(shares, results)
        by_container = {}
        for share in shares:
            by_container.setdefault(share.container.name, []).append(share)
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
        for fd, saved, group in changed_srcs:
            # Nothing half done: a source set up for a team share none of whose parts could be applied is
            # put back as it was.
            if all(results[id(s)].get('failed') for s in group):
                _team.restore_src(fd, saved)
        if not self.check_mode:
            self.state.flush()
        return [results[id(s)] for s in shares]

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

    def ensure_thunks_fs(self):
        """The thunks directory: our tmpfs, mode 0711, rshared. Returns changed.

        An existing directory is taken only when it is ours: a tmpfs owned by
        root and writable by nobody else, or an empty root-owned directory
        that nobody else can write to (a tmpfs is then mounted on it).
        Anything else is refused before any change.
        """
        entry, st = self.check_thunks_dir()
        path = self.thunks_dir
        changed = False
        created = []
        try:
            if entry is None:
                changed = True
                if not self.check_mode:
                    if st is None:
                        created = self.thunks.makedirs(path)
                    _kernel.mount(THUNKS_SOURCE, path, 'tmpfs', 0,
                                  'size=%s,mode=0711' % self.thunks_size)
                    _kernel.mount(None, path, None, _kernel.MS_SHARED | _kernel.MS_REC)
                    self.thunks._mounts = None
            elif not any(o.startswith('shared:') for o in entry.optional):
                changed = True
                if not self.check_mode:
                    _kernel.mount(None, path, None, _kernel.MS_SHARED | _kernel.MS_REC)
                    self.thunks._mounts = None
        except (OSError, _kernel.KernelError) as e:
            self.thunks.rmdirs(created)
            raise ShareError('cannot set up the thunks directory %s: %s' % (path, e))
        return changed

    def check_thunks_dir(self):
        """Refuse a thunks directory that cannot be ours, changing nothing; returns (mount entry, lstat).

        Called before a run changes anything (converge) and again before the tmpfs is mounted.
        """
        path = self.thunks_dir
        if path == '/':
            raise ShareError('thunks directory / is refused: it must be a directory of its own (the default is %s)'
                             % DEFAULT_THUNKS_DIR)
        entry = self.thunks.mounts.top(path)
        if entry is not None and entry.fstype != 'tmpfs':
            raise ShareError('thunks directory %s is a mount point of %s, not a tmpfs' % (path, entry.fstype))
        try:
            st = _lstat(path)
            if st is not None:
                if not stat.S_ISDIR(st.st_mode):
                    raise ShareError('thunks directory %s exists and is not a directory' % path)
                if st.st_uid != 0 or st.st_mode & 0o022:
                    raise ShareError('thunks directory %s is owned by uid %d with mode %04o; it must belong to root '
                                     'and be writable by nobody else' % (path, st.st_uid, stat.S_IMODE(st.st_mode)))
                if entry is None and os.listdir(path):
                    raise ShareError('thunks directory %s is not empty and is not a mount point; refusing to cover '
                                     'its files with a tmpfs (choose an empty or a new directory)' % path)
        except OSError as e:
            raise ShareError('thunks directory %s cannot be read: %s' % (path, e.strerror or e))
        if entry is not None and entry.source not in (THUNKS_SOURCE, 'tmpfs'):
            raise ShareError('thunks directory %s is a tmpfs mounted by something else (source %s); lxcex.share uses '
                             'only a thunks tmpfs it mounted itself (%s) or the original lxcex-share\'s; choose an '
                             'empty or a new directory' % (path, entry.source, THUNKS_SOURCE))
        return entry, st

    def forget_mounts(self):
        """Read the host's mount table again when next needed (it was read before this run took its locks)."""
        if self.thunks._mounts is not None:
            self.thunks._mounts = None
            self._idmapped = None

    def thunks_tmpfs(self):
        """The thunks tmpfs mounted at thunks_dir when it is ours (lxcex-share-thunks) or the original
        lxcex-share's (source tmpfs); None otherwise: then nothing below thunks_dir is taken for a thunk."""
        entry = self.thunks.mounts.top(self.thunks_dir)
        if entry is None or entry.fstype != 'tmpfs' or entry.source not in (THUNKS_SOURCE, 'tmpfs'):
            return None
        return entry

    def _thunk_points(self, directory):
        """The idmapped mount points below directory that sit on the thunks tmpfs (directly, or on other such
        thunks, as the original nested them): provably thunks, never another program's mounts."""
        tmpfs = self.thunks_tmpfs()
        if tmpfs is None:
            return []
        by_id = dict((e.mount_id, e) for e in self.thunks.mounts.entries)
        out = []
        for point in self.thunks.mounts.below(directory):
            ok = True
            for e in self.thunks.mounts.stack(point):
                seen = 0
                while e is not None and e.mount_id != tmpfs.mount_id and seen < 64:
                    if not e.idmapped or not is_inside(e.mount_point, directory):
                        break
                    e = by_id.get(e.parent_id)
                    seen += 1
                if e is None or e.mount_id != tmpfs.mount_id:
                    ok = False
                    break
            if ok:
                out.append(point)
        return out

    def _container_dir(self, container):
        """THUNKS_DIR/CONTAINER: owned by the container's root, 0700. Returns True when created.

        Only root and the container's root (whose user namespace takes the
        clones from here, see _live) can pass it: no other host user reaches
        a thunk.  An older, more open directory is closed on the way.
        """
        path = posixpath.join(self.thunks_dir, container.name)
        uid, gid = container.root_host_ids()
        made = False
        try:
            st = _lstat(path)
            if st is not None:
                if not stat.S_ISDIR(st.st_mode):
                    raise ShareError('%s is not a directory' % path)
                if not self.check_mode and (stat.S_IMODE(st.st_mode) != 0o700 or (st.st_uid, st.st_gid) != (uid, gid)):
                    os.chown(path, uid, gid, follow_symlinks=False)
                    os.chmod(path, 0o700)
                return False
            if self.check_mode:
                return False
            os.mkdir(path, 0o700)
            made = True
            os.chown(path, uid, gid, follow_symlinks=False)
            os.chmod(path, 0o700)
        except OSError as e:
            if made:
                self._remove_container_dir(container)
            raise ShareError('cannot make the thunks directory %s of container %s: %s (the thunks tmpfs %s may be '
                             'full: thunks_size)' % (path, container.name, e.strerror or e, self.thunks_dir))
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

        Returns the thunk paths unmounted.  Only idmapped mounts are touched,
        at any depth below THUNKS_DIR/NAME (the original lxcex-share nested
        its thunks like their dests).  Directories are removed only when they
        are empty, not mount points, and on the thunks tmpfs itself: never a
        directory inside a thunk.
        """
        directory = posixpath.join(self.thunks_dir, name)
        try:
            tmpfs_dev = os.stat(self.thunks_dir).st_dev
        except OSError:
            return []
        done = []
        for path in reversed(self._thunk_points(directory)):
            try:
                changed, dummy, dummy2 = self.thunks.absent(path)
            except ShareError:
                continue
            if changed:
                done.append(path)
            if not self.check_mode:
                self._rmdir_up(path, directory, tmpfs_dev)
        if not self.check_mode:
            self._rmdir_up(directory, self.thunks_dir, tmpfs_dev)
            # The records of its live mounts went with the container's mount namespace.
            for key in self.state.records(posixpath.join(self.lxcpath, name) + '/live\0'):
                self.state.delete(key)
        return done

    def _rmdir_up(self, path, top, dev):
        """rmdir path and its parents below top while empty, unmounted and on the filesystem dev."""
        while path != top and is_inside(path, top):
            st = _lstat(path)
            if st is None or not stat.S_ISDIR(st.st_mode) or st.st_dev != dev or self.thunks.mounts.top(path):
                return
            try:
                os.rmdir(path)
            except OSError:
                return
            path = posixpath.dirname(path)

    def release_stale(self):
        """Unmount the thunks of containers that are not running at all; returns the thunks released.

        A container that was running when its hook block was added has no
        post-stop hook loaded, so its thunks stay after it stops.  Any run
        finds and releases them.  A container counts as running while any
        trusted monitor of that name exists, in whatever lxcpath, so that
        another lxcpath's container of the same name keeps its thunks.
        """
        prefix = self.thunks_dir.rstrip('/') + '/'
        names = set()
        for point in self._thunk_points(self.thunks_dir):
            rest = point[len(prefix):]
            if '/' in rest and self._recorded(point, rest.split('/', 1)[0]):
                names.add(rest.split('/', 1)[0])
        if not names:
            return []
        if self._monitors is None:
            self._monitors = monitor_pids()
        running = set(key.rsplit(' ', 1)[-1] for key in self._monitors) | set(self._pids)
        released = []
        for name in sorted(names - running):
            directory = os.path.join(self.lxcpath, name)
            if os.path.isdir(directory) and not self.check_mode:
                # Not waiting: a run that holds this container's lock is working on it (and waiting here could
                # deadlock against it); its thunks are released by the next run.
                try:
                    with DirLock(directory, blocking=False):
                        released.extend(self.release(name))
                except DirLock.Busy:
                    continue
            else:
                released.extend(self.release(name))
        return released

    def _recorded(self, point, name):
        """A thunk is ours to release when we recorded it (under /run) or its container here has a sharetab."""
        return self.state.load(point) is not None or os.path.isfile(os.path.join(self.lxcpath, name, SHARETAB))

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
        cur = {'mounted': True, 'ours': ours or clone, 'mount_id': mnt_id, 'resolved': resolved,
               'readonly': entry.readonly if entry is not None else None,
               'nosuid': entry.nosuid if entry is not None else None}
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
        if any(s.state == 'absent' for s in live):
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
            elif op[0] != 'rmdirs' and not results[id(share)].get('failed'):
                self.state.delete(self.live_key(share))

    def _live_ops(self, container, view, share, res, thunk_changed, probed, idmapped_by_dev):
        """The operations one share needs inside the container."""
        cur = self._live_current(view, share, probed)
        res['before']['live'] = dict((k, cur[k]) for k in ('mounted', 'src', 'idmap', 'readonly', 'nosuid') if k in cur)
        record = self.state.load(self.live_key(share)) or {}
        share.created = record.get('created') or []
        if share.state == 'absent':
            copies = self._copies(idmapped_by_dev, share)
            others = self._other_shares(share, copies)
            copies = [e for e in copies if e not in others]
            if copies:
                res['changed'] = True
                res['revoked'] = [e.mount_point for e in copies]
                ops = [('umount_id', e.mount_id, e.mount_point) for e in copies]
            elif cur['mounted'] and cur['ours']:
                res['changed'] = True
                ops = [('umount', share.dest, share.dest)]
            else:
                if cur['mounted']:
                    res['after']['live'] = res['before']['live']
                return []
            if share.created:
                ops.append(('rmdirs', share.created, share.dest))
            return ops
        want = {'mounted': True, 'src': share.src, 'idmap': share.idmap.entries(), 'readonly': share.readonly,
                'nosuid': share.nosuid}
        res['after']['live'] = want
        if cur['mounted'] and not cur['ours']:
            raise ShareError('dest %s in container %s is already a mount point of something else; refusing to cover it'
                             % (share.dest, container.name))
        if not cur['mounted'] and cur.get('entries'):
            count = cur['entries']
            shown_count = '%d' % count if count <= MAX_COUNTED else 'more than %d' % MAX_COUNTED
            if share.nonempty == 'refuse':
                raise ShareError('dest %s in container %s is not empty (%s entries); refusing to cover them '
                                 '(nonempty_dest=refuse)' % (share.dest, container.name, shown_count))
            res['covered'] = count
            res.setdefault('warnings', []).append(
                'dest %s in container %s is not empty: the share hides %s entries that were there'
                % (share.dest, container.name, shown_count))
        same = (cur['mounted'] and cur.get('src') == share.src and cur.get('idmap') == want['idmap']
                and cur.get('readonly') == share.readonly and cur.get('nosuid') == share.nosuid
                and not thunk_changed.get(id(share))
                and cur.get('thunk_mount_id') == self._thunk_mount_id(share))
        if same:
            return []
        res['changed'] = True
        if self.check_mode:
            return []
        return [('attach', share.thunk, share.dest, (share.uid, share.gid), cur['mounted'])]

    def _thunk_mount_id(self, share):
        record = self.state.load(share.thunk)
        return record.get('mount_id') if record else None


def _fail(res, msg):
    """Mark a share failed; what was done for it has been undone."""
    res['failed'] = True
    res['changed'] = False
    res['msg'] = msg


__all__ = ['Engine', 'ContainerStopped', 'thunk_name', 'host_spec']
