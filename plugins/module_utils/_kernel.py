# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin ctypes layer over the new mount API and namespaces.

Nothing here runs at import time: libc is loaded on first use.  Every
failing call raises KernelError carrying errno and the operation, so that
callers can turn it into a message that names the path and the cause.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ctypes
import errno
import os
import struct

# Syscall numbers of the new mount API are unified across architectures
# (asm-generic), except alpha/mips/ia64 which lxcex.share does not support.
_NR = {
    'open_tree': 428,
    'move_mount': 429,
    'mount_setattr': 442,
    'statmount': 457,
}

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOVE_MOUNT_BENEATH = 0x200
MS_REC = 0x4000
MS_SHARED = 1 << 20
MS_PRIVATE = 1 << 18
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_IDMAP = 0x100000
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8
CLONE_NEWNS = 0x20000
CLONE_NEWUSER = 0x10000000

STATX_MNT_ID = 0x1000
STATX_MNT_ID_UNIQUE = 0x4000
STATX_ATTR_MOUNT_ROOT = 0x2000

STATMOUNT_MNT_BASIC = 0x2
STATMOUNT_MNT_UIDMAP = 0x2000
STATMOUNT_MNT_GIDMAP = 0x4000
STATMOUNT_SUPPORTED_MASK = 0x1000

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_NR_OPENAT2 = 437

_libc = None


class KernelError(OSError):
    """A failed system call: errno, the operation and the path it was about."""

    def __init__(self, err, op, path=None):
        self.op = op
        self.path = path
        super(KernelError, self).__init__(err, '%s: %s' % (op, os.strerror(err)), path)

    def __str__(self):
        if self.path is not None:
            return '%s(%s) failed: %s' % (self.op, self.path, os.strerror(self.errno))
        return '%s failed: %s' % (self.op, os.strerror(self.errno))


def libc():
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.syscall.restype = ctypes.c_long
        _libc = lib
    return _libc


def _check(ret, op, path=None):
    if ret < 0:
        raise KernelError(ctypes.get_errno(), op, path)
    return ret


def _b(path):
    if isinstance(path, bytes):
        return path
    return os.fsencode(path)


def open_tree(path, dirfd=AT_FDCWD, flags=OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC):
    """Return an fd for a (by default detached, cloned) mount of path."""
    p = _b(path)
    if path == '' or path == b'':
        flags |= AT_EMPTY_PATH
    ret = libc().syscall(_NR['open_tree'], ctypes.c_int(dirfd), ctypes.c_char_p(p), ctypes.c_uint(flags))
    return _check(ret, 'open_tree', path or '<fd %d>' % dirfd)


class _MountAttr(ctypes.Structure):
    _fields_ = [('attr_set', ctypes.c_uint64), ('attr_clr', ctypes.c_uint64),
                ('propagation', ctypes.c_uint64), ('userns_fd', ctypes.c_uint64)]


def mount_setattr(fd, attr_set, userns_fd=0, attr_clr=0, what=None, propagation=0):
    """Set attributes (and optionally propagation) on the mount behind fd (AT_EMPTY_PATH)."""
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    ret = libc().syscall(_NR['mount_setattr'], ctypes.c_int(fd), ctypes.c_char_p(b''),
                         ctypes.c_uint(AT_EMPTY_PATH), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    return _check(ret, 'mount_setattr', what)


def move_mount(fd, target, target_dirfd=AT_FDCWD, beneath=False):
    """Attach the mount behind fd at target (or at target_dirfd itself when target is '').

    beneath: put it under the mount on top of target (Linux 6.5+), which stays where it is until it is unmounted.
    """
    flags = MOVE_MOUNT_F_EMPTY_PATH | (MOVE_MOUNT_T_EMPTY_PATH if target == '' else 0)
    flags |= MOVE_MOUNT_BENEATH if beneath else 0
    ret = libc().syscall(_NR['move_mount'], ctypes.c_int(fd), ctypes.c_char_p(b''), ctypes.c_int(target_dirfd),
                         ctypes.c_char_p(_b(target)), ctypes.c_uint(flags))
    return _check(ret, 'move_mount', target or '<fd %d>' % target_dirfd)


def mount(source, target, fstype, flags=0, data=None):
    """Classic mount(2)."""
    lib = libc()
    ret = lib.mount(ctypes.c_char_p(_b(source) if source else None), ctypes.c_char_p(_b(target)),
                    ctypes.c_char_p(_b(fstype) if fstype else None), ctypes.c_ulong(flags),
                    ctypes.c_char_p(_b(data) if data else None))
    return _check(ret, 'mount', target)


def umount(path, detach=False):
    flags = UMOUNT_NOFOLLOW | (MNT_DETACH if detach else 0)
    lib = libc()
    lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return _check(lib.umount2(_b(path), flags), 'umount', path)


def umount_or_detach(path):
    """Unmount path; a busy mount is detached (MNT_DETACH) instead."""
    try:
        return umount(path)
    except KernelError as e:
        if e.errno != errno.EBUSY:
            raise
        return umount(path, detach=True)


def setns(fd, nstype):
    return _check(libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), 'setns')


def unshare(flags):
    return _check(libc().unshare(ctypes.c_int(flags)), 'unshare')


class _OpenHow(ctypes.Structure):
    _fields_ = [('flags', ctypes.c_uint64), ('mode', ctypes.c_uint64), ('resolve', ctypes.c_uint64)]


def openat2(dirfd, path, flags, resolve, mode=0):
    """openat2(2): open path below dirfd with RESOLVE_* restrictions."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    ret = libc().syscall(ctypes.c_long(_NR_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(_b(path)),
                         ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    return _check(ret, 'openat2', path)


# Tests only: LXCEX_SHARE_KERNEL_AS=6.1 makes this code behave as on that kernel where features are missing (no
# unique mount ids and no statmount before 6.8, no idmap read-back before 6.15), so that the paths for older
# kernels run on a new one too.  Unset, the running kernel decides.
KERNEL_AS = os.environ.get('LXCEX_SHARE_KERNEL_AS') or None


def release():
    """The kernel release this code behaves for: the running one, or LXCEX_SHARE_KERNEL_AS in tests."""
    return KERNEL_AS or os.uname()[2]


def at_least(major, minor):
    """Whether release() is major.minor or newer (True when it cannot be read)."""
    parts = release().split('.')
    try:
        return (int(parts[0]), int(parts[1].split('-')[0])) >= (major, minor)
    except (IndexError, ValueError):
        return True


def statx_mount(path, dirfd=AT_FDCWD, follow=False, unique=True):
    """Return (mount_id, is_mount_root, unique) for path.

    mount_id is the 64 bit unique id when the kernel offers it (6.8+) and
    unique is asked for, else the id seen in mountinfo; the third value says
    which one it is.
    """
    buf = ctypes.create_string_buffer(256)
    p = _b(path)
    flags = 0 if follow else AT_SYMLINK_NOFOLLOW
    if p == b'':
        flags |= AT_EMPTY_PATH
    mask = STATX_MNT_ID | (STATX_MNT_ID_UNIQUE if unique and (KERNEL_AS is None or at_least(6, 8)) else 0)
    lib = libc()
    ret = lib.statx(ctypes.c_int(dirfd), ctypes.c_char_p(p), ctypes.c_int(flags), ctypes.c_uint(mask), buf)
    _check(ret, 'statx', path)
    raw = buf.raw
    got_mask, = struct.unpack_from('=I', raw, 0)
    attributes, = struct.unpack_from('=Q', raw, 8)
    attributes_mask, = struct.unpack_from('=Q', raw, 56)
    mnt_id, = struct.unpack_from('=Q', raw, 144)
    is_root = None
    if attributes_mask & STATX_ATTR_MOUNT_ROOT:
        is_root = bool(attributes & STATX_ATTR_MOUNT_ROOT)
    return mnt_id, is_root, bool(got_mask & STATX_MNT_ID_UNIQUE)


# struct statmount offsets (include/uapi/linux/mount.h)
_SM_SIZE = 0
_SM_MASK = 8
_SM_MNT_ATTR = 64
_SM_SUPPORTED_MASK = 144
_SM_UIDMAP_NUM = 152
_SM_UIDMAP = 156
_SM_GIDMAP_NUM = 160
_SM_GIDMAP = 164
_SM_HEADER = 512


def statmount_idmap(unique_mnt_id):
    """Read the uid and gid map of a mount (kernel 6.15+).

    Returns (uid_extents, gid_extents), each a list of (from, to, count)
    tuples as the mount maps them, or None when the kernel cannot tell.
    """
    if KERNEL_AS is not None and not at_least(6, 15):
        return None
    req = struct.pack('=IIQQ', 24, 0, unique_mnt_id, STATMOUNT_MNT_BASIC | STATMOUNT_MNT_UIDMAP | STATMOUNT_MNT_GIDMAP)
    size = 4096
    lib = libc()
    while True:
        buf = ctypes.create_string_buffer(size)
        ret = lib.syscall(ctypes.c_long(_NR['statmount']), ctypes.c_char_p(req), buf, ctypes.c_size_t(size), ctypes.c_uint(0))
        if ret >= 0:
            break
        err = ctypes.get_errno()
        if err == errno.EOVERFLOW and size < (1 << 22):
            size *= 4
            continue
        if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            return None
        raise KernelError(err, 'statmount', 'mount id %d' % unique_mnt_id)
    raw = buf.raw
    mask, = struct.unpack_from('=Q', raw, _SM_MASK)
    if not mask & STATMOUNT_MNT_UIDMAP or not mask & STATMOUNT_MNT_GIDMAP:
        return None

    def extents(num_off, str_off):
        num, off = struct.unpack_from('=II', raw, num_off)
        out = []
        pos = _SM_HEADER + off
        for dummy in range(num):
            end = raw.index(b'\0', pos)
            first, lower, count = (int(x) for x in raw[pos:end].split())
            out.append((first, lower, count))
            pos = end + 1
        return out

    return extents(_SM_UIDMAP_NUM, _SM_UIDMAP), extents(_SM_GIDMAP_NUM, _SM_GIDMAP)


def make_userns(uid_map, gid_map):
    """Create a user namespace with the given maps; return an fd for it.

    uid_map and gid_map are the texts written to /proc/PID/{uid,gid}_map.
    A short-lived child unshares the namespace and waits; the parent
    writes the maps, opens the namespace and lets the child go.
    """
    lib = libc()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        status = 1
        try:
            os.close(ready_r)
            os.close(go_w)
            ok = lib.unshare(ctypes.c_int(CLONE_NEWUSER)) == 0
            err = 0 if ok else ctypes.get_errno()
            os.write(ready_w, struct.pack('=i', err))
            os.read(go_r, 1)
            status = 0
        finally:
            os._exit(status)
    os.close(ready_w)
    os.close(go_r)
    try:
        data = os.read(ready_r, 4)
        if len(data) != 4:
            raise KernelError(errno.ECHILD, 'unshare(CLONE_NEWUSER)')
        err, = struct.unpack('=i', data)
        if err:
            raise KernelError(err, 'unshare(CLONE_NEWUSER)')
        for name, text in (('uid_map', uid_map), ('gid_map', gid_map)):
            if not text:
                continue
            fname = '/proc/%d/%s' % (pid, name)
            try:
                fd = os.open(fname, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, text.encode('ascii'))
                finally:
                    os.close(fd)
            except OSError as e:
                raise KernelError(e.errno, 'write %s' % name, text.strip().replace('\n', ', '))
        return os.open('/proc/%d/ns/user' % pid, os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(go_w)
        os.waitpid(pid, 0)


PR_SET_PDEATHSIG = 1


def die_with_parent():
    """Have the kernel kill this process (SIGKILL) when its parent dies."""
    libc().prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(9), ctypes.c_ulong(0), ctypes.c_ulong(0),
                 ctypes.c_ulong(0))


PROC_SUPER_MAGIC = 0x9fa0


def fs_magic(fd):
    """f_type of the filesystem behind fd (fstatfs)."""
    buf = ctypes.create_string_buffer(256)
    _check(libc().fstatfs(ctypes.c_int(fd), buf), 'fstatfs')
    return struct.unpack_from('=q', buf.raw, 0)[0]
