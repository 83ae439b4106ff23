# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resolving paths that a container controls, without ever leaving it.

Paths inside a container are walked one component at a time from an fd of
the container's root, with every symlink read and interpreted against that
root.  A symlink that climbs above the root, or that lives on procfs
(``/proc/1/root``, ``/proc/self/fd/N`` and friends), is refused.  Missing
directories are created with mkdirat relative to their parent fd and owned
by the ids the caller gives, so a symlink planted in between cannot redirect
them onto the host.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import stat

from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError

MAX_LINKS = 40
MAX_DATA_FILE = 64 * 1024 * 1024


class ResolveError(ShareError):
    """A path that cannot be resolved; missing is True when only a component does not exist."""

    def __init__(self, msg, missing=False):
        super(ResolveError, self).__init__(msg)
        self.missing = missing


def open_dir(path):
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def walk(root_fd, path, what, create_owner=None, mode=0o755):
    """Resolve absolute container path below root_fd.

    Returns (fd, resolved, created): an O_PATH fd of the directory, its
    resolved path as the container sees it, and the directories created,
    top first.  With create_owner=(uid, gid), missing directories are made
    and chowned; without it a missing one is an error.
    """
    if not path.startswith('/'):
        raise ResolveError('%s %r is not an absolute path' % (what, path))
    pending = [c for c in path.split('/') if c not in ('', '.')]
    stack = [(os.dup(root_fd), '')]
    created = []
    links = 0
    try:
        while pending:
            name = pending.pop(0)
            parent_fd, parent_path = stack[-1]
            if name == '..':
                if len(stack) == 1:
                    raise ResolveError('%s %s resolves outside the container (it climbs above its root)' % (what, path))
                os.close(stack.pop()[0])
                continue
            here = parent_path + '/' + name
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            except OSError as e:
                if e.errno != errno.ENOENT or create_owner is None:
                    raise ResolveError('%s %s: %s does not exist or cannot be opened (%s)' % (what, path, here, e.strerror),
                                       missing=e.errno == errno.ENOENT)
                try:
                    os.mkdir(name, mode, dir_fd=parent_fd)
                except OSError as e2:
                    raise ResolveError('%s %s: cannot create %s (%s)' % (what, path, here, e2.strerror))
                created.append(here)
                # Owner and mode are set through an fd of the new directory
                # itself, so a symlink swapped in meanwhile is never followed.
                dfd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent_fd)
                try:
                    os.fchown(dfd, create_owner[0], create_owner[1])
                    os.fchmod(dfd, mode)
                finally:
                    os.close(dfd)
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent_fd)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                try:
                    if _kernel.fs_magic(fd) == _kernel.PROC_SUPER_MAGIC:
                        raise ResolveError('%s %s passes through %s, a /proc link; refusing to follow it'
                                           % (what, path, here))
                    try:
                        target = os.readlink(name, dir_fd=parent_fd)
                    except OSError as e:
                        raise ResolveError('%s %s: cannot read symlink %s (%s)' % (what, path, here, e.strerror))
                finally:
                    os.close(fd)
                links += 1
                if links > MAX_LINKS:
                    raise ResolveError('%s %s: too many levels of symbolic links' % (what, path))
                if target.startswith('/'):
                    while len(stack) > 1:
                        os.close(stack.pop()[0])
                parts = [c for c in target.split('/') if c not in ('', '.')]
                if target.startswith('/') and parts and parts[0] == '..':
                    raise ResolveError('%s %s resolves through symlink %s -> %s outside the container'
                                       % (what, path, here, target))
                pending = parts + pending
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise ResolveError('%s %s: %s is not a directory' % (what, path, here))
            stack.append((fd, here))
        fd, resolved = stack.pop()
        return fd, resolved or '/', created
    finally:
        for fd, dummy in stack:
            os.close(fd)


def read_data_file(root_fd, path, what):
    """Read a small regular file below root_fd as data (e.g. etc/passwd).

    Resolved inside the root; FIFOs, devices and huge files are refused.
    """
    try:
        fd = _kernel.openat2(root_fd, path.lstrip('/'), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY,
                             _kernel.RESOLVE_IN_ROOT | _kernel.RESOLVE_NO_MAGICLINKS)
    except _kernel.KernelError as e:
        raise ResolveError('cannot read %s %s: %s' % (what, path, os.strerror(e.errno)))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ResolveError('%s %s is not a regular file' % (what, path))
        if st.st_size > MAX_DATA_FILE:
            raise ResolveError('%s %s is larger than %d bytes' % (what, path, MAX_DATA_FILE))
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b''.join(chunks).decode('utf-8', 'surrogateescape')
    finally:
        os.close(fd)
