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
# Bounds on what a container controls: the components one walk may visit
# (symlink targets included) and the length of one symlink target.
MAX_COMPONENTS = 4096
MAX_LINK_TARGET = 4095
# Directories one walk may create (a dangling symlink must not grow a tree).
MAX_CREATE = 32
MAX_DATA_FILE = 8 * 1024 * 1024
# Container-controlled text in messages is cut to this many characters.
MAX_SHOWN = 120


def _escape(c):
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8 (decoded with surrogateescape)
        return '\\x%02x' % (o - 0xDC00)
    if o < 256:
        return '\\x%02x' % o
    return '\\u%04x' % o if o < 0x10000 else '\\U%08x' % o


def printable(text):
    """Text with every character that is not printable escaped: control characters, bidirectional overrides
    (U+202E), line and paragraph separators, and bytes that were not UTF-8.  Safe on any terminal, in a log,
    in JSON and in any locale's encoding with backslashreplace."""
    # No codec is used: this also runs in children that have entered a
    # container's mount namespace, where nothing may be imported.
    text = text if isinstance(text, str) else str(text)
    return ''.join(c if ' ' <= c <= '~' or (c > '\xff' and c.isprintable()) else _escape(c) for c in text)


def shown(text):
    """Container-controlled text as it may appear in a message: cut, backslashes and what is not printable
    escaped."""
    text = text if isinstance(text, str) else str(text)
    out = ''.join(c if (' ' <= c <= '~' and c != '\\') or (c > '\xff' and c.isprintable()) else _escape(c)
                  for c in text[:MAX_SHOWN * 2])
    if len(out) > MAX_SHOWN:
        out = out[:MAX_SHOWN] + '...(%d characters)' % len(text)
    return out


class ResolveError(ShareError):
    """A path that cannot be resolved; missing is True when only a component does not exist."""

    def __init__(self, msg, missing=False):
        super(ResolveError, self).__init__(msg)
        self.missing = missing


def open_dir(path):
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _counted(visited, what):
    """visited + 1, or ResolveError when a walk visits more than MAX_COMPONENTS components (what: what is walked)."""
    if visited + 1 > MAX_COMPONENTS:
        raise ResolveError('%s: more than %d path components to resolve' % (what, MAX_COMPONENTS))
    return visited + 1


def _open_step(name, parent_fd):
    """An O_PATH fd of the entry name of the directory parent_fd, never followed (a symlink is opened itself)."""
    return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)


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
    visited = 0
    ok = False
    path = shown(path)
    try:
        while pending:
            name = pending.pop(0)
            visited = _counted(visited, '%s %s' % (what, path))
            parent_fd, parent_path = stack[-1]
            here = parent_path + '/' + name
            if name == '..':
                if len(stack) == 1:
                    raise ResolveError('%s %s resolves outside the container (it climbs above its root)' % (what, path))
                os.close(stack.pop()[0])
                continue
            try:
                fd = _open_step(name, parent_fd)
            except OSError as e:
                if e.errno != errno.ENOENT or create_owner is None:
                    raise ResolveError('%s %s: %s does not exist or cannot be opened (%s)'
                                       % (what, path, shown(here), e.strerror), missing=e.errno == errno.ENOENT)
                if len(created) >= MAX_CREATE:
                    raise ResolveError('%s %s: more than %d directories to create' % (what, path, MAX_CREATE))
                try:
                    os.mkdir(name, mode, dir_fd=parent_fd)
                except OSError as e2:
                    raise ResolveError('%s %s: cannot create %s (%s)' % (what, path, shown(here), e2.strerror))
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
                                           % (what, path, shown(here)))
                    target = _readlink(name, parent_fd, what, path, here)
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
                                       % (what, path, shown(here), shown(target)))
                pending = parts + pending
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise ResolveError('%s %s: %s is not a directory' % (what, path, shown(here)))
            stack.append((fd, here))
        fd, resolved = stack.pop()
        ok = True
        return fd, resolved or '/', created
    finally:
        for fd, dummy in stack:
            os.close(fd)
        if not ok:
            for made in reversed(created):
                try:
                    os.rmdir(made.lstrip('/'), dir_fd=root_fd)
                except OSError:
                    break


def _readlink(name, parent_fd, what, path, here):
    """The target of a symlink, bounded in length."""
    try:
        target = os.readlink(name, dir_fd=parent_fd)
    except OSError as e:
        raise ResolveError('%s %s: cannot read symlink %s (%s)' % (what, path, shown(here), e.strerror))
    if len(target) > MAX_LINK_TARGET or not target:
        raise ResolveError('%s %s: symlink %s has a target of %d bytes; refusing it'
                           % (what, path, shown(here), len(target)))
    return target


class SrcResolution(object):
    """Where a share's src really is: an O_PATH fd, and the container whose rootfs holds it (or None)."""

    def __init__(self, fd, container, root_uid):
        self.fd = fd
        self.container = container
        self.root_uid = root_uid


def resolve_src(path, rootfs_owner):
    """Open the host directory path for a share, following only symlinks its owner's side cannot forge.

    rootfs_owner(st) returns (container, on-disk uid of that container's
    root) when the directory st is the root filesystem of a container of
    this host, else None.  On the host side of the path a symlink is
    followed only when it and its directory belong to host root.  Below a
    container's root filesystem the rest of the path is resolved inside
    that root (a symlink never leads out of it), and a symlink is followed
    only when it belongs to that container's root: a user of the container
    cannot redirect a share onto files that are not theirs.
    """
    if '\0' in path or not path.startswith('/'):
        raise ResolveError('src %r is not an absolute path' % (path,))
    shown_path = shown(path)
    pending = [c for c in path.split('/') if c not in ('', '.')]
    stack = [(os.open('/', os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), '')]
    container = None
    root_depth = 0
    root_uid = None
    links = visited = 0
    try:
        while True:
            top_fd, top_path = stack[-1]
            if container is None:
                owner = rootfs_owner(os.fstat(top_fd))
                if owner is not None:
                    container, root_uid = owner
                    root_depth = len(stack)
            if not pending:
                break
            name = pending.pop(0)
            visited = _counted(visited, 'src %s' % shown_path)
            if name == '..':
                if container is not None and len(stack) <= root_depth:
                    raise ResolveError('src %s climbs above the root filesystem of container %s'
                                       % (shown_path, container))
                if len(stack) > 1:
                    os.close(stack.pop()[0])
                continue
            here = top_path + '/' + name
            try:
                fd = _open_step(name, top_fd)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    raise ResolveError('src %s does not exist%s' % (
                        shown_path, '' if here == path.rstrip('/') else ' (%s is missing)' % shown(here)), missing=True)
                raise ResolveError('src %s: %s cannot be opened (%s)' % (shown_path, shown(here), e.strerror))
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                links += 1
                if links > MAX_LINKS:
                    raise ResolveError('src %s: too many levels of symbolic links' % shown_path)
                if container is None:
                    parent = os.fstat(top_fd)
                    if st.st_uid != 0 or parent.st_uid != 0:
                        raise ResolveError('src %s passes through symlink %s owned by uid %d (in a directory of uid %d); '
                                           'only symlinks of host root are followed on the host'
                                           % (shown_path, shown(here), st.st_uid, parent.st_uid))
                elif st.st_uid != root_uid:
                    raise ResolveError('src %s passes through symlink %s owned by uid %d, not by the root of container %s; '
                                       'a user of the container may not redirect a share' % (shown_path, shown(here), st.st_uid, container))
                target = _readlink(name, top_fd, 'src', shown_path, here)
                if target.startswith('/'):
                    keep = root_depth if container is not None else 1
                    while len(stack) > keep:
                        os.close(stack.pop()[0])
                pending = [c for c in target.split('/') if c not in ('', '.')] + pending
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                if not pending:
                    raise ResolveError('src %s is not a directory' % shown_path)
                raise ResolveError('src %s: %s is not a directory' % (shown_path, shown(here)))
            stack.append((fd, here))
        fd = stack.pop()[0]
        return SrcResolution(fd, container, root_uid)
    finally:
        for fd, dummy in stack:
            os.close(fd)


def read_data_file(root_fd, path, what):
    """Read a small regular file below root_fd as data (e.g. etc/passwd); returns bytes.

    Resolved inside the root; FIFOs, devices and files over MAX_DATA_FILE
    bytes are refused.
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
        size = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_DATA_FILE:
                raise ResolveError('%s %s is larger than %d bytes' % (what, path, MAX_DATA_FILE))
            chunks.append(chunk)
        return b''.join(chunks)
    finally:
        os.close(fd)
