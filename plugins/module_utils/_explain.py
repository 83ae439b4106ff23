# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Why a user of a container can or cannot read, write or create at a path inside a share.

The answer is what the kernel decides for a process of that user with the
groups a login of theirs gets (their primary group and every group of the
container's /etc/group that lists them), through the share's idmapped mount:

- a file's owner and group on disk are seen through the share's idmap (an id
  the share does not map is invalid: the file shows as nobody/nogroup, its
  owner and group bits apply to no one, and the kernel refuses any write to
  it, since it could not write the owner back);
- then the mode bits (or the POSIX access ACL) of the class that applies:
  owner, a named ACL entry, a group of the user, other;
- creating needs write and search permission on the directory, a writable
  share, and the user's uid and current group mapped by the share (else the
  kernel answers EOVERFLOW, "Value too large for defined data type");
- container root overrides mode bits only on files whose owner and group
  the share maps into the container.

Every "no" comes with the reason in plain words and what would change it;
notes tell what is allowed but probably not what was meant (a team
directory without set-gid, default ACL entries this share does not map,
groups of the user the share does not map, the team's members, nosuid).

decide() is the pure part (no root, no kernel: unit-tested); explain()
gathers the facts: the share from the container's sharetab (through the
engine in check mode, as every reader), the user from the container's
/etc/passwd and /etc/group read as data, the path walked below the share's
source with no symlink followed.  No program of the container runs; a
stopped container is explained from its records and its rootfs.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import posixpath
import stat
import struct

from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._resolve import MAX_COMPONENTS, printable, shown

OPERATIONS = (('read', 'read'), ('write', 'write'), ('create_file', 'create file'), ('create_dir', 'create dir'),
              ('execute', 'execute'))
ACCESS_ACL = 'system.posix_acl_access'
DEFAULT_ACL = 'system.posix_acl_default'
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_R, _W, _X = 4, 2, 1
_BITS = {_R: 'read (r)', _W: 'write (w)', _X: 'search/execute (x)'}


# -- facts -------------------------------------------------------------------

class Caller(object):
    """A user of a container as a login of theirs is: uid, primary gid, groups, and their host ids."""

    def __init__(self, name, uid, gid, groups, host_uid, host_gid, host_groups, in_container):
        self.name, self.uid, self.gid, self.groups = name, uid, gid, groups   # groups: [(gid, name, host gid)]
        self.host_uid, self.host_gid, self.host_groups = host_uid, host_gid, set(host_groups)
        self.in_container = in_container          # in_container(kind, host id): the id is in the container's range


class Node(object):
    """One path of the share as the host sees it on disk."""

    def __init__(self, path, st, acl=None, default_acl=None):
        self.path = path                          # as the container sees it
        self.mode = st.st_mode
        self.uid = st.st_uid
        self.gid = st.st_gid
        self.acl = acl                            # access ACL entries [(tag, perm, id)] or None
        self.default_acl = default_acl

    @property
    def is_dir(self):
        return stat.S_ISDIR(self.mode)


class View(object):
    """How the share shows disk ids to the container: its idmap, and names of the container's ids."""

    def __init__(self, idmap, readonly, nosuid, to_container, uid_name, gid_name):
        self.idmap = idmap
        self.readonly = readonly
        self.nosuid = nosuid
        self.to_container = to_container          # to_container(kind, host id) -> container id or None
        self.uid_name = uid_name                  # uid_name(container uid) -> name or None
        self.gid_name = gid_name

    @staticmethod
    def _through(extents, value, side):
        """value mapped through extents (from, to, count): from disk to host (side 0) or back (side 1)."""
        for extent in extents:
            if extent[side] <= value < extent[side] + extent[2]:
                return extent[1 - side] + value - extent[side]
        return None

    def host_uid(self, disk):
        return self._through(self.idmap.uid, disk, 0)

    def host_gid(self, disk):
        return self._through(self.idmap.gid, disk, 0)

    def disk_uid(self, host):
        return self._through(self.idmap.uid, host, 1)

    def disk_gid(self, host):
        return self._through(self.idmap.gid, host, 1)

    def who(self, kind, disk):
        """How the container shows an owner (kind 'u') or group ('g') on disk, in words."""
        host = self.host_uid(disk) if kind == 'u' else self.host_gid(disk)
        word = 'uid' if kind == 'u' else 'gid'
        if host is None:
            return '%s (disk %s %d, not mapped by this share)' % ('nobody' if kind == 'u' else 'nogroup', word, disk)
        inside = self.to_container(kind, host)
        if inside is None:
            return '%s (disk %s %d, host %s %d, outside the container)' % (
                'nobody' if kind == 'u' else 'nogroup', word, disk, word, host)
        name = self.uid_name(inside) if kind == 'u' else self.gid_name(inside)
        return '%s (%s %d)' % (printable(name), word, inside) if name else '%s %d' % (word, inside)


def _reason(why, change):
    return {'why': why, 'change': change}


# -- the kernel's decisions ------------------------------------------------------

def _perm_class(caller, view, node, want):
    """(allowed, as what): the DAC check of generic_permission for the bits want, through the share."""
    vuid, vgid = view.host_uid(node.uid), view.host_gid(node.gid)
    mode = node.mode
    if vuid is not None and vuid == caller.host_uid:
        return (mode >> 6) & want == want, 'its owner'
    acl = node.acl
    if acl and any(tag in (_USER, _GROUP, _MASK) for tag, dummy, dummy2 in acl):
        mask = [perm for tag, perm, dummy in acl if tag == _MASK]
        mask = mask[0] if mask else 7
        for tag, perm, ident in acl:
            if tag == _USER and view.host_uid(ident) == caller.host_uid:
                return perm & mask & want == want, 'the ACL entry user:%d' % ident
        found = []
        for tag, perm, ident in acl:
            gid = vgid if tag == _GROUP_OBJ else view.host_gid(ident) if tag == _GROUP else None
            if gid is not None and gid in caller.host_groups:
                found.append((perm, 'the ACL entry group:%s' % ('' if tag == _GROUP_OBJ else ident)))
        for perm, what in found:
            if perm & mask & want == want:
                return True, what
        if found:
            return False, found[0][1] + ' (ACL mask %s)' % _rwx(mask)
        other = [perm for tag, perm, dummy in acl if tag == _OTHER]
        return (other[0] if other else mode) & want == want, 'other'
    if vgid is not None and vgid in caller.host_groups:
        return (mode >> 3) & want == want, 'a member of its group'
    return mode & want == want, 'other (neither its owner nor in its group)'


def _rwx(bits):
    return ''.join(c if bits & b else '-' for c, b in (('r', 4), ('w', 2), ('x', 1)))


def _mode_text(mode):
    return '%04o (%s%s%s)' % (stat.S_IMODE(mode), _rwx(mode >> 6), _rwx(mode >> 3), _rwx(mode))


def _root_override(caller, view, node, want):
    """Container root's CAP_DAC_OVERRIDE: only on an inode whose owner and group it sees (capable_wrt_inode_uidgid)."""
    if caller.uid != 0:
        return False
    vuid, vgid = view.host_uid(node.uid), view.host_gid(node.gid)
    if vuid is None or vgid is None or not caller.in_container('u', vuid) or not caller.in_container('g', vgid):
        return False
    if want & _X and not node.is_dir:
        return bool(node.mode & 0o111)
    return True


def _check(caller, view, node, want, action):
    """[] when caller may do want on node, else the reasons (the first is the kernel's)."""
    if want & _W and (view.host_uid(node.uid) is None or view.host_gid(node.gid) is None):
        # HAS_UNMAPPED_ID: the kernel refuses a write to an inode whose owner or group the mount cannot show.
        missing = [w for w, ok in (('owner (disk uid %d)' % node.uid, view.host_uid(node.uid) is not None),
                                   ('group (disk gid %d)' % node.gid, view.host_gid(node.gid) is not None)) if not ok]
        return [_reason('%s %s: its %s is not mapped by this share (it shows as nobody/nogroup); the kernel refuses '
                        'every write to such a file (EACCES), whatever its mode'
                        % (action, shown(node.path), ' and '.join(missing)),
                        'on the host, give it the owner and group the share maps (chown %d:%d), or share it with '
                        'an idmap that maps those ids (a team share maps every member)'
                        % (view.idmap.uid[0][0], view.idmap.gid[0][0]))]
    ok, what = _perm_class(caller, view, node, want)
    if ok or _root_override(caller, view, node, want):
        return []
    bits = ' and '.join(_BITS[b] for b in (_R, _W, _X) if want & b)
    owner = view.who('u', node.uid)
    group = view.who('g', node.gid)
    if what == 'its owner':
        change = 'chmod u+%s %s' % (_rwx(want).replace('-', ''), shown(node.path))
    elif what.startswith('a member') or what.startswith('the ACL entry group'):
        change = 'chmod g+%s %s (every member of its group gets it)' % (_rwx(want).replace('-', ''), shown(node.path))
    else:
        change = ('make %s its owner or put them in its group (owner %s, group %s), or chmod o+%s %s'
                  % (printable(caller.name), owner, group, _rwx(want).replace('-', ''), shown(node.path)))
    return [_reason('%s %s: mode %s gives %s, as %s, no %s permission (owner %s, group %s)'
                    % (action, shown(node.path), _mode_text(node.mode), printable(caller.name), what, bits,
                       owner, group), change)]


def _create(caller, view, parents, directory, what):
    """Reasons why caller cannot create a what in directory (the last of parents), in the kernel's order."""
    reasons = []
    if view.readonly:
        reasons.append(_reason('the share is read-only: creating fails with EROFS', 'share it with readonly: false'))
    if view.disk_uid(caller.host_uid) is None or view.disk_gid(caller.host_gid) is None:
        missing = []
        if view.disk_uid(caller.host_uid) is None:
            missing.append('uid %d (%s)' % (caller.uid, printable(caller.name)))
        if view.disk_gid(caller.host_gid) is None:
            missing.append('current group %s (gid %d)' % (printable(_group_name(caller, caller.gid)), caller.gid))
        mapped = ', '.join(view.who('g', f) for f, dummy, dummy2 in view.idmap.gid)
        reasons.append(_reason(
            'the share does not map %s%s: the new %s could not be given an owner on disk, so creating fails with '
            'EOVERFLOW ("Value too large for defined data type")'
            % (' nor '.join(missing), '' if view.disk_uid(caller.host_uid) is None else
               '; it maps only the group %s' % mapped, what),
            'share it with group: %s, or make the share\'s group the primary group of %s, or run newgrp/sg first'
            % (printable(_group_name(caller, caller.gid)), printable(caller.name))
            if view.disk_uid(caller.host_uid) is not None else
            'share it to %s (a share of their own, or a team share with them as a member)' % printable(caller.name)))
    for node in parents:
        reasons.extend(_check(caller, view, node, _X, 'enter'))
    reasons.extend(_check(caller, view, directory, _W | _X, 'create in'))
    return reasons


def _group_name(caller, gid):
    for g, name, dummy in caller.groups:
        if g == gid:
            return name
    return str(gid)


def decide(caller, view, chain, missing=None, team=None):
    """What caller can do at the last node of chain (the share's root first), or in it when missing names a child
    that does not exist.  Pure: no kernel, no files.  Returns (answers, notes):
    answers {operation: {'allowed': bool or None, 'reasons': [{'why', 'change'}]}} (None: does not apply),
    notes [{'why', 'change'}]."""
    target = chain[-1]
    parents = chain[:-1]
    enter = []
    for node in parents:
        enter.extend(_check(caller, view, node, _X, 'enter'))
    answers = {}
    directory = target if (target.is_dir or missing) else None
    if missing:
        answers['read'] = answers['write'] = answers['execute'] = {
            'allowed': None, 'reasons': [_reason('%s does not exist' % shown(posixpath.join(target.path, missing)),
                                                 'create it')]}
        create_parents = chain[:-1]
    else:
        answers['read'] = enter + _check(caller, view, target, _R, 'read')
        if target.is_dir:
            answers['write'] = None
            answers['execute'] = enter + _check(caller, view, target, _X, 'enter')
        else:
            answers['write'] = ([_reason('the share is read-only: writing fails with EROFS',
                                         'share it with readonly: false')] if view.readonly else []) \
                + enter + _check(caller, view, target, _W, 'write')
            if not target.mode & 0o111:
                answers['execute'] = enter + [_reason('%s has no execute (x) bit at all (mode %s)' % (
                    shown(target.path), _mode_text(target.mode)), 'chmod +x %s' % shown(target.path))]
            else:
                answers['execute'] = enter + _check(caller, view, target, _X, 'execute')
        create_parents = chain[:-1] if target.is_dir else chain[:-2]
        if not target.is_dir:
            directory = chain[-2] if len(chain) > 1 else None
    for op, what in (('create_file', 'file'), ('create_dir', 'directory')):
        answers[op] = _create(caller, view, create_parents, directory, what) if directory is not None else None
    if answers['write'] is None:
        answers['write'] = answers['create_file']
    out = {}
    for op, dummy in OPERATIONS:
        value = answers[op]
        if isinstance(value, dict):
            out[op] = value
        elif value is None:
            out[op] = {'allowed': None, 'reasons': []}
        else:
            out[op] = {'allowed': not value, 'reasons': value}
    return out, _notes(caller, view, target if not missing else None, directory, team)


def _notes(caller, view, target, directory, team):
    notes = []
    unmapped = [(gid, name) for gid, name, host in caller.groups if view.disk_gid(host) is None]
    if unmapped:
        notes.append(_reason(
            'groups of %s that this share does not map: %s; no file of the share can show as one of them, so their '
            'group permissions never apply here' % (printable(caller.name), ', '.join(
                '%s (gid %d)' % (printable(n), g) for g, n in unmapped)),
            'share with group: NAME for the group that should work (one group per share), or a team share'))
    if directory is not None:
        if directory.mode & stat.S_ISGID:
            group = view.who('g', directory.gid)
            notes.append(_reason('%s is set-gid: new files and directories in it get its group, %s'
                                 % (shown(directory.path), group), ''))
        elif team:
            own = view.disk_gid(caller.host_gid)
            notes.append(_reason('%s is not set-gid: new files get the current group of %s, %s%s' % (
                shown(directory.path), printable(caller.name), printable(_group_name(caller, caller.gid)),
                '' if own is None else ' (disk gid %d)' % own) +
                ', not the team\'s group: other members may not be able to change them',
                'chmod g+s %s (setup_src does it on the source directory itself)' % shown(directory.path)))
        for tag, perm, ident in directory.default_acl or ():
            if (tag == _USER and view.host_uid(ident) is None) or (tag == _GROUP and view.host_gid(ident) is None):
                kind = 'user' if tag == _USER else 'group'
                notes.append(_reason(
                    'the default ACL of %s has the entry %s:%d:%s, whose disk id this share does not map: every new '
                    'file gets that entry, shown here as %s' % (shown(directory.path), kind, ident, _rwx(perm),
                                                                'nobody' if tag == _USER else 'nogroup'),
                    'on the host, setfacl -d -x %s:%d on the source directory, or map that id' % (
                        'u' if tag == _USER else 'g', ident)))
    if team is not None:
        member, in_group, members, group = team
        if not member:
            notes.append(_reason(
                '%s is not a member of this team share (members: %s): the files of the members show as nobody to '
                'them and give them only other\'s permissions' % (printable(caller.name), ', '.join(
                    printable(m) for m in members)),
                'add %s to members' % printable(caller.name)))
        elif not in_group:
            notes.append(_reason(
                '%s is a member of this team share, but not in the team\'s group %s in the container\'s /etc/group: '
                'a login of theirs gets the group\'s permissions only as their primary group, if it is'
                % (printable(caller.name), printable(group)),
                'add %s to the group %s in the container' % (printable(caller.name), printable(group))))
    if target is not None and not target.is_dir and target.mode & (stat.S_ISUID | stat.S_ISGID) and view.nosuid:
        notes.append(_reason('%s is set-%s, but the share is mounted nosuid: running it gives the rights of %s, not '
                             'those of its owner' % (shown(target.path), 'uid' if target.mode & stat.S_ISUID else 'gid',
                                                     printable(caller.name)),
                             'share it with allow_setuid: true (only where the source is trusted)'))
    return notes


# -- gathering the facts -------------------------------------------------------

def parse_acl(data):
    """POSIX ACL xattr bytes as [(tag, perm, id)], None when absent or not an ACL."""
    if not data or len(data) < 4 or (len(data) - 4) % 8 or struct.unpack('<I', data[:4])[0] != 2:
        return None
    return [struct.unpack('<HHI', data[4 + i:12 + i]) for i in range(0, len(data) - 4, 8)]


def _xattr(fd, name):
    try:
        return parse_acl(os.getxattr('/proc/self/fd/%d' % fd, name))
    except OSError:
        return None


def _node(fd, path):
    st = os.fstat(fd)
    return Node(path, st, _xattr(fd, ACCESS_ACL), _xattr(fd, DEFAULT_ACL) if stat.S_ISDIR(st.st_mode) else None)


def walk_share(src_fd, dest, path):
    """(chain of Nodes from the share's root to path, name of a missing last component or None), walked below
    src_fd without following any symlink (a symlink is refused: it resolves in the container, not in the share)."""
    rel = [c for c in path[len(dest):].split('/') if c not in ('', '.')]
    if '..' in rel:
        raise ShareError('path %s: ".." is not allowed; give the path as the container shows it' % shown(path))
    if len(rel) > MAX_COMPONENTS:
        raise ShareError('path %s has more than %d components' % (shown(path), MAX_COMPONENTS))
    fd = os.dup(src_fd)
    here = dest
    try:
        chain = [_node(fd, here)]
        for i, name in enumerate(rel):
            if not chain[-1].is_dir:
                raise ShareError('path %s: %s is not a directory' % (shown(path), shown(here)))
            try:
                child = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as e:
                if e.errno == errno.ENOENT and i == len(rel) - 1:
                    return chain, name
                raise ShareError('path %s: %s cannot be opened: %s'
                                 % (shown(path), shown(posixpath.join(here, name)), os.strerror(e.errno)))
            os.close(fd)
            fd = child
            here = posixpath.join(here, name)
            node = _node(fd, here)
            if stat.S_ISLNK(node.mode):
                raise ShareError('path %s: %s is a symlink; it resolves inside the container, not in the share: '
                                 'explain the path it points to' % (shown(path), shown(here)))
            chain.append(node)
        return chain, None
    finally:
        os.close(fd)


def _share_of(entries, path):
    best = None
    for entry in entries:
        if path == entry.dest or path.startswith(entry.dest.rstrip('/') + '/'):
            if best is None or len(entry.dest) > len(best.dest):
                best = entry
    return best


def _caller(container, accounts, user):
    uid, gid, name = accounts.user(user)
    if gid is None:
        raise ShareError('user %s of container %s has no primary group in its /etc/passwd'
                         % (shown(user), container.name))
    gids = [gid] + sorted(set(g for g in accounts.gids if g != gid and accounts.in_group(name, g)))
    groups = []
    for g in gids:
        try:
            groups.append((g, accounts.gids.get(g, str(g)), container.host_id('g', g)))
        except ShareError:
            continue

    def in_container(kind, host):
        return _to_container(container, kind, host) is not None
    return Caller(name, uid, gid, groups, container.host_id('u', uid), container.host_id('g', gid),
                  [h for dummy, dummy2, h in groups], in_container)


def _to_container(container, kind, host):
    if container.privileged:
        return host
    for rng in container.uid_ranges if kind == 'u' else container.gid_ranges:
        if rng.host <= host < rng.host + rng.count:
            return rng.inside + host - rng.host
    return None


def explain(engine, name, user, path):
    """The answer for user of container name at path (absolute, as the container shows it): a dict."""
    if not isinstance(path, str) or not path.startswith('/'):
        raise ShareError('path %r is not an absolute path inside the container' % (path,))
    path = posixpath.normpath(path)
    container = engine.container(name)
    entries = _sharetab.entries(os.path.join(engine.lxcpath, name, 'sharetab'))
    entry = _share_of(entries, path)
    if entry is None:
        raise ShareError('%s is not inside a share of container %s (its shares: %s)' % (
            shown(path), name, ', '.join(shown(e.dest) for e in entries) or 'none'))
    try:
        share = engine.prepare(_sharetab.request_of(name, entry, persist=False))
    except ShareError as e:
        raise ShareError('the share %s of container %s cannot be applied, so nobody can use it: %s'
                         % (shown(entry.dest), name, e))
    accounts = engine.accounts(container)
    caller = _caller(container, accounts, user)

    def uid_name(uid):
        return accounts.uids.get(uid)

    def gid_name(gid):
        return accounts.gids.get(gid)
    view = View(share.idmap, share.readonly, share.nosuid, lambda k, h: _to_container(container, k, h), uid_name,
                gid_name)
    chain, missing = walk_share(share.src_fd, entry.dest, path)
    team = None
    if share.team:
        members = [m.label() for m in share.members]
        member = any(m.container == name and str(m.user) in (caller.name, str(caller.uid)) for m in share.members)
        team = (member, accounts.in_group(caller.name, share.gid), members, accounts.gids.get(share.gid, share.gid))
    answers, notes = decide(caller, view, chain, missing, team)
    target = chain[-1]
    rel = path[len(entry.dest):].lstrip('/')
    return {
        'container': name, 'user': printable(caller.name), 'uid': caller.uid, 'gid': caller.gid,
        'groups': [{'gid': g, 'name': printable(n), 'mapped': view.disk_gid(h) is not None}
                   for g, n, h in caller.groups],
        'path': printable(path), 'share': printable(entry.dest), 'src': printable(entry.src),
        'disk_path': printable(posixpath.join(entry.src, rel) if rel else entry.src),
        'exists': missing is None, 'type': None if missing else ('directory' if target.is_dir else 'file'),
        'owner': None if missing else view.who('u', target.uid),
        'group': None if missing else view.who('g', target.gid),
        'mode': None if missing else '%04o' % stat.S_IMODE(target.mode),
        'readonly': share.readonly, 'nosuid': share.nosuid, 'idmap': share.idmap.entries(),
        'answers': answers, 'notes': notes}


def lines(answer):
    """The answer as text lines."""
    groups = ', '.join('%s %d%s' % (g['name'], g['gid'], '' if g['mapped'] else ' (not mapped)')
                       for g in answer['groups'])
    out = ['%s (uid %d; groups %s) in %s at %s' % (answer['user'], answer['uid'], groups, answer['container'],
                                                   answer['path']),
           'share %s of %s (%s%s; idmap %s)' % (answer['share'], answer['src'],
                                                'read-only' if answer['readonly'] else 'read-write',
                                                ', nosuid' if answer['nosuid'] else '', ' '.join(answer['idmap']))]
    if answer['exists']:
        out.append('%s %s: owner %s, group %s, mode %s' % (answer['type'], answer['disk_path'], answer['owner'],
                                                           answer['group'], answer['mode']))
    else:
        out.append('%s does not exist' % answer['disk_path'])
    for op, title in OPERATIONS:
        res = answer['answers'][op]
        word = {True: 'yes', False: 'no', None: '-'}[res['allowed']]
        if not res['reasons']:
            out.append('  %-12s %s' % (title, word))
        for i, r in enumerate(res['reasons']):
            out.append('  %-12s %-3s %s' % (title if i == 0 else '', word if i == 0 else '', r['why']))
            if r['change']:
                out.append('  %-12s %-3s   change: %s' % ('', '', r['change']))
    for n in answer['notes']:
        out.append('note: %s' % n['why'])
        if n['change']:
            out.append('      change: %s' % n['change'])
    return out
