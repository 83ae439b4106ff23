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
missing directories as container root owned by the share's user (and removes
them again when the share cannot be attached), and attaches or detaches the
mounts.  So nothing the container controls is ever followed on the host, and
creating directories works the same on shifted and on idmapped root
filesystems.

Flags that hold against container root: before it enters the container's
mount namespace the child, already in the container's user namespace,
unshares a mount namespace of its own.  The kernel copies the host's mount
table into it and, because the copy belongs to a less privileged user
namespace, locks the flags of every copied mount (read-only, nosuid, nodev,
noexec, atime).  The clone of a thunk is taken from that copy, so it keeps
those locks when it is attached in the container: ``mount -o
remount,bind,rw`` inside the container fails with EPERM, while unmounting
still works.  (This is how mounts reach unprivileged containers through
propagation in LXC and Incus too.)

Work that container root can slow down (a FUSE mount on a destination, a
deep tree of symlinks) runs only in children bounded in time: reading the
current state (a probe child that walks /proc/PID/root) and changing it.  A
child that does not answer in time is killed and its container's shares
fail with a message saying so; nothing waits for ever.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import posixpath
import select
import signal
import stat
import time

from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._mountinfo import MountTable
from ansible_collections.lxcex.share.plugins.module_utils._resolve import ResolveError, open_dir, shown, walk

# Seconds to wait before entering a container: lets the integration tests
# stop a container in the middle of an operation.  Unset in normal use.
TEST_PAUSE_ENV = 'LXCEX_SHARE_TEST_PAUSE'
# Seconds one child may work in (or on) a container before it is killed.
DEFAULT_TIMEOUT = 20.0


class ChildTimeout(ShareError):
    pass


def run_bounded(func, timeout, what):
    """Run func() in a forked child and return what it returns (JSON data).

    When the child has not answered within timeout seconds it is killed
    (and with it, through PR_SET_PDEATHSIG, whatever it started) and
    ChildTimeout is raised.
    Raises ShareError when the child dies without an answer.
    """
    rfd, wfd = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(rfd)
            # Killed with its parent, so that nothing it started (or holds,
            # like an inherited lock) outlives a stopped pass.
            _kernel.die_with_parent()
            if os.getppid() != parent:
                os._exit(1)
            try:
                answer = {'ok': func()}
            except Exception as e:
                answer = {'error': '%s: %s' % (type(e).__name__, e)}
            data = json.dumps(answer).encode('utf-8')
            while data:
                data = data[os.write(wfd, data):]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    poller = select.poll()
    poller.register(rfd, select.POLLIN)
    chunks = []
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if not poller.poll(max(1, int(left * 1000))):
                continue
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        if timed_out:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        status = _reap(pid)
    if timed_out:
        raise ChildTimeout('%s did not finish within %g seconds; it was stopped' % (what, timeout))
    data = b''.join(chunks)
    if status != 0 or not data:
        raise ShareError('%s failed' % what)
    answer = json.loads(data.decode('utf-8'))
    if 'error' in answer:
        raise ShareError('%s failed: %s' % (what, answer['error']))
    return answer['ok']


def _reap(pid, wait=5.0):
    """Wait for a child; a child that cannot be reaped in time is left (it was killed)."""
    end = time.monotonic() + wait
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except OSError:
            return -1
        if done:
            return status
        if time.monotonic() > end:
            return -1
        time.sleep(0.005)


class ContainerStopped(ShareError):
    pass


def _ns_id(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


class ContainerView(object):
    """A running container pinned for one pass: pidfd, root, namespaces."""

    def __init__(self, name, pid, timeout=DEFAULT_TIMEOUT):
        self.name = name
        self.pid = pid
        self.timeout = timeout
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

    def probe(self, dests):
        """How each dest looks from inside the container, read in a bounded child.

        Returns {dest: (resolved, mount id, is mount root, entries)}, with
        None for a dest that does not exist and a ShareError for one that
        cannot be resolved; entries counts what a directory that is not a
        mount point holds (up to MAX_COUNTED + 1).  Needs no entry: it walks
        /proc/PID/root.
        """
        if not dests:
            return {}
        root_fd = self.root_fd

        def work():
            out = []
            for dest in dests:
                try:
                    fd, resolved, dummy = walk(root_fd, dest, 'dest')
                except ResolveError as e:
                    out.append(['missing'] if e.missing else ['error', str(e)])
                    continue
                try:
                    mnt_id, is_root, dummy = _kernel.statx_mount('', dirfd=fd)
                    entries = 0 if is_root else _count_entries(fd)
                finally:
                    os.close(fd)
                out.append(['ok', resolved, mnt_id, is_root, entries])
            return out

        try:
            answers = run_bounded(work, self.timeout, 'reading the mounts of container %s' % self.name)
        except ShareError:
            self.check_alive()
            raise
        result = {}
        for dest, answer in zip(dests, answers):
            if answer[0] == 'ok':
                result[dest] = tuple(answer[1:])
            elif answer[0] == 'missing':
                result[dest] = None
            else:
                self.check_alive()
                result[dest] = ShareError('container %s: %s' % (self.name, answer[1]))
        return result

    def execute(self, ops, thunks_dir=None):
        """Run mount operations inside the container, in one bounded child.

        ops: ('attach', thunk, dest, (uid, gid), replace) attaches a clone
        of the thunk (a host path below thunks_dir) at dest, replacing the
        mount there when replace, creating missing directories owned by
        uid:gid (ids as the container sees them); ('umount', dest, dest)
        detaches the mount at dest; ('umount_id', id, path) detaches the
        mount at path only while it is the mount numbered id in mountinfo
        (ESTALE otherwise); ('rmdirs', [paths], dest) removes the directories
        an attach created, deepest first, while they are empty.  Returns one (errno, message, mount id) per op;
        errno 0 is success.
        """
        if not ops:
            return []
        pause = os.environ.get(TEST_PAUSE_ENV)
        if pause:
            time.sleep(float(pause))
        self.check_alive()
        userns_fd, mntns_fd = self.userns_fd, self.mntns_fd
        try:
            results = run_bounded(lambda: _child(userns_fd, mntns_fd, thunks_dir, ops), self.timeout,
                                  'entering container %s' % self.name)
        except ShareError:
            self.check_alive()
            raise
        finally:
            self.entries += 1
            self._mounts = None
        self.check_alive()
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


MAX_COUNTED = 1000


def _count_entries(fd):
    """How many entries the directory behind the O_PATH fd holds, counted up to MAX_COUNTED + 1."""
    try:
        dfd = os.open('.', os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return 0
    count = 0
    try:
        with os.scandir(dfd) as it:
            for dummy in it:
                count += 1
                if count > MAX_COUNTED:
                    break
    except OSError:
        pass
    finally:
        os.close(dfd)
    return count


def _umount_id(root_fd, path, mnt_id):
    """Detach the mount at path when it is the mount mnt_id (as mountinfo numbers it); False when it is not."""
    try:
        fd, resolved, dummy = walk(root_fd, path, 'mount point')
    except ResolveError:
        return False
    try:
        top, is_root, dummy = _kernel.statx_mount('', dirfd=fd, unique=False)
    finally:
        os.close(fd)
    if top != mnt_id or not is_root or resolved == '/':
        return False
    _umount_at(root_fd, resolved)
    return True


def _rmdirs(created):
    """rmdir the directories attaches created (listed top first), deepest first, those that are empty."""
    for path in reversed(created):
        try:
            os.rmdir(path)
        except OSError:
            continue


def _attach_at(root_fd, tree_fd, dest, owner):
    """Attach at dest; returns (mount id, directories created for it, top first).

    dest is resolved once and the mount goes onto what was resolved (its fd); the container's root is refused,
    however dest leads there; the id is read from the attached mount itself, not from dest again.
    """
    fd, resolved, created = walk(root_fd, dest, 'dest', create_owner=owner)
    try:
        st, root = os.fstat(fd), os.fstat(root_fd)
        if resolved == '/' or (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino):
            raise ResolveError('dest %s leads to the container\'s root directory /; refusing to cover it'
                               % shown(dest))
        _kernel.move_mount(tree_fd, '', target_dirfd=fd)
    except BaseException:
        os.close(fd)
        _rmdirs(created)
        raise
    os.close(fd)
    return _kernel.statx_mount('', dirfd=tree_fd)[0], created


def _replace_at(root_fd, tree_fd, dest, owner):
    """Put the mount behind tree_fd at dest in place of the mount there, so that dest never shows the bare
    directory; returns (mount id, directories created, how).

    Linux 6.5+: the new mount goes beneath the old one (move_mount MOVE_MOUNT_BENEATH), then the old one is
    detached: every access at dest reaches one share or the other, both of the same source.  Older kernels
    (or where the kernel refuses that): the old one is detached and the new one attached right after, while
    the bare directory under them is closed (mode 0, reached through a clone of its parent's mount), so that
    a container user's write in between fails (EACCES) instead of landing, hidden, in the container's own
    directory; container root's own writes are not stopped by that (see README, Known limits).
    """
    fd, resolved, created = walk(root_fd, dest, 'dest')
    try:
        st, root = os.fstat(fd), os.fstat(root_fd)
        if resolved == '/' or (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino):
            raise ResolveError('dest %s leads to the container\'s root directory /; refusing to cover it'
                               % shown(dest))
        top, is_root, dummy = _kernel.statx_mount('', dirfd=fd, unique=False)
        if is_root and _kernel.at_least(6, 5):
            try:
                _kernel.move_mount(tree_fd, '', target_dirfd=fd, beneath=True)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.EPERM):
                    raise
            else:
                if not _umount_id(root_fd, resolved, top):
                    raise ResolveError('the mount at dest %s changed while the share was put beneath it; the '
                                       'next run repairs it' % shown(dest))
                return _kernel.statx_mount('', dirfd=tree_fd)[0], created, 'beneath'
    finally:
        os.close(fd)
    guard = _close_bare(root_fd, resolved)
    try:
        _umount_at(root_fd, resolved)
        mnt_id, created = _attach_at(root_fd, tree_fd, resolved, owner)
    finally:
        if guard is not None:
            try:
                os.fchmod(guard[0], guard[1])
            except OSError:
                pass
            os.close(guard[0])
    return mnt_id, created, 'guarded' if guard is not None else 'unmount, attach'


def _close_bare(root_fd, resolved):
    """(fd, mode) of the directory under the mount at resolved, made mode 0 until the caller puts mode back;
    None when it cannot be reached or changed."""
    try:
        parent_fd, dummy, dummy2 = walk(root_fd, posixpath.dirname(resolved), 'dest parent')
    except ResolveError:
        return None
    clone = bare = None
    try:
        # A clone of the parent's mount without the mounts below it: there, dest is the bare directory.
        clone = _kernel.open_tree('', dirfd=parent_fd)
        bare = os.open(posixpath.basename(resolved), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                       dir_fd=clone)
        mode = stat.S_IMODE(os.fstat(bare).st_mode)
        os.fchmod(bare, 0)
        guard, bare = (bare, mode), None
        return guard
    except OSError:
        return None
    finally:
        for x in (bare, clone, parent_fd):
            if x is not None:
                os.close(x)


def _enter(userns_fd, mntns_fd, thunks_dir, thunks):  # pragma: no cover - runs in the forked child
    """Join the container as its root; return {thunk: detached clone fd}.

    With a user namespace, the clones come from a private copy of the host's
    mount table owned by the container's user namespace, so their flags are
    locked (see the module docstring).  The copy is reached through the
    working directory: the thunks directory, entered before the copy is made.
    """
    trees = {}
    if userns_fd is not None:
        if thunks:
            os.chdir(thunks_dir)
        _kernel.setns(userns_fd, _kernel.CLONE_NEWUSER)
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        if thunks:
            _kernel.unshare(_kernel.CLONE_NEWNS)
    for thunk in thunks:
        path = posixpath.relpath(thunk, thunks_dir) if userns_fd is not None else thunk
        tree = _kernel.open_tree(path)
        # The clone must not join the thunk's peer group: nothing the
        # container mounts below dest may propagate back.
        _kernel.mount_setattr(tree, 0, what=thunk, propagation=_kernel.MS_PRIVATE)
        trees[thunk] = tree
    _kernel.setns(mntns_fd, _kernel.CLONE_NEWNS)
    os.chdir('/')
    return trees


def _child(userns_fd, mntns_fd, thunks_dir, ops):  # pragma: no cover - runs in the forked child
    thunks = sorted(set(op[1] for op in ops if op[0] == 'attach'))
    try:
        trees = _enter(userns_fd, mntns_fd, thunks_dir, thunks)
        root_fd = open_dir('/')
    except OSError as e:
        return ['setns', str(e)]
    results = []
    for op in ops:
        try:
            mnt_id = None
            if op[0] == 'attach':
                dummy, thunk, dest, owner, replace = op
                if replace:
                    mnt_id, created, how = _replace_at(root_fd, trees[thunk], dest, owner)
                    results.append([0, None, mnt_id, created, how])
                    continue
                mnt_id, created = _attach_at(root_fd, trees[thunk], dest, owner)
                results.append([0, None, mnt_id, created])
                continue
            elif op[0] == 'rmdirs':
                _rmdirs(op[1])
            elif op[0] == 'umount':
                _umount_at(root_fd, op[1])
            elif op[0] == 'umount_id':
                if not _umount_id(root_fd, op[2], op[1]):
                    results.append([errno.ESTALE, 'the mount at %s is not mount %d' % (op[2], op[1]), None])
                    continue
            results.append([0, None, mnt_id])
        except ResolveError as e:
            results.append([errno.EINVAL, str(e), None])
        except OSError as e:
            results.append([e.errno or errno.EIO, shown(str(e)), None])
    return results
