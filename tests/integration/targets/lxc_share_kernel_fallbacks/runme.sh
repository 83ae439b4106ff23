#!/usr/bin/env bash
# The code paths of older kernels (no unique mount ids, no statmount, no
# idmap read-back, no idmapped tmpfs) on this machine's kernel: the scenarios
# of lxc_share_kernel with LXCEX_SHARE_KERNEL_AS=6.1 set for everything they
# start (Ansible and its modules, lxc-start and so the hooks, the command).
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false LXCEX_SHARE_KERNEL_AS=6.1
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" ../lxc_share_kernel/kernel.py
