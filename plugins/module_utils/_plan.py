# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of one share inside its running container: which mount operations it needs, and why.

live_plan() decides from facts only, with no side effect (no root, no kernel:
tests/unit test it): what the share wants (the request), what the container
shows at dest (read by the engine: see _share.Engine._live_current), the
record of the mount lxcex.share made there, and the other mounts of the
share's data inside the container.  The engine gathers the facts, applies
the operations in one bounded child (see _live.ContainerView.execute) and
undoes what a failed share made.

Operations: ('attach', thunk, dest, (uid, gid), replace), ('umount', dest,
dest), ('umount_id', mount id, path), ('rmdirs', [paths], dest).

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._live import MAX_COUNTED
from ansible_collections.lxcex.share.plugins.module_utils._resolve import printable

LIVE_KEYS = ('mounted', 'src', 'idmap', 'readonly', 'nosuid')


class Plan(object):
    """What one share needs: ops, and what the result says of it (before, after, changed and the rest)."""

    def __init__(self, before):
        self.ops = []
        self.before = before
        self.after = None
        self.changed = False
        self.revoked = None       # removal: the mount points taken away
        self.covered = None       # a new share over a non-empty dest: how many entries it hides
        self.warnings = []
        self.drift = []           # how container root changed the share, in words
        self.repaired = None      # what the ops repair of it


def live_plan(share, cur, record, copies, share_points=(), thunk_changed=False, thunk_mount_id=None,
              container='?', thunks_dir=None):
    """The Plan of share (its state, dest, src, idmap, readonly, nosuid, nonempty, thunk, uid, gid, created).

    cur: the mount at dest as the container shows it ({'mounted': False} or with 'ours', 'mount_id',
    'resolved', 'readonly', 'nosuid', 'covers' (mounts stacked on ours), and from our record 'src',
    'idmap', 'thunk_mount_id'; 'entries' when dest is a directory that is not a mount point);
    record: our record of the mount at dest, or None; copies: the mounts of the share's data in the container
    that are not other shares; share_points: where the container's shares are meant to be; thunks_dir: a view of
    the thunks directory inside the container (the original lxcex-share rbinds it there) holds no copies.
    ShareError when the share must not be applied (a mount of container root at dest, nonempty_dest=refuse).
    """
    plan = Plan(dict((k, cur[k]) for k in LIVE_KEYS if k in cur))
    if share.state == 'absent':
        if copies:
            plan.revoked = [e.mount_point for e in copies]
            plan.ops = [('umount_id', e.mount_id, e.mount_point) for e in copies]
        elif cur['mounted'] and cur['ours']:
            plan.ops = [('umount', share.dest, share.dest)]
        else:
            if cur['mounted']:
                plan.after = plan.before
            return plan
        plan.changed = True
        if share.created:
            plan.ops.append(('rmdirs', share.created, share.dest))
        return plan
    want = {'mounted': True, 'src': share.src, 'idmap': share.idmap.entries(), 'readonly': share.readonly,
            'nosuid': share.nosuid}
    plan.after = want
    plan.drift, repair = drift(share, cur, record, copies, share_points, thunks_dir)
    if cur['mounted'] and not cur['ours']:
        raise ShareError('dest %s in container %s is already a mount point of something else; refusing to cover it'
                         % (share.dest, container))
    if not cur['mounted'] and cur.get('entries'):
        count = cur['entries']
        shown_count = '%d' % count if count <= MAX_COUNTED else 'more than %d' % MAX_COUNTED
        if share.nonempty == 'refuse':
            raise ShareError('dest %s in container %s is not empty (%s entries); refusing to cover them '
                             '(nonempty_dest=refuse)' % (share.dest, container, shown_count))
        plan.covered = count
        plan.warnings.append('dest %s in container %s is not empty: the share hides %s entries that were there'
                             % (share.dest, container, shown_count))
    same = (cur['mounted'] and cur.get('src') == share.src and cur.get('idmap') == want['idmap']
            and cur.get('readonly') == share.readonly and cur.get('nosuid') == share.nosuid
            and not thunk_changed and cur.get('thunk_mount_id') == thunk_mount_id)
    if same and not repair:
        return plan
    plan.changed = True
    if plan.drift:
        plan.repaired = list(plan.drift)
    plan.ops = repair + ([] if same else [('attach', share.thunk, share.dest, (share.uid, share.gid), cur['mounted'])])
    return plan


def drift(share, cur, record, copies, share_points=(), thunks_dir=None):
    """How a share recorded as live differs from what the container shows, in words, and the operations that
    put it back: unmounting what container root stacked on it or copied elsewhere (attaching it again where it
    was taken away is the plan's)."""
    words, ops = [], []
    if not cur['mounted']:
        if record is not None:
            words.append('unmounted: nothing of the share is mounted at %s' % share.dest)
        return words, ops
    if not cur['ours']:
        return words, ops
    for e in reversed(cur.get('covers') or []):
        words.append('covered by a %s mount (%s) at %s' % (e.fstype, printable(e.source), printable(e.mount_point)))
        ops.append(('umount_id', e.mount_id, e.mount_point))
    if record is not None and cur.get('idmap') not in (None, share.idmap.entries()):
        words.append('wrong idmap: %s instead of %s' % (' '.join(cur['idmap']), ' '.join(share.idmap.entries())))
    for flag, word in (('readonly', 'read-only'), ('nosuid', 'nosuid')):
        if cur.get(flag) is not None and cur[flag] != getattr(share, flag):
            words.append('%s%s, declared %s%s' % ('' if cur[flag] else 'not ', word,
                                                  '' if getattr(share, flag) else 'not ', word))
    if record is None:
        return words, ops        # without our record, a copy cannot be told from another share of the source
    at_dest = set([cur.get('mount_id')] + [e.mount_id for e in cur.get('covers') or []])
    for e in copies:
        if e.mount_id in at_dest or e.mount_point in share_points or (
                thunks_dir and e.mount_point.startswith(thunks_dir.rstrip('/') + '/')):
            continue
        words.append('copied to %s' % printable(e.mount_point))
        ops.append(('umount_id', e.mount_id, e.mount_point))
    return words, ops
