#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: lxc_share
short_description: Share a directory with a user of an LXC container
version_added: 0.1.0
description:
  - Shows O(src) at O(dest) inside O(container) so that O(user) sees the files as their own, while their owner
    keeps seeing them as theirs. Works for private shares (a directory of another container's user) and common
    shares (one host directory to users of many containers).
  - The share is an idmapped bind mount (a I(thunk)) at O(thunks_dir)/CONTAINER/NAME mapping the owner of O(src)
    (one uid, one gid) to the user's host ids, attached live inside the running container without a restart,
    and a line in the container's C(sharetab) beside its config, from which the container's hooks restore it at start.
  - The user and group are read as data from the container's C(/etc/passwd) and C(/etc/group), resolved inside the
    container root; no program of the container is ever run. The destination is resolved inside the container; a
    symlink that leads out of it, or through C(/proc), is refused.
  - The module never deletes a file. With O(state=absent) it unmounts the live mount (and any bind of it in the
    container) and the thunk, removes the directories the share created (inside the container and for the thunk)
    when they are empty, and removes the sharetab line.
author:
  - lxcex.share developers (@lxcex)
options:
  container:
    description: Name of the container to share with. Required unless O(shares) is given.
    type: str
    aliases: [name]
  dest:
    description:
      - Absolute path inside the container where the share appears. Missing directories are created, owned by the user.
      - Required unless O(shares) is given.
    type: str
  src:
    description:
      - Host directory to share. Required with O(state=present).
      - A path inside the root filesystem of a container of O(lxcpath) (wherever that root filesystem lives) is resolved
        inside it, and a symlink there is followed only when it belongs to that container's root, so a user of the
        container cannot redirect the share. On the host side of the path, only symlinks of host root are followed.
      - A src that belongs to the source container's root is refused unless O(src_uid) or O(allow_root) is set.
        The start hook checks this again at every start.
      - Must not lie inside O(thunks_dir).
    type: path
  user:
    description: User inside the container, by name or number. Required with O(state=present).
    type: str
  group:
    description: Group inside the container, by name or number. Defaults to the user's primary group.
    type: str
  state:
    description: Whether the share should exist. V(absent) needs only O(container) and O(dest).
    type: str
    choices: [present, absent]
    default: present
  readonly:
    description: Share read-only.
    type: bool
    default: false
  src_uid:
    description: On-disk uid of O(src) that the user becomes (0 to 4294967294). Defaults to the owner of O(src).
    type: int
  src_gid:
    description: On-disk gid of O(src) that the group becomes (0 to 4294967294). Defaults to the group of O(src).
    type: int
  persist:
    description: Record the share in the container's C(sharetab) (or remove it from there with O(state=absent)).
    type: bool
    default: true
  live:
    description: Apply the share to the running container now. A stopped container is left as it is.
    type: bool
    default: true
  nonempty_dest:
    description:
      - What to do when O(dest) is a directory that already holds files (the share would hide them until it is
        removed). V(warn) shares it anyway and says how many entries are hidden (a task warning, and RV(covered));
        V(refuse) fails the share instead. The start hook follows the same choice and logs it.
    type: str
    choices: [warn, refuse]
    default: warn
  shares:
    description:
      - Many shares at once, applied in one pass (mountinfo, configs and passwd files read once, one user namespace
        per distinct mapping, each container entered once). Mutually exclusive with the single-share options.
      - Each element takes the single-share options, with the same meaning and defaults.
      - A share that fails does not stop the others; the task fails afterwards, listing the failures, and RV(results)
        tells the status of each share.
    type: list
    elements: dict
    suboptions:
      container: {description: "See O(container). Required unless O(shares[].members) is given.", type: str,
                  aliases: [name]}
      dest: {description: "See O(dest). Required unless every member has a C(dest).", type: str}
      src: {description: See O(src)., type: path}
      user: {description: See O(user)., type: str}
      group: {description: See O(group)., type: str}
      state: {description: See O(state)., type: str, choices: [present, absent], default: present}
      readonly: {description: See O(readonly)., type: bool, default: false}
      src_uid: {description: See O(src_uid)., type: int}
      src_gid: {description: See O(src_gid)., type: int}
      persist: {description: See O(persist)., type: bool, default: true}
      live: {description: See O(live)., type: bool, default: true}
      allow_root: {description: See O(allow_root)., type: bool, default: false}
      nonempty_dest: {description: See O(nonempty_dest)., type: str, choices: [warn, refuse], default: warn}
      allow_setuid: {description: See O(allow_setuid)., type: bool, default: false}
      members: {description: See O(members)., type: list, elements: dict}
      disk_gid: {description: See O(disk_gid)., type: int}
      setup_src: {description: See O(setup_src)., type: bool, default: true}
      show_authors: {description: See O(show_authors)., type: bool, default: false}
  owner:
    description:
      - Who the sharetab lines of this task belong to, written as C(managed=OWNER). The role C(lxcex.share.lxcex_share)
        uses V(role), the C(lxcex-share) command V(manual), this module V(task) unless told otherwise.
      - O(exclusive) removes only lines of the same owner, so the role never removes a share added by hand or by a
        task outside the role. V(legacy) names the lines written by lxcex.share 0.1.0 (a bare C(managed)), which
        nothing else prunes.
    type: str
    default: task
  exclusive:
    description:
      - With O(shares), remove every share of O(owner) (sharetab lines marked C(managed=OWNER)) that the list does not
        name, live and from the sharetab. Lines of other owners and hand-written lines are never touched.
      - V(none) removes nothing; V(listed) looks at the containers named in O(shares); V(all) at every container in
        O(lxcpath) that has a sharetab.
    type: str
    choices: [none, listed, all]
    default: none
  backend:
    description:
      - How thunks are made. V(native) does the kernel work from Python; V(mount-idmapped) runs the
        C(mount-idmapped) program (the module fails clearly when it is not installed).
    type: str
    choices: [native, mount-idmapped]
    default: native
  mount_idmapped:
    description: Path of the C(mount-idmapped) program with O(backend=mount-idmapped); searched in E(PATH) and
      C(/usr/local/bin) when not given.
    type: path
  hooks:
    description:
      - Also converge, in the same run, the hook blocks of the containers of the shares and (with C(install=true))
        the hook program, as M(lxcex.share.lxc_share_hooks) does with the same options; before the shares with
        C(state=present), after them with C(state=absent). A host that has nothing to change then takes one module
        run; the role C(lxcex.share.lxcex_share) uses this.
      - A dict of options of M(lxcex.share.lxc_share_hooks) (C(state), C(install), C(program), C(code_dir),
        C(python), C(host_config), C(strict), C(deadline), C(log_file), C(takeover), C(ensure_thunks)) with the same
        defaults. C(lxcpath), C(thunks_dir), C(thunks_size), C(backend) and C(mount_idmapped) are this task's; the
        containers are those of O(shares) (of O(container)) with O(state=present); C(state=absent) removes the
        blocks of every container of O(lxcpath) that has one.
    type: dict
  allow_root:
    description:
      - Allow a share that maps host root (on-disk id 0, or a container user that is host root), or whose O(src)
        belongs to the root of the container whose root filesystem holds it.
    type: bool
    default: false
  allow_setuid:
    description:
      - Honour set-uid and set-gid bits on the live mount. By default every share is mounted C(nosuid) and C(nodev),
        so that a set-uid file one user leaves in a share never runs with the rights of another user who sees it as
        their own.
      - B(Dangerous):\ with V(true), a file that a user of one container makes set-uid runs, in every other container
        of the share, as the user who sees it as theirs.
    type: bool
    default: false
  members:
    description:
      - A team share instead of O(container) and O(user):\ one O(src) that every member works in, with each file
        keeping its author. Each member is a dict with C(container), C(user) (a name or uid of that container),
        C(disk_uid) (the uid on disk that stands for the member) and C(dest) (where the member sees it; O(dest) by
        default).
      - In each container, the mount maps the disk uid of each of its members to that member, the disk uid of a
        member of another container to an id outside the container (shown as nobody, still writable for the team;
        with O(show_authors), to the user of the same name there), O(disk_gid) to the team's group O(group)
        (where the container has no such group, the one primary group of its members), and each member's own
        primary group to a disk gid numbered like the member's disk uid, so that creating files works whatever the
        member's current group is. Members of the same name are the same person and need the same C(disk_uid).
      - Only members may hold the team's group in a container:\ a user who has it as primary group or is listed in
        it in the container's C(/etc/group), and is not a member (nor shown as one, O(show_authors)), fails the share
        with a message naming them. A member removed from O(members) so loses access, instead of keeping it through
        the group.
      - Without C(disk_uid), a member gets the disk uid recorded for that user name in any team share of the host,
        else the lowest free one from 2000000000.
      - One sharetab line per container and dest keeps the whole team, so the start hook restores it.
      - Limits fail before anything changes:\ 340 ids per mount, two members that would be one user of a container,
        a member's disk uid inside the id range of a container that has no user of that name.
    type: list
    elements: dict
  disk_gid:
    description:
      - With O(members), the team's group on disk (default:\ the group of O(src)). Group 0 is refused unless
        O(allow_root).
    type: int
  setup_src:
    description:
      - With O(members), make O(src) itself the team's directory:\ group O(disk_gid), set-gid and group-writable,
        with a default ACL that gives the group C(rwx) (where the filesystem has ACLs; otherwise the members need
        C(umask 002)). New files and directories then belong to the team's group and every member can edit them.
        Nothing below O(src) is changed.
    type: bool
    default: true
  show_authors:
    description:
      - With O(members), show the files of a member of another container as those of the user of the same name in
        each container (C(ls -l) shows who wrote what), instead of as nobody.
      - B(What it grants):\ the root of every member container decides the names of its C(/etc/passwd). With
        V(true), the root of container B that adds a user C(carol) becomes, through that user, the owner of the
        files of member C(carol) of container A:\ it reads her private (C(0600)) files and writes files that A shows
        as hers. Use it only when every member container's root is trusted with every member's files.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports which sharetab lines, thunks and live mounts would change; changes none of them.
  diff_mode:
    support: full
    description: Shows the sharetab line and the live mount before and after (and, with O(hooks), each changed config,
      the hook program and the host settings).
extends_documentation_fragment:
  - lxcex.share.requirements
  - lxcex.share.host
notes:
  - The live mount's flags are locked for the container (its root cannot make a read-only share writable), and
    removing a share also takes away any bind of it that the container's root made inside the container.
  - Work inside a container is bounded in time (20 seconds per container); a container that does not answer fails
    its shares with a message saying so.
  - The README's "Safety and threat model" section says what is guaranteed against whom.
seealso:
  - module: lxcex.share.idmapped_thunk
'''

EXAMPLES = r'''
- name: Private share, alice's directory to bob
  lxcex.share.lxc_share:
    src: /var/lib/lxc/alice-container/rootfs/home/alice/share
    container: bob-container
    user: bob
    dest: /home/bob/share

- name: Common share, one host directory to users of two containers
  lxcex.share.lxc_share:
    src: /srv/common
    container: "{{ item.container }}"
    user: "{{ item.user }}"
    dest: "/home/{{ item.user }}/common"
  loop:
    - {container: alice-container, user: alice}
    - {container: bob-container, user: bob}

- name: Read-only, only in the sharetab (applied at next start)
  lxcex.share.lxc_share:
    src: /srv/docs
    container: bob-container
    user: bob
    dest: /home/bob/docs
    readonly: true
    live: false

- name: Remove a share
  lxcex.share.lxc_share:
    container: bob-container
    dest: /home/bob/share
    state: absent

- name: All shares of a host in one pass; managed shares no longer listed are removed
  lxcex.share.lxc_share:
    shares:
      - {src: /srv/common, container: alice-container, user: alice, dest: /home/alice/common}
      - {src: /srv/common, container: bob-container, user: bob, dest: /home/bob/common}
    exclusive: all

- name: A whole host in one module run (as the role does) - hook program, hook blocks, shares
  lxcex.share.lxc_share:
    shares:
      - {src: /srv/common, container: alice-container, user: alice, dest: /home/alice/common}
    exclusive: all
    owner: role
    hooks:
      install: true
'''

RETURN = r'''
container:
  description: The container.
  returned: without O(shares)
  type: str
  sample: bob-container
dest:
  description: The destination inside the container, normalized.
  returned: without O(shares)
  type: str
  sample: /home/bob/share
src:
  description: The host directory shared (as given, before it is resolved).
  returned: without O(shares), when O(state=present)
  type: str
  sample: /srv/common
state:
  description: The state asked for, V(present) or V(absent).
  returned: without O(shares)
  type: str
  sample: present
thunk:
  description: The host path of the share's thunk.
  returned: without O(shares)
  type: str
  sample: /mnt/share-thunks/bob-container/home-bob-share
idmap:
  description: The idmap of the share (on-disk ids to the user's host ids).
  returned: without O(shares), when O(state=present)
  type: list
  elements: str
  sample: [u:1000:401000:1, g:100:400100:1]
preflight:
  description:
    - With O(state=present), what the pre-flight found:\ the source's filesystem takes idmapped mounts (it is probed
      with a detached idmapped clone, once per filesystem and run, also in check mode). A filesystem without them
      fails the share before anything changes, with a message naming the filesystem type, the path and what the
      kernel needs.
  returned: without O(shares)
  type: str
  sample: idmapped mounts work on /srv/share (ext4, mounted at /)
running:
  description: Whether the container was running.
  returned: without O(shares)
  type: bool
  sample: true
before:
  description: The sharetab line and the live mount before the task.
  returned: without O(shares)
  type: dict
  sample: {sharetab: null, live: {mounted: false}}
after:
  description:
    - The sharetab line and the live mount after the task (what they would be, in check mode).
    - For a team share whose source directory the task set up (O(setup_src)), also C(src):\ its group, mode and
      default ACL (C(before) has them as they were).
  returned: without O(shares)
  type: dict
  sample:
    sharetab: /srv/common bob /home/bob/common managed
    live: {mounted: true, src: /srv/common, idmap: [u:1000:401000:1, g:100:400100:1], readonly: false, nosuid: true}
revoked:
  description:
    - With O(state=absent), the mount points inside the container whose mounts of the share were taken away (the
      share's own and any bind of it the container's root made).
  returned: without O(shares), when the share was mounted
  type: list
  elements: str
  sample: [/home/bob/share]
drift:
  description:
    - How container root had changed the share before the task, each difference in words (unmounted, covered by a
      mount of its own at O(dest), copied to another path, another idmap, other flags).
  returned: without O(shares), when the share differed
  type: list
  elements: str
  sample: ["covered by a tmpfs mount (none) at /home/bob/share", "copied to /tmp/copy"]
repaired:
  description:
    - What the task repaired of the drift (in check mode, what it would repair). It unmounts the mounts
      container root stacked on the share or copies it made elsewhere, and mounts the share again where it was
      taken away. A mount of container root at O(dest) that was there before the share is never covered.
  returned: without O(shares), when the share differed
  type: list
  elements: str
  sample: ["copied to /tmp/copy"]
covered:
  description: How many entries were in O(dest) before the share covered them (counted up to 1001); 0 or absent when
    it was empty.
  returned: when O(dest) was a non-empty directory
  type: int
  sample: 3
replaced:
  description:
    - How a live mount was changed (read-only, set-uid, idmap) without showing the bare O(dest) in between.
      V(beneath):\ the new mount went beneath the old one, which was then detached (Linux 6.5+). V(guarded):\ the
      old one was detached and the new one attached right after, while the bare directory was closed (mode 0), so
      that a container user's write in between fails instead of landing, hidden, under the share (older kernels).
      V(unmount, attach):\ the same without the guard, where the bare directory could not be reached.
  returned: when a live mount was replaced
  type: str
  sample: beneath
released_thunks:
  description:
    - Thunks of containers that are not running (left by a stop that ran no post-stop hook, for example of a
      container that was already running when its hook block was added), released by this run.
  returned: always
  type: list
  elements: str
  sample: [/mnt/share-thunks/old-container/home-bob-share]
hooks:
  description: With O(hooks), what M(lxcex.share.lxc_share_hooks) returns for it (without C(diff)).
  returned: with O(hooks)
  type: dict
  sample: {changed: false, changed_containers: [], installed: [], uninstalled: [], thunks_mounted: false,
           code_sha256: 4f1c0d2e9a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d}
stats:
  description:
    - With O(shares), what the pass cost, for monitoring and for the performance tests; C(seconds) is the
      module's own work. C(host_mountinfo_reads) is 1 when the thunks tmpfs was already mounted;
      C(container_mountinfo_reads) and C(container_entries) are per running container.
  returned: with O(shares)
  type: dict
  sample: {seconds: 0.21, host_mountinfo_reads: 1, userns_created: 2, containers_read: 2, passwd_reads: 2,
           container_mountinfo_reads: {bob-container: 1}, container_entries: {bob-container: 1}}
results:
  description:
    - With O(shares), one entry per share (then one per share removed by O(exclusive), with C(pruned=true)), each
      with C(container), C(dest), C(state), C(changed), C(failed) and C(msg) when it failed, and C(thunk), C(idmap),
      C(before) and C(after) like the single-share return values.
  returned: with O(shares)
  type: list
  elements: dict
  sample:
    - {container: bob-container, dest: /home/bob/common, state: present, changed: true, thunk: /mnt/share-thunks/bob-container/home-bob-common}
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.lxcex.share.plugins.module_utils._converge import (
    containers_with_sharetab, converge, share_diffs)
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._requirements import ready
from ansible_collections.lxcex.share.plugins.module_utils._hooks import SHARED as HOOKS_SHARED
from ansible_collections.lxcex.share.plugins.module_utils._hooks import converge_hooks
from ansible_collections.lxcex.share.plugins.module_utils._hooks import spec as hooks_spec
from ansible_collections.lxcex.share.plugins.module_utils._lxc import default_lxcpath
from ansible_collections.lxcex.share.plugins.module_utils._request import SHARE_SPEC, containers_of, requests_of
from ansible_collections.lxcex.share.plugins.module_utils._share import Engine, host_spec


def _element_spec():
    return dict((k, dict(v)) for k, v in SHARE_SPEC.items())


def _hooks(module, requests):
    """The lxc_share_hooks parameters of the hooks option (None without it); fails on a bad key or value."""
    p = module.params
    if p['hooks'] is None:
        return None
    checked = ArgumentSpecValidator(hooks_spec(shared=False)).validate(p['hooks'])
    if checked.error_messages:
        module.fail_json(msg='hooks: %s' % '; '.join(checked.error_messages))
    hp = dict(checked.validated_parameters)
    containers = []
    for r in requests:
        if r.get('state', 'present') == 'present':
            containers.extend(c for c in containers_of(r) if c not in containers)
    hp.update(dict((k, p[k]) for k in HOOKS_SHARED if k != 'containers'),
              containers=containers if hp['state'] == 'present' else None)
    return hp


def _run_hooks(module, hp, result, engine):
    try:
        done = converge_hooks(hp, check_mode=module.check_mode, engine=engine)
    except ShareError as e:
        module.fail_json(msg='hooks: %s' % e, **result)
    for warning in done.pop('warnings'):
        module.warn(warning)
    return done


def main():
    argument_spec = dict(SHARE_SPEC)
    argument_spec.update(
        shares=dict(type='list', elements='dict', options=_element_spec()),
        exclusive=dict(type='str', choices=['none', 'listed', 'all'], default='none'),
        owner=dict(type='str', default='task'),
        backend=dict(type='str', choices=['native', 'mount-idmapped'], default='native'),
        mount_idmapped=dict(type='path'),
        hooks=dict(type='dict'),
        **host_spec()
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[('shares', k) for k in ('container', 'dest', 'src', 'user', 'group', 'members')],
        required_one_of=[('shares', 'container', 'members')],
        required_by={'container': 'dest'},
        supports_check_mode=True,
    )
    # dest is a path inside the container, not a host path whose attributes the result would describe.
    p = ready(module, describe_paths=False)
    try:
        requests, batch = requests_of(p)
    except ShareError as e:
        module.fail_json(msg=str(e))
    hp = _hooks(module, requests)
    hooks = None
    try:
        engine = Engine(p['lxcpath'] or default_lxcpath(), p['thunks_dir'], p['thunks_size'],
                        check_mode=module.check_mode, backend=p['backend'], run_command=module.run_command,
                        mount_idmapped=p['mount_idmapped'])
    except ShareError as e:
        module.fail_json(msg=str(e))
    # One engine for the hooks and the shares: each config, sharetab and mount table read once per run.
    try:
        if hp and hp['state'] == 'present':
            hooks = _run_hooks(module, hp, {}, engine)
        prune = None
        if p['exclusive'] == 'listed':
            prune = sorted(set(c for r in requests for c in containers_of(r)))
        elif p['exclusive'] == 'all':
            prune = containers_with_sharetab(engine.lxcpath)
        started = time.monotonic()
        results = converge(engine, requests, prune=prune, owner=p['owner'])
        stats = engine.stats()
        stats['seconds'] = round(time.monotonic() - started, 6)
        if not batch and not results[0].get('failed'):
            results[0]['running'] = engine.view(engine.container(p['container'])) is not None
        released = list(engine.released)
        if hp and hp['state'] == 'absent' and not any(r.get('failed') for r in results):
            # After the shares: the hook program goes last.
            hooks = _run_hooks(module, hp, dict(results=results, released_thunks=released), engine)
    except ShareError as e:
        module.fail_json(msg=str(e))
    finally:
        engine.close()

    for r in results:
        for warning in r.pop('warnings', []):
            module.warn(warning)
    diffs = hooks.pop('diff') if hooks else []
    if not batch:
        result = results[0]
        result['released_thunks'] = released
        if released:
            result['changed'] = True
        if hooks is not None:
            result['hooks'] = hooks
            result['changed'] = result.get('changed') or hooks['changed']
        if result.pop('failed', False):
            module.fail_json(**result)
        if module._diff:
            header = '%s:%s' % (p['container'], result['dest'])
            diffs.append(dict(before=result['before'], after=result['after'], before_header=header, after_header=header))
            result['diff'] = diffs if len(diffs) > 1 else diffs[0]
        module.exit_json(**result)

    changed = any(r.get('changed') for r in results) or bool(released)
    failures = ['%s:%s: %s' % (r['container'], r['dest'], r['msg']) for r in results if r.get('failed')]
    out = dict(changed=changed, results=results, stats=stats, released_thunks=released)
    if hooks is not None:
        out['hooks'] = hooks
        out['changed'] = changed or hooks['changed']
    if module._diff:
        # One entry per changed share, under its own container:dest.
        diffs.extend(share_diffs(results))
        if diffs:
            out['diff'] = diffs
    if failures:
        module.fail_json(msg='%d of %d shares failed: %s' % (len(failures), len(results), '; '.join(failures)), **out)
    module.exit_json(**out)


if __name__ == '__main__':
    main()
