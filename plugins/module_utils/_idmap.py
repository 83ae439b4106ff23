# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mount idmaps: parsing, validation and canonical form.

An entry is ``KIND:FROM:TO:COUNT`` with KIND ``u`` (uids), ``g`` (gids) or
``b`` (both), exactly like mount-idmapped's ``--map-mount``: a file owned on
disk by FROM+i appears through the mount as owned by TO+i, for i < COUNT, and
a file created through the mount by TO+i lands on disk as FROM+i.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError

MAX_ID = 4294967294       # (uid_t)-1 is never a valid id
MAX_EXTENTS = 340         # kernel limit per uid_map / gid_map


class IdmapError(ShareError):
    pass


class Idmap(object):
    """A validated idmap: sorted uid and gid extents of (from, to, count)."""

    __slots__ = ('uid', 'gid')

    def __init__(self, uid, gid):
        self.uid = tuple(sorted(tuple(e) for e in uid))
        self.gid = tuple(sorted(tuple(e) for e in gid))

    def __eq__(self, other):
        return isinstance(other, Idmap) and self.uid == other.uid and self.gid == other.gid

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self.uid, self.gid))

    def __repr__(self):
        return 'Idmap(%r)' % (self.entries(),)

    def entries(self):
        """Canonical list of entries: ``u:`` ones, then ``g:`` ones."""
        return (['u:%d:%d:%d' % e for e in self.uid] + ['g:%d:%d:%d' % e for e in self.gid])

    def proc_maps(self):
        """The texts for /proc/PID/uid_map and gid_map."""
        return (''.join('%d %d %d\n' % e for e in self.uid), ''.join('%d %d %d\n' % e for e in self.gid))

    def involves_root(self):
        return any(_covers(f, c, 0) or _covers(t, c, 0) for f, t, c in self.uid + self.gid)

    def to_dict(self):
        return {'uid': [list(e) for e in self.uid], 'gid': [list(e) for e in self.gid]}

    @classmethod
    def from_dict(cls, data):
        return cls(data.get('uid', ()), data.get('gid', ()))


def _covers(first, count, value):
    return first <= value < first + count


def _parse_id(entry, what, text):
    if not text.isdigit() or not text.isascii():
        raise IdmapError('idmap entry %r: %s %r is not a non-negative integer' % (entry, what, text))
    return int(text)


def parse_entry(entry):
    """Parse one ``KIND:FROM:TO:COUNT`` entry into (kinds, from, to, count)."""
    if not isinstance(entry, str):
        raise IdmapError('idmap entry %r is not a string' % (entry,))
    parts = entry.strip().split(':')
    if len(parts) != 4:
        raise IdmapError('idmap entry %r: expected KIND:FROM:TO:COUNT with KIND u, g or b' % entry)
    kind, first, to, count = parts
    if kind not in ('u', 'g', 'b'):
        raise IdmapError('idmap entry %r: kind %r is not u, g or b' % (entry, kind))
    first = _parse_id(entry, 'FROM', first)
    to = _parse_id(entry, 'TO', to)
    count = _parse_id(entry, 'COUNT', count)
    if count < 1:
        raise IdmapError('idmap entry %r: COUNT must be at least 1' % entry)
    for what, start in (('FROM', first), ('TO', to)):
        if start + count - 1 > MAX_ID:
            raise IdmapError('idmap entry %r: %s range %d-%d goes above the largest id %d'
                             % (entry, what, start, start + count - 1, MAX_ID))
    kinds = ('u', 'g') if kind == 'b' else (kind,)
    return kinds, first, to, count


def _check_overlaps(label, extents):
    for side, idx in (('FROM', 0), ('TO', 1)):
        ordered = sorted(extents, key=lambda e: e[idx])
        for a, b in zip(ordered, ordered[1:]):
            if a[idx] + a[2] > b[idx]:
                raise IdmapError('idmap %s entries %d:%d:%d and %d:%d:%d overlap on the %s side'
                                 % (label, a[0], a[1], a[2], b[0], b[1], b[2], side))


def parse(entries, allow_root=False):
    """Validate a list of entries and return an Idmap.

    Raises IdmapError naming the offending value.
    """
    if isinstance(entries, str):
        entries = [entries]
    if not entries:
        raise IdmapError('idmap is empty: give at least one u:, g: or b: entry')
    uid, gid = [], []
    for entry in entries:
        kinds, first, to, count = parse_entry(entry)
        if 'u' in kinds:
            uid.append((first, to, count))
        if 'g' in kinds:
            gid.append((first, to, count))
    for label, extents in (('uid', uid), ('gid', gid)):
        if len(extents) > MAX_EXTENTS:
            raise IdmapError('idmap has %d %s extents; the kernel allows at most %d' % (len(extents), label, MAX_EXTENTS))
        _check_overlaps(label, extents)
    idmap = Idmap(uid, gid)
    if not allow_root and idmap.involves_root():
        raise IdmapError('idmap %s maps host id 0 (root); set allow_root to allow it' % ','.join(idmap.entries()))
    return idmap


def single(src_uid, dest_uid, src_gid, dest_gid):
    """The one-uid, one-gid map a share needs."""
    return Idmap([(src_uid, dest_uid, 1)], [(src_gid, dest_gid, 1)])
