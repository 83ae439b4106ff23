# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # The options of a host that lxc_share, lxc_share_hooks and lxc_share_info share (module_utils._share.host_spec).
    DOCUMENTATION = r'''
options:
  lxcpath:
    description: Where the containers live. Defaults to C(lxc-config lxc.lxcpath), else C(/var/lib/lxc).
    type: path
    aliases: [lxc_path]
  thunks_dir:
    description:
      - The tmpfs holding the thunks; mounted (rshared, mode 0711) when missing. Each container's thunks are in a
        directory of mode 0700 owned by the container's root, so no other host user can reach them.
      - An existing directory is used only when it is an empty directory or a tmpfs, owned by root and writable by
        nobody else.
    type: path
    default: /mnt/share-thunks
  thunks_size:
    description:
      - Size of the thunks tmpfs when it is mounted (by M(lxcex.share.lxc_share), M(lxcex.share.lxc_share_hooks) or
        a start hook), as tmpfs takes it (like V(1M), V(512k) or V(1%)).
      - M(lxcex.share.lxc_share_info) mounts nothing and accepts it so that C(module_defaults) of the group
        C(lxcex.share.lxc) apply to it too.
    type: str
    default: 1M
'''
