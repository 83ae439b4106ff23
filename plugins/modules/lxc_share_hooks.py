#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: lxc_share_hooks
short_description: Make containers restore their shares at start, and set up the thunks tmpfs
version_added: 0.1.0
description:
  - Adds to the config of each container a marked block with C(lxc.hook.start-host) and C(lxc.hook.post-stop)
    entries that run the lxcex-share hook program, which applies the container's C(sharetab) when it starts and
    unmounts its thunks when it stops. Every other line of the config is kept; the block is written atomically
    under the lock of the container's directory.
  - Mounts the thunks tmpfs (rshared, mode 0711) when it is missing, so that a host is ready after a reboot.
  - With O(install=true), also installs the hook program O(program), the code it runs and the host settings
    O(host_config), before any hook line points at the program (the role C(lxcex.share.lxcex_share) does this).
    The code is this module's own module_utils, byte for byte, from the payload Ansible already shipped to run the
    module; nothing else is transferred, and a file is written only when its content differs.
author:
  - lxcex.share developers (@lxcex)
options:
  containers:
    aliases: [name, names]
    description:
      - Names of the containers. Required with O(state=present), unless O(install=true) (which may hook no
        container, for a host with no share yet).
      - With O(state=absent), every container of O(lxcpath) whose config has the block when not given.
    type: list
    elements: str
  state:
    description:
      - V(present) adds or updates the block (and takes over from the original lxcex-share, see O(takeover)).
      - V(absent) removes the block, releases the thunks of those containers and unmounts the thunks tmpfs when
        nothing is mounted in it any more. Sharetabs and shared data are left alone; shares still live in running
        containers stay until they stop.
    type: str
    choices: [present, absent]
    default: present
  program:
    description: Path of the hook program on the host.
    type: path
    default: /usr/local/bin/lxcex-share
  strict:
    description:
      - Make the hook fail the container start when a share is broken, instead of logging it.
      - Without it, the hook lines run the program through a guard, so that a container also starts when the hook
        program or its interpreter is missing; the guard logs that on stderr and in O(log_file).
    type: bool
    default: false
  backend:
    description: How the hook makes thunks, see M(lxcex.share.lxc_share).
    type: str
    choices: [native, mount-idmapped]
    default: native
  mount_idmapped:
    description: Path of the C(mount-idmapped) program the hook runs with O(backend=mount-idmapped).
    type: path
  deadline:
    description:
      - Seconds after which the hook stops, logs the shares it has not applied (or thunks not released) and lets the
        container start (or stop). Whatever a container or its sharetab holds, a start never waits longer.
    type: float
    default: 30
  log_file:
    description:
      - File where the hook logs every share it applies or fails to apply, and where the guard of the hook line logs
        a hook program that cannot run. The hook also writes its errors to the container's C(lxc.log.file) when the
        container has one, at ERROR level.
    type: path
    default: /var/log/lxcex-share.log
  takeover:
    description:
      - Take over a container set up with the original C(lxcex-share) script. Its hook lines (any C(lxc.hook.*) line
        outside the block that runs a program named C(lxcex-share)) and its C(rbind) C(lxc.mount.entry) of a thunks
        directory are commented out with a marker (every other line kept byte for byte, the config copied to
        C(config.before-lxcex-share) before the first such change). Its 3-column sharetab lines are applied by the
        hook as they are. The copy of the script it put into the container (C(/usr/local/bin/lxcex-share)) is
        reported in RV(original_files) and a warning, never deleted.
    type: bool
    default: true
  ensure_thunks:
    description: Mount the thunks tmpfs now when it is missing.
    type: bool
    default: true
  install:
    description:
      - With O(state=present), install the hook program O(program) (mode 0755), the code it runs
        (O(code_dir)/lxcex-share.pyz, one zip of the collection's module_utils, no C(.pyc) files) and the host
        settings O(host_config), writing only the files whose content differs, then check that the program runs
        with O(python) (C(PROGRAM --version)); when it does not, every file is put back as it was and the module
        fails before any config is touched.
      - With O(state=absent), remove those three files after the hook blocks (and O(code_dir) itself when it is empty
        and named C(lxcex-share), as the default is).
      - Either way, the tree of single files that versions before 0.2.0 copied to O(code_dir)C(/ansible_collections)
        is removed when it holds only that code.
    type: bool
    default: false
  code_dir:
    description: Directory of the code the hook program runs, with O(install=true).
    type: path
    default: /usr/local/lib/lxcex-share
  python:
    description: The Python 3.9 or newer that runs the hook program, with O(install=true).
    type: path
    default: /usr/bin/python3
  host_config:
    description:
      - Settings of this host that the C(lxcex-share) command takes as the defaults of its options (so that
        C(lxcex-share list) needs no flags), written with O(install=true).
    type: path
    default: /etc/lxcex-share.conf
attributes:
  check_mode:
    support: full
    description: Reports which configs (with O(install=true), which files of the program) would change; writes nothing.
  diff_mode:
    support: full
    description: Shows each changed config (and, with O(install=true), the program and settings) before and after.
extends_documentation_fragment:
  - lxcex.share.requirements
  - lxcex.share.host
seealso:
  - module: lxcex.share.lxc_share
'''

EXAMPLES = r'''
- name: Containers get their shares back at every start
  lxcex.share.lxc_share_hooks:
    containers: [alice-container, bob-container]

- name: Install the hook program and hook two containers, as the role does
  lxcex.share.lxc_share_hooks:
    containers: [alice-container, bob-container]
    install: true

- name: Fail the start of bob-container when one of its shares is broken
  lxcex.share.lxc_share_hooks:
    containers: [bob-container]
    strict: true
'''

RETURN = r'''
changed_containers:
  description: The containers whose config changed (or would change, in check mode).
  returned: always
  type: list
  elements: str
  sample: [bob-container]
thunks_mounted:
  description: Whether the thunks tmpfs was (or would be) mounted.
  returned: always
  type: bool
  sample: false
disabled:
  description: Per container, the lines of the original lxcex-share setup that were (or would be) commented out.
  returned: always
  type: dict
  sample: {bob-container: ["lxc.hook.pre-start = /usr/local/bin/lxcex-share"]}
original_files:
  description: Copies of the original lxcex-share script found in the containers' root filesystems (left in place).
  returned: always
  type: list
  elements: str
  sample: [/var/lib/lxc/bob-container/rootfs/usr/local/bin/lxcex-share]
released_thunks:
  description: With O(state=absent), the thunks unmounted.
  returned: always
  type: list
  elements: str
  sample: [/mnt/share-thunks/bob-container/home-bob-share]
thunks_unmounted:
  description: With O(state=absent), whether the thunks tmpfs was (or would be) unmounted.
  returned: always
  type: bool
  sample: true
installed:
  description: With O(install=true), the files written (or that would be written).
  returned: always
  type: list
  elements: str
  sample: [/usr/local/lib/lxcex-share/lxcex-share.pyz, /usr/local/bin/lxcex-share]
uninstalled:
  description: With O(install=true), the files removed (or that would be removed).
  returned: always
  type: list
  elements: str
  sample: [/usr/local/bin/lxcex-share]
code_sha256:
  description: With O(install=true) and O(state=present), the sha256 of the code the hook program runs.
  returned: always
  type: str
  sample: 4f1c0d2e9a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d
hook:
  description: The command the hook entries run.
  returned: always
  type: str
  sample: /usr/local/bin/lxcex-share --thunks-dir /mnt/share-thunks --thunks-size 1M hook
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._requirements import ready
from ansible_collections.lxcex.share.plugins.module_utils._hooks import converge_hooks, spec


def main():
    module = AnsibleModule(
        argument_spec=spec(),
        supports_check_mode=True,
    )
    ready(module)
    try:
        result = converge_hooks(module.params, check_mode=module.check_mode)
    except ShareError as e:
        partial = getattr(e, 'partial', None) or {}
        module.fail_json(msg=str(e), changed_containers=partial.get('changed_containers', []),
                         installed=partial.get('installed', []))
    for warning in result.pop('warnings'):
        module.warn(warning)
    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
