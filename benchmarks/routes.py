"""The three routes of a descent step (``sideq.risk._descent_terms``), side by side.

    python benchmarks/routes.py [--K 32768] [--epochs 200] [--dtype float32]

Vmapped, jitted ``gradient_descent`` on the Section 4.2 problem (sigmoid DEQ,
n = 1000, theta(0) ~ N(0, 0.1^2 I)) for K runs in one call, with
``route="straight"``, ``"solve"`` and ``"one"`` in turn; best of 3 after a
compiling call, compiled as sideq compiles its own loops (``sideq.xla``: on a
CPU its options, elsewhere none).  Prints sample-steps per second (K x epochs x n / s) and the
largest difference in theta from the solver's route.  ``route="auto"`` picks
"straight" or "solve" by platform and dtype ("one" only when asked for); this
is the measurement behind that choice.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--K", type=int, default=32768)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", args.dtype == "float64")

    import sideq
    from sideq import xla
    from sideq.dynamics import gradient_descent
    from sideq.paper.reproduce import EXPERIMENTS, draw
    from sideq.risk import empirical_objective

    cfg = EXPERIMENTS["sigmoid"]
    x, _ = draw(cfg, 0)
    model = sideq.single_index("sigmoid")
    xj = jnp.asarray(x, args.dtype)
    xi = jnp.asarray([cfg["xi"]], args.dtype)
    inits = jnp.asarray(np.random.default_rng(1).normal(0.0, 0.1, (args.K, 2)), args.dtype)
    steps = args.K * args.epochs * x.shape[0]
    thetas = []
    routes = ("straight", "solve", "one")
    for route in routes:
        objective = empirical_objective(model, xj, sideq.targets(model, xi, xj), route=route)
        fn = xla.jit(
            jax.vmap(
                lambda t: (
                    gradient_descent(
                        model,
                        objective,
                        t,
                        model.activation(xj[:, 0] * t[0]),
                        xi,
                        epochs=args.epochs,
                        eta=cfg["eta"],
                        history=False,
                    ).theta
                )
            )
        )
        jax.block_until_ready(fn(inits))
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            theta = jax.block_until_ready(fn(inits))
            best = min(best, time.perf_counter() - t0)
        thetas.append(np.asarray(theta))
        print(
            f"{jax.devices()[0].device_kind} {args.dtype} K={args.K} x {args.epochs} epochs, "
            f"route={route}: {steps / best:.3g} sample-steps/s ({best:.3f} s)",
            flush=True,
        )
    for route, theta in zip(routes, thetas):
        if route != "solve":
            print(f"max |theta({route}) - theta(solve)| = {np.max(np.abs(theta - thetas[1])):.2e}")


if __name__ == "__main__":
    main()
