#!/usr/bin/env bash
# Regenerate (or, with --check, verify) the raw Rust bindings from the
# patched kernel's installed uapi headers, with the bindgen CLI installed
# from crates.io into TOOLS on first use.
#
# Usage: ci/bindgen.sh [--check] TOOLS HEADERS_INCLUDE
set -euo pipefail
check=()
[ "${1:-}" = "--check" ] && { check=(--check); shift; }
tools=$1 hdr=$2
top=$(cd "$(dirname "$0")/.." && pwd)
version=0.73.2
if ! "$tools/bin/bindgen" --version 2>/dev/null | grep -qx "bindgen $version"; then
	echo "[bindgen] installing bindgen-cli $version into $tools" >&2
	cargo install -q --locked --root "$tools" "bindgen-cli@$version" >&2
fi
BINDGEN=$tools/bin/bindgen "$top/abi-crate/syslet-sys/gen.sh" "${check[@]}" "$hdr"
