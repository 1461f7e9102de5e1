#!/usr/bin/env bash
# The GPU path, measured (issues 14 and 17): one script, at most 10 minutes on a CUDA machine
# (parts limited to 120 + 210 + 150 + 60 + 60 s).
#   1. the EoS preset through a real worker on device: cuda (and on cpu, same run);
#   2. the Hessian comparison (bench/hessian_vs_peers.py: project vs PyHessian, eigenthings,
#      curvlinops and eigsh on the CPU's small MLP, where the dense reference fits), then our
#      probes' cost on a ResNet-18-sized model on the GPU;
#   3. the landscape comparison, ResNet-18 section on the GPU (batched vmap path by default);
#   4. the zoo's image presets at full size (ResNet-20; EoS and per-layer neural collapse) on
#      make-demo's images, or on a stored cifar10 under OBS_DATASETS_DIR, and the fp16 +
#      torch.compile tests that only run on CUDA.
# Needs no services: SQLite and the embedded Redis broker (OBS_BENCH_REDIS=redis://… to use one).
# Environments: .venv (the project), .venv-bench and .venv-landscape-bench (the peers; see each
# script's docstring); a missing peer environment skips its part with a message.
# Usage: bash bench/gpu.sh        (from the repository root)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.
PY=.venv/bin/python
REDIS_ARGS=()
[ -n "${OBS_BENCH_REDIS:-}" ] && REDIS_ARGS=(--redis "$OBS_BENCH_REDIS")
OUT=$(mktemp -d)

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "bench/gpu.sh: no CUDA device visible to torch ($("$PY" -c 'import torch; print(torch.__version__)' 2>&1))."
    echo "Nothing was measured; docs/benchmarks.md keeps 'not measured on a GPU'."
    exit 0
fi
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(), '| torch', torch.__version__)"

part() {  # name, python, timeout seconds, command...
    local name=$1 py=$2 limit=$3; shift 3
    if [ ! -x "$py" ]; then echo "[$name] skipped: $py is missing" | tee "$OUT/$name"; return; fi
    echo "== $name"
    timeout "$limit" "$py" "$@" 2>&1 | tee "$OUT/$name"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || echo "[$name] exit $rc (124: over its ${limit} s)" | tee -a "$OUT/$name"
}

part eos "$PY" 120 bench/gpu_eos.py --steps 400 "${REDIS_ARGS[@]}"
part hessian .venv-bench/bin/python 210 bench/hessian_vs_peers.py --device cuda --repeats 1
part landscape .venv-landscape-bench/bin/python 150 -m bench.landscape_vs_loss_landscapes \
    --device cuda --repeats 1 --resnet-points 8 --resnet-batch 64
part eos-resnet "$PY" 60 -m bench.eos_resnet --depth 20 --width 1 --images 0 --lr 0.04 \
    --steps 2000 --every 50 --device cuda
part collapse-resnet "$PY" 60 -m bench.collapse_resnet --depth 20 --width 1 --steps 3000 \
    --device cuda
part precision "$PY" 60 -m pytest -q -p no:cacheprovider tests/unit/test_precision.py -k cuda

echo
echo "| measurement | result |"
echo "|---|---|"
grep -h -E "per step|cpu / cuda" "$OUT/eos" | sed 's/^/| EoS worker | /; s/$/ |/'
grep -h -A12 "ResNet-18" "$OUT/hessian" | grep -E "^\| (λ|top|trace|density)" \
    | sed 's/^| /| Hessian, ResNet-18, cuda: /'
grep -h -E "^- (device|one training step|[0-9]+x[0-9]+ surface|31x31 at)" "$OUT/landscape" \
    | tail -4 | sed 's/^- /| landscape, ResNet-18: /; s/$/ |/'
grep -h -E "^largest|^[0-9]+ s$" "$OUT/eos-resnet" "$OUT/collapse-resnet" 2>/dev/null \
    | sed 's/^/| zoo preset, full size, cuda: /; s/$/ |/'
tail -n 1 "$OUT/precision" 2>/dev/null | sed 's/^/| fp16 + compile tests: /; s/$/ |/'
grep -h "skipped\|exit" "$OUT"/* | sed 's/^/| not measured | /; s/$/ |/'
rm -rf "$OUT"
