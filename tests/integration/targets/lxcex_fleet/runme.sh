#!/usr/bin/env bash
# The fleet playbook over real SSH on three hosts made on this machine (see
# fleet_test.py and ../lxcex_harness/fleet.py); everything is removed on exit.
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" fleet_test.py
