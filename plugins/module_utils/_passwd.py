# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Users and groups of a container, read from its /etc/passwd and /etc/group as data.

No program of the container is ever run.  The files are opened inside the
container root (see _resolve.read_data_file), so a symlinked /etc/passwd
cannot point at a host file, and files over 8 MiB are refused; parsing keeps
only names and ids.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._resolve import read_data_file


def parse_db(data, min_fields, members=None):
    """{name: (id, gid or None)} and {id: name} of a passwd (or group) text, given as bytes.

    members: a dict to fill with {group name: (member names)} from a group text.

    Only the name and the numeric fields are kept, so memory stays a small
    multiple of the number of entries whatever the lines carry; the first
    entry of a name or an id wins, as in getpwnam(3).
    """
    by_name, by_id = {}, {}
    for raw in data.split(b'\n'):
        if not raw or raw[:1] in (b'#', b'+', b'-'):
            continue
        fields = raw.split(b':', 4)
        if len(fields) < min_fields or not fields[2].isdigit() or len(fields[2]) > 10:
            continue
        name = fields[0].decode('utf-8', 'surrogateescape')
        num = int(fields[2])
        gid = int(fields[3]) if min_fields > 3 and fields[3].isdigit() and len(fields[3]) <= 10 else None
        by_name.setdefault(name, (num, gid))
        by_id.setdefault(num, name)
        if members is not None and len(fields) > 3 and name not in members:
            members[name] = tuple(m.decode('utf-8', 'surrogateescape')
                                  for m in fields[3].split(b',') if m.strip())
    return by_name, by_id


class Accounts(object):
    """passwd and group of one container root, read once."""

    def __init__(self, passwd_text, group_text, container):
        self.container = container
        self.users, self.uids = parse_db(passwd_text, 4)
        self.members = {}
        self.groups, self.gids = parse_db(group_text, 3, self.members)

    @classmethod
    def read(cls, root_fd, container):
        return cls(read_data_file(root_fd, '/etc/passwd', 'container %s file' % container),
                   read_data_file(root_fd, '/etc/group', 'container %s file' % container), container)

    def user(self, user):
        """(uid, primary gid or None, name) of a user given by name or number."""
        text = str(user)
        if text in self.users:
            uid, gid = self.users[text]
            return uid, gid, text
        if text.isdigit():
            uid = int(text)
            name = self.uids.get(uid)
            gid = self.users[name][1] if name is not None else None
            return uid, gid, name or text
        raise ShareError('unknown user %r in container %s (not in its /etc/passwd)' % (text, self.container))

    def in_group(self, user, gid):
        """Whether the user (name) has gid as primary group or is listed as a member of a group of that gid."""
        if user in self.users and self.users[user][1] == gid:
            return True
        name = self.gids.get(gid)
        return name is not None and user in self.members.get(name, ())

    def group_users(self, gid):
        """Names of the users that have gid as primary group or are listed in the group of that gid."""
        found = set(n for n, (uid, primary) in self.users.items() if primary == gid)
        name = self.gids.get(gid)
        found.update(self.members.get(name, ()) if name is not None else ())
        return found

    def group(self, group):
        """(gid, name) of a group given by name or number."""
        text = str(group)
        if text in self.groups:
            return self.groups[text][0], text
        if text.isdigit():
            gid = int(text)
            return gid, self.gids.get(gid, text)
        raise ShareError('unknown group %r in container %s (not in its /etc/group)' % (text, self.container))
