# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checking a share request and the pre-flight: everything is validated before anything changes.

Requests is the part of the engine (see _share.Engine) that turns one
request (a dict of lxc_share's options) into a Share: the container and its
users read as data, the source resolved once (an fd kept for the pass), the
idmap computed and refused when it maps host root, and a pre-flight that
makes a detached idmapped clone of the source (never attached), so that a
filesystem without idmapped mounts fails here, in check mode too.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import posixpath
import re
import stat

from ansible_collections.lxcex.share.plugins.module_utils import _sharetab
from ansible_collections.lxcex.share.plugins.module_utils import _team
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._idmap import single
from ansible_collections.lxcex.share.plugins.module_utils._resolve import resolve_src
from ansible_collections.lxcex.share.plugins.module_utils._thunk import ThunkError, UnsupportedFilesystem, unsupported_text
from ansible_collections.lxcex.share.plugins.module_utils._validate import check_id, check_text, is_inside


# The options of one share (lxc_share's, and each element of its shares): the one list of a request's keys.
SHARE_SPEC = dict(
    container=dict(type='str', aliases=['name']),
    dest=dict(type='str'),
    src=dict(type='path'),
    user=dict(type='str'),
    group=dict(type='str'),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    readonly=dict(type='bool', default=False),
    src_uid=dict(type='int'),
    src_gid=dict(type='int'),
    persist=dict(type='bool', default=True),
    live=dict(type='bool', default=True),
    allow_root=dict(type='bool', default=False),
    nonempty_dest=dict(type='str', choices=['warn', 'refuse'], default='warn'),
    allow_setuid=dict(type='bool', default=False),
    members=dict(type='list', elements='dict'),
    disk_gid=dict(type='int'),
    setup_src=dict(type='bool', default=True),
    show_authors=dict(type='bool', default=False),
)


def check_request(r):
    """What is missing or conflicting in one share (team or not); None when it is complete."""
    if r.get('members') is not None:
        given = [k for k in ('container', 'user', 'src_uid', 'src_gid') if r.get(k) not in (None, '')]
        if given:
            return 'members cannot be combined with %s' % ', '.join(given)
        if r.get('state', 'present') == 'present' and r.get('src') in (None, ''):
            return 'state is present but src is missing'
        return None
    missing = [k for k in ('container', 'dest') if r.get(k) in (None, '')]
    if r.get('state', 'present') == 'present':
        missing += [k for k in ('src', 'user') if r.get(k) in (None, '')]
    if missing:
        return 'missing %s' % ', '.join(missing)
    return None


def requests_of(p):
    """The requests of lxc_share's parameters p, and whether they are a batch (shares, or a team share given at the
    top: one share per container and dest); ShareError naming what is missing or conflicting."""
    batch = p.get('shares') is not None or p.get('members') is not None
    if p.get('shares') is None:
        missing = [k for k in ('src', 'user') if p.get('members') is None and p.get('state', 'present') == 'present'
                   and p.get(k) in (None, '')]
        if missing:
            raise ShareError('state is present but all of the following are missing: %s' % ', '.join(missing))
        problem = check_request(p) if p.get('members') is not None else None
        if problem:
            raise ShareError(problem)
    else:
        for i, r in enumerate(p['shares']):
            problem = check_request(r)
            if problem:
                raise ShareError('shares[%d] (dest %s): %s' % (i, r.get('dest'), problem))
    if p.get('shares') is None and p.get('exclusive', 'none') != 'none':
        raise ShareError('exclusive=%s needs shares' % p['exclusive'])
    owner = p.get('owner', 'task')
    if not isinstance(owner, str) or not re.match(r'^[a-z0-9_-]{1,32}$', owner):
        raise ShareError('owner %r is not a word of 1 to 32 lowercase letters, digits, - or _' % (owner,))
    requests = [dict(r) for r in p['shares']] if p.get('shares') is not None else \
        [dict((k, p.get(k)) for k in SHARE_SPEC)]
    for r in requests:
        r['owner'] = owner
    return requests, batch


def containers_of(request):
    """The containers a request names: its container, or those of its members."""
    if request.get('members') is not None:
        return [m.get('container') for m in request['members'] if isinstance(m, dict) and m.get('container')]
    return [request['container']]


class Share(object):
    """One validated request."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def key(self):
        return (self.container.directory, self.dest)


class Requests(object):
    """Checking requests (a mixin of _share.Engine: it uses its container, accounts, thunks, thunks_dir and the
    caches of a pass)."""

    def _rootfs_owner(self, st):
        """(container name, on-disk uid of its root) when st is the rootfs directory of a container of lxcpath."""
        if self._rootfs is None:
            self._rootfs = {}
            try:
                names = os.listdir(self.lxcpath)
            except OSError:
                names = []
            for name in names:
                try:
                    ct = self.container(name)
                except ShareError:
                    continue
                if not ct.rootfs:
                    continue
                try:
                    rst = os.stat(ct.rootfs)
                except OSError:
                    continue
                root_uid = 0 if ct.rootfs_idmapped else ct.root_host_ids()[0]
                self._rootfs[(rst.st_dev, rst.st_ino)] = (name, root_uid)
        return self._rootfs.get((st.st_dev, st.st_ino))

    def _open_src(self, src):
        """Resolve src safely (see _resolve.resolve_src); wherever a container's rootfs lives.

        Each distinct src is resolved once per pass; its fd is kept until close().
        """
        key = posixpath.normpath(src)
        if key not in self._srcs:
            try:
                self._srcs[key] = resolve_src(key, self._rootfs_owner)
            except OSError as e:
                raise ShareError('src %s cannot be opened: %s' % (src, os.strerror(e.errno)))
            self._fds.append(self._srcs[key].fd)
        return self._srcs[key]

    def prepare(self, params):
        """Validate one request (dict of lxc_share parameters); no side effects."""
        name = params.get('container')
        dest = params.get('dest')
        for key in ('container', 'dest', 'src', 'user', 'group'):
            check_text(key, params.get(key))
        for key in ('src_uid', 'src_gid', 'disk_gid'):
            check_id(key, params.get(key))
        if not name:
            raise ShareError('container is required')
        if not dest or not dest.startswith('/'):
            raise ShareError('dest %r is not an absolute path' % (dest,))
        dest = posixpath.normpath(dest)
        if dest == '/':
            raise ShareError('dest / cannot be shared onto')
        container = self.container(name)
        state = params.get('state') or 'present'
        share = Share(container=container, dest=dest, state=state, thunk=self.thunk_path(container, dest),
                      persist=params.get('persist', True), live=params.get('live', True),
                      readonly=bool(params.get('readonly')), src=params.get('src'), user=params.get('user'),
                      group=params.get('group'), idmap=None, entry=None, src_fd=None, created=[],
                      nonempty=params.get('nonempty_dest') or 'warn', nosuid=not params.get('allow_setuid'),
                      team=bool(params.get('members')), setup_src=params.get('setup_src', True) is not False,
                      preflight=None, team_id=params.get('team_id'))
        if state == 'absent':
            return share
        src = params.get('src')
        if not src or not src.startswith('/'):
            raise ShareError('src %r is not an absolute path' % (src,))
        if params.get('user') in (None, '') and not share.team:
            raise ShareError('user is required with state=present')
        where = self._open_src(src)
        src_fd = where.fd
        # Where src really is, from the fd resolved safely, not from the path again.
        if is_inside(os.readlink('/proc/self/fd/%d' % src_fd), self.thunks_dir):
            raise ShareError('src %s is inside the thunks directory %s' % (src, self.thunks_dir))
        st = os.fstat(src_fd)
        if not stat.S_ISDIR(st.st_mode):
            raise ShareError('src %s is not a directory' % src)
        if share.team:
            return self._prepare_team(share, params, where, st)
        if (where.container is not None and params.get('src_uid') is None and st.st_uid == where.root_uid
                and not params.get('allow_root')):
            raise ShareError('src %s belongs to the root of container %s (on-disk uid %d), not to a user of it; '
                             'sharing it would give root\'s files to %s; set src_uid, or allow_root to allow it'
                             % (src, where.container, st.st_uid, params['user']))
        src_uid = st.st_uid if params.get('src_uid') is None else int(params['src_uid'])
        src_gid = st.st_gid if params.get('src_gid') is None else int(params['src_gid'])
        accounts = self.accounts(container)
        uid, gid, user_name = accounts.user(params['user'])
        if params.get('group') not in (None, ''):
            gid, dummy = accounts.group(params['group'])
        if gid is None:
            raise ShareError('user %s of container %s has no primary group in its /etc/passwd; set group'
                             % (params['user'], name))
        host_uid = container.host_id('u', uid)
        host_gid = container.host_id('g', gid)
        idmap = single(src_uid, host_uid, src_gid, host_gid)
        if idmap.involves_root() and not params.get('allow_root'):
            raise ShareError('share of %s to %s:%s maps host root (on-disk %d:%d -> host %d:%d); set allow_root to allow it'
                             % (src, name, dest, src_uid, src_gid, host_uid, host_gid))
        share.__dict__.update(src=src, src_fd=src_fd, idmap=idmap, uid=uid, gid=gid, host_uid=host_uid,
                              host_gid=host_gid, src_uid=src_uid, src_gid=src_gid,
                              entry=_sharetab.entry_of(params, src_uid, src_gid))
        self._preflight(share)
        return share

    def _prepare_team(self, share, params, where, st):
        """A team share in one container (see _team): its idmap from all the members."""
        if where.container is not None:
            raise ShareError('src %s lies in the rootfs of container %s; a team share\'s source must be a host '
                             'directory' % (share.src, where.container))
        members = _team.decode(params['members'])
        disk_gid = st.st_gid if params.get('disk_gid') is None else int(params['disk_gid'])
        if disk_gid == 0 and not params.get('allow_root'):
            raise ShareError('team share of %s: the team\'s group on disk would be gid 0 (root)%s; set disk_gid to the '
                             'team\'s gid' % (share.src, ', the group of src' if params.get('disk_gid') is None else ''))
        idmap, (uid, gid) = _team.idmap_for(self, share.container, members, disk_gid, params.get('group'), st.st_uid,
                                            share.dest, show_authors=bool(params.get('show_authors')))
        share.__dict__.update(src_fd=where.fd, idmap=idmap, uid=uid, gid=gid, src_uid=st.st_uid, src_gid=disk_gid,
                              members=members, entry=_sharetab.entry_of(dict(params, disk_gid=disk_gid)))
        self._preflight(share)
        return share

    def _idmapped_devs(self, dev):
        """Whether the host has an idmapped mount of the filesystem dev (the table read once per pass)."""
        if self._idmapped is None:
            self._idmapped = set(e.dev for e in self.thunks.mounts.entries if e.idmapped)
        return dev in self._idmapped

    def _preflight(self, share):
        """Whether the source's filesystem takes idmapped mounts, probed once per filesystem and pass.

        The probe is what the thunk will do: a detached idmapped clone of the source, never attached.
        A filesystem without support fails the share here, before anything changes (and in check mode).
        """
        real = os.readlink('/proc/self/fd/%d' % share.src_fd)
        under = self.thunks.mounts.containing(real)
        key = under.mount_id if under is not None else None
        if key not in self._probed and under is not None and self._idmapped_devs(under.dev):
            self._probed[key] = None        # an idmapped mount of this filesystem exists: it takes them
        if key not in self._probed:
            try:
                os.close(self.thunks._detached(share.src_fd, share.idmap, False, share.src, under))
                self._probed[key] = None
            except ThunkError as e:
                self._probed[key] = e
        fstype = under.fstype if under is not None else 'unknown'
        where = under.mount_point if under is not None else '?'
        failure = self._probed[key]
        if isinstance(failure, UnsupportedFilesystem):
            raise ShareError('pre-flight: ' + unsupported_text(fstype, share.src, where, explain=True))
        if failure is not None:
            raise ShareError('pre-flight: an idmapped mount of %s (%s, mounted at %s) failed: %s'
                             % (share.src, fstype, where, failure))
        share.preflight = 'idmapped mounts work on %s (%s, mounted at %s)' % (share.src, fstype, where)
