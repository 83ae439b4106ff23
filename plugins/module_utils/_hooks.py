# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook blocks of containers, taking over from the original lxcex-share, and their removal.

``converge_hooks`` is what the lxc_share_hooks module (and so the role) runs:

- state present: the thunks tmpfs is checked and mounted first (so that a
  refused thunks directory leaves every config untouched), then each config
  gets the marked hook block; lines of the original lxcex-share setup (its
  four hook lines, the rbind lxc.mount.entry of the thunks directory) are
  commented out with a marker after a one-time backup of the config, and the
  copy of the original script that it put into a container's root
  filesystem is reported, never deleted;
- state absent: the blocks are removed (of every container of the lxcpath
  that has one, unless containers are named), the thunks of those
  containers are released and the thunks tmpfs is unmounted when nothing is
  mounted in it any more.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.lxcex.share.plugins.module_utils import _install
from ansible_collections.lxcex.share.plugins.module_utils import _kernel
from ansible_collections.lxcex.share.plugins.module_utils import _lxcconf
from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError
from ansible_collections.lxcex.share.plugins.module_utils._lxc import default_lxcpath
from ansible_collections.lxcex.share.plugins.module_utils._share import Engine, host_spec
from ansible_collections.lxcex.share.plugins.module_utils._validate import check_text, check_thunks_size

DEFAULT_DEADLINE = _lxcconf.DEFAULT_DEADLINE
ORIGINAL_IN_CONTAINER = 'usr/local/bin/lxcex-share'

# The options of lxc_share_hooks; also the keys of the hooks option of lxc_share, less SHARED, which that
# module takes from its own options (containers: those of its shares).
SPEC = dict(
    containers=dict(type='list', elements='str', aliases=['name', 'names']),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    program=dict(type='path', default='/usr/local/bin/lxcex-share'),
    strict=dict(type='bool', default=False),
    backend=dict(type='str', choices=['native', 'mount-idmapped'], default='native'),
    mount_idmapped=dict(type='path'),
    deadline=dict(type='float', default=DEFAULT_DEADLINE),
    log_file=dict(type='path', default=_lxcconf.DEFAULT_LOG_FILE),
    takeover=dict(type='bool', default=True),
    ensure_thunks=dict(type='bool', default=True),
    install=dict(type='bool', default=False),
    code_dir=dict(type='path', default='/usr/local/lib/lxcex-share'),
    python=dict(type='path', default='/usr/bin/python3'),
    host_config=dict(type='path', default='/etc/lxcex-share.conf'),
    **host_spec()
)
SHARED = ('containers', 'lxcpath', 'thunks_dir', 'thunks_size', 'backend', 'mount_idmapped')


def spec(shared=True):
    """A copy of SPEC (without the SHARED keys unless shared)."""
    return dict((k, dict(v)) for k, v in SPEC.items() if shared or k not in SHARED)


def hook_args(p):
    """The options of the hook program in the hook lines."""
    args = ['--thunks-dir', p['thunks_dir'], '--thunks-size', p['thunks_size']]
    if p['backend'] != 'native':
        args += ['--backend', p['backend']]
        if p['mount_idmapped']:
            args += ['--mount-idmapped', p['mount_idmapped']]
    if p['strict']:
        args.append('--strict')
    if p['log_file'] != _lxcconf.DEFAULT_LOG_FILE:
        args += ['--log-file', p['log_file']]
    if p['deadline'] != DEFAULT_DEADLINE:
        args += ['--deadline', '%g' % p['deadline']]
    return args


def _check(p):
    for key in ('program', 'mount_idmapped', 'lxcpath', 'thunks_dir', 'log_file'):
        check_text(key, p[key])
        if p[key] is not None and not p[key].startswith('/'):
            raise ShareError('%s %r is not an absolute path' % (key, p[key]))
    check_thunks_size(p['thunks_size'])
    if not 0 < p['deadline'] <= 3600:
        raise ShareError('deadline %r is not a number of seconds between 0 and 3600' % p['deadline'])
    if p['state'] == 'present' and not p['containers'] and not p.get('install'):
        raise ShareError('containers are needed with state=present (unless install=true)')
    for name in p['containers'] or []:
        check_text('container name', name)
        if not name or '/' in name or name in ('.', '..'):
            raise ShareError('container name %r is not valid' % (name,))


def _with_block(lxcpath):
    try:
        names = sorted(os.listdir(lxcpath))
    except OSError:
        return []
    return [n for n in names if _lxcconf.has_block(os.path.join(lxcpath, n, 'config'))]


def original_copy(engine, name):
    """The copy of the original script in the container's root filesystem, or None (resolved inside the rootfs).

    The config comes from the engine's cache: read once per run.
    """
    try:
        container = engine.container(name)
    except ShareError:
        return None
    if not container.rootfs:
        return None
    try:
        root_fd = os.open(container.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = _kernel.openat2(root_fd, ORIGINAL_IN_CONTAINER, os.O_PATH,
                             _kernel.RESOLVE_IN_ROOT | _kernel.RESOLVE_NO_MAGICLINKS)
        os.close(fd)
        return os.path.join(container.rootfs, ORIGINAL_IN_CONTAINER)
    except (OSError, _kernel.KernelError):
        return None
    finally:
        os.close(root_fd)


def converge_hooks(p, check_mode=False, engine=None):
    """Apply the lxc_share_hooks parameters p; returns the module result (ShareError on failure)."""
    _check(p)
    lxcpath = p['lxcpath'] or default_lxcpath()
    args = hook_args(p)
    present = p['state'] == 'present'
    lines = _lxcconf.block_lines(p['program'], args, strict=p['strict'], log_file=p['log_file']) if present else None
    names = (p['containers'] or []) if (p['containers'] or present) else _with_block(lxcpath)
    takeover = [p['thunks_dir'], _lxcconf.ORIGINAL_THUNKS_DIR] if present and p['takeover'] else None
    result = dict(changed_containers=[], thunks_mounted=False, released_thunks=[], thunks_unmounted=False,
                  disabled={}, original_files=[], warnings=[], diff=[], installed=[], uninstalled=[],
                  code_sha256=None,
                  hook=_lxcconf.hook_command(p['program'], args, strict=p['strict'], log_file=p['log_file']))
    if p.get('install'):
        _install.check_paths(p, installing=present)
        if present:
            # The program first: no hook line may point at a program that does not run.
            done = _install.install(p, check_mode=check_mode)
            result['installed'], result['code_sha256'] = done['files'], done['code_sha256']
            result['diff'].extend(done['diff'])
            _remove_legacy(p, check_mode, result)
    # lxc_share passes its engine, so that one run reads each config and the mount table once.
    own = engine is None
    if own:
        engine = Engine(lxcpath, p['thunks_dir'], p['thunks_size'], check_mode=check_mode)
    try:
        if present and p['ensure_thunks']:
            result['thunks_mounted'] = engine.ensure_thunks_fs()
        for name in names:
            config = os.path.join(lxcpath, name, 'config')
            try:
                changed, before, after, disabled = _lxcconf.ensure(config, lines, check_mode=check_mode,
                                                                   takeover_dirs=takeover)
            except ShareError as e:
                e.partial = result
                raise
            if changed:
                result['changed_containers'].append(name)
                result['diff'].append(dict(before=before, after=after, before_header=config, after_header=config))
            if disabled:
                result['disabled'][name] = disabled
            copy = original_copy(engine, name) if takeover else None
            if copy:
                result['original_files'].append(copy)
                result['warnings'].append(
                    'container %s: %s is the original lxcex-share copied into the container; it is no longer used '
                    'and was left in place (remove it by hand if you wish)' % (name, copy))
            if not present:
                result['released_thunks'].extend(engine.release(name))
        if not present:
            result['thunks_unmounted'] = _unmount_thunks_fs(engine, check_mode, result['released_thunks'])
    finally:
        if own:
            engine.close()
    if p.get('install') and not present:
        # The program last: a container started meanwhile still found it.
        result['uninstalled'].extend(_install.uninstall(p, check_mode=check_mode))
        _remove_legacy(p, check_mode, result)
    result['changed'] = bool(result['changed_containers'] or result['thunks_mounted'] or result['released_thunks']
                             or result['thunks_unmounted'] or result['installed'] or result['uninstalled'])
    return result


def _remove_legacy(p, check_mode, result):
    legacy, warning = _install.remove_legacy(p, check_mode=check_mode)
    if legacy:
        result['uninstalled'].append(legacy)
    if warning:
        result['warnings'].append(warning)


def _unmount_thunks_fs(engine, check_mode, released):
    """Unmount the thunks tmpfs when nothing is mounted in it any more. Returns whether it was (or would be).

    In check mode the thunks that would have been released count as gone.
    """
    mounts = engine.thunks.mounts
    if engine.thunks_tmpfs() is None:  # only a thunks tmpfs of ours (or the original's), never another tmpfs
        return False
    gone = set(released) if check_mode else set()
    if [m for m in mounts.below(engine.thunks_dir) if m not in gone]:
        return False
    if not check_mode:
        try:
            _kernel.umount(engine.thunks_dir)
        except _kernel.KernelError as e:
            raise ShareError('cannot unmount the thunks tmpfs %s: %s' % (engine.thunks_dir, e))
    return True
