# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AppArmor: the profile a hook runs under, and leaving the one LXC gives lxc-start.

Debian 13 (AppArmor 4.1, LXC 6.0) confines ``/usr/bin/lxc-start`` with a
profile of its own (``abstractions/lxc/start-container``), and the hooks it
runs inherit it.  Its mount rules allow what LXC itself mounts, not moving a
share's mount into the container: ``move_mount`` fails with EACCES and the
kernel logs ``apparmor="DENIED" operation="mount" ... profile="/usr/bin/lxc-start"``.
The same profile allows ``change_profile -> unconfined`` (LXC uses it for a
container with ``lxc.apparmor.profile = unconfined``); the start hook takes
that step for itself, and only from that profile.  Containers started by
``lxc-autostart`` (lxc.service at boot) run their hooks unconfined already.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# The files of a task's AppArmor label: the LSM-specific one (5.8+), else the shared one.
ATTR_FILES = ('/proc/thread-self/attr/apparmor/current', '/proc/thread-self/attr/current')
LXC_START_PROFILE = '/usr/bin/lxc-start'


def label(attr_files=ATTR_FILES):
    """(the label of this task, the file it was read from); (None, None) without AppArmor."""
    for path in attr_files:
        try:
            with open(path, 'rb') as f:
                text = f.read().rstrip(b'\0\n').decode('utf-8', 'replace')
        except (IOError, OSError):
            continue
        if text:
            return text, path
    return None, None


def profile_of(text):
    """The profile name of a label such as '/usr/bin/lxc-start (enforce)'."""
    if not text:
        return None
    name = text.rsplit(' (', 1)[0] if text.endswith(')') else text
    return name.strip()


def leave_lxc_start(attr_files=ATTR_FILES):
    """Change this task from lxc-start's profile to unconfined; returns the label left, or None.

    Only the profile named /usr/bin/lxc-start is left (any other confinement
    stays, and what it refuses is reported by the operation that fails).
    Raises OSError when the kernel refuses the change.
    """
    text, path = label(attr_files)
    if profile_of(text) != LXC_START_PROFILE:
        return None
    with open(path, 'wb') as f:
        f.write(b'changeprofile unconfined')
    return text
