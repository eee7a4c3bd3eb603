#!/usr/bin/env bash
# Installs mamba-ssm 2.3.2.post1 (built without its CUDA extensions: its Mamba2 SSD kernels are Triton) into
# DIR with --target, as the *reference* that tests and GPU benchmarks compare biomamba against. It is never a
# dependency of biomamba itself: put DIR on PYTHONPATH in the process that needs it.
#
#   bash scripts/mamba-ssm-reference.sh DIR [PYTHON]
#
# On a CPU machine this is enough to build mamba-ssm's models and load checkpoints with its own
# MambaLMHeadModel.from_pretrained (the contract tests); its kernels need a CUDA GPU.
# Two fixes are applied because mamba-ssm 2.3.2 imports a CUDA extension unconditionally (fixed upstream,
# unreleased): a plain __init__ and `selective_scan_cuda = None`. causal-conv1d has no CUDA-free build: use the
# Mamba2 layer with use_mem_eff_path=False (the conv then runs as nn.Conv1d).
set -euo pipefail
DIR=${1:?usage: mamba-ssm-reference.sh DIR [PYTHON]}
PY=${2:-python3}
VERSION=2.3.2.post1
STAMP="$DIR/.complete-$VERSION-2"  # -2: the install that drops the stale bytecode
if [ -f "$STAMP" ]; then exit 0; fi
rm -rf "$DIR" && mkdir -p "$DIR"
WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT
# --no-build-isolation: mamba-ssm's setup.py imports torch; the caller's environment has it
MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE \
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" "mamba-ssm==$VERSION"
"$PY" -m pip install -q --no-deps --target "$DIR" "$WHEELS"/mamba_ssm-*.whl "triton==3.9.0" "einops>=0.7"
echo "__version__ = \"$VERSION\"" > "$DIR/mamba_ssm/__init__.py"
sed -i 's/^import selective_scan_cuda/selective_scan_cuda = None/' "$DIR/mamba_ssm/ops/selective_scan_interface.py"
# pip compiled the unpatched files: the patched line has the same length and may have the same mtime second,
# so Python would keep running the stale bytecode
find "$DIR/mamba_ssm" -name __pycache__ -type d -prune -exec rm -rf {} +
touch "$STAMP"
