#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, then run the demo
# playbook on the example inventory.  Extra arguments go to ansible-playbook.
set -euo pipefail
LXCEX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$LXCEX_ROOT/scripts/bootstrap.sh"
cd "$LXCEX_ROOT"
exec ansible-playbook -i playbooks/inventory/demo playbooks/demo.yml "$@"
