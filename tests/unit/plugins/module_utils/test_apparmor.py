# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.lxcex.share.plugins.module_utils import _apparmor


def files(tmp_path, first=None, second=None):
    out = []
    for name, text in (('apparmor-current', first), ('current', second)):
        path = tmp_path / name
        if text is not None:
            path.write_bytes(text)
        out.append(str(path))
    return tuple(out)


@pytest.mark.parametrize('text, profile', [
    ('/usr/bin/lxc-start (enforce)', '/usr/bin/lxc-start'),
    ('lxc-ct_</var/lib/lxc>//&:lxc-ct_<-var-lib-lxc>:unconfined (enforce)',
     'lxc-ct_</var/lib/lxc>//&:lxc-ct_<-var-lib-lxc>:unconfined'),
    ('unconfined', 'unconfined'),
    ('', None),
])
def test_profile_of(text, profile):
    assert _apparmor.profile_of(text) == profile


def test_leaves_only_the_profile_of_lxc_start(tmp_path):
    paths = files(tmp_path, b'/usr/bin/lxc-start (enforce)\n\0')
    assert _apparmor.leave_lxc_start(paths) == '/usr/bin/lxc-start (enforce)'
    assert (tmp_path / 'apparmor-current').read_bytes() == b'changeprofile unconfined'


@pytest.mark.parametrize('text', [b'unconfined\n', b'/usr/sbin/other (enforce)\n', b'/usr/bin/lxc-start-x (enforce)'])
def test_other_labels_stay(tmp_path, text):
    paths = files(tmp_path, None, text)
    assert _apparmor.leave_lxc_start(paths) is None
    assert (tmp_path / 'current').read_bytes() == text


def test_without_apparmor(tmp_path):
    assert _apparmor.label(files(tmp_path)) == (None, None)
    assert _apparmor.leave_lxc_start(files(tmp_path)) is None
