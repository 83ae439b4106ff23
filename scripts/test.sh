#!/usr/bin/env bash
# Runs every test of lxcex.share on this machine, as root:
#   sanity (ansible-test, empty ignore files), unit tests, integration tests on
#   real mounts and real LXC containers, the Molecule scenario of the role, the
#   demo (the README's main job), ansible-doc of every module, ansible-lint
#   (production profile), sanity on every ansible-core claimed, the changelog,
#   and the kernel guests.
# Usage: bash scripts/test.sh [step ...]
#   (steps: sanity units integration molecule demo doc lint matrix changelog kernels)
#   kernels: integration targets in qemu guests with Debian 12's and 13's kernels (scripts/kernels.py).
#   matrix: ansible-test sanity on every ansible-core the collection claims (a venv each).
#   LXCEX_TARGETS: integration targets to run (default all); LXCEX_SCENARIOS: scenario titles (parts, comma-separated).
# Around the steps, scripts/hermetic.py makes this host one that already uses lxcex.share with its defaults
# (unless it is one) and checks at the end that the tests left all of it exactly as it was.
# Each step prints its time and 'N passed, M failed, K skipped'; the last line counts every test of every step.
# With CI=true a test that skips fails (the harness), so a skip in CI never passes silently.
set -uo pipefail
LXCEX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LXCEX_ROOT
source "$LXCEX_ROOT/scripts/bootstrap.sh"
set +e
boot_s=$SECONDS
echo "=== bootstrap: $boot_s s"
# The migration test runs the real original lxcex-share from ../shared (it skips, saying why, without it).
if [ -d "$LXCEX_ROOT/../shared/reference" ]; then
  LXCEX_SHARED=$(cd "$LXCEX_ROOT/../shared" && pwd)
  export LXCEX_SHARED
fi
ci=false
case "${CI:-}" in true|1|yes) ci=true ;; esac

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(sanity units integration molecule demo doc lint matrix changelog kernels)

# ansible-test runs only from .../ansible_collections/NS/NAME: test a copy of
# the working tree (tracked files and new ones git does not ignore).
stage=$(mktemp -d /tmp/lxcex-share-test.XXXXXX)
coll="$stage/ansible_collections/lxcex/share"
mkdir -p "$coll"
(cd "$LXCEX_ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp -a --parents -t "$coll" 2>/dev/null)
logs="$stage/logs"
mkdir -p "$logs"
# What the targets are told (ansible-test passes them no variable of ours): ../shared, sshd and bindfs
# unpacked by bootstrap.sh, and whether this is CI.
python - "$coll/tests/integration/targets/lxcex_harness/settings.json" <<PY
import json, sys
json.dump({'shared': '${LXCEX_SHARED:-}', 'openssh': '$LXCEX_OPENSSH', 'bindfs': '$LXCEX_BINDFS',
           'ci': '$ci' == 'true', 'scenarios': '${LXCEX_SCENARIOS:-}'}, open(sys.argv[1], 'w'))
PY
resident="$stage/hermetic.json"
cleanup() {
  python "$LXCEX_ROOT/scripts/hermetic.py" teardown "$resident"
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
tp=0; tf=0; tk=0; times=()
run() {
  local name=$1; shift
  echo "=== $name: $*"
  local t0=$SECONDS rc p f k
  "$@" 2>&1 | tee "$logs/$name.log"
  rc=${PIPESTATUS[0]}
  read -r p f k < <(python "$LXCEX_ROOT/scripts/counts.py" "$name" "$rc" "$logs/$name.log")
  tp=$((tp + p)); tf=$((tf + f)); tk=$((tk + k))
  times+=("$name $((SECONDS - t0)) s")
  if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ]; then
    passed=$((passed + 1)); echo "=== $name: PASSED ($((SECONDS - t0)) s): $p passed, $f failed, $k skipped"
  else
    failed=$((failed + 1)); failed_names+=("$name"); echo "=== $name: FAILED ($((SECONDS - t0)) s): $p passed, $f failed, $k skipped"
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
matrix_venv() {  # matrix_venv CORE PYTHON_VERSION: the venv with that ansible-core (made when missing)
  local core=$1 pyv=$2 py venv
  venv="$LXCEX_ROOT/.venv-core-$core"
  # A venv cannot be moved (its scripts name their Python by path): made in place, marked complete at the end.
  [ -e "$venv/.complete" ] && [ -x "$venv/bin/ansible-test" ] && return 0
  py=$(python_of "$pyv")
  if [ -z "$py" ]; then echo "matrix: no Python $pyv for ansible-core $core"; return 1; fi
  rm -rf "$venv"
  if ! { "$py" -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$core.*" \
          && touch "$venv/.complete"; }; then
    echo "matrix: cannot install ansible-core $core"; return 1
  fi
}
matrix_venvs() {
  local entry
  for entry in "${CORES[@]}"; do matrix_venv "${entry%%:*}" "${entry##*:}"; done
}
sanity_matrix() {
  local rc=0 entry core pyv venv ran=()
  # the venvs were started in the background at the beginning (downloads, while other steps ran)
  # (a step runs in a subshell of the pipe to tee: the background job is not its child, so it is polled)
  if [ -n "${matrix_pid:-}" ]; then
    while kill -0 "$matrix_pid" 2>/dev/null; do sleep 2; done
    grep -v '^WARNING: Location' "$logs/matrix-venvs.log"
  fi
  for entry in "${CORES[@]}"; do
    core=${entry%%:*}; pyv=${entry##*:}
    venv="$LXCEX_ROOT/.venv-core-$core"
    matrix_venv "$core" "$pyv" || { rc=1; continue; }
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

changelog_check() {  # fragments and changelog.yaml lint clean, CHANGELOG.md as generated from them (in a copy)
  local copy rc=0
  copy=$(mktemp -d "$stage/changelog.XXXXXX")
  cp -a "$LXCEX_ROOT/galaxy.yml" "$LXCEX_ROOT/changelogs" "$copy/"
  [ ! -e "$LXCEX_ROOT/CHANGELOG.md" ] || cp -a "$LXCEX_ROOT/CHANGELOG.md" "$copy/"
  (cd "$copy" && antsibull-changelog lint && antsibull-changelog generate) || return 1
  if ! cmp -s "$copy/CHANGELOG.md" "$LXCEX_ROOT/CHANGELOG.md"; then
    echo "changelog: CHANGELOG.md is not what changelogs/ generates; run 'antsibull-changelog generate' and commit it:"
    diff -u "$LXCEX_ROOT/CHANGELOG.md" "$copy/CHANGELOG.md" | head -40
    rc=1
  else
    echo "changelog: lint clean, CHANGELOG.md up to date (checked in a copy, nothing written)"
  fi
  return $rc
}

integration_step() {  # every target (each one after a failure too); lxc_share_kernel with -v, as a user might run it
  local rc=0 it=("${at[@]}" integration --local --python "$pyver" --color no --allow-destructive --continue-on-error)
  cd "$coll" || return 1
  if [ -n "${LXCEX_TARGETS:-}" ]; then
    # shellcheck disable=SC2086
    "${it[@]}" $LXCEX_TARGETS
    return
  fi
  "${it[@]}" --exclude lxc_share_kernel || rc=1
  # ansible-test hands -v to runme.sh: a lab target takes no selection from its arguments and runs every scenario.
  "${it[@]}" -v lxc_share_kernel || rc=1
  return $rc
}

kernels_need() {  # what the guests need on this machine: qemu, the initramfs tools, debootstrap, ssh, depmod
  local need=() pkg
  for pkg in qemu-system-x86 cpio xz-utils zstd debootstrap openssh-client e2fsprogs kmod; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "kernels: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 \
      "${need[@]}" >/dev/null || return 1
  fi
}
kernels_prepare() {  # the packages, the kernels and the Debian 13 userland, fetched while the first steps run
  local t0=$SECONDS
  kernels_need && python "$LXCEX_ROOT/scripts/kernels.py" "$coll" --prepare ${LXCEX_KERNELS:+--kernels "$LXCEX_KERNELS"}
  local rc=$?
  echo "kernels: prepared in the background in $((SECONDS - t0)) s (rc=$rc)"
  return $rc
}
kernels_step() {
  if [ -n "${kernels_pid:-}" ]; then  # polled: a step runs in a subshell, the job is not its child
    while kill -0 "$kernels_pid" 2>/dev/null; do sleep 2; done
    cat "$logs/kernels-prepare.log"
  fi
  kernels_need || return 1
  python "$LXCEX_ROOT/scripts/kernels.py" "$coll" ${LXCEX_KERNELS:+--kernels "$LXCEX_KERNELS"} \
    ${LXCEX_KERNEL_TARGETS:+--targets "$LXCEX_KERNEL_TARGETS"}
}

# The matrix venvs, the kernels and the Debian 13 userland download while the first steps run.
for step in "${steps[@]}"; do
  if [ "$step" = matrix ]; then matrix_venvs > "$logs/matrix-venvs.log" 2>&1 & matrix_pid=$!; fi
  if [ "$step" = kernels ]; then kernels_prepare > "$logs/kernels-prepare.log" 2>&1 & kernels_pid=$!; fi
done

hermetic_setup() { python "$LXCEX_ROOT/scripts/hermetic.py" setup "$resident"; }
hermetic_verify() { python "$LXCEX_ROOT/scripts/hermetic.py" verify "$resident"; }
run host hermetic_setup

for step in "${steps[@]}"; do
  case $step in
    sanity) run sanity bash -c "cd '$coll' && ${at[*]} sanity --local --python $pyver --color no" ;;
    units) run units bash -c "cd '$coll' && ${at[*]} units --local --python $pyver --color no --requirements" ;;
    integration) run integration integration_step ;;
    molecule) run molecule bash -c "cd '$LXCEX_ROOT' && molecule test" ;;
    demo) run demo bash -c "cd '$LXCEX_ROOT' && bash scripts/demo.sh -e demo_cleanup=true" ;;
    doc) run doc doc_check ;;
    matrix) run matrix sanity_matrix ;;
    changelog) run changelog changelog_check ;;
    kernels) run kernels kernels_step ;;
    lint) run lint bash -c "cd '$LXCEX_ROOT' && ansible-lint --profile production \$(ls -d roles playbooks extensions 2>/dev/null)" ;;
    *) echo "unknown step $step"; failed=$((failed + 1)); tf=$((tf + 1)) ;;
  esac
done

# Everything a host that uses lxcex.share has is as the tests found it.
run hermetic hermetic_verify

echo
all_times=$(IFS=';'; echo "${times[*]}")
echo "step times: bootstrap ${boot_s} s, ${all_times//;/, }; total $SECONDS s"
[ $failed -eq 0 ] || echo "failed steps: ${failed_names[*]}"
echo "steps: $passed passed, $failed failed"
echo "total: $tp passed, $tf failed, $tk skipped"
[ $failed -eq 0 ] && [ $tf -eq 0 ]
