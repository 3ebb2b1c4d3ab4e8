"""sideq.bench: the baseline, the exactness checks and the figures it reports.

The benchmark's baseline is an independent route (per-sample brentq and the
hand-derived IFT gradient in numpy): it must reproduce sideq's gradient descent
before any timing means anything; and the exactness checks of the fast paths
must pass on a short run.

The figures a benchmark reports are checked without timing anything: they are
computed from a fake clock whose readings are known by construction, the runs
it times are fakes whose outputs are known (the numpy route's trajectory, plus
a known difference where a check must catch one), and its options, repeat
counts and tolerances are compared with what BENCHMARKS.md and the docstrings
promise.  Only the first tests and ``bench_profile`` compile (tiny problems).
"""

import json
import os
import sys
import types
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import XLA_FAST_MATH, fake_cpuinfo, no_file

import sideq
import sideq.dynamics
import sideq.gradient_flow
import sideq.risk
import sideq.sweep
import sideq.train
from sideq import bench, xla
from sideq.paper.reproduce import EXPERIMENTS, draw
from sideq.scalar import one_evaluation
from sideq.status import Status
from sideq.train import descent

SMALL = dict(EXPERIMENTS["sigmoid"], n=16, epochs=6)  # the Section 4.2 problem, shrunk


# ----------------------------------------------------------------------------
# The baseline and the exactness checks, on real runs


def test_baseline_matches_sideq_descent():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, 40)
    y = 1.0 / (1.0 + np.exp(-2.0 * x))
    theta0 = np.array([0.3, -0.7])
    ref = bench.baseline_run(theta0, x, y, 0.1, 3)
    mine = np.asarray(
        descent(sideq.single_index("sigmoid"), theta0, xi=np.array([2.0]), x=x[:, None], eta=0.1, epochs=3).theta[-1]
    )
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
        ys = [brentq(lambda v: v - 1 / (1 + np.exp(-(th[0] * xi + th[1] * v))), 0.0, 1.0, xtol=1e-15) for xi in x]
        return np.mean((np.array(ys) - y) ** 2)

    h = 1e-6
    fd = [(risk(theta + h * e) - risk(theta - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(bench.baseline_epoch(theta, x, y), fd, rtol=1e-6)


def test_exactness_of_fast_paths_short_run():
    out = bench.bench_exactness(30)
    assert out["warm_vs_cold_start_max_abs"] <= 1e-12
    assert out["newton_vs_bisection_max_abs"] <= 1e-10
    assert 0 < out["float32_vs_float64_max_rel"] <= 1e-4


# ----------------------------------------------------------------------------
# The timing helpers, on a fake clock


class Clock:
    """A fake time.perf_counter: it moves only when a fake run says so."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self):
        return self.now

    def advance(self, dt):
        self.now += dt


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=c.perf_counter))
    return c


def test_best_is_the_minimum_of_the_calls(clock):
    costs = iter([3.0, 1.0, 2.0])
    calls = []

    def fn():
        calls.append(1)
        clock.advance(next(costs))
        return len(calls)

    t, out = bench._best(fn, 3)
    assert t == pytest.approx(1.0, rel=1e-12, abs=0) and out == 3 and len(calls) == 3


def _xla_state():
    return xla.cpu_vector_width(), xla.cpu_reassociate()


@pytest.mark.parametrize("before", [None, ("512", "1")])
def test_xla_defaults_are_set_inside_and_restored_after(monkeypatch, before):
    for k in (xla.ENV, xla.ENV_REASSOCIATE):
        monkeypatch.delenv(k, raising=False)
    if before is not None:
        monkeypatch.setenv(xla.ENV, before[0])
        monkeypatch.setenv(xla.ENV_REASSOCIATE, before[1])
    with bench._xla_defaults():
        # XLA's defaults: 256-bit vectors (XLA:CPU's own width) and strict order
        assert _xla_state() == (256, False)
        assert "xla_cpu_enable_fast_math" not in (xla.compiler_options("cpu") or {})
    with pytest.raises(RuntimeError):
        with bench._xla_defaults():
            raise RuntimeError("restored even so")
    for k, v in zip((xla.ENV, xla.ENV_REASSOCIATE), before or (None, None)):
        assert os.environ.get(k) == v


# ----------------------------------------------------------------------------
# bench_single_run, with fake runs on the fake clock


def _sigmoid_numpy_descent(theta0, x1, xi, eta, epochs):
    """The per-sample numpy route: θ(0..epochs) by bench.baseline_epoch."""
    y = 1.0 / (1.0 + np.exp(-xi * x1))
    rows = [np.array(theta0, dtype=np.float64)]
    for _ in range(epochs):
        rows.append(rows[-1] - eta * bench.baseline_epoch(rows[-1], x1, y))
    return np.stack(rows)


class FakeRuns:
    """Fakes of bench.baseline_run and sideq.train.descent that cost known times
    on the fake clock.  descent returns the numpy route's trajectory, plus
    ``check_delta`` after the exactness check's epochs and ``default_delta``
    under XLA's default options."""

    def __init__(self, clock, *, base_costs, run_costs, default_costs, compile_s, check_delta=0.0, default_delta=0.0):
        self.clock, self.compile_s = clock, compile_s
        self.base_costs, self.run_costs, self.default_costs = list(base_costs), list(run_costs), list(default_costs)
        self.check_delta, self.default_delta = check_delta, default_delta
        self.real_baseline_run = bench.baseline_run
        self.base_epochs, self.check_epochs = [], []
        self.timed_runs, self.default_runs, self.compiled = 0, 0, set()

    def baseline_run(self, theta0, x, y, eta, epochs):
        out = self.real_baseline_run(theta0, x, y, eta, epochs)
        self.base_epochs.append(epochs)
        if len(self.base_epochs) > 1:  # the first call is the exactness check
            self.clock.advance(self.base_costs[len(self.base_epochs) - 2] * epochs)
        return out

    def descent(self, model, theta0, *, xi, x, eta, epochs, **kw):
        traj = _sigmoid_numpy_descent(theta0, np.asarray(x)[:, 0], float(np.asarray(xi)[0]), eta, epochs)
        defaults = _xla_state() == (256, False)
        if epochs < SMALL["epochs"]:
            self.check_epochs.append(epochs)
            traj = traj + self.check_delta
        elif defaults:
            traj = traj + self.default_delta
            self.clock.advance(
                self.default_costs[self.default_runs] + (0.0 if defaults in self.compiled else self.compile_s)
            )
            self.default_runs += 1
        else:
            self.clock.advance(self.run_costs[self.timed_runs] + (0.0 if self.timed_runs else self.compile_s))
            self.timed_runs += 1
        self.compiled.add(defaults)
        return types.SimpleNamespace(theta=jnp.asarray(traj))


@pytest.fixture
def small_single(monkeypatch, clock):
    monkeypatch.setitem(EXPERIMENTS, "sigmoid", SMALL)
    monkeypatch.setenv(xla.ENV, "512")  # sideq's own options, whatever the host
    monkeypatch.setenv(xla.ENV_REASSOCIATE, "1")

    def make(**kw):
        fake = FakeRuns(clock, **kw)
        monkeypatch.setattr(bench, "baseline_run", fake.baseline_run)
        monkeypatch.setattr(sideq.train, "descent", fake.descent)
        return fake

    return make


@pytest.mark.parametrize("quick", [True, False])
def test_single_run_figures_from_a_known_clock(small_single, quick):
    E, n = SMALL["epochs"], SMALL["n"]
    turns = 3 if quick else 7
    base = [0.30, 0.20, 0.25, 0.40]  # seconds per epoch, per timing (minimum in the middle)
    runs = [0.50, 0.70, 0.45, 0.60, 0.80, 0.90, 0.65, 0.75]  # warm-up then one per turn
    default = [0.90, 1.20, 0.95, 0.85, 1.00, 1.10, 0.99, 1.30]
    fake = small_single(base_costs=base, run_costs=runs, default_costs=default, compile_s=7.0, default_delta=4e-13)
    r = bench.bench_single_run(quick)
    timed = 3 if quick else 4  # "3 or 4 baseline timings", in turns with sideq's
    assert fake.check_epochs == [3] and fake.base_epochs[0] == 3  # agreement after 3 epochs
    assert len(fake.base_epochs) == 1 + timed and fake.timed_runs == 1 + turns
    b = fake.base_epochs[1]
    assert set(fake.base_epochs[1:]) == {b} and r["baseline_epochs_timed"] == b
    if not quick:  # BENCHMARKS.md: the baseline per epoch from 5 epochs; sideq best of 7
        assert b == 5  # (and 1 + 7 sideq runs: timed_runs above)
    approx = lambda v: pytest.approx(v, rel=1e-9, abs=0)  # noqa: E731
    assert r["baseline_s_per_epoch_each"] == approx(base[:timed])
    assert r["baseline_s_per_epoch"] == approx(min(base[:timed]))
    assert r["baseline_extrapolated_run_s"] == approx(min(base[:timed]) * E)
    best = min(runs[1 : 1 + turns])
    assert r["sideq_run_s"] == approx(best)
    assert r["sideq_s_per_epoch"] == approx(best / E)
    assert r["sideq_compile_s"] == approx(7.0 + runs[0] - best)
    assert r["speedup_per_epoch"] == approx(min(base[:timed]) / (best / E))
    assert r["sample_steps_per_s"] == approx(n * E / best)  # n samples x epochs per second
    assert r["agreement_after_3_epochs"] <= 1e-15
    assert r["xla_options"] == {**XLA_FAST_MATH, "xla_cpu_prefer_vector_width": 512}
    d = r["with_xla_defaults"]
    repeats = 3 if quick else 7
    assert fake.default_runs == 1 + repeats
    assert d["sideq_run_s"] == approx(min(default[1 : 1 + repeats]))
    assert d["speedup_per_epoch"] == approx(min(base[:timed]) / (min(default[1 : 1 + repeats]) / E))
    assert d["theta_difference"] == pytest.approx(4e-13, rel=1e-2, abs=0)
    json.dumps(r)  # the report is JSON


def test_single_run_without_options_skips_the_side_by_side(small_single, monkeypatch):
    monkeypatch.setenv(xla.ENV, "auto")
    monkeypatch.setenv(xla.ENV_REASSOCIATE, "0")
    monkeypatch.setattr(xla, "_cpu_flags", lambda: frozenset({"sse2"}))  # XLA's defaults already
    fake = small_single(base_costs=[0.1] * 3, run_costs=[0.1] * 4, default_costs=[], compile_s=1.0)
    r = bench.bench_single_run(True)
    assert r["xla_options"] is None and r["with_xla_defaults"] is None and fake.default_runs == 0


@pytest.mark.parametrize("delta,raises", [(4e-11, False), (3e-10, True), (np.nan, True)])
def test_single_run_exactness_check(small_single, delta, raises):
    """Documented: the baseline and sideq agree to 1e-10 on θ before any time is reported."""
    small_single(base_costs=[0.1] * 3, run_costs=[0.1] * 4, default_costs=[0.1] * 4, compile_s=1.0, check_delta=delta)
    if raises:
        with pytest.raises(AssertionError, match="disagree after 3 epochs"):
            bench.bench_single_run(True)
    else:
        assert bench.bench_single_run(True)["agreement_after_3_epochs"] == pytest.approx(delta, rel=1e-3, abs=0)


@pytest.mark.parametrize("delta,raises", [(4e-13, False), (3e-12, True), (np.nan, True)])
def test_single_run_xla_defaults_check(small_single, delta, raises):
    """BENCHMARKS.md: sideq's options vs XLA's defaults on θ, tolerance 1e-12."""
    small_single(base_costs=[0.1] * 3, run_costs=[0.1] * 4, default_costs=[0.1] * 4, compile_s=1.0, default_delta=delta)
    if raises:
        with pytest.raises(AssertionError, match="XLA's defaults disagree"):
            bench.bench_single_run(True)
    else:
        gap = bench.bench_single_run(True)["with_xla_defaults"]["theta_difference"]
        assert gap == pytest.approx(delta, rel=1e-2, abs=0)


# ----------------------------------------------------------------------------
# bench_exactness, with fakes of the three routes


BASE_T = np.array([1.5, -0.25])


@pytest.fixture
def fake_routes(monkeypatch):
    state = {}

    def descent(model, theta0, *, xi, x, eta, epochs, backend="jaxopt", **kw):
        if np.asarray(x).dtype == np.float32:
            state["x64_in_float32_run"] = bool(jnp.asarray(1.0).dtype == jnp.float64)
            last = (BASE_T * (1 + state["rel"])).astype(np.float32)
        else:
            last = BASE_T + (state["bisect"] if backend == "optimistix" else 0.0)
        return types.SimpleNamespace(theta=jnp.asarray(np.stack([np.asarray(theta0, last.dtype), last])))

    def gradient_descent(model, objective, theta0, y0, xi, **kw):
        return types.SimpleNamespace(theta=(jnp.asarray(BASE_T) + state["cold"] + 0 * theta0)[None])

    monkeypatch.setattr(sideq.train, "descent", descent)
    monkeypatch.setattr(sideq.dynamics, "gradient_descent", gradient_descent)

    def run(cold=0.0, bisect=0.0, rel=0.0):
        state.update(cold=cold, bisect=bisect, rel=rel)
        return bench.bench_exactness(5), state

    return run


def test_exactness_reports_the_constructed_differences(fake_routes):
    out, state = fake_routes(cold=9e-13, bisect=-4e-11, rel=5e-5)
    assert out["warm_vs_cold_start_max_abs"] == pytest.approx(9e-13, rel=1e-2, abs=0)
    assert out["newton_vs_bisection_max_abs"] == pytest.approx(4e-11, rel=1e-3, abs=0)
    # relative to max|θ| = 1.5 (float32 rounding of θ adds ~1e-7 of the figure)
    assert out["float32_vs_float64_max_rel"] == pytest.approx(5e-5, rel=1e-2, abs=0)
    assert state["x64_in_float32_run"] is False


@pytest.mark.parametrize("which,value", [("cold", 3e-12), ("bisect", 3e-10), ("rel", 3e-4), ("cold", np.nan)])
def test_exactness_tolerances_are_the_documented_ones(fake_routes, which, value):
    """1e-12, 1e-10 and 1e-4 (relative): bench_exactness's docstring and BENCHMARKS.md."""
    with pytest.raises(AssertionError):
        fake_routes(**{which: value})


# ----------------------------------------------------------------------------
# bench_sweep and bench_flow, with fakes of the runs


STATUS_COUNTS = {
    "converged": 3,
    "max_steps": 2,
    "diverged": 1,
    "singular": 4,
    "non_unique": 6,
    "solver_failure": 5,
    "unverified": 2,
}


@pytest.fixture
def fake_sweep(monkeypatch, clock):
    calls = []

    def run_sweep(model, *, xi, inits, eta, epochs, chunk, progress, **kw):
        calls.append(
            dict(kw, inits=inits, eta=eta, epochs=epochs, chunk=chunk, x64=bool(jnp.asarray(1.0).dtype == jnp.float64))
        )
        clock.advance(5.0 if len(calls) == 1 else 2.0)  # compile + run, then run
        # the summary run_sweep writes, made by its own code from runs with these statuses
        status = np.concatenate([np.full(c, Status[name.upper()]) for name, c in STATUS_COUNTS.items()])
        arrays = {k: np.zeros(status.size) for k in ("loss_final", "distance_final", "steps", "non_unique_epochs")}
        summary = sideq.sweep.summarize(
            dict(arrays, status=status.astype(np.int32)), {"K": status.size, "n_eta": 1}, 1.0, status.size, 1
        )
        assert summary["status_counts"] == STATUS_COUNTS
        return types.SimpleNamespace(summary=summary)

    monkeypatch.setattr(sideq.sweep, "run_sweep", run_sweep)
    return calls


@pytest.mark.parametrize("risk,dtype", [("empirical", "float64"), ("population", "float32")])
def test_sweep_figures_from_a_known_clock(fake_sweep, risk, dtype):
    K, epochs = 6, 10
    r = bench.bench_sweep(K, epochs, risk=risk, dtype=dtype, chunk=4)
    assert len(fake_sweep) == 2 and all(c["x64"] is (dtype == "float64") for c in fake_sweep)
    call = fake_sweep[-1]
    assert call["epochs"] == epochs and call["chunk"] == 4 and np.shape(call["inits"]) == (K, 2)
    if risk == "empirical":
        n = np.shape(call["x"])[0]
        assert n == EXPERIMENTS["sigmoid"]["n"] and "dist" not in call
    else:
        n = len(sideq.risk.quadrature_rule(call["dist"])[1])  # the nodes of the law it was given
        assert n == 128 and "x" not in call  # (sideq.uniform's default in d = 1)
    assert r["n"] == n and r["wall_s"] == pytest.approx(2.0) and r["compile_s"] == pytest.approx(3.0)
    assert r["runs_per_s"] == pytest.approx(K / 2.0)
    assert r["sample_steps_per_s"] == pytest.approx(K * epochs * n / 2.0)  # K x epochs x n / s
    if risk == "empirical":  # the 1000 x 4000 sweep of Section 4.2 at the measured rate
        assert r["section_4_2_sweep_s_extrapolated"] == pytest.approx(1000 * 4000 * n / r["sample_steps_per_s"])
    else:
        assert r["section_4_2_sweep_s_extrapolated"] is None
    assert r["failed_runs"] == 1 + 4 + 5  # diverged, singular, solver failure (not non_unique: as the sweep summary)
    assert r["K"] == K and r["epochs"] == epochs and r["dtype"] == dtype and r["chunk"] == 4


def test_sweep_without_warmup_times_the_first_call(fake_sweep):
    r = bench.bench_sweep(3, 10, warmup=False)
    assert len(fake_sweep) == 1 and r["compile_s"] is None and r["wall_s"] == pytest.approx(5.0)


class FlowOut(NamedTuple):
    theta: jax.Array
    status: jax.Array
    steps: jax.Array
    drift: jax.Array


def test_flow_counts_from_a_fake_flow(monkeypatch):
    """The docstring's 10% of starts at |1 - θ2(0)| = 1e-2 converge in the fake,
    which also gives them 100 steps (1 for the others) and a drift of 3 (1)."""

    def gradient_flow(model, objective, t0, xi, **kw):
        near = jnp.abs(jnp.abs(1.0 - t0[1]) - 1e-2) < 1e-9
        return FlowOut(
            theta=t0,
            status=jnp.where(near, 0, 1).astype(jnp.int32),
            steps=jnp.where(near, 100, 1).astype(jnp.int32),
            drift=jnp.where(near, 3.0, 1.0),
        )

    monkeypatch.setattr(sys.modules["sideq.gradient_flow"], "gradient_flow", gradient_flow)
    K = 40
    r = bench.bench_flow(K)
    assert r["converged"] == K // 10  # 10% near the singular line, status CONVERGED = 0
    assert r["steps_median"] == 1.0 and r["steps_max"] == 100
    assert r["worst_conservation_drift"] == 3.0
    assert r["compile_s"] >= 0.0 and r["K"] == K


# ----------------------------------------------------------------------------
# bench_profile, with the solver's iteration counts replaced by known ones


def test_profile_counts_from_known_iterations(monkeypatch):
    """Iterations: 2 for one sample in the first epoch (the only epoch whose warm
    start has zero sensitivity), 1 everywhere else: share = 1/E, mean = 1 + 1/(nE)."""
    E, n = SMALL["epochs"], SMALL["n"]
    monkeypatch.setitem(EXPERIMENTS, "sigmoid", SMALL)
    real_objective = sideq.risk.empirical_objective

    def empirical_objective(model, x, y, **kw):
        obj = real_objective(model, x, y, **kw)
        real_vg = obj.value_and_grad

        def value_and_grad(theta, y0):
            (loss, sol), g = real_vg(theta, y0)
            first = jnp.all(y0.sensitivity == 0)
            extra = (jnp.arange(sol.iterations.shape[0]) == 0) & first
            return (loss, sol._replace(iterations=(1 + extra).astype(sol.iterations.dtype))), g

        obj.value_and_grad = value_and_grad
        return obj

    monkeypatch.setattr(sideq.risk, "empirical_objective", empirical_objective)
    floors = []
    real_best = bench._best

    def best(fn, repeats):
        t, out = real_best(fn, 1)
        floors.append(np.asarray(out))
        return 10.0 * len(floors), out

    monkeypatch.setattr(bench, "_best", best)
    r = bench.bench_profile()
    # (the per-epoch means come back in float32: jnp.mean of the int32 counts)
    assert r["solver_iterations_mean"] == pytest.approx(1 + 1 / (n * E), rel=1e-6, abs=0)
    assert r["epochs_needing_a_second_evaluation_share"] == pytest.approx(1 / E, rel=1e-12, abs=0)
    one = one_evaluation(sideq.single_index("sigmoid"))
    assert one  # the sigmoid takes σ' at the solution from y (bench_profile's docstring)
    assert r["sigma_evaluations_per_sample_step"] == pytest.approx(1 + 1 / (n * E), rel=1e-6, abs=0)
    assert r["batch_sigma_evaluations_per_sample_step"] == pytest.approx(1 + 2 / E, rel=1e-12, abs=0)
    assert r["floor_1_evaluation_run_s"] == 10.0 and r["floor_2_evaluations_run_s"] == 20.0
    # the floors against θ(T) by the numpy route (exact to ~1e-15)
    x, theta0 = draw(SMALL, 0)
    theta_T = _sigmoid_numpy_descent(theta0, x[:, 0], SMALL["xi"], SMALL["eta"], E)[-1]
    gaps = [float(np.max(np.abs(f - theta_T))) for f in floors]
    assert max(gaps) > 10 * min(gaps) + 1e-12  # (the two floors differ from θ(T) by different amounts)
    assert r["floor_theta_difference"] == pytest.approx(max(gaps), rel=1e-4, abs=0)


# ----------------------------------------------------------------------------
# bench_memory (one small child process)


def test_memory_figures_are_resident_megabytes():
    """RSS sampled in the child is at most the child's peak RSS from the kernel
    (getrusage), and the inits array is K x 2 float64s."""
    import resource

    K = 64
    r = bench.bench_memory(K)
    peak_kernel_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    assert 0 < r["rss_first_chunk_mb"] <= r["rss_peak_mb"] <= peak_kernel_mb * 1.01
    assert r["growth_mb"] == pytest.approx(r["rss_peak_mb"] - r["rss_first_chunk_mb"])
    from sideq.sweep import make_inits

    inits = make_inits("normal:0,0.5", K, 2, seed=0)
    assert inits.dtype == np.float64 and r["inits_array_mb"] == pytest.approx(inits.nbytes / 2**20)


# ----------------------------------------------------------------------------
# run(), main(), machine(), cpu_name()


def test_quick_run_is_wired_as_documented(monkeypatch):
    calls = []
    for name in (
        "bench_startup",
        "bench_single_run",
        "bench_profile",
        "bench_exactness",
        "bench_sweep",
        "bench_flow",
        "bench_deq_section42",
        "bench_deq_step",
        "bench_deq_sweep",
    ):
        monkeypatch.setattr(bench, name, lambda *a, _name=name, **k: calls.append((_name, a, k)) or {"name": _name})
    monkeypatch.setattr(bench, "machine", lambda: {"cpu": "fake"})
    report = bench.run(quick=True)
    # BENCHMARKS.md: `sideq bench --quick` times 3 starts of each kind and checks exactness over 400 epochs;
    # the general DEQs' three sections come last, so that the figures before them are timed as before
    assert calls == [
        ("bench_startup", (3,), {}),
        ("bench_single_run", (True,), {}),
        ("bench_profile", (), {}),
        ("bench_exactness", (400,), {}),
        ("bench_sweep", (100, 400), {}),
        ("bench_flow", (100,), {}),
        ("bench_deq_section42", (True,), {}),
        ("bench_deq_step", (True,), {}),
        ("bench_deq_sweep", (32, 100), {}),
    ]
    assert report == {"machine": {"cpu": "fake"}, "results": [{"name": c[0]} for c in calls]}


REPORT = {
    "machine": {
        "cpu": "Fake CPU",
        "cores": 2,
        "jax": "0",
        "backend": "cpu",
        "xla_options": {"xla_cpu_prefer_vector_width": 512},
    },
    "results": [{"name": "first", "xla_options": {"a": 1}, "speed": 1234.5678, "nested": {"k": 3}}],
}


def test_main_json_and_text(monkeypatch, capsys):
    monkeypatch.setattr(bench, "run", lambda quick: REPORT)
    assert bench.main(quick=True, as_json=True) == 0
    assert json.loads(capsys.readouterr().out) == REPORT
    assert bench.main(quick=True, as_json=False) == 0
    out = capsys.readouterr().out
    assert "Fake CPU (2 cores)" in out and "xla_cpu_prefer_vector_width=512" in out
    assert "\nfirst\n" in out and "1235" in out and "nested:" in out and "    k" in out
    assert "  xla_options" not in out  # on the machine line only


def test_cpu_name_from_cpuinfo(monkeypatch):
    monkeypatch.setattr(
        bench, "open", fake_cpuinfo("processor\t: 0\nmodel name\t: Fake: CPU 9 \nflags\t: x\n"), raising=False
    )
    assert bench.cpu_name() == "Fake: CPU 9"
    monkeypatch.setattr(bench, "open", no_file, raising=False)
    assert bench.cpu_name()  # falls back to the platform module


def test_machine_records_the_options_of_the_default_backend(monkeypatch):
    monkeypatch.setenv(xla.ENV, "512")
    monkeypatch.setenv(xla.ENV_REASSOCIATE, "0")
    m = bench.machine()
    assert m["backend"] == jax.default_backend() and len(m["devices"]) == len(jax.devices())
    expected = {"xla_cpu_prefer_vector_width": 512} if jax.default_backend() == "cpu" else None
    assert m["xla_options"] == expected
    json.dumps(m)
