"""``sideq bench``: speed against a per-sample numpy/scipy baseline, measured in one run.

The baseline is written the way the paper's experiments were (Section 4.2: "we
use Brent's method as the root-finding algorithm"): for every sample and every
epoch, ``scipy.optimize.brentq`` finds the equilibrium and the hand-derived IFT
gradient σ'(ω)/(1 − θ2σ'(ω))·(x, y) (Section 3.2.1) is accumulated in numpy.
It is checked to give the same θ as sideq after a few epochs (1e-10, float64)
before any time is reported.  Timings: best of ``repeats`` after one warm-up
call (compile time reported separately).
"""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np

SECTION_4_2 = dict(model="sigmoid", xi=2.0, n=1000, eta=0.1, epochs=4000, seed=0)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import jax

    devices = jax.devices()
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "python": platform.python_version(),
        "jax": jax.__version__,
    }


def baseline_epoch(theta, x, y):
    """One gradient-descent gradient, per sample: brentq equilibrium + hand IFT gradient."""
    from scipy.optimize import brentq

    t1, t2 = float(theta[0]), float(theta[1])
    grad = np.zeros(2)
    for xi_, yi in zip(x, y):
        # sigmoid range (0, 1) brackets every fixed point
        f = lambda v: v - 1.0 / (1.0 + np.exp(-(t1 * xi_ + t2 * v)))  # noqa: E731
        ys = brentq(f, 0.0, 1.0, xtol=1e-15, rtol=8.9e-16, maxiter=200)
        s = 1.0 / (1.0 + np.exp(-(t1 * xi_ + t2 * ys)))
        ds = s * (1.0 - s)
        k = ds / (1.0 - t2 * ds)
        grad += 2.0 * (ys - yi) * k * np.array([xi_, ys])
    return grad / len(x)


def baseline_run(theta0, x, y, eta, epochs):
    theta = np.array(theta0, dtype=np.float64)
    for _ in range(epochs):
        theta = theta - eta * baseline_epoch(theta, x, y)
    return theta


def _best(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def bench_single_run(quick: bool) -> dict:
    """The Section 4.2 run: sideq steady state vs the per-sample baseline, same machine."""
    import jax

    import sideq
    from sideq.reproduce import EXPERIMENTS, draw
    from sideq.train import descent

    cfg = EXPERIMENTS["sigmoid"]
    x, theta0 = draw(cfg, 0)
    model = sideq.single_index("sigmoid")
    xi = np.array([cfg["xi"]])
    y = 1.0 / (1.0 + np.exp(-cfg["xi"] * x[:, 0]))
    check_epochs = 3
    # Exactness first: the same θ after a few epochs.
    ref = baseline_run(theta0, x[:, 0], y, cfg["eta"], check_epochs)
    mine = np.asarray(descent(model, theta0, xi=xi, x=x, eta=cfg["eta"], epochs=check_epochs).theta[-1])
    agree = float(np.max(np.abs(ref - mine)))
    if agree > 1e-10:
        raise AssertionError(f"baseline and sideq disagree after {check_epochs} epochs: {ref} vs {mine}")
    base_epochs = 2 if quick else 5
    t_base, _ = _best(lambda: baseline_run(theta0, x[:, 0], y, cfg["eta"], base_epochs), 1)
    base_per_epoch = t_base / base_epochs

    epochs = cfg["epochs"]
    t0 = time.perf_counter()
    descent(model, theta0, xi=xi, x=x, eta=cfg["eta"], epochs=epochs).theta.block_until_ready()
    first_call = time.perf_counter() - t0
    t_run, traj = _best(
        lambda: descent(model, theta0, xi=xi, x=x, eta=cfg["eta"], epochs=epochs).theta.block_until_ready(),
        3 if quick else 7,
    )
    sideq_per_epoch = t_run / epochs
    return {
        "name": "section 4.2 single run (sigmoid, n=1000, 4000 epochs, float64)",
        "agreement_after_3_epochs": agree,
        "baseline_s_per_epoch": base_per_epoch,
        "baseline_epochs_timed": base_epochs,
        "baseline_extrapolated_run_s": base_per_epoch * epochs,
        "sideq_run_s": t_run,
        "sideq_s_per_epoch": sideq_per_epoch,
        "sideq_compile_s": first_call - t_run,
        "speedup_per_epoch": base_per_epoch / sideq_per_epoch,
        "sample_steps_per_s": cfg["n"] * epochs / t_run,
        "dtype": str(jax.numpy.zeros(()).dtype),
    }


def run(quick: bool = False) -> dict:
    return {"machine": machine(), "results": [bench_single_run(quick)]}


def main(quick: bool, as_json: bool) -> int:
    report = run(quick)
    if as_json:
        print(json.dumps(report))
        return 0
    m = report["machine"]
    print(f"machine: {m['cpu']} ({m['cores']} cores), jax {m['jax']} on {m['backend']}")
    for r in report["results"]:
        print(f"\n{r['name']}")
        for k, v in r.items():
            if k == "name":
                continue
            print(f"  {k:<32} {v:.4g}" if isinstance(v, float) else f"  {k:<32} {v}")
    return 0
