#!/usr/bin/env bash
# Install the Debian packages the build, the tests and the benchmarks need.
# Idempotent: only missing packages are installed.
# Usage: ci/deps.sh [--no-kernel-source] [--bench] [--stress]
#   --no-kernel-source  not Debian's linux-source-6.12 (KERNEL_SRC= is used)
#   --bench             also gnuplot-nox, for the plots of `make bench`
#   --stress            also stress-ng, trinity and busybox-static (`make stress`)
set -euo pipefail

kernel_source=1 bench=0 stress=0
for arg in "$@"; do
	case $arg in
	--no-kernel-source) kernel_source=0 ;;
	--bench) bench=1 ;;
	--stress) stress=1 ;;
	*)
		echo "usage: ci/deps.sh [--no-kernel-source] [--bench] [--stress]" >&2
		exit 2
		;;
	esac
done

pkgs=(
	make gcc libc6-dev git file cpio xz-utils rsync python3 perl
	python3-ply python3-git
	flex bison bc libelf-dev libssl-dev dwarves ccache   # kernel build
	libclang-dev clang                                   # bindgen
	qemu-system-x86                                      # the guest
	libcap-dev          # libcap.a: the static seccomp and clone3 selftests
)
[ "$kernel_source" = 0 ] || pkgs+=(linux-source-6.12)
[ "$bench" = 0 ] || pkgs+=(gnuplot-nox)
[ "$stress" = 0 ] || pkgs+=(stress-ng trinity busybox-static)

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
