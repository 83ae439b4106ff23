# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading /proc/PID/mountinfo, with its octal escapes decoded.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

_OCTAL = re.compile(r'\\([0-7]{3})')


def unescape(field):
    """Decode the kernel's \\ooo escapes (space, tab, newline, backslash)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


class MountEntry(object):
    __slots__ = ('mount_id', 'parent_id', 'dev', 'root', 'mount_point', 'options',
                 'optional', 'fstype', 'source', 'super_options')

    def __init__(self, *fields, **named):
        """Every field of __slots__, in that order or by name."""
        values = dict(zip(self.__slots__, fields))
        values.update(named)
        if len(fields) > len(self.__slots__) or sorted(values) != sorted(self.__slots__):
            raise TypeError('MountEntry needs exactly the fields %s' % ', '.join(self.__slots__))
        for name in self.__slots__:
            setattr(self, name, values[name])

    @property
    def idmapped(self):
        return 'idmapped' in self.options

    @property
    def readonly(self):
        return 'ro' in self.options

    @property
    def nosuid(self):
        """Whether the mount ignores set-uid bits and device nodes (nosuid and nodev, as lxcex.share mounts shares)."""
        return 'nosuid' in self.options and 'nodev' in self.options

    def __repr__(self):
        return 'MountEntry(%d %r on %r type %s)' % (self.mount_id, self.root, self.mount_point, self.fstype)


def parse_line(line):
    fields = line.rstrip('\n').split(' ')
    sep = fields.index('-', 6)
    major, minor = fields[2].split(':')
    return MountEntry(
        mount_id=int(fields[0]),
        parent_id=int(fields[1]),
        dev=(int(major), int(minor)),
        root=unescape(fields[3]),
        mount_point=unescape(fields[4]),
        options=tuple(fields[5].split(',')),
        optional=tuple(fields[6:sep]),
        fstype=unescape(fields[sep + 1]),
        source=unescape(fields[sep + 2]) if len(fields) > sep + 2 else '',
        super_options=tuple(fields[sep + 3].split(',')) if len(fields) > sep + 3 else (),
    )


def parse(text):
    return [parse_line(line) for line in text.splitlines() if line.strip()]


class MountTable(object):
    """The mounts of one mount namespace, read once, indexed by mount point.

    Callers that change mounts update the table (add, remove) instead of
    reading mountinfo again, so a pass over N mounts stays linear.
    """

    reads = {}  # {pid: how many times its mountinfo was read in this process} (stats and tests)

    def __init__(self, entries):
        index = {}
        for entry in entries:
            index.setdefault(entry.mount_point, []).append(entry)
        self._by_point = index

    @classmethod
    def read(cls, pid='self'):
        with open('/proc/%s/mountinfo' % pid, 'rb') as f:
            data = f.read()
        MountTable.reads[str(pid)] = MountTable.reads.get(str(pid), 0) + 1
        return cls(parse(data.decode('utf-8', 'surrogateescape')))

    @property
    def entries(self):
        return [e for stack in self._by_point.values() for e in stack]

    def stack(self, path):
        """All mounts at path, bottom first."""
        return list(self._by_point.get(path, ()))

    def top(self, path):
        """The mount visible at path (the one no other mount at path sits on)."""
        stack = self._by_point.get(path)
        if not stack:
            return None
        ids = set(e.parent_id for e in stack)
        for entry in reversed(stack):
            if entry.mount_id not in ids:
                return entry
        return stack[-1]

    def containing(self, path):
        """The visible mount whose mount point is the longest prefix of path."""
        path = os.path.normpath(path)
        while True:
            entry = self.top(path)
            if entry is not None or path == '/':
                return entry
            path = os.path.dirname(path)

    def below(self, path):
        """Mount points strictly below path."""
        prefix = path.rstrip('/') + '/'
        return sorted(p for p in self._by_point if p.startswith(prefix))

    def add(self, entry):
        """Record a mount made on top of path."""
        self._by_point.setdefault(entry.mount_point, []).append(entry)

    def remove(self, path):
        """Forget the top mount at path (after unmounting it)."""
        entry = self.top(path)
        if entry is not None:
            stack = self._by_point[path]
            stack.remove(entry)
            if not stack:
                del self._by_point[path]
        return entry
