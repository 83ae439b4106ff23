# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converging a list of share requests: the one entry point of the modules,
the role (through the module) and the hook program.

A request is a dict of lxc_share parameters.  ``converge`` validates every
request (a bad one fails alone, with its message), optionally adds removals
for managed sharetab lines that are no longer requested (``prune``), and
applies the rest in one pass of the Engine.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import os

from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils import _team
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._share import SHARETAB
from ansible_collections.lxcex.share.plugins.module_utils._sharetab import DirLock


def sharetab_path(engine, name):
    return os.path.join(engine.lxcpath, name, SHARETAB)


def containers_with_sharetab(lxcpath):
    """Names of the containers below lxcpath that have a sharetab."""
    try:
        names = sorted(os.listdir(lxcpath))
    except OSError:
        return []
    return [n for n in names if os.path.isfile(os.path.join(lxcpath, n, 'config'))
            and os.path.isfile(os.path.join(lxcpath, n, SHARETAB))]


def prune_requests(engine, requests, containers, owner=_sharetab.DEFAULT_OWNER):
    """Removals for the sharetab lines of owner in containers that no request names."""
    wanted = set((r.get('container'), _sharetab.normalize_dest(r.get('dest'))) for r in requests)
    out = []
    for name in containers:
        for entry in _sharetab.entries(sharetab_path(engine, name)):
            if entry.owner == owner and (name, entry.dest) not in wanted:
                out.append({'container': name, 'dest': entry.dest, 'state': 'absent', 'persist': True, 'live': True,
                            'pruned': True})
                wanted.add((name, entry.dest))
    return out


def _failed(req, msg):
    return {'container': req.get('container'), 'dest': req.get('dest'), 'state': req.get('state') or 'present',
            'changed': False, 'failed': True, 'msg': msg}


def converge(engine, requests, prune=None, owner=_sharetab.DEFAULT_OWNER, release=True):
    """Validate and apply requests; return one result per request (pruned removals last).

    prune: None, or the names of the containers whose sharetab lines written
    by owner that no request names are removed.  Thunks left by containers that are
    not running are released first (engine.released says which), unless release is False (a reader that
    looked for them once already).
    """
    requests = list(requests)
    with contextlib.ExitStack() as locks:
        if not engine.check_mode:
            if any(_allocates(r) for r in requests) and os.path.isdir(engine.lxcpath):
                # Disk uids are allocated from what all sharetabs record: one allocating run at a time per lxcpath,
                # from reading the records to writing its own.
                locks.enter_context(DirLock(engine.lxcpath))
            # Every container of the run is locked before the host's mount table is first read, so that what the
            # run decides rests on a table no other run changes meanwhile (two runs at once never stack thunks).
            for directory in _directories(engine, requests, prune):
                locks.enter_context(DirLock(directory))
            engine.forget_mounts()
        # Nothing changes before the thunks directory is known to be one that can be ours: a refused run changes
        # nothing.
        engine.check_thunks_dir()
        engine.released = engine.release_stale() if release else []
        return _converge(engine, requests, prune, owner)


def _directories(engine, requests, prune):
    """The directories of the existing containers a run names (requests, team members, pruned), sorted."""
    names = set(prune or ())
    for req in requests:
        names.add(req.get('container'))
        if isinstance(req.get('members'), list):
            names.update(m.get('container') for m in req['members'] if isinstance(m, dict))
    out = []
    for name in names:
        if not isinstance(name, str) or not name or '/' in name or '\0' in name or name in ('.', '..'):
            continue  # refused by the validation, with its message
        directory = os.path.join(engine.lxcpath, name)
        if os.path.isfile(os.path.join(directory, 'config')):
            out.append(directory)
    return sorted(out)


def _allocates(request):
    members = request.get('members')
    return isinstance(members, list) and any(isinstance(m, dict) and m.get('disk_uid') is None for m in members)


def _converge(engine, requests, prune, owner):
    requests, failed = expand_teams(engine, requests)
    seen = {}
    for req in requests:
        key = (req.get('container'), _sharetab.normalize_dest(req.get('dest')))
        if key in seen:
            raise ShareError('container %s, dest %s is listed twice' % key)
        seen[key] = req
    if prune:
        requests += prune_requests(engine, requests, prune, owner)
    results = [None] * len(requests)
    results.extend(failed)
    prepared = []
    for i, req in enumerate(requests):
        try:
            prepared.append((i, engine.prepare(req)))
        except ShareError as e:
            results[i] = _failed(req, str(e))
    # A team share is applied in all of its containers or in none: one that fails validation fails the team.
    broken = dict((requests[i]['team_id'], '%s:%s' % (requests[i].get('container'), requests[i].get('dest')))
                  for i, res in enumerate(results[:len(requests)])
                  if res is not None and requests[i].get('team_id') is not None)
    if broken:
        kept = []
        for i, share in prepared:
            team = requests[i].get('team_id')
            if team in broken:
                results[i] = _failed(requests[i], 'not applied: the same team share failed at %s' % broken[team])
            else:
                kept.append((i, share))
        prepared = kept
    applied = engine.apply([share for dummy, share in prepared])
    for (i, dummy), res in zip(prepared, applied):
        if requests[i].get('pruned'):
            res['pruned'] = True
        results[i] = res
    return results


def expand_teams(engine, requests):
    """Requests with team shares (members given as a list) expanded to one request per container and dest.

    Returns (requests, failed results of team shares whose members are not valid).
    """
    out, failed = [], []
    recorded = taken = None
    for req in requests:
        if not isinstance(req.get('members'), list):
            out.append(req)
            continue
        if recorded is None and _allocates(req):
            # Every sharetab is read only when a member needs a disk uid allocated.
            recorded = _team.recorded_ids(engine.lxcpath, containers_with_sharetab(engine.lxcpath))
        if taken is None:
            # The ids a disk uid must not be: every container's range, /etc/subuid, /etc/subgid, host users.
            taken = _team.taken_ids(engine.lxcpath, engine.container)
        try:
            team_id = len(out)
            out.extend([dict(r, team_id=team_id) for r in _team.expand(req, recorded or {}, taken)])
        except ShareError as e:
            names = sorted(set(str(m.get('container')) for m in req['members'] if isinstance(m, dict))) \
                if isinstance(req.get('members'), list) else []
            failed.append(_failed(dict(req, container=','.join(names) or 'team'), 'team share of %s: %s'
                                  % (req.get('src'), e)))
    return out, failed


def share_diffs(results):
    """One --diff entry per share that changed (or would): before and after under the share's own header."""
    out = []
    for r in results:
        if not r.get('changed') or r.get('failed'):
            continue
        header = '%s:%s' % (r.get('container'), r.get('dest'))
        out.append(dict(before_header=header, after_header=header, before=r.get('before') or {},
                        after=r.get('after') or {}))
    return out
