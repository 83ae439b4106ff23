#!/usr/bin/env bash
# The role on two inventory hosts, simulated on this machine with separate
# lxcpaths, thunks directories and hook programs, run with forks=2.  Real
# unprivileged busybox containers; everything is removed on exit.
set -eu
cd "$(dirname "$0")"
T=/var/tmp/lxcex-role-$$-$RANDOM
export LXCEX_T=$T
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false
PB=(ansible-playbook -i inventory.yml -e "t=$T")

cleanup() {
  "${PB[@]}" cleanup.yml > "$T-cleanup.log" 2>&1 || { cat "$T-cleanup.log"; exit 1; }
  rm -f "$T-cleanup.log" inventory.yml
}
trap cleanup EXIT

# recap HOST LOG: the PLAY RECAP line of HOST
changed_of() { sed -n "s/^$1 *: .*changed=\([0-9]*\).*failed=\([0-9]*\).*/\1 \2/p" "$2"; }
step() { echo; echo "=== $*"; }

mkdir -p "$T"
cat > inventory.yml <<INV
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  children:
    lxc_hosts:
      hosts:
        h1: {hdir: "$T/h1", base: 1500000}
        h2: {hdir: "$T/h2", base: 1700000}
INV
"${PB[@]}" setup.yml

step "check mode on fresh hosts changes nothing"
"${PB[@]}" --check --diff converge.yml | tee "$T/check.log"
"${PB[@]}" fresh.yml

step "converge both hosts in parallel (forks=2)"
"${PB[@]}" -f 2 converge.yml | tee "$T/run1.log"
for h in h1 h2; do [ "$(changed_of $h "$T/run1.log" | cut -d' ' -f2)" = 0 ]; done

step "second run: zero changes"
"${PB[@]}" -f 2 converge.yml | tee "$T/run2.log"
for h in h1 h2; do [ "$(changed_of $h "$T/run2.log")" = "0 0" ] || { echo "$h changed on the second run"; exit 1; }; done

step "check mode after convergence: zero changes"
"${PB[@]}" -f 2 --check converge.yml | tee "$T/run3.log"
for h in h1 h2; do [ "$(changed_of $h "$T/run3.log")" = "0 0" ] || { echo "$h: check mode reports changes"; exit 1; }; done

step "live on the running container, only recorded on the stopped one"
"${PB[@]}" -e phase=converged verify.yml

step "the stopped container gets its shares at start, by the hook"
"${PB[@]}" -e action=start actions.yml
"${PB[@]}" -e phase=all verify.yml

step "lxc-stop / lxc-start with no Ansible"
"${PB[@]}" -e action=restart actions.yml
"${PB[@]}" -e phase=all verify.yml

step "simulated reboot: containers stopped, thunks and the tmpfs unmounted, then started"
"${PB[@]}" -e action=reboot actions.yml
"${PB[@]}" -e phase=all verify.yml

step "a share removed from the inventory is removed live and from the sharetab, and stays gone"
"${PB[@]}" -f 2 -e lxcex_test_removed=true converge.yml
"${PB[@]}" -e phase=removed verify.yml
"${PB[@]}" -e action=restart actions.yml
"${PB[@]}" -e phase=removed verify.yml

step "the manual command and list"
"${PB[@]}" manual.yml

step "a broken share: logged and started by default, start refused with strict"
"${PB[@]}" strict.yml

step "source data intact"
"${PB[@]}" -e phase=final verify.yml
echo "lxcex_share_role: all steps passed"
