"""GPU sweep throughput for issue 6 (run on a machine with a GPU; float32 and float64).

    python benchmarks/gpu.py [--epochs 200] [--Ks 32768,1048576] [--chunk 32768]
                             [--only float32:empirical,...] [--out benchmarks/results/gpu.json]

Sweeps of the Section 4.2 problem (sigmoid DEQ, n = 1000 samples, and the
population risk on 128 Gauss-Legendre nodes) for each K, through
``sideq.sweep.run_sweep`` exactly as ``sideq sweep`` runs them (chunked,
summaries only).  K is a multiple of the chunk, so one compilation per (dtype,
risk) serves every K and the larger K are timed without a warm-up call.
Prints and saves (after every measurement) sample-steps per second
(K x epochs x n / s) with the device's name.  The issue's target is >= 1e11
sample-steps/s in float32.  Not run on CPU (it would take hours).
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
    parser.add_argument("--Ks", default="32768,1048576")
    parser.add_argument("--chunk", type=int, default=32768)
    parser.add_argument(
        "--only",
        default="float32:empirical,float64:empirical,float32:population,float64:population",
        help="dtype:risk pairs, in order",
    )
    args = parser.parse_args()
    if jax.default_backend() == "cpu":
        raise SystemExit("benchmarks/gpu.py: no GPU visible to JAX (jax.default_backend() == 'cpu')")
    report = {"machine": machine(), "device": str(jax.devices()[0].device_kind), "results": []}
    for pair in args.only.split(","):
        dtype, risk = pair.split(":")
        for i, K in enumerate(map(int, args.Ks.split(","))):
            r = bench_sweep(K, args.epochs, risk=risk, dtype=dtype, chunk=min(args.chunk, K), warmup=i == 0)
            compile_s = "" if r["compile_s"] is None else f", compile {r['compile_s']:.1f} s"
            print(
                f"{r['name']}, chunk {r['chunk']}: {r['sample_steps_per_s']:.3g} sample-steps/s "
                f"({r['wall_s']:.2f} s{compile_s}; failed runs {r['failed_runs']})",
                flush=True,
            )
            report["results"].append(r)
            if args.out:
                with open(args.out, "w") as fh:
                    json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
