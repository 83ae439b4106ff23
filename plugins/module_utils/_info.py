# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of a host's shares: what lxc_share_info returns and lxcex-share list prints.

Every sharetab line of every container (or of the containers named) with its
state, found by a check-mode pass of the engine (the code that applies
shares, so a share is called live only when a run would leave it as it is):

- ``live``: mounted inside the running container as recorded;
- ``recorded``: the container is stopped, the share comes at its next start;
- ``drifted``: container root changed it: unmounted it, covered it with a
  mount of its own, copied it elsewhere in the container, or its idmap or
  flags differ (``detail`` says each); the next run of lxc_share (or a
  restart) repairs it;
- ``broken``: it cannot be applied, or is not mounted as recorded (``detail``
  says why);
- ``stale``: a thunk left by a stop that ran no post-stop hook;
- ``unknown``: a container named that does not exist.

A live share also has its thunk and the thunk's idmap, read back from the
kernel (statmount, Linux 6.15+) or, on older kernels, from the record made
when it was mounted.

Nothing is changed: the engine runs in check mode.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils._converge import (
    containers_with_sharetab, converge, sharetab_path)
from ansible_collections.lxcex.share.plugins.module_utils import _team
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._resolve import printable

STATES = ('live', 'recorded', 'drifted', 'broken', 'stale', 'unknown')
COLUMNS = (('container', 'CONTAINER'), ('dest', 'DEST'), ('src', 'SRC'), ('user', 'USER'), ('group', 'GROUP'),
           ('readonly', 'RO'), ('owner', 'OWNER'), ('state', 'STATE'), ('members', 'MEMBERS'), ('detail', 'DETAIL'))


def row(container, entry, state, detail, idmap=None, thunk=None):
    """One share as every view shows it; text that is not printable (from a container, a sharetab) escaped."""
    out = {'container': container, 'dest': entry.dest if entry else None, 'src': entry.src if entry else None,
           'user': entry.user if entry else None, 'group': entry.options.get('group') if entry else None,
           'readonly': entry.readonly if entry else None, 'owner': (entry.owner or 'hand') if entry else None,
           'state': state, 'detail': detail, 'idmap': idmap, 'thunk': thunk,
           'setuid': 'suid' in entry.options if entry else None, 'members': _members(entry)}
    for key, value in out.items():
        if isinstance(value, str):
            out[key] = printable(value)
    return out


def _members(entry):
    """The members of a team share's line (container, user, disk_uid each), None for other lines."""
    if entry is None or not entry.options.get('members'):
        return None
    try:
        return [{'container': m.container, 'user': m.user, 'disk_uid': m.disk_uid}
                for m in _team.decode(entry.options['members'])]
    except ShareError:
        return None


def read_shares(engine, names=None):
    """The rows of every share of the containers named (default: every container with a sharetab).

    engine must be in check mode.  Rows come container by container, sharetab order, stale thunks first.
    """
    if not engine.check_mode:
        raise ShareError('the share reader needs an engine in check mode')
    rows = []
    for path in engine.release_stale():
        if names and path.split('/')[-2] not in names:
            continue
        rows.append(row(path.split('/')[-2], None, 'stale', 'thunk %s left by a stop that ran no post-stop hook; '
                        'the next run releases it' % path, thunk=path))
    for name in names or containers_with_sharetab(engine.lxcpath):
        try:
            container = engine.container(name)
        except ShareError as e:
            rows.append(row(name, None, 'unknown', str(e)))
            continue
        entries = _sharetab.entries(sharetab_path(engine, name))
        if not entries:
            continue
        try:
            running = engine.view(container) is not None
        except ShareError as e:
            rows.extend(row(name, entry, 'broken', str(e)) for entry in entries)
            continue
        if not running:
            rows.extend(row(name, entry, 'recorded', 'container stopped') for entry in entries)
            continue
        requests = [_sharetab.request_of(name, e, persist=False) for e in entries]
        for entry, res in zip(entries, converge(engine, requests, release=False)):
            if res.get('failed'):
                rows.append(row(name, entry, 'broken', res['msg']))
            elif res.get('drift'):
                rows.append(row(name, entry, 'drifted', '; '.join(res['drift']) + '; a run of lxc_share or a restart '
                                'repairs it', idmap=_thunk_idmap(engine, res.get('thunk')), thunk=res.get('thunk')))
            elif res['changed']:
                rows.append(row(name, entry, 'broken', 'not mounted as recorded; a run of lxc_share or a restart '
                                'repairs it', thunk=res.get('thunk')))
            else:
                rows.append(row(name, entry, 'live', '', idmap=_thunk_idmap(engine, res.get('thunk')),
                                thunk=res.get('thunk')))
    return rows


def _thunk_idmap(engine, thunk):
    """The idmap of the thunk as the kernel reports it (statmount, Linux 6.15+), else as recorded."""
    try:
        cur = engine.thunks.current(thunk) if thunk else None
    except (OSError, ShareError):
        return None
    return cur.get('idmap') if cur else None


def summary(rows):
    """How many rows are in each state."""
    return dict((state, sum(1 for r in rows if r['state'] == state)) for state in STATES)


def exit_status(rows):
    """2 when a container named is unknown, 1 when a share is broken or drifted or a thunk stale, else 0."""
    if any(r['state'] == 'unknown' for r in rows):
        return 2
    return 1 if any(r['state'] in ('broken', 'drifted', 'stale') for r in rows) else 0


def table(rows):
    """The rows as aligned text lines (no trailing spaces), '-' for a missing value."""
    def cell(value):
        if value is None:
            return '-'
        if value is True or value is False:
            return 'yes' if value else 'no'
        if isinstance(value, list):       # a team's members: CONTAINER/USER:DISK_UID, ...
            return ','.join('%s/%s:%s' % (m['container'], m['user'], m['disk_uid']) for m in value)
        return str(value)
    lines = [tuple(title for dummy, title in COLUMNS)]
    lines += [tuple(cell(r[key]) for key, dummy in COLUMNS) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return ['  '.join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
