#!/usr/bin/env bash
# The collection as users get it: built with ansible-galaxy, installed from
# the tarball, and the role run from the installed copy on a real container.
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" installed.py
