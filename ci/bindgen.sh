#!/usr/bin/env bash
# Regenerate the raw Rust bindings from the patched kernel's installed uapi
# headers with bindgen (installed from crates.io into TOOLS on first use).
#
# Usage: ci/bindgen.sh TOOLS HEADERS_INCLUDE OUTPUT.rs
set -euo pipefail
tools=$1 hdr=$2 out=$3
top=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$tools/bin/bindgen" ]; then
	echo "[bindgen] installing bindgen-cli into $tools" >&2
	cargo install -q --locked --root "$tools" bindgen-cli@0.71.1 >&2
fi
PATH=$tools/bin:$PATH HDR=$hdr "$top/abi-crate/syslet-sys/gen.sh" "$hdr" "$out"
