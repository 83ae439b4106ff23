# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Records of the mounts lxcex.share made, kept under /run.

A record says which src and idmap a mount was made with and which
directories were created for it.  /run is a tmpfs, so the records vanish at
reboot together with the mounts they describe.  A record whose mount id no
longer matches the mount at its path is stale and ignored.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import hashlib
import json
import os
import tempfile

DEFAULT_STATE_DIR = '/run/lxcex-share/mounts'


def write_atomic(path, data, mode=0o600, sync=True):
    """Write bytes to path through a temporary file and rename (fsynced unless sync is false)."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class StateStore(object):
    """Records keyed by path, grouped in one file per group (by default the path's directory).

    A key with a NUL byte is grouped by what comes before it.  Records are
    cached after the first read of their group; changes are kept in memory
    and written by flush(), one file per changed group, under an exclusive
    lock with the file read again and only the changed keys merged, so
    concurrent runs that touch different keys never lose each other's
    records.  /run is a tmpfs: nothing is fsynced, the records vanish at
    reboot with the mounts they describe.
    """

    def __init__(self, directory=DEFAULT_STATE_DIR):
        self.directory = directory
        self._cache = {}
        self._dirty = {}

    @staticmethod
    def _group_of(key):
        if '\0' in key:
            return key.split('\0', 1)[0] + '\0'
        return os.path.dirname(key)

    def _file(self, group):
        return os.path.join(self.directory, hashlib.sha256(group.encode('utf-8', 'surrogateescape')).hexdigest() + '.json')

    def _read(self, group):
        try:
            with open(self._file(group), 'r') as f:
                data = json.load(f)
        except (IOError, OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get('group') != group:
            return {}
        return data.get('records') or {}

    def _records(self, group):
        if group not in self._cache:
            self._cache[group] = self._read(group)
        return self._cache[group]

    def records(self, group):
        """A copy of every record of a group (key -> record)."""
        return dict(self._records(group))

    def load(self, path):
        record = self._records(self._group_of(path)).get(path)
        if record is None or record.get('path') != path:
            return None
        return record

    def save(self, record):
        group = self._group_of(record['path'])
        self._records(group)[record['path']] = record
        self._dirty.setdefault(group, {})[record['path']] = record

    def delete(self, path):
        group = self._group_of(path)
        if path in self._records(group):
            del self._cache[group][path]
            self._dirty.setdefault(group, {})[path] = None

    def flush(self):
        """Write the changed groups."""
        if not self._dirty:
            return
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, 0o700)
        lock = os.open(os.path.join(self.directory, '.lock'), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for group, changes in self._dirty.items():
                records = self._read(group)
                for key, record in changes.items():
                    if record is None:
                        records.pop(key, None)
                    else:
                        records[key] = record
                if records:
                    data = json.dumps({'group': group, 'records': records}, sort_keys=True).encode('utf-8')
                    write_atomic(self._file(group), data, sync=False)
                else:
                    try:
                        os.unlink(self._file(group))
                    except OSError:
                        pass
            self._dirty = {}
        finally:
            os.close(lock)
