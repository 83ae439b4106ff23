# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of module inputs shared by the modules and the hook program.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.lxcex.share.plugins.module_utils._errors import ShareError


def check_absolute(name, value):
    if not value or not os.path.isabs(value):
        raise ShareError('%s %r is not an absolute path' % (name, value))
    return value


def canonical_target(path):
    """The host path with symlinks of its existing part resolved."""
    return os.path.realpath(os.path.normpath(path))


def is_inside(path, directory):
    """True when path is directory or below it (both canonical)."""
    directory = directory.rstrip('/') or '/'
    return path == directory or path.startswith(directory.rstrip('/') + '/')


MAX_ID = 4294967294  # (uid_t)-1 is "no id"; the kernel takes ids below it


def check_id(name, value):
    """An on-disk uid or gid: None, or a whole number in 0..4294967294."""
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ShareError('%s %r is not a number' % (name, value))
    if number != value and str(number) != str(value).strip() or not 0 <= number <= MAX_ID:
        raise ShareError('%s %r is out of range: ids are whole numbers from 0 to %d' % (name, value, MAX_ID))
    return number


def check_text(name, value):
    """A value written to a path, a config or a sharetab: no NUL byte, no line break."""
    if value is None:
        return value
    text = value if isinstance(value, str) else str(value)
    for bad, what in (('\0', 'a NUL byte'), ('\n', 'a line break'), ('\r', 'a carriage return')):
        if bad in text:
            raise ShareError('%s %r contains %s' % (name, text[:200], what))
    return value


_SIZE = re.compile(r'^[0-9]{1,12}[kKmMgG]?$|^[0-9]{1,3}%$')


def check_thunks_size(value):
    """The size of the thunks tmpfs as tmpfs takes it: a number with k, m or g, or a percentage."""
    if not isinstance(value, str) or not _SIZE.match(value):
        raise ShareError('thunks_size %r is not a tmpfs size (a number with k, m or g, or a percentage, like 1M)'
                         % (value,))
    return value
