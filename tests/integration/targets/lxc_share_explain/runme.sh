#!/usr/bin/env bash
# lxcex-share explain and lxc_share_info's explain, compared with what the user
# really can do (read, write, create a file, create a directory, execute, as a
# login of theirs inside the container), on real unprivileged busybox
# containers in a lab of their own, removed on exit.
set -eu
cd "$(dirname "$0")"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
exec "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" explain.py
