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

import hashlib
import json
import os
import tempfile

DEFAULT_STATE_DIR = '/run/lxcex-share/mounts'


def write_atomic(path, data, mode=0o600):
    """Write bytes to path through a temporary file and rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
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
    def __init__(self, directory=DEFAULT_STATE_DIR):
        self.directory = directory

    def _file(self, path):
        return os.path.join(self.directory, hashlib.sha256(path.encode('utf-8', 'surrogateescape')).hexdigest() + '.json')

    def load(self, path):
        try:
            with open(self._file(path), 'r') as f:
                record = json.load(f)
        except (IOError, OSError, ValueError):
            return None
        if record.get('path') != path:
            return None
        return record

    def save(self, record):
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, 0o700)
        data = json.dumps(record, sort_keys=True).encode('utf-8')
        write_atomic(self._file(record['path']), data)

    def delete(self, path):
        try:
            os.unlink(self._file(path))
        except OSError:
            pass
