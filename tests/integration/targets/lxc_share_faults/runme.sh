#!/usr/bin/env bash
# Faults and careless input on real unprivileged busybox containers (see
# faults.py), in a lab of their own that is removed on exit.
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" faults.py
