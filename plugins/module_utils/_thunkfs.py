# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thunks filesystem: our tmpfs at THUNKS_DIR, a directory per container, a thunk per share; releasing them.

ThunksFs is the part of the engine (see _share.Engine) that owns the thunks
directory: it mounts our tmpfs there (mode 0711, rshared) only where the
directory can be ours, refuses one that is another program's, and releases
only what is provably ours: thunks inside a thunks tmpfs of ours (or the
original's), matching our records, of containers that are not running.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import posixpath
import stat

from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._lxc import monitor_pids
from ansible_collections.lxcex.share.plugins.module_utils._sharetab import DirLock
from ansible_collections.lxcex.share.plugins.module_utils._validate import is_inside

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


class ThunksFs(object):
    """The thunks directory of an engine (a mixin of _share.Engine: it uses its lxcpath, thunks_dir,
    thunks_size, check_mode, thunks, state and released)."""

    def thunk_path(self, container, dest):
        return posixpath.join(self.thunks_dir, container.name, thunk_name(dest))

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
