#!/usr/bin/env bash
# tools/gpu_check.sh -- reidlib's prepared GPU check (issue 16): one command on a machine with an NVIDIA GPU.
#
#   bash tools/gpu_check.sh [more arguments of `python -m reidlib bench gpu`, e.g. --sections methods,ddp]
#
# 1. finds Python (.venv/bin/python, else python3) and checks that it imports torch, torchvision
#    and reidlib (from this checkout) -- it installs NOTHING; a missing package is named, with what to bring;
# 2. checks that nvidia-smi works and that torch sees the GPU;
# 3. runs   python -m reidlib bench gpu --json results/bench/gpu_<gpu-name-slug>.json --budget-s $BUDGET_S
#    under a hard limit of BUDGET_S + 60 s (the bench skips what does not fit its budget, and rewrites
#    the JSON after every section, so even a killed run leaves its figures).
# Commit the JSON it writes.  What each section measures: reidlib/bench/gpu.py.
#
# Environment: BUDGET_S (seconds, default 420: about 7 minutes, so that a second try fits in 15),
#              GPU_CHECK_JSON (the output file, default results/bench/gpu_<gpu-name-slug>.json).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || { echo "gpu_check: cannot cd to the repository root" >&2; exit 2; }

BRING="Python >= 3.10 with torch (a CUDA build), torchvision, numpy, pillow, safetensors and tqdm (requirements.txt)"

if [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
elif command -v python3 >/dev/null 2>&1; then
    PY=python3
else
    echo "gpu_check: no Python found (neither .venv/bin/python nor python3); bring $BRING" >&2
    exit 3
fi

# -- 1. the packages (imported from the repository root, so reidlib is this checkout's)
missing=$("$PY" - <<'EOF'
import importlib
missing = []
for module, package in [("torch", "torch"), ("torchvision", "torchvision"), ("numpy", "numpy"),
                        ("PIL", "pillow"), ("safetensors", "safetensors"), ("tqdm", "tqdm")]:
    try:
        importlib.import_module(module)
    except Exception as e:  # noqa: BLE001
        missing.append(f"{package} (import {module}: {type(e).__name__}: {e})")
if not missing:
    try:
        import reidlib.bench.gpu  # noqa: F401
        import reidlib.data.synthpeds  # noqa: F401
        import reidlib.engine.trainer  # noqa: F401
        from reidlib.methods.registry import METHODS, get_method
        for name in METHODS:
            get_method(name)
    except Exception as e:  # noqa: BLE001
        missing.append(f"reidlib or one of its imports ({type(e).__name__}: {e})")
print("\n".join(missing))
EOF
)
status=$?
if [ $status -ne 0 ] || [ -n "$missing" ]; then
    echo "gpu_check: $PY cannot import what the check needs (nothing was installed):" >&2
    [ -n "$missing" ] && echo "$missing" | sed 's/^/  - /' >&2
    echo "bring: $BRING; e.g. wheels for this Python installed offline with" >&2
    echo "  $PY -m pip install --no-index --find-links WHEEL_DIR -r requirements.txt" >&2
    exit 3
fi

# -- 2. the GPU
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check: nvidia-smi is not on PATH: no NVIDIA driver here. Without a GPU, test the check with" >&2
    echo "  $PY -m reidlib bench gpu --dry-run --json /tmp/gpu_dry.json" >&2
    exit 4
fi
if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: nvidia-smi fails (driver not loaded, or no GPU visible):" >&2
    nvidia-smi >&2
    exit 4
fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: nvidia-smi sees a GPU but torch does not:" >&2
    "$PY" -c "import torch; print(f'  torch {torch.__version__}, built for CUDA {torch.version.cuda}')" >&2
    nvidia-smi --query-gpu=name,driver_version --format=csv >&2
    echo "bring a torch wheel built for CUDA that this driver supports (see nvidia-smi's 'CUDA Version')" >&2
    exit 4
fi
name=$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 | head -n 1)
slug=$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//')
[ -n "$slug" ] || slug=gpu

# -- 3. the check
BUDGET_S=${BUDGET_S:-420}
out=${GPU_CHECK_JSON:-results/bench/gpu_${slug}.json}
limit=$(( ${BUDGET_S%.*} + 60 ))
cmd=("$PY" -m reidlib bench gpu --json "$out" --budget-s "$BUDGET_S" "$@")
echo "gpu_check: $name; running: ${cmd[*]} (hard limit ${limit} s)"
start=$(date +%s)
if command -v timeout >/dev/null 2>&1; then
    timeout --signal=INT --kill-after=30 "$limit" "${cmd[@]}"
    rc=$?
else
    "${cmd[@]}"
    rc=$?
fi
echo "gpu_check: exit status $rc after $(( $(date +%s) - start )) s"
if [ -f "$out" ]; then
    echo "gpu_check: results in $out -- commit it: git add $out"
else
    echo "gpu_check: no results file was written ($out)" >&2
fi
exit $rc
