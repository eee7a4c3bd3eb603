#!/usr/bin/env bash
# Installs fla-core 0.6.0 (flash-linear-attention's kernels: pure Triton, a 1.1 MB pure-Python wheel) into DIR
# with --target and without its dependencies, for the tests of biomamba's `kernels: fla` backend. triton and
# einops come from the mamba-ssm reference install (scripts/mamba-ssm-reference.sh: triton 3.9.0), so the
# ~1 GB triton is not installed twice. It is never a dependency of biomamba (users: pip install 'biomamba[fla]').
#
#   bash scripts/fla-reference.sh DIR [PYTHON]
#
# tests/models/test_kernels_parity.py puts DIR and the mamba-ssm reference on PYTHONPATH in a child process and
# runs fla's kernels on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1).
set -euo pipefail
DIR=${1:?usage: fla-reference.sh DIR [PYTHON]}
PY=${2:-python3}
VERSION=0.6.0
STAMP="$DIR/.complete-$VERSION"
if [ -f "$STAMP" ]; then exit 0; fi
rm -rf "$DIR" && mkdir -p "$DIR"
"$PY" -m pip install -q --no-deps --target "$DIR" "fla-core==$VERSION"
touch "$STAMP"
