# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of module inputs shared by the modules and the hook program.

This is a private module_util of lxcex.share; its API may change at any time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

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
