"""Gradient descent on a general DEQ, vmapped over initializations, against the scalar path.

    python benchmarks/general_descent.py [--K 1000] [--epochs 1000] [--n 1000]

The problem: ``sideq.multi_index("tanh", 4)`` (k = 4 outputs) with d = 2 inputs,
n samples X ~ N(0, I), targets f(x) = tanh(Ξx), K random θ(0) (W1 with
N(0, 0.5²) entries, W2 with N(0, 0.3²/k) entries), η = 0.1, full-batch gradient
descent in float64: ``jax.jit(jax.vmap(sideq.general.descent))`` over the K
initializations (``--chunk C``: C at a time, as ``sideq.run_sweep`` vmaps its
chunks), timed after a compile.  Beside it, in the same process, the
scalar path on the same sizes: ``sideq.run_sweep`` on
``sideq.single_index("tanh")`` (θ ∈ ℝ³), d = 2, n, K, epochs.

A sample-step is one sample's equilibrium and gradient in one epoch of one
run (K·n·epochs per sweep).  Prints the machine, both throughputs, their ratio
and the general sweep's wall time extrapolated to K = 1000 and 1000 epochs.
``--skip-scalar`` times the general DEQ alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
if "--devices" in sys.argv:  # (before JAX starts: one CPU device per core)
    jax.config.update("jax_num_cpu_devices", int(sys.argv[sys.argv.index("--devices") + 1]))

import numpy as np  # noqa: E402

import sideq  # noqa: E402
from sideq import general, xla  # noqa: E402
from sideq.status import Status  # noqa: E402


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{name}, {len(os.sched_getaffinity(0))} cores, load average {load:.1f}"


def problem(K: int, n: int, k: int = 4, d: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    xi = rng.normal(size=(k, d))
    inits = {"W1": 0.5 * rng.normal(size=(K, k, d)), "W2": (0.3 / np.sqrt(k)) * rng.normal(size=(K, k, k))}
    return x, xi, inits


def time_general(K: int, n: int, epochs: int, eta: float = 0.1, chunk: int | None = None):
    """``jax.jit(jax.vmap(descent))`` over the K initializations, all at once
    or ``chunk`` runs per call (as ``sideq.run_sweep`` would)."""
    x, xi, inits = problem(K, n)
    model = general.multi_index("tanh", 4)
    chunk = K if chunk is None else min(chunk, K)
    if K % chunk:
        raise SystemExit(f"--chunk {chunk} must divide --K {K}")

    def run(p0):
        tr = general.descent(model, p0, x=x, xi=xi, eta=eta, epochs=epochs)
        return tr.loss[-1], tr.status, tr.residual

    devices = jax.local_device_count()
    if devices > 1:  # (one chunk per device at a time)
        fn = jax.pmap(jax.vmap(run))
        step = chunk * devices
        if K % step:
            raise SystemExit(f"--K {K} must be a multiple of --chunk times --devices ({step})")

        def take(i):
            return jax.tree_util.tree_map(lambda a: a[i : i + step].reshape((devices, chunk) + a.shape[1:]), inits)
    else:
        fn = jax.jit(jax.vmap(run), compiler_options=xla.compiler_options("cpu"))
        step = chunk

        def take(i):
            return jax.tree_util.tree_map(lambda a: a[i : i + step], inits)

    parts = [take(i) for i in range(0, K, step)]
    t0 = time.perf_counter()
    compiled = fn.lower(parts[0]).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = [jax.block_until_ready(compiled(p)) for p in parts]
    wall = time.perf_counter() - t0
    loss, status, residual = (
        np.concatenate([np.asarray(o[i]).reshape(-1, *np.shape(o[i])[1 + (devices > 1) :]) for o in out])
        for i in range(3)
    )
    return {
        "route": general.descent_route(model),
        "K": K,
        "chunk": chunk,
        "devices": devices,
        "n": n,
        "epochs": epochs,
        "wall_s": wall,
        "compile_s": compile_s,
        "sample_steps_per_s": K * n * epochs / wall,
        "statuses": {Status(int(s)).name.lower(): int(np.sum(status == s)) for s in np.unique(status)},
        "max_residual": float(np.nanmax(residual)),
        "loss_final_median": float(np.nanmedian(loss)),
    }


def time_scalar(K: int, n: int, epochs: int, eta: float = 0.1):
    x, _, _ = problem(K, n)
    rng = np.random.default_rng(1)
    xi = rng.normal(size=2)
    inits = np.column_stack([0.5 * rng.normal(size=(K, 2)), 0.3 * rng.normal(size=K)])
    model = sideq.single_index("tanh")

    def run():
        return sideq.run_sweep(model, xi=xi, inits=inits, eta=eta, epochs=epochs, x=x, progress=False)

    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    run()
    wall = time.perf_counter() - t0
    return {
        "K": K,
        "n": n,
        "epochs": epochs,
        "wall_s": wall,
        "compile_s": max(first - wall, 0.0),
        "sample_steps_per_s": K * n * epochs / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--K", type=int, default=1000, help="initializations, vmapped")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument(
        "--chunk", type=int, default=None, help="runs per vmapped call for the general DEQ (default: all K at once)"
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=1,
        help="JAX CPU devices (one per core): the general DEQ's chunks run one per device",
    )
    parser.add_argument("--skip-scalar", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = parser.parse_args()
    out = {"machine": machine(), "jax": jax.__version__, "devices": str(jax.devices())}
    out["general"] = time_general(args.K, args.n, args.epochs, chunk=args.chunk)
    if not args.skip_scalar:
        out["scalar"] = time_scalar(args.K, args.n, args.epochs)
        out["ratio_scalar_over_general"] = out["scalar"]["sample_steps_per_s"] / out["general"]["sample_steps_per_s"]
    out["general_1000_inits_1000_epochs_s"] = 1e9 / out["general"]["sample_steps_per_s"] * args.n / 1000
    out["machine_after"] = machine()
    if args.json:
        print(json.dumps(out))
        return
    g = out["general"]
    print(f"machine: {out['machine']} (after: {out['machine_after'].rsplit(', ', 1)[-1]})")
    print(
        f"general DEQ multi_index(tanh, k=4), d=2, route {g['route']}: K={g['K']} n={g['n']} "
        f"epochs={g['epochs']}: {g['wall_s']:.2f} s (compile {g['compile_s']:.1f} s), "
        f"{g['sample_steps_per_s']:.3g} sample-steps/s; statuses {g['statuses']}, "
        f"max residual {g['max_residual']:.2g}"
    )
    if "scalar" in out:
        s = out["scalar"]
        print(
            f"scalar single_index(tanh), d=2: K={s['K']} n={s['n']} epochs={s['epochs']}: {s['wall_s']:.2f} s, "
            f"{s['sample_steps_per_s']:.3g} sample-steps/s (scalar / general = {out['ratio_scalar_over_general']:.1f})"
        )
    print(
        f"general, 1000 inits x 1000 epochs x n={args.n}: {out['general_1000_inits_1000_epochs_s']:.1f} s "
        f"(from K={g['K']}, {g['epochs']} epochs)"
    )


if __name__ == "__main__":
    main()
