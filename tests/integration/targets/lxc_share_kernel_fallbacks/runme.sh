#!/usr/bin/env bash
# The code paths of older kernels (no unique mount ids, no statmount, no
# idmap read-back, no idmapped tmpfs) on this machine's kernel, forced with
# LXCEX_SHARE_KERNEL_AS=6.1, on real containers in a lab removed on exit.
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" fallbacks.py "$@"
