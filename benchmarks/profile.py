"""Where an epoch's time goes, kernel by kernel (XLA:CPU or GPU), from JAX's profiler.

    python benchmarks/profile.py single          # the Section 4.2 run (n = 1000)
    python benchmarks/profile.py sweep --K 100   # K runs of it, vmapped
    python benchmarks/profile.py sweep --K 100 --steady   # all runs start near the optimum

Prints each fused kernel's time per sample-step and calls per epoch, largest
first.  The profiler adds a fixed cost per kernel launch, so absolute numbers
run high for small kernels (the single run); the ranking is what to read.  For
a faithful single-core figure pin the process: ``taskset -c 1 python ...``.
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np

import sideq
from sideq import xla
from sideq.dynamics import gradient_descent
from sideq.paper.reproduce import EXPERIMENTS, draw
from sideq.risk import empirical_objective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["single", "sweep"])
    parser.add_argument("--K", type=int, default=100, help="runs in the sweep")
    parser.add_argument("--epochs", type=int, default=4000)
    parser.add_argument("--steady", action="store_true", help="start every run near the optimum")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--x32", action="store_true")
    args = parser.parse_args()

    with jax.enable_x64(not args.x32):
        cfg = EXPERIMENTS["sigmoid"]
        x, theta0 = draw(cfg, 0)
        model = sideq.single_index("sigmoid")
        xj = jnp.asarray(x)
        xi = jnp.asarray([cfg["xi"]], xj.dtype)
        objective = empirical_objective(model, xj, sideq.targets(model, xi, xj))

        def one(th0):
            y0 = model.activation(xj[:, 0] * th0[0])
            return gradient_descent(
                model, objective, th0, y0, xi, epochs=args.epochs, eta=cfg["eta"], history=False
            ).theta

        K = 1 if args.what == "single" else args.K
        rng = np.random.default_rng(1)
        inits = rng.normal(0.0, 0.1, (K, 2)) if args.what == "sweep" else np.asarray(theta0)[None]
        if args.steady:
            inits = np.tile([1.65, 0.23], (K, 1))
        th = jnp.asarray(inits, xj.dtype)
        # compiled with the options of sideq's own loops (sideq.xla)
        fn = xla.jit(jax.vmap(one)) if args.what == "sweep" else xla.jit(lambda t: one(t[0]))
        jax.block_until_ready(fn(th))
        t0 = time.perf_counter()
        jax.block_until_ready(fn(th))
        wall = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            with jax.profiler.trace(tmp):
                jax.block_until_ready(fn(th))
            data = jax.profiler.ProfileData.from_file(glob.glob(f"{tmp}/**/*.xplane.pb", recursive=True)[0])
    total, calls = defaultdict(float), defaultdict(int)
    for plane in data.planes:
        for line in plane.lines:
            if line.name == "python" or "PjRt" in line.name:
                continue
            for ev in line.events:
                if ev.name.startswith(("ThunkExecutor", "while", "ThreadpoolListener", "end:", "$")):
                    continue
                total[ev.name] += ev.duration_ns
                calls[ev.name] += 1
    steps = K * args.epochs * x.shape[0]
    print(
        f"{args.what}: K={K} x {args.epochs} epochs x n={x.shape[0]}: {wall:.3f} s without the "
        f"profiler, {wall / steps * 1e9:.2f} ns per sample-step; kernels under the profiler: "
        f"{sum(total.values()) / steps:.2f} ns per sample-step"
    )
    for name, ns in sorted(total.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{ns / steps:8.3f} ns/sample-step  {calls[name] / args.epochs:5.2f} calls/epoch  {name}")


if __name__ == "__main__":
    main()
