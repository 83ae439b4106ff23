# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mounting into and unmounting from a running container.

Why attach directly instead of propagating through an rshared thunk
directory: propagation only reaches containers that were started with the
thunk directory bind-mounted into them, and still needs a bind from there to
the destination made from inside the container (the reference ran a script
inside the container for that).  Attaching a clone of the thunk straight
into the container's mount namespace (``open_tree`` on the host, ``setns``
into the container, ``move_mount`` onto an fd of the destination), the way
Incus hot-plugs disks, works for any running container, including one
started before any share existed, needs nothing inside it and runs no
program of it.

The container is pinned by a pidfd for the pass.  Every change is made by
one short-lived child per container that joins the container's user and
mount namespaces as the container's root: it resolves each destination from
the container's own root (see _resolve: symlinks are read as the container
sees them and never lead out of it, /proc links are refused), creates
missing directories as container root owned by the share's user, and
attaches or detaches the mounts.  So nothing the container controls is ever
followed on the host, and creating directories works the same on shifted and
on idmapped root filesystems.  Reading the current state needs no entry: it
uses /proc/PID/root and /proc/PID/mountinfo.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import posixpath
import signal
import time

from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._mountinfo import MountTable
from ansible_collections.lxcex.share.plugins.module_utils._resolve import ResolveError, open_dir, walk

# Seconds to wait before entering a container: lets the integration tests
# stop a container in the middle of an operation.  Unset in normal use.
TEST_PAUSE_ENV = 'LXCEX_SHARE_TEST_PAUSE'


class ContainerStopped(ShareError):
    pass


def _ns_id(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


class ContainerView(object):
    """A running container pinned for one pass: pidfd, root, namespaces."""

    def __init__(self, name, pid):
        self.name = name
        self.pid = pid
        self.pidfd = None
        self.mntns_fd = None
        self.userns_fd = None
        self.root_fd = None
        self._mounts = None
        self.entries = 0
        try:
            self.pidfd = os.pidfd_open(pid)
            self.mntns_fd = os.open('/proc/%d/ns/mnt' % pid, os.O_RDONLY | os.O_CLOEXEC)
            if _ns_id('/proc/%d/ns/user' % pid) != _ns_id('/proc/self/ns/user'):
                self.userns_fd = os.open('/proc/%d/ns/user' % pid, os.O_RDONLY | os.O_CLOEXEC)
            self.root_fd = open_dir('/proc/%d/root' % pid)
            self.check_alive()
        except OSError:
            self.close()
            raise self._stopped()

    def _stopped(self):
        return ContainerStopped('container %s stopped during the operation (its init process %d is gone)'
                                % (self.name, self.pid))

    def alive(self):
        try:
            signal.pidfd_send_signal(self.pidfd, 0)
        except OSError:
            return False
        return True

    def check_alive(self):
        if self.pidfd is None or not self.alive():
            raise self._stopped()

    @property
    def mounts(self):
        """The container's mount table (paths as the container sees them), read once."""
        if self._mounts is None:
            try:
                self._mounts = MountTable.read(self.pid)
            except (IOError, OSError):
                self.check_alive()
                raise
        return self._mounts

    def close(self):
        for attr in ('pidfd', 'mntns_fd', 'userns_fd', 'root_fd'):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)

    def execute(self, ops):
        """Run mount operations inside the container, in one child.

        ops: ('attach', tree_fd, dest, (uid, gid), replace) attaches the
        detached mount tree_fd at dest (replacing the mount there when
        replace), creating missing directories owned by uid:gid (ids as the
        container sees them); ('umount', dest) detaches the mount at dest.
        Returns one (errno, message, mount id) per op; errno 0 is success.
        """
        if not ops:
            return []
        pause = os.environ.get(TEST_PAUSE_ENV)
        if pause:
            time.sleep(float(pause))
        self.check_alive()
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                os.close(rfd)
                results = _child(self.userns_fd, self.mntns_fd, ops)
                data = json.dumps(results).encode('utf-8')
                while data:
                    data = data[os.write(wfd, data):]
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(wfd)
        chunks = []
        try:
            while True:
                chunk = os.read(rfd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(rfd)
            dummy, status = os.waitpid(pid, 0)
        self.entries += 1
        self._mounts = None
        data = b''.join(chunks)
        self.check_alive()
        if status != 0 or not data:
            raise ShareError('entering container %s failed' % self.name)
        results = json.loads(data.decode('utf-8'))
        if results and results[0] == 'setns':
            raise ShareError('cannot enter the namespaces of container %s: %s' % (self.name, results[1]))
        return results


def _umount_at(root_fd, dest):
    """Detach the mount at dest, resolved inside the root."""
    fd, resolved, dummy = walk(root_fd, dest, 'dest')
    os.close(fd)
    if resolved == '/':
        raise ResolveError('dest %s resolves to the container root' % dest)
    parent_fd, dummy, dummy2 = walk(root_fd, posixpath.dirname(resolved), 'dest parent')
    try:
        os.fchdir(parent_fd)
        _kernel.umount_or_detach(posixpath.basename(resolved))
    finally:
        os.close(parent_fd)


def _attach_at(root_fd, tree_fd, dest, owner):
    fd, dummy, dummy2 = walk(root_fd, dest, 'dest', create_owner=owner)
    try:
        _kernel.move_mount(tree_fd, '', target_dirfd=fd)
    finally:
        os.close(fd)
    fd, dummy, dummy2 = walk(root_fd, dest, 'dest')
    try:
        return _kernel.statx_mount('', dirfd=fd)[0]
    finally:
        os.close(fd)


def _enter(userns_fd, mntns_fd):  # pragma: no cover - runs in the forked child
    if userns_fd is not None:
        _kernel.setns(userns_fd, _kernel.CLONE_NEWUSER)
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    _kernel.setns(mntns_fd, _kernel.CLONE_NEWNS)


def _child(userns_fd, mntns_fd, ops):  # pragma: no cover - runs in the forked child
    try:
        _enter(userns_fd, mntns_fd)
        root_fd = open_dir('/')
    except OSError as e:
        return ['setns', str(e)]
    results = []
    for op in ops:
        try:
            mnt_id = None
            if op[0] == 'attach':
                dummy, tree_fd, dest, owner, replace = op
                if replace:
                    _umount_at(root_fd, dest)
                mnt_id = _attach_at(root_fd, tree_fd, dest, owner)
            elif op[0] == 'umount':
                _umount_at(root_fd, op[1])
            results.append([0, None, mnt_id])
        except ResolveError as e:
            results.append([errno.EINVAL, str(e), None])
        except OSError as e:
            results.append([e.errno or errno.EIO, str(e), None])
    return results
