#!/usr/bin/env bash
# Install the Debian packages the build, the tests and the benchmarks need.
# Idempotent: only missing packages are installed.  Usage: ci/deps.sh [--no-kernel-source]
set -euo pipefail

pkgs=(
	make gcc libc6-dev git file cpio xz-utils rsync python3 perl
	flex bison bc libelf-dev libssl-dev dwarves ccache   # kernel build
	libclang-dev clang                                   # bindgen
	qemu-system-x86                                      # the guest
)
[ "${1:-}" = "--no-kernel-source" ] || pkgs+=(linux-source-6.12)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "[deps] all present"; exit 0; }

if [ "$(id -u)" != 0 ]; then
	echo "[deps] missing packages: ${missing[*]}" >&2
	echo "[deps] run as root, or install them with: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "[deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[deps] done"
