#!/usr/bin/env bash
# Attacks on lxcex.share by hostile parties (container root, an unprivileged
# user of a source container, an unprivileged host user, sloppy input), each
# on real unprivileged busybox containers, through the real entry points: the
# modules (ansible), the hook program started by lxc-start, and the manual
# command.  attacks.py makes its own lxcpath, id ranges, thunks directory and
# containers and removes them all, also when an attack succeeds.
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" attacks.py
