#!/usr/bin/env bash
# The module, the role and the hook program on every target Python 3.9-3.13
# this machine has (pyenv's or the system's); says which ran.
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" matrix.py
