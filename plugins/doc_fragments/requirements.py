# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # What a managed host needs; the modules check it first and fail with a message that names what is missing.
    DOCUMENTATION = r'''
options: {}
attributes:
  platform:
    support: full
    platforms: posix
    description: Linux hosts with LXC.
requirements:
  - Linux 5.12 or newer on the host (idmapped mounts); a source on tmpfs needs 6.3 or newer, and reading a mount's
    idmap back from the kernel 6.15 or newer (older kernels use the record made when it was mounted).
  - Filesystems that support idmapped mounts for the sources (ext4, xfs, btrfs, tmpfs 6.3+, among others).
  - Python 3.9 or newer on the host (an older one gets a clear failure, not a traceback).
  - Root on the host (use C(become)); the module fails saying so otherwise.
  - LXC with unprivileged containers (C(lxc.idmap)) on the host.
'''
