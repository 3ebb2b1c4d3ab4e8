"""GPU sweep throughput for issue 6 (run on a machine with a GPU; float32 and float64).

    python benchmarks/gpu.py [--epochs 200] [--out benchmarks/results/gpu.json]

Sweeps of the Section 4.2 problem (sigmoid DEQ, n = 1000 samples, and the
population risk on 128 Gauss-Legendre nodes) for K = 10^4, 10^5, 10^6 runs,
through ``sideq.sweep.run_sweep`` exactly as ``sideq sweep`` runs them (chunked,
summaries only).  Prints and saves sample-steps per second (K x epochs x n / s)
with the device's name.  The issue's target is >= 1e11 sample-steps/s in float32
on an H100-class GPU.  Not run on CPU (it would take hours).
"""

from __future__ import annotations

import argparse
import json

import jax

from sideq.bench import bench_sweep, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--out", default=None)
    parser.add_argument("--Ks", default="10000,100000,1000000")
    args = parser.parse_args()
    if jax.default_backend() == "cpu":
        raise SystemExit("benchmarks/gpu.py: no GPU visible to JAX (jax.default_backend() == 'cpu')")
    results = []
    for K in map(int, args.Ks.split(",")):
        for dtype in ("float32", "float64"):
            for risk in ("empirical", "population"):
                r = bench_sweep(K, args.epochs, risk=risk, dtype=dtype)
                print(f"{r['name']}: {r['sample_steps_per_s']:.3g} sample-steps/s "
                      f"({r['wall_s']:.2f} s, compile {r['compile_s']:.1f} s)", flush=True)
                results.append(r)
    report = {"machine": machine(), "device": str(jax.devices()[0].device_kind), "results": results}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
