#!/usr/bin/env bash
# Installs what lxcex.share's demo and tests need on a fresh Debian machine and
# puts the pinned Python tools on PATH.  Sourced by scripts/demo.sh and
# scripts/test.sh; safe to run again (it only installs what is missing).
set -euo pipefail
LXCEX_ROOT=${LXCEX_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
LXCEX_VENV=${LXCEX_VENV:-$LXCEX_ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

apt_needed=()
# sudo and libwrap0 (a library of sshd) for the fleet test's hosts, which are entered over SSH as a sudo user.
for pkg in lxc busybox-static uidmap util-linux e2fsprogs shellcheck python3-apt sudo libwrap0 openssh-client; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || apt_needed+=("$pkg")
done
if [ ${#apt_needed[@]} -gt 0 ]; then
  echo "bootstrap: installing ${apt_needed[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${apt_needed[@]}" >/dev/null
fi

# The fleet test's hosts run their own sshd on loopback ports.  Its files are unpacked
# into the venv, not installed: no maintainer script runs and no sshd starts on this machine.
LXCEX_OPENSSH="$LXCEX_VENV/openssh"
if [ ! -x "$LXCEX_OPENSSH/usr/sbin/sshd" ] || [ ! -x "$LXCEX_OPENSSH/usr/lib/openssh/sftp-server" ]; then
  echo "bootstrap: unpacking openssh-server into $LXCEX_OPENSSH"
  debs=$(mktemp -d)
  chmod 755 "$debs"
  (cd "$debs" && { apt-get download -q openssh-server openssh-sftp-server >/dev/null 2>&1 \
     || { apt-get update -q >/dev/null && apt-get download -q openssh-server openssh-sftp-server >/dev/null; }; })
  mkdir -p "$LXCEX_OPENSSH"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$LXCEX_OPENSSH"; done
  rm -rf "$debs"
fi
export LXCEX_OPENSSH

# The team test's FUSE source (a FUSE filesystem without idmap support): bindfs and the libfuse2 it
# links, unpacked into the venv the same way; it runs only as the test's own mount.
LXCEX_BINDFS="$LXCEX_VENV/bindfs"
if [ ! -x "$LXCEX_BINDFS/usr/bin/bindfs" ] || [ ! -e "$LXCEX_BINDFS/lib/x86_64-linux-gnu/libfuse.so.2" ]; then
  echo "bootstrap: unpacking bindfs into $LXCEX_BINDFS"
  debs=$(mktemp -d)
  chmod 755 "$debs"
  (cd "$debs" && { apt-get download -q bindfs libfuse2 >/dev/null 2>&1 \
     || { apt-get update -q >/dev/null && apt-get download -q bindfs libfuse2 >/dev/null; }; })
  mkdir -p "$LXCEX_BINDFS"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$LXCEX_BINDFS"; done
  rm -rf "$debs"
fi
export LXCEX_BINDFS

# Unprivileged containers started by root take their ids from root's ranges.
for f in /etc/subuid /etc/subgid; do
  grep -q '^root:' "$f" 2>/dev/null || echo 'root:100000:1000000000' >> "$f"
done

req="$LXCEX_ROOT/scripts/requirements.txt"
stamp="$LXCEX_VENV/.requirements"
if [ ! -x "$LXCEX_VENV/bin/python" ] || ! cmp -s "$req" "$stamp"; then
  echo "bootstrap: creating $LXCEX_VENV"
  "$PYTHON" -m venv "$LXCEX_VENV"
  "$LXCEX_VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
export PATH="$LXCEX_VENV/bin:$PATH"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_DEPRECATION_WARNINGS=false

# The collection as Ansible finds it: a symlink in a private collections path.
LXCEX_COLLECTIONS=${LXCEX_COLLECTIONS:-$LXCEX_VENV/collections}
mkdir -p "$LXCEX_COLLECTIONS/ansible_collections/lxcex"
ln -sfn "$LXCEX_ROOT" "$LXCEX_COLLECTIONS/ansible_collections/lxcex/share"
export ANSIBLE_COLLECTIONS_PATH="$LXCEX_COLLECTIONS"
