#!/usr/bin/env bash
# What differs between kernels, on the running one (scripts/kernels.py runs it in
# the Debian 12 and 13 guests too): the role with private, common, read-only and
# tmpfs shares, what users see, the pre-flight, hooks at restart and after a
# reboot, records lost, removal; real containers in a lab removed on exit.
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" kernel.py
