# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Idempotent idmapped bind mounts ("thunks").

``Thunks`` compares the wanted mount at a path with what is mounted there and
makes the difference: mount, replace (with the old mount kept aside until the
new one is in place, so a failure puts the old one back) or unmount.  It reads
mountinfo once and creates one user namespace per distinct idmap, so many
thunks can be handled in one pass.  In check mode it only reports.

It never deletes a file: the only things it removes are mounts and empty
directories it created itself.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import shutil
import stat
import subprocess

from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._idmap import Idmap
from ansible_collections.lxcex.share.plugins.module_utils._mountinfo import MountEntry, MountTable
from ansible_collections.lxcex.share.plugins.module_utils._state import StateStore
from ansible_collections.lxcex.share.plugins.module_utils._userns import UsernsCache


class ThunkError(ShareError):
    pass


class UnsupportedFilesystem(ThunkError):
    """The source's filesystem takes no idmapped mounts (on this kernel)."""


def describe(current):
    """A mount's state as shown in diffs and results."""
    if current is None:
        return {'mounted': False}
    return dict(current)


def differences(want, current):
    """Names of the properties in which the current mount differs from want.

    want: dict with src, idmap (list of canonical entries), readonly, nosuid (nosuid and nodev).
    current: None when nothing is mounted, else a dict like describe() gives.
    """
    if current is None or not current.get('mounted'):
        return ['mounted']
    diffs = []
    if not current.get('same_src'):
        diffs.append('src')
    if current.get('idmap') != want['idmap']:
        diffs.append('idmap')
    if bool(current.get('readonly')) != bool(want['readonly']):
        diffs.append('readonly')
    if bool(current.get('nosuid')) != bool(want.get('nosuid')):
        diffs.append('nosuid')
    return diffs


# Filesystems that take idmapped mounts, and the Linux release from which they do.
IDMAP_SINCE = {'ext4': (5, 12), 'xfs': (5, 12), 'vfat': (5, 12), 'btrfs': (5, 15), 'overlay': (5, 19),
               'tmpfs': (6, 3), 'ceph': (6, 7), 'zfs': None}


def kernel_support(fstype):
    """What the kernel needs for idmapped mounts of fstype, for a message."""
    since = IDMAP_SINCE.get(fstype, False)
    if since is None and fstype == 'zfs':
        return 'ZFS supports them from OpenZFS 2.2 on Linux 6.x; put the source on ext4, xfs or btrfs or update ZFS'
    if since:
        if not _kernel.at_least(*since):
            return '%s supports them from Linux %d.%d, and this host runs %s' % (
                fstype, since[0], since[1], _kernel.release())
        return 'the kernel (Linux %s) refused an idmapped mount of it' % _kernel.release()
    return ('Linux %s has no idmapped mounts for %s (NFS, 9p, FUSE without idmap support, ramfs and proc never '
            'had them); put the source on ext4, xfs, btrfs or tmpfs (6.3)' % (_kernel.release(), fstype))


def unsupported_text(fstype, src, where, explain=False):
    """'filesystem F of SRC (mounted at M) does not support idmapped mounts', followed by what the kernel
    needs: always with explain, else only when a newer kernel would support it."""
    text = ('filesystem %s of %s (mounted at %s) does not support idmapped mounts'
            % (fstype or 'unknown', src, where or '?'))
    since = IDMAP_SINCE.get(fstype)
    if explain or (since and not _kernel.at_least(*since)):
        text += ': ' + kernel_support(fstype)
    return text


def kernel_message(err, src=None, fstype=None, where=None):
    """Turn a KernelError from the mount API into an administrator's message."""
    code = err.errno
    if code == errno.ENOSYS:
        return ('the running kernel %s lacks %s (idmapped mounts need Linux 5.12 or newer)'
                % (os.uname()[2], err.op))
    if code == errno.EPERM:
        return '%s was refused (EPERM): idmapped mounts need root (CAP_SYS_ADMIN in the initial user namespace)' % err
    if _unsupported(err):
        return unsupported_text(fstype, src, where)
    return str(err)


def _unsupported(err):
    return err.op == 'mount_setattr' and err.errno in (errno.EINVAL, errno.EOPNOTSUPP)


def _flags(readonly, nosuid):
    return ((_kernel.MOUNT_ATTR_RDONLY if readonly else 0)
            | (_kernel.MOUNT_ATTR_NOSUID | _kernel.MOUNT_ATTR_NODEV if nosuid else 0))


def find_mount_idmapped(path=None):
    """Path of the mount-idmapped program (path, else searched); ShareError when it is not installed."""
    if path:
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise ThunkError('backend mount-idmapped: %s is not an executable program' % path)
        return path
    search = os.pathsep.join([os.environ.get('PATH', ''), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin'])
    found = shutil.which('mount-idmapped', path=search)
    if not found:
        raise ThunkError('backend mount-idmapped was chosen but the mount-idmapped program is not '
                         'installed (not found in PATH); install it or use backend native')
    return found


def _run_command(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode('utf-8', 'replace'), proc.stderr.decode('utf-8', 'replace')


class Thunks(object):
    """Manage idmapped bind mounts on the host, many per pass."""

    def __init__(self, check_mode=False, backend='native', run_command=None, mount_idmapped=None,
                 state=None, mounts=None, userns=None):
        self.check_mode = check_mode
        self.backend = backend
        self.run_command = run_command or _run_command
        self.mount_idmapped = mount_idmapped
        if backend == 'mount-idmapped':
            self.mount_idmapped = find_mount_idmapped(mount_idmapped)
        self.state = state or StateStore()
        self._mounts = mounts
        self.userns = userns or UsernsCache()

    @property
    def mounts(self):
        if self._mounts is None:
            self._mounts = MountTable.read()
        return self._mounts

    def close(self):
        """Write the records of this pass and release the user namespaces."""
        try:
            self.state.flush()
        finally:
            self.userns.close()

    # -- reading ---------------------------------------------------------

    def current(self, path, src_stat=None):
        """What is mounted at path (canonical), or None.

        Returns a dict: mounted, managed (made by us or an idmapped mount),
        src (recorded or None), same_src (compared with src_stat when
        given), idmap (list of entries, None when unknown), readonly,
        mount_id and the record.
        """
        entry = self.mounts.top(path)
        record = self.state.load(path)
        if entry is None:
            return None
        mnt_id = None
        try:
            mnt_id, is_root, unique = _kernel.statx_mount(path)
        except _kernel.KernelError:
            unique = False
        if record is not None and record.get('mount_id') not in (mnt_id, entry.mount_id):
            record = None
        idmap = None
        if unique and entry.idmapped:
            maps = _kernel.statmount_idmap(mnt_id)
            if maps is not None:
                idmap = Idmap(*maps).entries()
        if idmap is None and record is not None:
            idmap = Idmap.from_dict(record['idmap']).entries()
        same_src = None
        if src_stat is not None:
            try:
                st = os.stat(path)
                same_src = (st.st_dev, st.st_ino) == (src_stat.st_dev, src_stat.st_ino)
            except OSError:
                same_src = False
        return {
            'mounted': True,
            'managed': record is not None or entry.idmapped,
            'idmapped': entry.idmapped,
            'src': record.get('src') if record else None,
            'same_src': same_src,
            'idmap': idmap,
            'readonly': entry.readonly,
            'nosuid': entry.nosuid,
            'mount_id': mnt_id if unique else entry.mount_id,
            'fstype': entry.fstype,
            'record': record,
        }

    # -- changing --------------------------------------------------------

    def makedirs(self, path):
        """Create missing directories of path 0711; return those created, top first."""
        missing = []
        p = path
        while not os.path.lexists(p):
            missing.append(p)
            p = os.path.dirname(p)
        if not os.path.isdir(p):
            raise ThunkError('cannot create %s: %s is not a directory' % (path, p))
        created = []
        try:
            for d in reversed(missing):
                os.mkdir(d, 0o711)
                created.append(d)
                os.chmod(d, 0o711)
        except OSError as e:
            self.rmdirs(created)
            raise ThunkError('cannot create directory %s: %s' % (e.filename or path, e.strerror))
        return created

    @staticmethod
    def rmdirs(created):
        """rmdir the directories we created, deepest first, if empty."""
        removed = []
        for d in reversed(created or ()):
            try:
                os.rmdir(d)
                removed.append(d)
            except OSError:
                break
        return removed

    def _detached(self, src_fd, idmap, readonly, src, under, nosuid=False):
        """A detached idmapped clone of the directory behind src_fd (on the mount under)."""
        since = IDMAP_SINCE.get(under.fstype) if under is not None else None
        if since and not _kernel.at_least(*since):
            # Said before the kernel refuses it (EINVAL tells nothing), with what it needs.
            raise UnsupportedFilesystem(unsupported_text(under.fstype, src, under.mount_point))
        fd = _kernel.open_tree('', dirfd=src_fd)
        try:
            flags = _kernel.MOUNT_ATTR_IDMAP | _flags(readonly, nosuid)
            _kernel.mount_setattr(fd, flags, self.userns.fd(idmap), what=src)
        except _kernel.KernelError as e:
            os.close(fd)
            cls = UnsupportedFilesystem if _unsupported(e) else ThunkError
            raise cls(kernel_message(e, src=src, fstype=under and under.fstype, where=under and under.mount_point))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _attach_native(self, fd, path):
        _kernel.move_mount(fd, path)

    def _attach_mount_idmapped(self, src, path, idmap, readonly, nosuid=False):
        cmd = [self.mount_idmapped]
        for entry in idmap.entries():
            cmd += ['--map-mount', entry]
        cmd += [src, path]
        rc, out, err = self.run_command(cmd)
        if rc != 0:
            raise ThunkError('%s failed (rc=%d): %s' % (' '.join(cmd), rc, (err or out).strip()))
        if readonly or nosuid:
            fd = _kernel.open_tree(path, flags=_kernel.OPEN_TREE_CLOEXEC)
            try:
                _kernel.mount_setattr(fd, _flags(readonly, nosuid), what=path)
            finally:
                os.close(fd)

    def present(self, path, src, idmap, readonly=False, create_path=True, src_fd=None, nosuid=False):
        """Ensure an idmapped bind mount of src at path (with nosuid: also nosuid and nodev).

        path must be canonical (no symlinks); src is opened here unless the
        caller passes src_fd, an O_PATH fd it resolved safely itself.
        Returns (changed, before, after).  Raises ThunkError.
        """
        if not isinstance(idmap, Idmap):
            raise TypeError('idmap must be an Idmap')
        own_fd = src_fd is None
        if own_fd:
            try:
                src_fd = os.open(src, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                if e.errno == errno.ENOTDIR:
                    raise ThunkError('src %s is not a directory' % src)
                raise ThunkError('src %s cannot be opened: %s' % (src, e.strerror))
        try:
            return self._present(path, src, idmap, readonly, create_path, src_fd, nosuid)
        finally:
            if own_fd:
                os.close(src_fd)

    def _present(self, path, src, idmap, readonly, create_path, src_fd, nosuid):
        src_stat = os.fstat(src_fd)
        if not stat.S_ISDIR(src_stat.st_mode):
            raise ThunkError('src %s is not a directory' % src)
        want = {'mounted': True, 'src': src, 'idmap': idmap.entries(), 'readonly': bool(readonly)}
        if nosuid:
            want['nosuid'] = True
        cur = self.current(path, src_stat)
        if cur is not None and not cur['managed']:
            raise ThunkError('path %s is already a mount point of something else (%s); refusing to cover it'
                             % (path, cur['fstype']))
        if os.path.lexists(path) and not os.path.isdir(path):
            raise ThunkError('path %s exists and is not a directory' % path)
        if not os.path.lexists(path) and not create_path:
            raise ThunkError('path %s does not exist and create_path is false' % path)
        before = self._public(cur, src if cur and cur['same_src'] else None)
        diffs = differences(want, cur)
        if not diffs:
            return False, before, before
        after = dict(want)
        if self.check_mode:
            return True, before, after

        created = []
        if not os.path.lexists(path):
            created = self.makedirs(path)
        elif cur is not None and cur['record']:
            created = cur['record'].get('created', [])
        # Where src really is, read from the fd that was resolved safely (never a path
        # the container could have redirected since), and the mount it lies on.
        real = os.readlink('/proc/self/fd/%d' % src_fd)
        under = self.mounts.containing(real)
        fstype = under.fstype if under else None
        new_fd = None
        old_fd = None
        try:
            if self.backend == 'native':
                new_fd = self._detached(src_fd, idmap, readonly, src, under, nosuid)
            if cur is not None:
                # Keep a clone of the old mount to put back if attaching fails.
                old_fd = _kernel.open_tree(path)
                _kernel.umount_or_detach(path)
                self.mounts.remove(path)
            try:
                if new_fd is not None:
                    self._attach_native(new_fd, path)
                else:
                    # The program is another process: it reaches our fd through our pid.
                    self._attach_mount_idmapped('/proc/%d/fd/%d' % (os.getpid(), src_fd), path, idmap, readonly,
                                                nosuid)
            except BaseException:
                if old_fd is not None:
                    _kernel.move_mount(old_fd, path)
                raise
        except _kernel.KernelError as e:
            if cur is None:
                self.rmdirs(created)
            raise ThunkError(kernel_message(e, src=src, fstype=fstype, where=under and under.mount_point))
        except BaseException:
            if cur is None:
                self.rmdirs(created)
            raise
        finally:
            for fd in (new_fd, old_fd):
                if fd is not None:
                    os.close(fd)
        mnt_id, dummy, unique = _kernel.statx_mount(path)
        self.state.save({'path': path, 'src': src, 'idmap': idmap.to_dict(), 'readonly': bool(readonly),
                         'mount_id': mnt_id, 'created': created})
        self._note_mount(path, real, under, src_stat, readonly, mnt_id, nosuid)
        return True, before, after

    def _note_mount(self, path, real, under, src_stat, readonly, mnt_id, nosuid=False):
        """Add the mount just made to the table, as mountinfo would show it (no re-read)."""
        root = real
        if under is not None:
            rel = os.path.relpath(real, under.mount_point)
            root = os.path.normpath(os.path.join(under.root, rel)) if rel != '.' else under.root
        dev = under.dev if under is not None else (os.major(src_stat.st_dev), os.minor(src_stat.st_dev))
        options = ('ro' if readonly else 'rw', 'idmapped') + (('nosuid', 'nodev') if nosuid else ())
        self.mounts.add(MountEntry(mnt_id, -1, dev, root, path, options, (),
                                   under.fstype if under else '', '', ()))

    @staticmethod
    def _public(cur, src):
        if cur is None:
            return {'mounted': False}
        out = {'mounted': True, 'src': src or cur['src'], 'idmap': cur['idmap'], 'readonly': cur['readonly']}
        if cur.get('nosuid'):
            out['nosuid'] = True
        return out

    def absent(self, path):
        """Ensure nothing of ours is mounted at path; rmdir what we created.

        Returns (changed, before, after).  Raises ThunkError when path is a
        mount point of something we did not make.
        """
        cur = self.current(path)
        record = self.state.load(path)
        before = self._public(cur, None)
        if cur is not None and not cur['managed']:
            raise ThunkError('path %s is a mount point of something else (%s), not an idmapped thunk; leaving it'
                             % (path, cur['fstype']))
        created = (cur['record'] if cur and cur['record'] else record or {}).get('created') or []
        removable = [d for d in created if os.path.isdir(d) and not os.path.islink(d)]
        if cur is None and not (removable and self._empty(removable[-1])):
            if record is not None and not self.check_mode:
                self.state.delete(path)
            return False, before, {'mounted': False}
        after = {'mounted': False}
        if self.check_mode:
            return True, before, after
        try:
            while cur is not None and cur['managed']:
                _kernel.umount_or_detach(path)
                self.mounts.remove(path)
                cur = self.current(path)
        except _kernel.KernelError as e:
            raise ThunkError('cannot unmount %s: %s' % (path, e))
        self.state.delete(path)
        if cur is None:
            self.rmdirs(removable)
        return True, before, after

    @staticmethod
    def _empty(directory):
        try:
            return not os.listdir(directory)
        except OSError:
            return False
