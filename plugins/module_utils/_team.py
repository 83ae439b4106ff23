# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Team shares: one source directory, members in several containers, each file keeping its author.

Every member has a *disk uid*: the owner on disk of what they create.  In
each container that has members, the team's mount maps

- the disk uid of each member of that container to the member's own uid;
- the disk uid of a member of another container to the same number, outside
  the container's range (shown as nobody, but the file stays writable for the
  team: the kernel refuses any write to an inode whose owner the mount does
  not map).  Only with show_authors is it mapped to the user of the same name
  in this container, so that ``ls -l`` shows who wrote what: this container's
  root chooses the names of its /etc/passwd, so show_authors gives it the
  files of every member of another container whose name it adds;
- the source directory's owner, when it is not a member, to an id that no
  user of the container has (nobody): disk root is never a container user;
- the team's group on disk (disk_gid) to the team's group in the container
  (option group; where the container has no such group, the one primary
  group all of its members have);
- the primary group of each member whose primary group is not the team's
  to a disk gid numbered like the member's disk uid (the lowest one, when
  members share it), so that creating a file works whatever the member's
  current group is (an unmapped current group makes the kernel answer
  EOVERFLOW); in a set-gid directory the file gets the team's group anyway.

Nobody but the members may hold the team's group in a container: a user
who is in it (primary or listed in /etc/group) and is not a member, nor shown
as one (show_authors), fails the share naming them, so that a member removed
from the team loses access instead of keeping it through the group.

The source directory is made group-owned by disk_gid, set-gid and group
writable, with a default ACL giving the group rwx (setup_src): new files and
directories belong to the team's group and are group-writable.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import re
import stat
import struct

from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._idmap import MAX_EXTENTS, Idmap
from ansible_collections.lxcex.share.plugins.module_utils._lxc import Container
from ansible_collections.lxcex.share.plugins.module_utils._resolve import printable

NOBODY = 65534                 # the host's overflow id: no container user has it
FIRST_DISK_ID = 2000000000     # disk uids allocated to members without one
DISK_ID_COUNT = 1000000
_NAME = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?$')
_CONTAINER = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]*$')

ACL_XATTR = 'system.posix_acl_default'
_ACL_VERSION = 2
_USER_OBJ, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x04, 0x10, 0x20
_UNDEFINED = 0xffffffff


class Member(object):
    __slots__ = ('container', 'user', 'disk_uid', 'dest')

    def __init__(self, container, user, disk_uid=None, dest=None):
        self.container, self.user, self.disk_uid, self.dest = container, user, disk_uid, dest

    def label(self):
        return '%s of container %s' % (self.user, self.container)


def parse_members(value, default_dest=None):
    """The members option (a list of dicts) as Members; ShareError naming a bad value."""
    if not isinstance(value, list) or not value:
        raise ShareError('members must be a non-empty list of {container, user, disk_uid, dest}')
    out, seen = [], set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ShareError('members[%d] %r is not a dict with container and user' % (i, item))
        unknown = sorted(set(item) - set(Member.__slots__))
        if unknown:
            raise ShareError('members[%d]: unknown key %s (known: container, user, disk_uid, dest)'
                             % (i, ', '.join(unknown)))
        container, user = item.get('container'), item.get('user')
        if not isinstance(container, str) or not _CONTAINER.match(container):
            raise ShareError('members[%d]: container %r is not a container name' % (i, container))
        user = str(user) if isinstance(user, int) and not isinstance(user, bool) else user
        if not isinstance(user, str) or not _NAME.match(user):
            raise ShareError('members[%d]: user %r is not a user name or uid' % (i, user))
        disk_uid = item.get('disk_uid')
        if disk_uid is not None:
            if isinstance(disk_uid, bool) or not str(disk_uid).isdigit():
                raise ShareError('members[%d] (%s): disk_uid %r is not a non-negative integer' % (i, user, disk_uid))
            disk_uid = int(disk_uid)
            if disk_uid == 0:
                raise ShareError('members[%d] (%s): disk_uid 0 is root; a member needs an unprivileged uid on disk'
                                 % (i, user))
            if disk_uid in (NOBODY, 4294967295) or disk_uid > 4294967294:
                raise ShareError('members[%d] (%s): disk_uid %d is not usable (nobody or out of range)'
                                 % (i, user, disk_uid))
        dest = item.get('dest') or default_dest
        if not isinstance(dest, str) or not dest.startswith('/'):
            raise ShareError('members[%d] (%s): no dest: give dest for the share or for the member (%r is not an '
                             'absolute path)' % (i, user, dest))
        if (container, user) in seen:
            raise ShareError('members[%d]: %s of container %s is listed twice' % (i, user, container))
        seen.add((container, user))
        out.append(Member(container, user, disk_uid, _sharetab.normalize_dest(dest)))
    return out


def encode(members):
    """Members as one sharetab option value: CONTAINER/USER/DISK_UID;..."""
    return ';'.join('%s/%s/%d' % (m.container, m.user, m.disk_uid) for m in members)


def decode(text):
    """The Members of a sharetab option value (dest unknown); ShareError when malformed."""
    out = []
    for part in (text or '').split(';'):
        fields = part.split('/')
        if len(fields) != 3 or not fields[2].isdigit() or not _CONTAINER.match(fields[0]) \
                or not _NAME.match(fields[1]):
            raise ShareError('members %r: %r is not CONTAINER/USER/DISK_UID' % (text, part))
        out.append(Member(fields[0], fields[1], int(fields[2])))
    if not out:
        raise ShareError('members is empty')
    return out


def recorded_ids(lxcpath, containers):
    """{user name: disk uid} of the members recorded in the team lines of the given containers' sharetabs."""
    found = {}
    for name in containers:
        for entry in _sharetab.entries(os.path.join(lxcpath, name, 'sharetab')):
            if 'members' not in entry.options:
                continue
            try:
                for m in decode(entry.options['members']):
                    found.setdefault(m.user, m.disk_uid)
            except ShareError:
                continue
    return found


def taken_ids(lxcpath, container=None, etc='/etc'):
    """What a disk uid must not be: [(first, count, whose)] of every container's uid range in lxcpath and of
    /etc/subuid and /etc/subgid, and the set of uids in use on the host (/etc/passwd).  A disk uid there would
    make a member's files those of another container's user (its root, when the range starts there) or of a
    host user."""
    ranges = []
    try:
        names = sorted(os.listdir(lxcpath))
    except OSError:
        names = []
    for name in names:
        if not os.path.isfile(os.path.join(lxcpath, name, 'config')):
            continue
        try:
            # the engine's cache when given (each config is read once per run)
            ct = container(name) if container else Container.load(name, lxcpath)
        except ShareError:
            continue
        ranges.extend((r.host, r.count, 'the id range of container %s' % name) for r in ct.uid_ranges)
    for sub in ('subuid', 'subgid'):
        for line in _lines(os.path.join(etc, sub)):
            parts = line.split(':')
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                ranges.append((int(parts[1]), int(parts[2]), 'the range of %s in %s/%s' % (parts[0], etc, sub)))
    users = set()
    for line in _lines(os.path.join(etc, 'passwd')):
        parts = line.split(':')
        if len(parts) > 2 and parts[2].isdigit():
            users.add(int(parts[2]))
    return ranges, users


def _lines(path):
    try:
        with open(path, 'rb') as f:
            return f.read(8 << 20).decode('utf-8', 'replace').splitlines()
    except OSError:
        return []


def collision(disk_uid, taken):
    """Why disk_uid cannot be a member's (None when it can)."""
    ranges, users = taken
    for first, count, whose in ranges:
        if first <= disk_uid < first + count:
            return 'it lies inside %s (%d-%d)' % (whose, first, first + count - 1)
    if disk_uid in users:
        return 'it is the uid of a user of this host (/etc/passwd)'
    return None


def allocate(members, recorded, taken=((), ())):
    """Give a disk uid to the members without one: the one recorded for the name, else the lowest free one
    (free: no member's, and outside every range and host uid in taken)."""
    used = set(recorded.values()) | set(m.disk_uid for m in members if m.disk_uid is not None)
    given = dict((m.user, m.disk_uid) for m in members if m.disk_uid is not None)
    candidate = FIRST_DISK_ID
    for m in members:
        if m.disk_uid is not None:
            continue
        if m.user in given:
            m.disk_uid = given[m.user]
        elif m.user in recorded:
            m.disk_uid = recorded[m.user]
        else:
            while candidate in used or collision(candidate, taken):
                candidate += 1
            if candidate >= FIRST_DISK_ID + DISK_ID_COUNT:
                raise ShareError('no free disk uid left in %d-%d for member %s'
                                 % (FIRST_DISK_ID, FIRST_DISK_ID + DISK_ID_COUNT - 1, m.label()))
            m.disk_uid = candidate
            used.add(candidate)
        given[m.user] = m.disk_uid


def check_members(members):
    """One name is one person (one disk uid) and one disk uid one name; ShareError otherwise."""
    by_name, by_id = {}, {}
    for m in members:
        other = by_name.setdefault(m.user, m)
        if other.disk_uid != m.disk_uid:
            raise ShareError('member %s has disk_uid %d but %s has %d: members of the same name are the same person '
                             'and need the same disk_uid' % (m.label(), m.disk_uid, other.label(), other.disk_uid))
        other = by_id.setdefault(m.disk_uid, m)
        if other.user != m.user:
            raise ShareError('members %s and %s both have disk_uid %d: each member needs a disk uid of their own'
                             % (other.label(), m.label(), m.disk_uid))


def expand(request, recorded, taken=((), ())):
    """A team request (members given as a list) as one request per container and dest."""
    members = parse_members(request.get('members'), request.get('dest'))
    if request.get('state', 'present') == 'present':
        given = set(m.disk_uid for m in members if m.disk_uid is not None) - set(recorded.values())
        for m in members:
            why = collision(m.disk_uid, taken) if m.disk_uid in given else None
            if why:
                raise ShareError('disk_uid %d of member %s cannot be used: %s; choose another one (or leave it '
                                 'out to have one allocated)' % (m.disk_uid, m.label(), why))
        allocate(members, recorded, taken)
        check_members(members)
    groups = []
    for m in members:
        for key, group in groups:
            if key == (m.container, m.dest):
                group.append(m)
                break
        else:
            groups.append(((m.container, m.dest), [m]))
    out = []
    for (container, dest), group in groups:
        req = dict(request, container=container, dest=dest, user=group[0].user)
        req['members'] = encode(members) if members[0].disk_uid is not None else None
        out.append(req)
    return out


def _name_of(engine, member):
    """The member's user name: a uid given as a number is named by the member's own container when it can be read."""
    if not member.user.isdigit():
        return member.user
    try:
        return engine.accounts(engine.container(member.container)).user(member.user)[2]
    except ShareError:
        return member.user


def _inside(ranges, value):
    return any(r.host <= value < r.host + r.count for r in ranges)


def idmap_for(engine, container, members, disk_gid, group, owner_uid, dest, show_authors=False):
    """The mount idmap of a team share in one container, and the (uid, gid) that owns directories made at dest.

    show_authors: map a member of another container to the user of the same name in this one (see the module
    docstring for what that grants to this container's root).

    ShareError naming the member and the reason when the ids cannot be mapped.
    """
    accounts = engine.accounts(container)
    mine = [m for m in members if m.container == container.name]
    if not mine:
        raise ShareError('container %s has no member in this team share' % container.name)
    own = {}
    for m in mine:
        uid, gid, name = accounts.user(m.user)
        if gid is None:
            raise ShareError('member %s has no primary group in its /etc/passwd' % m.label())
        own[m.user] = (uid, gid, name)
    team_gid = None
    if group not in (None, ''):
        try:
            team_gid, group_name = accounts.group(group)
        except ShareError:
            team_gid = None
    if team_gid is not None:
        for m in mine:
            if not accounts.in_group(own[m.user][2], team_gid):
                raise ShareError('member %s is not in group %s (gid %d) there, neither as primary nor as '
                                 'supplementary group, so they could not use the files of the others; add them '
                                 'to it' % (m.label(), group, team_gid))
    else:
        primary = sorted(set(own[m.user][1] for m in mine))
        if len(primary) > 1:
            raise ShareError('members %s of container %s have different primary groups (gids %s) and the container '
                             'has no group %s; set group to a group of the container that they all belong to'
                             % (', '.join(m.user for m in mine), container.name,
                                ', '.join(str(g) for g in primary), group or '(not set)'))
        team_gid = primary[0]
    uid_ext, gid_ext = [], []
    targets = {}
    done = set()
    unprivileged = not container.privileged
    for m in members:
        if m.disk_uid in done:
            continue
        done.add(m.disk_uid)
        if m.container == container.name:
            cuid = own[m.user][0]
        elif show_authors:
            cuid = accounts.users.get(_name_of(engine, m), (None, None))[0]
        else:
            cuid = None
        if cuid == 0:
            raise ShareError('member %s would be root of container %s; team members must be unprivileged users'
                             % (m.label(), container.name))
        if cuid is not None:
            host = container.host_id('u', cuid)
        else:
            host = m.disk_uid
            if not unprivileged or _inside(container.uid_ranges, host):
                raise ShareError('disk_uid %d of member %s lies inside the id range of container %s%s: it would make '
                                 'the member\'s files belong to another user there; choose a disk_uid outside its range'
                                 % (m.disk_uid, m.label(), container.name,
                                    (', which has no user %s' % m.user) if show_authors else ''))
        if host in targets:
            raise ShareError('members %s and %s would both be uid %d of container %s: give them different names'
                             % (targets[host].label(), m.label(), host, container.name))
        targets[host] = m
        uid_ext.append((m.disk_uid, host, 1))
    if owner_uid not in done:
        # The source's owner is not a member: an id no user of the container has, so that the
        # members can create files in it (an unmapped owner makes the kernel refuse any write).
        if NOBODY in targets or (unprivileged and _inside(container.uid_ranges, NOBODY)):
            raise ShareError('the owner of the source (disk uid %d) cannot be shown as nobody in container %s; '
                             'make a member the owner of the source directory' % (owner_uid, container.name))
        uid_ext.append((owner_uid, NOBODY, 1))
    team_host = container.host_id('g', team_gid)
    gid_ext.append((disk_gid, team_host, 1))
    # Each other primary group of a member here: a disk gid numbered like the lowest disk uid of its members.
    primary = {}
    for m in sorted(mine, key=lambda m: m.disk_uid):
        gid = own[m.user][1]
        if gid != team_gid:
            primary.setdefault(gid, m)
    for gid, m in sorted(primary.items()):
        if m.disk_uid == disk_gid:
            raise ShareError('member %s: disk_uid %d is also the team\'s disk_gid, so their own group on disk would '
                             'be the team\'s; choose another disk_uid or disk_gid' % (m.label(), m.disk_uid))
        gid_ext.append((m.disk_uid, container.host_id('g', gid), 1))
    for label, extents in (('uid', uid_ext), ('gid', gid_ext)):
        if len(extents) > MAX_EXTENTS:
            raise ShareError('team share in container %s needs %d %s extents; the kernel allows at most %d per mount '
                             '(fewer members)' % (container.name, len(extents), label, MAX_EXTENTS))
    _no_outsiders(accounts, container, team_gid, group, targets)
    first = next((m for m in mine if m.dest == dest), mine[0])
    return Idmap(uid_ext, gid_ext), (own[first.user][0], team_gid)


def _host_uid(container, uid):
    try:
        return container.host_id('u', uid)
    except ShareError:
        return None


def _no_outsiders(accounts, container, team_gid, group, targets):
    """ShareError naming the users of the container in the team's group who are not members (nor shown as one).

    The group gives its users the team's files, so a member removed from the team who stays in it would keep
    editing them.  Container root (uid 0) is not counted: it can become any member anyway.
    """
    allowed = set(n for n, (uid, gid) in accounts.users.items() if _host_uid(container, uid) in targets)
    outsiders = sorted(n for n in accounts.group_users(team_gid)
                       if n not in allowed and accounts.users.get(n, (None,))[0] != 0)
    if outsiders:
        name = accounts.gids.get(team_gid, str(team_gid))
        raise ShareError('group %s (gid %d) of container %s, the team\'s group there%s, also holds %s, not '
                         'a member of this team share: the group would give them the team\'s files (a member removed '
                         'from the team keeps access this way); take them out of the group (their primary group and '
                         '/etc/group), add them to members, or set group to a group only the members are in'
                         % (name, team_gid, container.name,
                            '' if group not in (None, '') and accounts.groups.get(str(group)) else
                            ' (the primary group of its members)',
                            ', '.join(printable(n) for n in outsiders)))


# -- the source directory ---------------------------------------------------

def _parse_acl(data):
    if not data or len(data) < 4 or (len(data) - 4) % 8:
        return None
    version, = struct.unpack('<I', data[:4])
    if version != _ACL_VERSION:
        return None
    return [struct.unpack('<HHI', data[4 + i:12 + i]) for i in range(0, len(data) - 4, 8)]


def _format_acl(entries):
    return struct.pack('<I', _ACL_VERSION) + b''.join(struct.pack('<HHI', *e) for e in sorted(entries))


def _acl_text(entries):
    if entries is None:
        return None
    names = {_USER_OBJ: 'user:', 0x02: 'user:%d', _GROUP_OBJ: 'group:', 0x08: 'group:%d', _MASK: 'mask:',
             _OTHER: 'other:'}
    out = []
    for tag, perm, ident in sorted(entries):
        name = names.get(tag, '?')
        name = name % ident if '%d' in name else name
        out.append('default:%s:%s' % (name, ''.join(c if perm & b else '-' for c, b in (('r', 4), ('w', 2), ('x', 1)))))
    return out


def src_state(path):
    """stat, default ACL as bytes (None when there is none) and whether the filesystem has ACLs, of the
    source directory (path: a /proc/self/fd link)."""
    st = os.stat(path)
    try:
        return st, os.getxattr(path, ACL_XATTR), True
    except OSError as e:
        return st, None, e.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP)


def wanted_acl(acl, mode):
    """The default ACL the team needs: the group (and the mask) rwx, the rest kept or taken from mode."""
    if acl is None:
        return [(_USER_OBJ, 7, _UNDEFINED), (_GROUP_OBJ, 7, _UNDEFINED), (_OTHER, (mode & 0o7), _UNDEFINED)]
    out = []
    for tag, perm, ident in acl:
        if tag in (_GROUP_OBJ, _MASK):
            perm = 7
        out.append((tag, perm, ident))
    return out


def setup_src(src_fd, src, disk_gid, check_mode):
    """Make the source directory the team's: group disk_gid, set-gid, group rwx, default ACL group rwx.

    Only the directory itself changes, never anything below it.  Returns
    (changed, before, after, warning, saved): saved is what restore_src puts back.
    A failure puts back what it changed and raises ShareError.
    """
    path = '/proc/self/fd/%d' % src_fd
    st, raw, has_acls = src_state(path)
    acl = _parse_acl(raw)
    mode = stat.S_IMODE(st.st_mode)
    want_mode = mode | stat.S_ISGID | 0o070
    want_acl = wanted_acl(acl, mode) if has_acls else None
    before = {'gid': st.st_gid, 'mode': '%04o' % mode, 'default_acl': _acl_text(acl)}
    after = {'gid': disk_gid, 'mode': '%04o' % want_mode, 'default_acl': _acl_text(want_acl)}
    warning = None
    if not has_acls:
        warning = ('the filesystem of %s has no POSIX ACLs: new files are group-writable only when the members\' '
                   'umask allows it (umask 002)' % src)
    saved = (st.st_gid, stat.S_IMODE(st.st_mode), raw)
    if before == after:
        return False, before, after, warning, None
    if check_mode:
        return True, before, after, warning, None
    try:
        if st.st_gid != disk_gid:
            os.chown(path, -1, disk_gid)
        if stat.S_IMODE(os.stat(path).st_mode) != want_mode:
            os.chmod(path, want_mode)
        if want_acl is not None and (acl is None or sorted(acl) != sorted(want_acl)):
            os.setxattr(path, ACL_XATTR, _format_acl(want_acl))
    except OSError as e:
        restore_src(src_fd, saved)
        raise ShareError('cannot make %s the team\'s directory (group %d, mode %04o): %s'
                         % (src, disk_gid, want_mode, os.strerror(e.errno)))
    return True, before, after, warning, saved


def restore_src(src_fd, saved):
    """Put back the group, mode and default ACL that setup_src found (when every share of the source failed)."""
    path = '/proc/self/fd/%d' % src_fd
    gid, mode, raw = saved
    for step in (lambda: os.chown(path, -1, gid), lambda: os.chmod(path, mode),
                 lambda: os.setxattr(path, ACL_XATTR, raw) if raw is not None else os.removexattr(path, ACL_XATTR)):
        try:
            step()
        except OSError:
            pass
