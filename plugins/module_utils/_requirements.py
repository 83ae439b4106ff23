# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host needs to run lxcex.share, checked before anything else with a message that says what is missing.

- Python 3.9 or newer (the modules and the hook program use os.pidfd_open
  and os.waitstatus_to_exitcode); older Pythons get a message, not a traceback;
- root (mounts, the containers' configs, their namespaces);
- Linux 5.12 or newer (idmapped mounts); idmapped mounts of a tmpfs source
  need 6.3 or newer, which the kernel itself reports when a share is made.

This module must stay importable by every Python that Ansible may run a
module with, so that the message reaches the user.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import platform
import re
import sys

MIN_PYTHON = (3, 9)
MIN_KERNEL = (5, 12)


def problem(need_root=True, python=None, euid=None, kernel=None):
    """What this host lacks, as a message naming it, or None (arguments: for tests)."""
    python = sys.version_info[:3] if python is None else python
    if tuple(python[:2]) < MIN_PYTHON:
        return ('lxcex.share needs Python %d.%d or newer on the host, and %s is Python %s; set '
                'ansible_python_interpreter (or lxcex_share_python for the hook program) to a newer one'
                % (MIN_PYTHON + (sys.executable, '.'.join(str(x) for x in python))))
    kernel = platform.release() if kernel is None else kernel
    m = re.match(r'(\d+)\.(\d+)', kernel)
    if m and (int(m.group(1)), int(m.group(2))) < MIN_KERNEL:
        return 'lxcex.share needs Linux %d.%d or newer (idmapped mounts), and this host runs %s' % (
            MIN_KERNEL + (kernel,))
    euid = os.geteuid() if euid is None else euid
    if need_root and euid != 0:
        return ('lxcex.share needs root on the host (it reads the containers\' configs under the lxcpath, enters '
                'their namespaces and makes mounts), and runs as uid %d; use become: true (or sudo)' % euid)
    return None


def ready(module, describe_paths=True):
    """The parameters of an AnsibleModule, after failing it plainly when the host lacks what lxcex.share needs.

    describe_paths=False: AnsibleModule adds no file attributes (state, mode...) of a host path to the result; for
    modules whose path options are not host files to describe (a mount point, a path inside a container).
    """
    if not describe_paths:
        module.add_path_info = lambda kwargs: kwargs
    lacking = problem()
    if lacking:
        module.fail_json(msg=lacking)
    return module.params
