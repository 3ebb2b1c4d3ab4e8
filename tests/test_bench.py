"""The benchmark's baseline is an independent route (per-sample brentq and the
hand-derived IFT gradient in numpy): it must reproduce sideq's gradient descent
before any timing means anything; and the exactness checks of the fast paths
must pass on a short run."""

import numpy as np

import sideq
from sideq import bench
from sideq.train import descent


def test_baseline_matches_sideq_descent():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, 40)
    y = 1.0 / (1.0 + np.exp(-2.0 * x))
    theta0 = np.array([0.3, -0.7])
    ref = bench.baseline_run(theta0, x, y, 0.1, 3)
    mine = np.asarray(descent(sideq.single_index("sigmoid"), theta0, xi=np.array([2.0]),
                              x=x[:, None], eta=0.1, epochs=3).theta[-1])
    np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-14)
    # and it is not a copy of the initial point: three steps moved θ
    assert np.max(np.abs(ref - theta0)) > 1e-3


def test_baseline_gradient_against_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 1.0, 25)
    y = 1.0 / (1.0 + np.exp(-2.0 * x))
    theta = np.array([1.1, 0.4])
    from scipy.optimize import brentq

    def risk(th):
        ys = [brentq(lambda v: v - 1 / (1 + np.exp(-(th[0] * xi + th[1] * v))), 0.0, 1.0, xtol=1e-15)
              for xi in x]
        return np.mean((np.array(ys) - y) ** 2)

    h = 1e-6
    fd = [(risk(theta + h * e) - risk(theta - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(bench.baseline_epoch(theta, x, y), fd, rtol=1e-6)


def test_exactness_of_fast_paths_short_run():
    out = bench.bench_exactness(30)
    assert out["warm_vs_cold_start_max_abs"] <= 1e-12
    assert out["newton_vs_bisection_max_abs"] <= 1e-10
    assert 0 < out["float32_vs_float64_max_rel"] <= 1e-4
