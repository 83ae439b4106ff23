#!/usr/bin/env bash
# lxc_share_info and lxcex-share list in every state, module_defaults and
# aliases, and what the modules require (root, Python 3.9), on real
# unprivileged busybox containers in a lab of their own, removed on exit.
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" info.py
