"""Hand-written epochs of the Section 4.2 sweep: what the hardware allows.

    python benchmarks/epoch_floors.py [--dtype float32] [--C 65536] [--epochs 200]

The gradient-descent arithmetic of sideq's descent step for the sigmoid DEQ
(n = 1000), written by hand with nothing else: no statuses, no safeguards, no
solver loop, sigma only.  Not exact in general (not sideq's code, not shipped as
a solver); the point is the throughput, in sample-steps per second, of C runs
vmapped, against which ``benchmarks/routes.py`` and ``benchmarks/gpu.py`` read.

  V1  two Newton steps from the first-order prediction and sigma at the result
      (three evaluations), warm-start carry (y, omega, s)
  V2  V1 with the carry (y, s) and omega recomputed from the previous theta
  V3  one Newton step, sigma at the result (two evaluations)
  V4  V1 inside a loop of at most one iteration that is never entered
  V5  one Newton step and no sigma at the result: sigma' there is y(1 - y) and
      the residual a bound from the step; carry (y, theta), s recomputed from
      them (one evaluation): the shape of sideq's solver route
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--C", type=int, default=65536, help="runs, vmapped")
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", args.dtype == "float64")
    from sideq.paper.reproduce import EXPERIMENTS, draw

    cfg = EXPERIMENTS["sigmoid"]
    x_np, _ = draw(cfg, 0)
    x = jnp.asarray(x_np[:, 0], args.dtype)
    target = jax.nn.sigmoid(cfg["xi"] * x)
    n, eta = x.shape[0], cfg["eta"]

    def sigma(w):
        s = jax.nn.sigmoid(w)
        return s, s * (1 - s)

    def epoch(theta, carry, variant):
        theta1, theta2 = theta[0], theta[1]
        a = theta1 * x
        if variant in ("V2", "V5"):
            y_prev, sens, theta_prev = carry
            if variant == "V5":
                h = y_prev * (1 - y_prev)
                sens = h / (1 - theta_prev[1] * h)
            omega = theta_prev[0] * x + theta_prev[1] * y_prev
        else:
            y_prev, omega, sens = carry
        y0 = y_prev + sens * (a + theta2 * y_prev - omega)
        y0 = jnp.where(jnp.isfinite(y0), y0, y_prev)
        s0, d0 = sigma(a + theta2 * y0)
        y1 = y0 - (y0 - s0) / (1 - theta2 * d0)
        s1, d1 = sigma(a + theta2 * y1)
        if variant == "V5":  # (s1 unused: XLA drops the second evaluation)
            step = (y0 - s0) / (1 - theta2 * d0)
            y, slope = y1, y1 * (1 - y1)
            res = 0.5 * theta2**2 * (1 / (6 * 3**0.5)) * step**2 + jnp.finfo(y.dtype).eps
        elif variant == "V3":
            y, slope, res = y1, d1, jnp.abs(y1 - s1)
        else:
            y2 = y1 - (y1 - s1) / (1 - theta2 * d1)
            s2, d2 = sigma(a + theta2 * y2)
            y, slope, res = y2, d2, jnp.abs(y2 - s2)
        s = slope / (1 - theta2 * slope)
        r = y - target
        bad = ~(res <= 1e-3)
        zero = jnp.zeros((), y.dtype)
        _, g1, g2, _, n_bad = jax.lax.reduce(
            (r * r, r * s * x, r * s * y, res, bad.astype(jnp.int32)),
            (zero, zero, zero, zero, jnp.zeros((), jnp.int32)),
            lambda u, v: (u[0] + v[0], u[1] + v[1], u[2] + v[2], jnp.maximum(u[3], v[3]), u[4] + v[4]),
            (0,),
        )
        grad = 2 * jnp.stack([g1, g2]) / n
        new = (y, s, theta) if variant == "V2" else (y, None, theta) if variant == "V5" else (y, a + theta2 * y, s)
        if variant == "V4":

            def body(state):
                *c, g, _ = state
                return (*c, g, jnp.ones((), bool))

            *new, grad, _ = jax.lax.while_loop(
                lambda st: ~st[-1] & (n_bad > 0), body, (*new, grad, jnp.zeros((), bool))
            )
            new = tuple(new)
        return theta - eta * grad, new

    def run(theta0, variant):
        y0 = jax.nn.sigmoid(theta0[0] * x)
        carry = (
            (y0, jnp.zeros_like(x), theta0)
            if variant == "V2"
            else (y0, None, theta0)
            if variant == "V5"
            else (y0, theta0[0] * x + theta0[1] * y0, jnp.zeros_like(x))
        )

        def step(c, _):
            return epoch(*c, variant), None

        (theta, _), _ = jax.lax.scan(step, (theta0, carry), None, length=args.epochs)
        return theta

    inits = jnp.asarray(np.random.default_rng(1).normal(0.0, 0.1, (args.C, 2)), args.dtype)
    steps = args.C * args.epochs * n
    for variant in ("V1", "V2", "V3", "V4", "V5"):
        fn = jax.jit(jax.vmap(functools.partial(run, variant=variant)))
        jax.block_until_ready(fn(inits))
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(inits))
            best = min(best, time.perf_counter() - t0)
        print(
            f"{jax.devices()[0].device_kind} {args.dtype} C={args.C} x {args.epochs} epochs, {variant}: "
            f"{steps / best:.3g} sample-steps/s ({best:.3f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
