# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""User namespaces that carry mount idmaps, one per distinct map.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.lxcex.share.plugins.module_utils import _kernel


class UsernsCache(object):
    """Creates a user namespace once per distinct Idmap and hands out its fd."""

    def __init__(self):
        self._fds = {}
        self.created = 0

    def fd(self, idmap):
        fd = self._fds.get(idmap)
        if fd is None:
            uid_map, gid_map = idmap.proc_maps()
            fd = _kernel.make_userns(uid_map, gid_map)
            self._fds[idmap] = fd
            self.created += 1
        return fd

    def close(self):
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
