# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Users and groups of a container, read from its /etc/passwd and /etc/group as data.

No program of the container is ever run.  The files are opened inside the
container root (see _resolve.read_data_file), so a symlinked /etc/passwd
cannot point at a host file.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._resolve import read_data_file


def parse_db(text, min_fields):
    """{name: fields} and {id: name} of a passwd or group text."""
    by_name, by_id = {}, {}
    for line in text.splitlines():
        if not line or line.startswith('#') or line.startswith('+') or line.startswith('-'):
            continue
        fields = line.split(':')
        if len(fields) < min_fields or not fields[2].isdigit():
            continue
        by_name.setdefault(fields[0], fields)
        by_id.setdefault(int(fields[2]), fields[0])
    return by_name, by_id


class Accounts(object):
    """passwd and group of one container root, read once."""

    def __init__(self, passwd_text, group_text, container):
        self.container = container
        self.users, self.uids = parse_db(passwd_text, 4)
        self.groups, self.gids = parse_db(group_text, 3)

    @classmethod
    def read(cls, root_fd, container):
        return cls(read_data_file(root_fd, '/etc/passwd', 'container %s file' % container),
                   read_data_file(root_fd, '/etc/group', 'container %s file' % container), container)

    def user(self, user):
        """(uid, primary gid or None, name) of a user given by name or number."""
        text = str(user)
        if text in self.users:
            fields = self.users[text]
            return int(fields[2]), int(fields[3]) if fields[3].isdigit() else None, text
        if text.isdigit():
            uid = int(text)
            name = self.uids.get(uid)
            gid = None
            if name is not None and self.users[name][3].isdigit():
                gid = int(self.users[name][3])
            return uid, gid, name or text
        raise ShareError('unknown user %r in container %s (not in its /etc/passwd)' % (text, self.container))

    def group(self, group):
        """(gid, name) of a group given by name or number."""
        text = str(group)
        if text in self.groups:
            return int(self.groups[text][2]), text
        if text.isdigit():
            gid = int(text)
            return gid, self.gids.get(gid, text)
        raise ShareError('unknown group %r in container %s (not in its /etc/group)' % (text, self.container))
