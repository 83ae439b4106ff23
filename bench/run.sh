#!/usr/bin/env bash
# The benchmark of lxcex.share (issue: performance at fleet scale).
# Usage: bash bench/run.sh [--reps N] [--sizes 10,100,500,1000] [--per-process-max N] [--loop-max N] [--write-results]
# It installs what it needs (scripts/bootstrap.sh), makes its own containers
# and removes everything it made when it ends.
set -euo pipefail
LXCEX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$LXCEX_ROOT/scripts/bootstrap.sh"
exec python "$LXCEX_ROOT/bench/bench.py" "$@"
