# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mounting into and unmounting from a running container's mount namespace.

Why attach directly instead of propagating through an rshared thunk
directory: propagation only reaches containers that were started with the
thunk directory bind-mounted into them, and still needs a bind from there to
the destination made from inside the container (the reference ran a script
inside the container for that).  Attaching a clone of the thunk straight
into the container's namespace (``open_tree`` on the host, ``setns`` into the
container's mount namespace, ``move_mount`` onto an fd of the destination),
the way Incus hot-plugs disks, works for any running container, needs nothing
inside it and runs no program in it.

The container is pinned by a pidfd and its root and mount namespace are
opened once; destinations are resolved from that root fd (see _resolve), so
every path the container controls is interpreted inside the container.  One
short-lived child enters the namespace once per container and performs all
mount operations of a pass.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import signal

from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._mountinfo import MountTable
from ansible_collections.lxcex.share.plugins.module_utils._resolve import open_dir


class ContainerStopped(ShareError):
    pass


def _pidfd_open(pid):
    if hasattr(os, 'pidfd_open'):
        return os.pidfd_open(pid)
    return None


class ContainerView(object):
    """A running container's root and mount namespace, pinned for one pass."""

    def __init__(self, name, pid):
        self.name = name
        self.pid = pid
        self.pidfd = None
        self.mntns_fd = None
        self.root_fd = None
        self._mounts = None
        self.entries = 0
        try:
            self.pidfd = _pidfd_open(pid)
            self.mntns_fd = os.open('/proc/%d/ns/mnt' % pid, os.O_RDONLY | os.O_CLOEXEC)
            self.root_fd = open_dir('/proc/%d/root' % pid)
            self.check_alive()
        except (OSError, ContainerStopped):
            self.close()
            raise ContainerStopped('container %s stopped during the operation (its init %d is gone)' % (name, pid))

    def check_alive(self):
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, 0)
            else:
                os.kill(self.pid, 0)
        except (OSError, ProcessLookupError):
            raise ContainerStopped('container %s stopped during the operation (its init %d is gone)'
                                   % (self.name, self.pid))

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

    def forget_mounts(self):
        self._mounts = None

    def close(self):
        for attr in ('pidfd', 'mntns_fd', 'root_fd'):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)

    def execute(self, ops):
        """Run mount operations inside the container's mount namespace.

        ops: ('attach', tree_fd, dir_fd, name) attaches at name below dir_fd
        (at dir_fd itself when name is ''); ('umount', dir_fd, name).
        Returns one errno per op (0 for success).  One child, one setns.
        """
        if not ops:
            return []
        self.check_alive()
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                os.close(rfd)
                results = _child(self.mntns_fd, ops)
                os.write(wfd, json.dumps(results).encode('ascii'))
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
        if status != 0 or not data:
            self.check_alive()
            raise ShareError('entering the mount namespace of container %s failed' % self.name)
        results = json.loads(data.decode('ascii'))
        if results and results[0] == 'setns':
            self.check_alive()
            raise ShareError('cannot enter the mount namespace of container %s: %s' % (self.name, os.strerror(results[1])))
        return results


def _child(mntns_fd, ops):  # pragma: no cover - runs in the forked child
    try:
        _kernel.setns(mntns_fd, _kernel.CLONE_NEWNS)
    except _kernel.KernelError as e:
        return ['setns', e.errno]
    results = []
    for op in ops:
        try:
            if op[0] == 'attach':
                _kernel.move_mount(op[1], op[3], target_dirfd=op[2])
            elif op[0] == 'umount':
                os.fchdir(op[1])
                try:
                    _kernel.umount(op[2])
                except _kernel.KernelError as e:
                    if e.errno != errno.EBUSY:
                        raise
                    _kernel.umount(op[2], detach=True)
            results.append(0)
        except (OSError, _kernel.KernelError) as e:
            results.append(e.errno or errno.EIO)
    return results
