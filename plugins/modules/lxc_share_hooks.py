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
  - The hook program is installed by the role C(lxcex.share.lxcex_share).
author:
  - lxcex.share developers (@lxcex)
options:
  containers:
    description: Names of the containers.
    type: list
    elements: str
    required: true
  state:
    description: V(present) adds or updates the block, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  program:
    description: Path of the hook program on the host.
    type: path
    default: /usr/local/bin/lxcex-share
  strict:
    description: Make the hook fail the container start when a share is broken, instead of logging it.
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
  lxcpath:
    description: Where the containers live. Defaults to C(lxc-config lxc.lxcpath), else C(/var/lib/lxc).
    type: path
  thunks_dir:
    description: The thunks tmpfs.
    type: path
    default: /mnt/share-thunks
  thunks_size:
    description: Size of the thunks tmpfs, as tmpfs takes it (like V(1M), V(512k) or V(1%)).
    type: str
    default: 1M
  deadline:
    description:
      - Seconds after which the hook stops, logs the shares it has not applied (or thunks not released) and lets the
        container start (or stop). Whatever a container or its sharetab holds, a start never waits longer.
    type: float
    default: 30
  ensure_thunks:
    description: Mount the thunks tmpfs now when it is missing.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports what would change and touches nothing.
  diff_mode:
    support: full
    description: Shows each changed config before and after.
notes:
  - Requires root on the host.
seealso:
  - module: lxcex.share.lxc_share
'''

EXAMPLES = r'''
- name: Containers get their shares back at every start
  lxcex.share.lxc_share_hooks:
    containers: [alice-container, bob-container]

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
hook:
  description: The command the hook entries run.
  returned: always
  type: str
  sample: /usr/local/bin/lxcex-share --thunks-dir /mnt/share-thunks --thunks-size 1M hook
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lxcex.share.plugins.module_utils import _lxcconf
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._lxc import default_lxcpath
from ansible_collections.lxcex.share.plugins.module_utils._share import Engine
from ansible_collections.lxcex.share.plugins.module_utils._validate import check_text, check_thunks_size


def main():
    module = AnsibleModule(
        argument_spec=dict(
            containers=dict(type='list', elements='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            program=dict(type='path', default='/usr/local/bin/lxcex-share'),
            strict=dict(type='bool', default=False),
            backend=dict(type='str', choices=['native', 'mount-idmapped'], default='native'),
            mount_idmapped=dict(type='path'),
            lxcpath=dict(type='path'),
            thunks_dir=dict(type='path', default='/mnt/share-thunks'),
            thunks_size=dict(type='str', default='1M'),
            deadline=dict(type='float', default=30.0),
            ensure_thunks=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        for key in ('program', 'mount_idmapped', 'lxcpath', 'thunks_dir'):
            check_text(key, p[key])
            if p[key] is not None and not p[key].startswith('/'):
                raise ShareError('%s %r is not an absolute path' % (key, p[key]))
        check_thunks_size(p['thunks_size'])
        if not 0 < p['deadline'] <= 3600:
            raise ShareError('deadline %r is not a number of seconds between 0 and 3600' % p['deadline'])
        for name in p['containers']:
            check_text('container name', name)
    except ShareError as e:
        module.fail_json(msg=str(e))
    lxcpath = p['lxcpath'] or default_lxcpath()
    args = ['--thunks-dir', p['thunks_dir'], '--thunks-size', p['thunks_size']]
    if p['backend'] != 'native':
        args += ['--backend', p['backend']]
        if p['mount_idmapped']:
            args += ['--mount-idmapped', p['mount_idmapped']]
    if p['strict']:
        args.append('--strict')
    if p['deadline'] != 30.0:
        args += ['--deadline', '%g' % p['deadline']]
    lines = _lxcconf.block_lines(p['program'], args) if p['state'] == 'present' else None
    changed_containers = []
    diffs = []
    thunks_mounted = False
    try:
        # The thunks directory first: when it is refused, no config has been touched.
        if p['ensure_thunks'] and p['state'] == 'present':
            engine = Engine(lxcpath, p['thunks_dir'], p['thunks_size'], check_mode=module.check_mode)
            try:
                thunks_mounted = engine.ensure_thunks_fs()
            finally:
                engine.close()
        for name in p['containers']:
            if not name or '/' in name or name in ('.', '..'):
                raise ShareError('container name %r is not valid' % (name,))
            config = os.path.join(lxcpath, name, 'config')
            changed, before, after = _lxcconf.ensure(config, lines, check_mode=module.check_mode)
            if changed:
                changed_containers.append(name)
                diffs.append(dict(before=before, after=after, before_header=config, after_header=config))
    except ShareError as e:
        module.fail_json(msg=str(e), changed_containers=changed_containers)
    result = dict(changed=bool(changed_containers) or thunks_mounted, changed_containers=changed_containers,
                  thunks_mounted=thunks_mounted, hook=_lxcconf.hook_command(p['program'], args))
    if module._diff:
        result['diff'] = diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()
