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
    share comes at its next start), drifted (container root changed it; unmounted, covered by a mount of its own,
    copied elsewhere in the container, another idmap or other flags; each said in its detail), broken (with the
    reason) or a stale thunk (left by a stop that ran no post-stop
    hook), with its source, destination, user, group, read-only flag, who wrote the line, its thunk and the thunk's
    idmap as the kernel reports it.
  - Never changes anything. It is the same reader as C(lxcex-share list), which prints the same rows.
  - With O(explain), it also tells why a user of a container can or cannot read, write, create files, create
    directories and execute at a path inside a share, with the reason for every no and what would change it (the
    same answer as C(lxcex-share explain CONTAINER USER PATH)).
author:
  - lxcex.share developers (@lxcex)
options:
  containers:
    description: Names of the containers. Default, every container of O(lxcpath) that has a sharetab.
    type: list
    elements: str
    aliases: [name, names]
  fail_on_broken:
    description: Fail (after returning every row) when a share is broken or drifted, a thunk is stale or a container
      is unknown.
    type: bool
    default: false
  explain:
    description:
      - A user and a path to explain. The user's groups are those a login of theirs gets from the container's
        C(/etc/group); the files of the container are read as data, no program of it runs, and a stopped
        container is explained from its sharetab and its root filesystem.
      - When O(containers) is not set, only the rows of O(explain.container) are returned.
    type: dict
    suboptions:
      container:
        description: The container.
        type: str
        required: true
      user:
        description: The user inside the container, by name or uid.
        type: str
        required: true
      path:
        description: An absolute path inside a share, as the container shows it (it need not exist yet).
        type: path
        required: true
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
    msg: "{{ shares.shares | selectattr('state', 'in', ['broken', 'drifted', 'stale']) | list }}"

- name: Why bob cannot write to the team's notes
  lxcex.share.lxc_share_info:
    explain:
      container: bob-container
      user: bob
      path: /home/bob/team/notes.txt
  register: why

- name: Show the reasons
  ansible.builtin.debug:
    msg: "{{ why.explanation.answers.write }}"

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
      description: V(live), V(recorded), V(drifted), V(broken), V(stale) or V(unknown) (a container named that does not
        exist).
      type: str
      sample: live
    detail:
      description: Why a share is drifted (each difference, such as C(copied to /tmp/copy) or C(covered by a tmpfs
        mount), and that the next run repairs it), broken, stale, recorded or unknown; empty when live.
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
explanation:
  description: The answer for O(explain).
  returned: when O(explain) is set
  type: dict
  contains:
    container:
      description: The container.
      type: str
      sample: bob-container
    user:
      description: The user's name (or uid, when the container's passwd has no name for it).
      type: str
      sample: bob
    uid:
      description: The user's uid in the container.
      type: int
      sample: 1000
    gid:
      description: The user's primary gid in the container.
      type: int
      sample: 1000
    groups:
      description: The groups of a login of the user (C(gid), C(name)), and whether the share maps each (C(mapped)).
      type: list
      elements: dict
      sample: [{gid: 1000, name: bob, mapped: true}, {gid: 27, name: sudo, mapped: false}]
    path:
      description: The path explained.
      type: str
      sample: /home/bob/team/notes.txt
    share:
      description: The dest of the share that holds the path.
      type: str
      sample: /home/bob/team
    src:
      description: The share's source on the host.
      type: str
      sample: /srv/team
    disk_path:
      description: The path on the host.
      type: str
      sample: /srv/team/notes.txt
    exists:
      description: Whether the path exists (when not, only creating in its directory is answered).
      type: bool
      sample: true
    type:
      description: V(file) or V(directory); null when the path does not exist.
      type: str
      sample: file
    owner:
      description: The owner as the container shows it (nobody, with the disk uid, when the share does not map it).
      type: str
      sample: bob (uid 1000)
    group:
      description: The group as the container shows it.
      type: str
      sample: nogroup (disk gid 7001, not mapped by this share)
    mode:
      description: The mode, in octal.
      type: str
      sample: '0644'
    readonly:
      description: Whether the share is read-only.
      type: bool
      sample: false
    nosuid:
      description: Whether the share ignores set-uid and set-gid bits.
      type: bool
      sample: true
    idmap:
      description: The share's idmap.
      type: list
      elements: str
      sample: ["u:7000:201000:1", "g:7000:201000:1"]
    answers:
      description: For each of C(read), C(write), C(create_file), C(create_dir) and C(execute), C(allowed) (true,
        false, or null when it does not apply) and C(reasons), a list of C(why) and C(change) (what would change it);
        the first reason is the kernel's.
      type: dict
      sample: {write: {allowed: false, reasons: [{why: the share is read-only, change: 'readonly: false'}]}}
    notes:
      description: What is allowed but probably not meant (C(why) and C(change) each), such as a team directory
        without set-gid, default ACL entries the share does not map, groups the share does not map, nosuid.
      type: list
      elements: dict
      sample: []
summary:
  description: How many entries are in each state.
  returned: always
  type: dict
  sample: {live: 3, recorded: 1, drifted: 0, broken: 0, stale: 0, unknown: 0}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._explain import explain
from ansible_collections.lxcex.share.plugins.module_utils._info import exit_status, read_shares, summary
from ansible_collections.lxcex.share.plugins.module_utils._lxc import default_lxcpath
from ansible_collections.lxcex.share.plugins.module_utils._requirements import ready
from ansible_collections.lxcex.share.plugins.module_utils._share import Engine, host_spec


def main():
    module = AnsibleModule(
        argument_spec=dict(
            containers=dict(type='list', elements='str', aliases=['name', 'names']),
            fail_on_broken=dict(type='bool', default=False),
            explain=dict(type='dict', options=dict(container=dict(type='str', required=True),
                                                   user=dict(type='str', required=True),
                                                   path=dict(type='path', required=True))),
            **host_spec()
        ),
        supports_check_mode=True,
    )
    p = ready(module)
    asked = p['explain']
    names = p['containers'] or ([asked['container']] if asked else None)
    answer = None
    try:
        engine = Engine(p['lxcpath'] or default_lxcpath(), p['thunks_dir'], '1M', check_mode=True,
                        run_command=module.run_command)
        try:
            rows = read_shares(engine, names)
            if asked:
                answer = explain(engine, asked['container'], asked['user'], asked['path'])
        finally:
            engine.close()
    except ShareError as e:
        module.fail_json(msg=str(e))
    result = dict(changed=False, shares=rows, summary=summary(rows))
    if asked:
        result['explanation'] = answer
    if p['fail_on_broken'] and exit_status(rows):
        module.fail_json(msg='shares not working: %s' % '; '.join(
            '%s:%s %s (%s)' % (r['container'], r['dest'] or '-', r['state'], r['detail'])
            for r in rows if r['state'] in ('broken', 'drifted', 'stale', 'unknown')), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
