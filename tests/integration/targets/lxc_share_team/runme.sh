#!/usr/bin/env bash
# Team shares, nosuid/nodev and the pre-flight, on real unprivileged busybox
# containers in a lab of their own, removed on exit.
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" team.py
