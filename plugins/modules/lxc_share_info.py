#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: lxc_share_info
short_description: Every share of a host's LXC containers, with its state
version_added: 0.2.0
description:
  - Reads the C(sharetab) of every container of O(lxcpath) (or of the containers named) and tells, for each share,
    whether it is live (mounted inside the running container as recorded), recorded (the container is stopped; the
    share comes at its next start), broken (with the reason) or a stale thunk (left by a stop that ran no post-stop
    hook), with its source, destination, user, group, read-only flag, who wrote the line, its thunk and the thunk's
    idmap as the kernel reports it.
  - Never changes anything. It is the same reader as C(lxcex-share list), which prints the same rows.
author:
  - lxcex.share developers (@lxcex)
options:
  containers:
    description: Names of the containers. Default, every container of O(lxcpath) that has a sharetab.
    type: list
    elements: str
    aliases: [name, names]
  fail_on_broken:
    description: Fail (after returning every row) when a share is broken, a thunk is stale or a container is unknown.
    type: bool
    default: false
extends_documentation_fragment:
  - lxcex.share.requirements
  - lxcex.share.host
attributes:
  check_mode:
    support: full
    description: The module never changes anything.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
seealso:
  - module: lxcex.share.lxc_share
'''

EXAMPLES = r'''
- name: Every share of the host
  lxcex.share.lxc_share_info:
  register: shares

- name: Shares that are not working
  ansible.builtin.debug:
    msg: "{{ shares.shares | selectattr('state', 'in', ['broken', 'stale']) | list }}"

- name: Fail when a share of bob-container is broken
  lxcex.share.lxc_share_info:
    name: bob-container
    fail_on_broken: true
'''

RETURN = r'''
shares:
  description: One entry per sharetab line (and per stale thunk or unknown container), container by container.
  returned: always
  type: list
  elements: dict
  contains:
    container:
      description: The container.
      type: str
      sample: bob-container
    dest:
      description: Where the share is inside the container.
      type: str
      sample: /home/bob/share
    src:
      description: The host directory shared.
      type: str
      sample: /srv/common
    user:
      description: The user inside the container who sees the files as their own.
      type: str
      sample: bob
    group:
      description: The group inside the container, when the line names one (else the user's primary group).
      type: str
      sample: null
    readonly:
      description: Whether the share is read-only.
      type: bool
      sample: false
    owner:
      description: Who wrote the line (C(role), C(task), C(manual), another owner of M(lxcex.share.lxc_share)) or
        C(hand) for a line without C(managed=).
      type: str
      sample: role
    state:
      description: V(live), V(recorded), V(broken), V(stale) or V(unknown) (a container named that does not exist).
      type: str
      sample: live
    detail:
      description: Why a share is broken, stale, recorded or unknown; empty when live.
      type: str
      sample: ''
    thunk:
      description: The host path of the share's thunk, when known.
      type: str
      sample: /mnt/share-thunks/bob-container/home-bob-share
    idmap:
      description: For a live share, the idmap of its thunk as the kernel reports it (statmount, Linux 6.15+), else
        as recorded when it was mounted.
      type: list
      elements: str
      sample: ["u:7000:201000:1", "g:7000:200100:1"]
    setuid:
      description: Whether the share honours set-uid bits (its O(lxcex.share.lxc_share#module:allow_setuid)); shares
        are C(nosuid) and C(nodev) otherwise.
      type: bool
      sample: false
    members:
      description: For a team share, every member (C(container), C(user), C(disk_uid)); null for other shares.
      type: list
      elements: dict
      sample: [{container: ct-a, user: alice, disk_uid: 5001}, {container: ct-b, user: bob, disk_uid: 5002}]
summary:
  description: How many entries are in each state.
  returned: always
  type: dict
  sample: {live: 3, recorded: 1, broken: 0, stale: 0, unknown: 0}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._info import exit_status, read_shares, summary
from ansible_collections.lxcex.share.plugins.module_utils._lxc import default_lxcpath
from ansible_collections.lxcex.share.plugins.module_utils._requirements import problem
from ansible_collections.lxcex.share.plugins.module_utils._share import Engine, host_spec


def main():
    module = AnsibleModule(
        argument_spec=dict(
            containers=dict(type='list', elements='str', aliases=['name', 'names']),
            fail_on_broken=dict(type='bool', default=False),
            **host_spec()
        ),
        supports_check_mode=True,
    )
    lacking = problem()
    if lacking:
        module.fail_json(msg=lacking)
    p = module.params
    try:
        engine = Engine(p['lxcpath'] or default_lxcpath(), p['thunks_dir'], '1M', check_mode=True,
                        run_command=module.run_command)
        try:
            rows = read_shares(engine, p['containers'])
        finally:
            engine.close()
    except ShareError as e:
        module.fail_json(msg=str(e))
    result = dict(changed=False, shares=rows, summary=summary(rows))
    if p['fail_on_broken'] and exit_status(rows):
        module.fail_json(msg='shares not working: %s' % '; '.join(
            '%s:%s %s (%s)' % (r['container'], r['dest'] or '-', r['state'], r['detail'])
            for r in rows if r['state'] in ('broken', 'stale', 'unknown')), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
