# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about an LXC container, read as data: its config and its state.

The state and init pid come from the process table (the container's
``[lxc monitor] LXCPATH NAME`` process and its child), never from lxc-info or
the command socket, which hang when asked from a hook.  Any host user can
give a process that title, so a monitor counts only when its real, effective,
saved and filesystem uids are those of the owner of LXCPATH (root for root's
containers), which an unprivileged host user cannot forge, and its
container's init is its child in a pid namespace of its own.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import os
import subprocess

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError

DEFAULT_LXCPATH = '/var/lib/lxc'
_MAX_INCLUDE_DEPTH = 8


def default_lxcpath():
    """lxc-config lxc.lxcpath, else /var/lib/lxc."""
    try:
        out = subprocess.run(['lxc-config', 'lxc.lxcpath'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=10, check=False).stdout.decode('utf-8', 'replace').strip()
    except (OSError, subprocess.SubprocessError):
        out = ''
    return out or DEFAULT_LXCPATH


def parse_config_lines(text):
    """(key, value) pairs of an LXC config text, in order."""
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, value = line.split('=', 1)
        pairs.append((key.strip(), value.strip()))
    return pairs


def _read_config(path, depth=0):
    try:
        with open(path, 'r') as f:
            text = f.read()
    except (IOError, OSError) as e:
        raise ShareError('cannot read LXC config %s: %s' % (path, e.strerror))
    pairs = []
    for key, value in parse_config_lines(text):
        if key == 'lxc.include' and depth < _MAX_INCLUDE_DEPTH:
            targets = sorted(glob.glob(os.path.join(value, '*.conf'))) if os.path.isdir(value) else [value]
            for target in targets:
                if os.path.isfile(target):
                    pairs.extend(_read_config(target, depth + 1))
            continue
        pairs.append((key, value))
    return pairs


class IdRange(object):
    __slots__ = ('inside', 'host', 'count')

    def __init__(self, inside, host, count):
        self.inside, self.host, self.count = inside, host, count

    def to_host(self, value):
        if self.inside <= value < self.inside + self.count:
            return self.host + value - self.inside
        return None

    def __repr__(self):
        return '%d-%d -> %d-%d' % (self.inside, self.inside + self.count - 1, self.host, self.host + self.count - 1)


class Container(object):
    """One container: name, lxcpath, config facts; state on demand."""

    def __init__(self, name, lxcpath, pairs):
        self.name = name
        self.lxcpath = lxcpath
        self.directory = os.path.join(lxcpath, name)
        self.config_path = os.path.join(self.directory, 'config')
        self.uid_ranges = []
        self.gid_ranges = []
        self.rootfs = None
        self.rootfs_type = None
        self.rootfs_options = ''
        self.log_file = None
        for key, value in pairs:
            if key == 'lxc.idmap':
                self._add_idmap(value)
            elif key in ('lxc.rootfs.path', 'lxc.rootfs'):
                self._set_rootfs(value)
            elif key == 'lxc.rootfs.options':
                self.rootfs_options = value
            elif key == 'lxc.log.file':
                self.log_file = value or None

    @classmethod
    def load(cls, name, lxcpath):
        if not name or '/' in name or name in ('.', '..'):
            raise ShareError('container name %r is not valid' % (name,))
        config = os.path.join(lxcpath, name, 'config')
        if not os.path.isfile(config):
            raise ShareError('unknown container %r: no config at %s' % (name, config))
        return cls(name, lxcpath, _read_config(config))

    def _add_idmap(self, value):
        parts = value.split()
        if len(parts) != 4 or parts[0] not in ('u', 'g', 'b') or not all(p.isdigit() for p in parts[1:]):
            raise ShareError('container %s: cannot parse lxc.idmap = %s' % (self.name, value))
        rng = IdRange(int(parts[1]), int(parts[2]), int(parts[3]))
        if parts[0] in ('u', 'b'):
            self.uid_ranges.append(rng)
        if parts[0] in ('g', 'b'):
            self.gid_ranges.append(rng)

    def _set_rootfs(self, value):
        if ':' in value and not value.startswith('/'):
            kind, path = value.split(':', 1)
        else:
            kind, path = 'dir', value
        self.rootfs_type = kind
        self.rootfs = path if kind == 'dir' else None

    @property
    def privileged(self):
        return not self.uid_ranges and not self.gid_ranges

    @property
    def rootfs_idmapped(self):
        return 'idmap=container' in self.rootfs_options.split(',')

    def host_id(self, kind, value):
        """The host id of a container uid ('u') or gid ('g'); ShareError when unmapped."""
        ranges = self.uid_ranges if kind == 'u' else self.gid_ranges
        if self.privileged:
            return value
        for rng in ranges:
            host = rng.to_host(value)
            if host is not None:
                return host
        raise ShareError('%s %d is outside container %s\'s %s ranges (%s)'
                         % ('uid' if kind == 'u' else 'gid', value, self.name, 'uid' if kind == 'u' else 'gid',
                            ', '.join(repr(r) for r in ranges) or 'none'))

    def root_host_ids(self):
        """Host uid and gid of the container's root (for directories it should own)."""
        try:
            return self.host_id('u', 0), self.host_id('g', 0)
        except ShareError:
            return 0, 0

    def init_pid(self):
        """The container's init pid, or None when it is not running."""
        return find_init_pid(self.lxcpath, self.name)


def _read_bytes(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except (IOError, OSError):
        return None


def _ppid(pid):
    stat = _read_bytes('/proc/%d/stat' % pid) or b''
    try:
        return int(stat[stat.rindex(b')') + 2:].split()[1])
    except (ValueError, IndexError):
        return 0


def _uids(pid):
    """The real, effective, saved and filesystem uids of a process, or None."""
    status = _read_bytes('/proc/%d/status' % pid) or b''
    for line in status.splitlines():
        if line.startswith(b'Uid:'):
            try:
                return set(int(x) for x in line.split()[1:])
            except ValueError:
                return None
    return None


def _owner(path, cache):
    if path not in cache:
        try:
            cache[path] = os.stat(path).st_uid
        except OSError:
            cache[path] = None
    return cache[path]


def monitors():
    """{'LXCPATH NAME': [pids]} of the trusted processes titled '[lxc monitor] LXCPATH NAME'.

    A process is trusted when all its uids are those of the owner of
    LXCPATH (see the module docstring).  While a container starts, its init
    is a fork of the monitor that still carries the monitor's title, so a
    key may have more than one pid.
    """
    found = {}
    owners = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        cmdline = _read_bytes('/proc/%s/cmdline' % entry)
        if not cmdline or not cmdline.startswith(b'[lxc monitor] '):
            continue
        text = cmdline.rstrip(b'\0').decode('utf-8', 'surrogateescape')[len('[lxc monitor] '):]
        lxcpath = text.rsplit(' ', 1)[0]
        uids = _uids(int(entry))
        owner = _owner(lxcpath, owners)
        if owner is None or uids != set([owner]):
            continue
        found.setdefault(text, []).append(int(entry))
    return found


def monitor_pids():
    """{'LXCPATH NAME': monitor pid} for every running container on the host."""
    out = {}
    for key, pids in monitors().items():
        roots = [p for p in pids if _ppid(p) not in pids] or pids
        out[key] = roots[0]
    return out


def restarted(lxcpath, name):
    """True when another instance of the container runs than the one this process descends from.

    A post-stop hook runs in the old monitor, which may outlive lxc-stop: by
    then the container may have been started again.
    """
    ancestors = set()
    pid = os.getpid()
    while pid > 1 and pid not in ancestors:
        ancestors.add(pid)
        pid = _ppid(pid)
    pids = monitors().get('%s %s' % (lxcpath.rstrip('/') or '/', name), [])
    return any(p not in ancestors for p in pids)


def _pidns(pid):
    try:
        return os.readlink('/proc/%d/ns/pid' % pid)
    except OSError:
        return None


def find_init_pid(lxcpath, name, monitors=None):
    """The child of the container's monitor process that lives in its own pid namespace."""
    if monitors is None:
        monitors = monitor_pids()
    pid = monitors.get('%s %s' % (lxcpath.rstrip('/') or '/', name))
    if pid is None:
        return None
    children = _read_bytes('/proc/%d/task/%d/children' % (pid, pid)) or b''
    monitor_ns = _pidns(pid)
    for child in children.split():
        child = int(child)
        ns = _pidns(child)
        if ns is not None and ns != monitor_ns:
            return child
    return None
