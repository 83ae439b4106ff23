#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: idmapped_thunk
short_description: Make or remove an idmapped bind mount of a directory
version_added: 0.1.0
description:
  - Makes an idmapped bind mount of O(src) at O(path), so that files owned on disk by id FROM
    appear through the mount as owned by id TO, and files created through it by TO land on disk as FROM.
  - The kernel work is done natively (C(open_tree), C(mount_setattr) with C(MOUNT_ATTR_IDMAP),
    C(move_mount)); no helper program is needed. Linux 5.12 or newer and a filesystem that supports
    idmapped mounts (ext4, xfs, btrfs, tmpfs since 6.3, ...) are required.
  - The idmap of an existing mount is read back from the kernel with C(statmount()) (Linux 6.15 and newer);
    on older kernels from a record kept under C(/run/lxcex-share), which vanishes with the mounts at reboot.
  - The module never deletes a file. With O(state=absent) it unmounts and removes O(path) only if it is an
    empty directory that the module created.
author:
  - lxcex.share developers (@lxcex)
options:
  path:
    description:
      - Where the idmapped mount is attached. Must be absolute.
      - Must not be O(src) or lie inside it, and must not be a mount point of something other than an idmapped mount.
    type: path
    required: true
  src:
    description:
      - Directory to mount. Must be absolute and exist. Required with O(state=present).
    type: path
  idmap:
    description:
      - Mount idmap entries C(KIND:FROM:TO:COUNT), with the meaning of mount-idmapped's C(--map-mount).
      - V(u) maps uids, V(g) gids, V(b) both. An on-disk id FROM+i appears as TO+i through the mount, for 0 <= i < COUNT.
      - Ranges may not overlap on either side; at most 340 extents per map; ids up to 4294967294.
      - Required with O(state=present).
    type: list
    elements: str
  state:
    description:
      - V(present) makes sure the mount exists exactly as described; a mount with another src, idmap or
        O(readonly) is replaced.
      - V(absent) unmounts it.
    type: str
    choices: [present, absent]
    default: present
  readonly:
    description:
      - Make the mount read-only.
    type: bool
    default: false
  create_path:
    description:
      - Create O(path) and its missing parents, mode 0711, when they do not exist.
    type: bool
    default: true
  allow_root:
    description:
      - Allow an idmap that involves host id 0 (root) on either side. Refused by default.
    type: bool
    default: false
  backend:
    description:
      - V(native) does the kernel work from Python.
      - V(mount-idmapped) runs the C(mount-idmapped) program found in E(PATH) instead; the module fails
        clearly when it is not installed.
    type: str
    choices: [native, mount-idmapped]
    default: native
attributes:
  check_mode:
    support: full
    description: Reports whether the mount would be made, replaced or removed; mounts nothing.
  diff_mode:
    support: full
    description: Shows src, idmap and readonly of the mount before and after.
extends_documentation_fragment:
  - lxcex.share.requirements
seealso:
  - module: lxcex.share.lxc_share
'''

EXAMPLES = r'''
- name: Show alice's files (uid 1000, gid 100 on disk) as 201000:200100
  lxcex.share.idmapped_thunk:
    src: /srv/alice
    path: /mnt/share-thunks/bob-container/alice
    idmap:
      - u:1000:201000:1
      - g:100:200100:1

- name: Read-only view of a whole container range
  lxcex.share.idmapped_thunk:
    src: /srv/images/base
    path: /mnt/views/base
    idmap: [b:100000:300000:65536]
    readonly: true

- name: Remove the mount (the source files are never touched)
  lxcex.share.idmapped_thunk:
    path: /mnt/share-thunks/bob-container/alice
    state: absent
'''

RETURN = r'''
path:
  description: The canonical mount point.
  returned: always
  type: str
  sample: /mnt/share-thunks/bob-container/alice
src:
  description: The mounted directory.
  returned: when O(state=present)
  type: str
  sample: /srv/alice
idmap:
  description: The idmap in canonical form, uid entries first, then gid entries.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [u:1000:201000:1, g:100:200100:1]
readonly:
  description: Whether the mount is read-only.
  returned: when O(state=present)
  type: bool
  sample: false
before:
  description: The mount found at O(path) before the task.
  returned: always
  type: dict
  sample: {mounted: true, src: /srv/alice, idmap: [u:1000:201000:1, g:100:200100:1], readonly: false}
after:
  description: The mount at O(path) after the task (what it would be, in check mode).
  returned: always
  type: dict
  sample: {mounted: false}
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._requirements import ready
from ansible_collections.lxcex.share.plugins.module_utils._idmap import parse as parse_idmap
from ansible_collections.lxcex.share.plugins.module_utils._thunk import Thunks, find_mount_idmapped
from ansible_collections.lxcex.share.plugins.module_utils._validate import canonical_target, check_absolute, is_inside


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            src=dict(type='path'),
            idmap=dict(type='list', elements='str'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            readonly=dict(type='bool', default=False),
            create_path=dict(type='bool', default=True),
            allow_root=dict(type='bool', default=False),
            backend=dict(type='str', choices=['native', 'mount-idmapped'], default='native'),
        ),
        required_if=[('state', 'present', ('src', 'idmap'))],
        supports_check_mode=True,
    )
    # The result says what is mounted at path, not the file attributes of path (state, mode...).
    p = ready(module, describe_paths=False)
    try:
        check_absolute('path', p['path'])
        path = canonical_target(p['path'])
        mount_idmapped = None
        if p['state'] == 'present':
            check_absolute('src', p['src'])
            idmap = parse_idmap(p['idmap'], allow_root=p['allow_root'])
            src = os.path.normpath(p['src'])
            if not os.path.exists(src):
                raise ShareError('src %s does not exist' % src)
            if not os.path.isdir(src):
                raise ShareError('src %s is not a directory' % src)
            real_src = os.path.realpath(src)
            if is_inside(path, real_src):
                raise ShareError('path %s is %s src %s; a mount must not cover its own source'
                                 % (p['path'], 'the same as' if path == real_src else 'inside', src))
            if p['backend'] == 'mount-idmapped':
                mount_idmapped = find_mount_idmapped()
    except ShareError as e:
        module.fail_json(msg=str(e))

    thunks = Thunks(check_mode=module.check_mode, backend=p['backend'], run_command=module.run_command,
                    mount_idmapped=mount_idmapped)
    try:
        if p['state'] == 'present':
            changed, before, after = thunks.present(path, src, idmap, readonly=p['readonly'],
                                                    create_path=p['create_path'])
        else:
            changed, before, after = thunks.absent(path)
    except ShareError as e:
        module.fail_json(msg=str(e), path=path)
    finally:
        thunks.close()

    result = dict(changed=changed, path=path, before=before, after=after)
    if p['state'] == 'present':
        result.update(src=src, idmap=idmap.entries(), readonly=p['readonly'])
    if module._diff:
        result['diff'] = dict(before=before, after=after, before_header=path, after_header=path)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
