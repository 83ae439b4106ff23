# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The defaults of a host are defined once in code (_thunkfs); what YAML cannot import must say the same."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import yaml

from ansible_collections.lxcex.share.plugins.doc_fragments.host import ModuleDocFragment
from ansible_collections.lxcex.share.plugins.module_utils._share import host_spec
from ansible_collections.lxcex.share.plugins.module_utils._thunkfs import DEFAULT_THUNKS_DIR, DEFAULT_THUNKS_SIZE

ROLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..', 'roles', 'lxcex_share')


def load(*parts):
    with open(os.path.join(ROLE, *parts)) as f:
        return yaml.safe_load(f)


def test_the_role_the_doc_fragment_and_the_argument_spec_say_the_defaults_of_the_code():
    want = {'thunks_dir': DEFAULT_THUNKS_DIR, 'thunks_size': DEFAULT_THUNKS_SIZE}
    fragment = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    defaults = load('defaults', 'main.yml')
    spec = load('meta', 'argument_specs.yml')['argument_specs']['main']['options']
    for key, value in want.items():
        assert host_spec()[key]['default'] == value
        assert str(fragment[key]['default']) == value
        assert str(defaults['lxcex_share_' + key]) == value
        assert str(spec['lxcex_share_' + key]['default']) == value
