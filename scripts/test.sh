#!/usr/bin/env bash
# Runs every test of lxcex.share on this machine, as root:
#   sanity (ansible-test, empty ignore files), unit tests, integration tests on
#   real mounts and real LXC containers, ansible-doc of every module, and
#   ansible-lint (production profile).
#   the Molecule scenario of the role, and the demo (the README's main job).
# Usage: bash scripts/test.sh [step ...]
#   (steps: sanity units integration molecule demo doc lint matrix changelog kernels)
#   kernels: integration targets in qemu guests with Debian 12's and 13's kernels (scripts/kernels.py).
#   matrix: ansible-test sanity on every ansible-core the collection claims (a venv each).
set -uo pipefail
LXCEX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$LXCEX_ROOT/scripts/bootstrap.sh"
set +e
# The migration test runs the real original lxcex-share from ../shared (it skips, saying why, without it).
if [ -d "$LXCEX_ROOT/../shared/reference" ]; then
  LXCEX_SHARED=$(cd "$LXCEX_ROOT/../shared" && pwd)
  export LXCEX_SHARED
fi

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(sanity units integration molecule demo doc lint matrix changelog kernels)

# ansible-test runs only from .../ansible_collections/NS/NAME: test a copy of
# the working tree (tracked files and new ones git does not ignore).
stage=$(mktemp -d /tmp/lxcex-share-test.XXXXXX)
coll="$stage/ansible_collections/lxcex/share"
mkdir -p "$coll"
(cd "$LXCEX_ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp -a --parents -t "$coll" 2>/dev/null)
cleanup() {
  if ! grep -qF " $stage" /proc/self/mountinfo; then rm -rf "$stage"; fi
}
trap cleanup EXIT

# Sanity tests that build a venv fetch get-pip.py from a host this machine
# cannot reach; give them a stand-in that bootstraps pip with ensurepip.
pipcache="$HOME/.ansible/test/cache"
mkdir -p "$pipcache"
for v in 23.1.2 23.2.1 23.3.1 24.0 24.2 24.3.1 25.0 25.0.1 25.1 25.1.1 25.2 25.3 26.0; do
  [ -f "$pipcache/get_pip_${v//./_}.py" ] || cat > "$pipcache/get_pip_${v//./_}.py" <<'PY'
import ensurepip, sys
sys.argv = [sys.argv[0]]
ensurepip._main(['--upgrade', '--default-pip'])
PY
done

at=(ansible-test)
pyver=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
passed=0; failed=0; failed_names=()
run() {
  local name=$1; shift
  echo "=== $name: $*"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "=== $name: PASSED ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); failed_names+=("$name"); echo "=== $name: FAILED ($((SECONDS - t0)) s)"
  fi
}

doc_check() {
  local rc=0 m out
  for m in "$LXCEX_ROOT"/plugins/modules/*.py; do
    m=$(basename "$m" .py)
    out=$(ansible-doc "lxcex.share.$m" 2>&1) || { echo "$out"; rc=1; continue; }
    for part in EXAMPLES: 'RETURN VALUES:' OPTIONS; do
      grep -q "$part" <<<"$out" || { echo "ansible-doc lxcex.share.$m: no $part"; rc=1; }
    done
    echo "ansible-doc lxcex.share.$m: $(wc -l <<<"$out") lines, with OPTIONS, EXAMPLES and RETURN VALUES"
  done
  return $rc
}

# The ansible-core releases the collection claims (meta/runtime.yml), each with a controller Python it supports.
CORES=("2.17:3.11" "2.18:3.11" "2.19:3.11" "2.20:3.12")
python_of() {  # python_of 3.12: that Python, from PATH or pyenv (empty when absent)
  local v=$1 p root
  p=$(command -v "python$v" 2>/dev/null || true)
  if [ -z "$p" ] || ! "$p" -c 'import venv' 2>/dev/null; then
    root=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}
    p=""
    for c in "$root"/versions/"$v".*/bin/python"$v"; do [ -x "$c" ] && p=$c; done
  fi
  echo "$p"
}
sanity_matrix() {
  local rc=0 entry core pyv py venv ran=()
  for entry in "${CORES[@]}"; do
    core=${entry%%:*}; pyv=${entry##*:}
    py=$(python_of "$pyv")
    if [ -z "$py" ]; then echo "matrix: no Python $pyv for ansible-core $core"; rc=1; continue; fi
    venv="$LXCEX_ROOT/.venv-core-$core"
    if [ ! -x "$venv/bin/ansible-test" ]; then
      if ! { "$py" -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$core.*"; }; then
        echo "matrix: cannot install ansible-core $core"; rc=1; continue
      fi
    fi
    echo "--- ansible-core $("$venv/bin/ansible" --version 2>/dev/null | sed -n '1s/.*core //; 1s/]//p') with Python $pyv: sanity"
    if (cd "$coll" && PATH="$venv/bin:$PATH" ansible-test sanity --local --python "$pyv" --color no); then
      ran+=("$core/py$pyv")
    else
      rc=1
    fi
  done
  echo "matrix: sanity passed on ansible-core ${ran[*]:-none}"
  return $rc
}

changelog_check() {  # fragments and changelog.yaml lint clean, CHANGELOG.md generated from them
  local before
  before=$(cat "$LXCEX_ROOT/CHANGELOG.md" 2>/dev/null)
  (cd "$LXCEX_ROOT" && antsibull-changelog lint && antsibull-changelog generate) || return 1
  if [ "$before" != "$(cat "$LXCEX_ROOT/CHANGELOG.md")" ]; then
    echo "changelog: CHANGELOG.md was not generated from changelogs/ (now regenerated; commit it)"; return 1
  fi
  echo "changelog: lint clean, CHANGELOG.md up to date"
}

kernels_step() {
  local need=() pkg
  for pkg in qemu-system-x86 cpio xz-utils zstd; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "kernels: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null || return 1
  fi
  python "$LXCEX_ROOT/scripts/kernels.py" "$coll" ${LXCEX_KERNELS:+--kernels "$LXCEX_KERNELS"} \
    ${LXCEX_KERNEL_TARGETS:+--targets "$LXCEX_KERNEL_TARGETS"}
}

for step in "${steps[@]}"; do
  case $step in
    sanity) run sanity bash -c "cd '$coll' && ${at[*]} sanity --local --python $pyver --color no" ;;
    units) run units bash -c "cd '$coll' && ${at[*]} units --local --python $pyver --color no --requirements" ;;
    integration)
      # ansible-test passes no variable of ours to the targets: the path of ../shared goes in a file of the copy.
      [ -z "${LXCEX_SHARED:-}" ] || echo "$LXCEX_SHARED" > "$coll/tests/integration/targets/lxc_share_day2/shared-path"
      # ... and where bootstrap.sh unpacked sshd for the fleet test.
      echo "$LXCEX_OPENSSH" > "$coll/tests/integration/targets/lxcex_fleet/openssh-path"
      echo "$LXCEX_BINDFS" > "$coll/tests/integration/targets/lxc_share_team/bindfs-path"
      run integration bash -c "cd '$coll' && ${at[*]} integration --local --python $pyver --color no --allow-destructive ${LXCEX_TARGETS:-}" ;;
    molecule) run molecule bash -c "cd '$LXCEX_ROOT' && molecule test" ;;
    demo) run demo bash -c "cd '$LXCEX_ROOT' && bash scripts/demo.sh -e demo_cleanup=true" ;;
    doc) run doc doc_check ;;
    matrix) run matrix sanity_matrix ;;
    changelog) run changelog changelog_check ;;
    kernels) run kernels kernels_step ;;
    lint) run lint bash -c "cd '$LXCEX_ROOT' && ansible-lint --profile production \$(ls -d roles playbooks extensions 2>/dev/null)" ;;
    *) echo "unknown step $step"; failed=$((failed + 1)) ;;
  esac
done

echo
[ $failed -eq 0 ] || echo "failed steps: ${failed_names[*]}"
echo "steps: $passed passed, $failed failed"
[ $failed -eq 0 ]
