#!/usr/bin/env bash
# The GPU measurements of BENCHMARKS.md in one go, on a machine with jax (CUDA),
# optax, diffrax and optimistix installed; jaxopt may come as a wheel in .whl/.
# About 6.5 minutes on an H200 (the tests take 3.5 of them).  Writes a log and JSON under ${OUT:-benchmarks/results/gpu}.
set -u
OUT=${OUT:-benchmarks/results/gpu}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
log() { echo "== $(date +%T) $*"; }
{
log env; nvidia-smi -L; python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
log "sweeps through run_sweep (default route), chunk 32768"
timeout 120 python3 benchmarks/gpu.py --out "$OUT/gpu.json"
log "the three routes of a descent step, one chunk"
for dt in float32 float64; do timeout 60 python3 benchmarks/routes.py --dtype $dt; done
log "hand-written epochs"
for dt in float32 float64; do timeout 50 python3 benchmarks/epoch_floors.py --dtype $dt; done
log "sideq bench --quick --json (exactness asserted on the GPU)"
timeout 60 python3 -m sideq.cli bench --quick --json > "$OUT/bench_quick.json"; echo "rc $?"
log "the optimized HLO of the float32 routes (fusions per epoch, for study off the GPU): $OUT/hlo"
XLA_FLAGS="--xla_dump_to=/tmp/sideq-hlo" timeout 60 python3 benchmarks/routes.py --K 4096 --epochs 4 >/dev/null
mkdir -p "$OUT/hlo"; cp /tmp/sideq-hlo/*jit__lambda*after_optimizations.txt "$OUT/hlo/" 2>/dev/null; ls "$OUT/hlo"
log "tests of descent and sweeps on the GPU (one process: -o addopts= drops the xdist workers, which would share the GPU)"
timeout 300 python3 -m pytest -o addopts= -q -x -p no:cacheprovider tests/test_dynamics.py tests/test_sweep.py 2>&1 | tail -5
log done
} 2>&1 | tee "$OUT/log.txt"
