#!/usr/bin/env bash
# Day 2 on a real host (see day2.py): the role, the hooks and the manual
# command on real unprivileged busybox containers, in a lab of their own that
# is removed on exit.  migration.py takes over a host set up with the real
# original lxcex-share (skipped, saying why, when ../shared is absent).
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
py="${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}"
rc=0
"$py" day2.py || rc=1
"$py" migration.py || rc=1
exit $rc
