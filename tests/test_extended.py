"""The extended experiments (``sideq.paper.extended``) and their scripts in
``experiments/``, each number against a second route.

``run_all(quick=True)`` takes longer than this suite's budget for one test
(about a minute on 2 cores), so the pieces are tested instead; the smallest
experiment (the explicit neuron) and a small basin are run end to end.

Each experiment's summary -- the numbers a researcher reads -- is also checked
on hand-built trajectories whose answers are known by construction
(``descent``/``flow``/``run_sweep`` replaced by fakes that record how they are
called), against closed forms evaluated in numpy (Gauss–Legendre quadrature of
``numpy.polynomial.legendre``, the sigmoid DEQ's equilibrium by bisection and
Newton, its gradient by Eq. (1)), and against the settings documented in
``experiments/README.md``.  There the figures are drawn but not saved
(``extended._save`` stubbed).
"""

import json
import math
import os
import runpy
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit

import sideq
from sideq.dynamics import Trajectory
from sideq.paper import extended
from sideq.status import Status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GL_X, GL_W = np.polynomial.legendre.leggauss(128)
XQ, WQ = 0.5 * (GL_X + 1), 0.5 * GL_W  # 128-node Gauss–Legendre on [0, 1]
E = np.array([0.0, 1.0])


# --------------------------------------------------------------------------- pieces, and runs end to end


def test_explicit_neuron_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.random((50, 2))
    y = 1 / (1 + np.exp(-(x @ np.array([2.0, -1.0]))))
    theta = np.array([0.3, 0.7])
    g = np.asarray(jax.grad(extended.explicit_neuron_loss)(jnp.asarray(theta), jnp.asarray(x), jnp.asarray(y)))

    def loss_np(t):  # independent numpy loss
        return np.mean((1 / (1 + np.exp(-(x @ t))) - y) ** 2)

    h = 1e-6
    fd = np.array([(loss_np(theta + h * e) - loss_np(theta - h * e)) / (2 * h) for e in np.eye(2)])
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-12)


def test_explicit_neuron_descent_is_plain_gradient_descent():
    rng = np.random.default_rng(1)
    x = rng.random((40, 1))
    y = 1 / (1 + np.exp(-2 * x[:, 0]))
    ths, losses = extended.explicit_neuron_descent(
        jnp.asarray([0.1]), jnp.asarray(x), jnp.asarray(y), jnp.asarray(0.5), 3
    )
    ths, losses = np.asarray(ths), np.asarray(losses)
    assert ths.shape == (4, 1) and losses.shape == (4,)
    t = np.array([0.1])
    for k in range(3):  # by hand: dL/dθ = mean(2 (s - y) s (1 - s) x)
        s = 1 / (1 + np.exp(-(x @ t)))
        assert losses[k] == pytest.approx(np.mean((s - y) ** 2), rel=1e-12)
        t = t - 0.5 * np.mean((2 * (s - y) * s * (1 - s))[:, None] * x, axis=0)
        np.testing.assert_allclose(ths[k + 1], t, rtol=1e-12)
    assert losses[-1] < losses[0]


def test_phase_portrait_field_is_minus_sideq_gradient_and_closed_form():
    thetas = np.array([[0.3, 0.2], [-1.0, 2.5], [2.0, -1.0], [0.5, 1.2]])
    dist = sideq.uniform(0.0, 1.0, 1)
    F = extended.flow_field(sideq.linear(), thetas)
    # closed form of ERRATA.md §1 with E[X^2] = 1/3
    ref = -extended.linear_gradient_closed_form(thetas, 2.0, 1.0 / 3.0)
    np.testing.assert_allclose(F, ref, rtol=1e-10)
    # sigmoid: against central finite differences of sideq's population risk
    model = sideq.single_index("sigmoid")
    th = np.array([1.0, 0.5])
    F = extended.flow_field(model, th[None])[0]
    h = 1e-5
    risk = jax.jit(lambda t: sideq.population_risk(model, t, jnp.asarray([2.0]), dist))  # (one compilation)
    fd = np.array([(float(risk(th + h * e)) - float(risk(th - h * e))) / (2 * h) for e in np.eye(2)])
    np.testing.assert_allclose(F, -fd, rtol=1e-6)


def test_corrected_limit_point_is_on_the_sphere_and_line_on_the_right_side():
    for th0 in [(0.3, 0.2), (0.5, 1.01), (-0.7, 1.6), (0.9, -0.4)]:
        lim, alpha = extended.limit_point(th0, [2.0])
        r0 = math.hypot(th0[0], th0[1] - 1)
        assert math.hypot(lim[0], lim[1] - 1) == pytest.approx(r0)
        assert lim[0] == pytest.approx(2 * alpha) and lim[1] == pytest.approx(1 - alpha)
        assert np.sign(1 - lim[1]) == np.sign(1 - th0[1])  # Lemma 3.2: theta2 stays on its side of 1


def test_limit_point_matches_the_flow():
    from sideq.gradient_flow import flow

    th0 = np.array([0.5, 1.3])
    tr = flow(sideq.linear(), th0, xi=[2.0], dist=sideq.uniform(0.0, 1.0, 1), t1=50.0, gtol=1e-11)
    lim, _ = extended.limit_point(th0, [2.0])
    np.testing.assert_allclose(np.asarray(tr.theta[-1]), lim, atol=1e-8)


def test_step_size_threshold_pieces():
    out = extended.step_size_threshold(2.0, delta1=0.5, delta2=0.5, n_theta1=9, n_theta2=5, nodes=64)
    # gamma = sigma'(z_max), z_max = (1 + delta1)|xi| + M delta2, M = (1/2 + L (1 + delta1)|xi|)/(1 - L delta2)
    M = (0.5 + 0.25 * 1.5 * 2) / (1 - 0.125)
    z = 1.5 * 2 + M * 0.5
    s = 1 / (1 + math.exp(-z))
    assert out["M"] == pytest.approx(M) and out["gamma"] == pytest.approx(s * (1 - s))
    # rho: at theta = (0, 0), y = 1/2, E[(u'(X, 1/2))^2] has min eigenvalue of [[1/3, 1/4], [1/4, 1/4]]
    lmin00 = np.linalg.eigvalsh(np.array([[1 / 3, 1 / 4], [1 / 4, 1 / 4]]))[0]
    assert 0 < out["rho"] <= lmin00 + 1e-12
    assert out["lambda1"] == pytest.approx(2 * out["rho"] * out["gamma"] ** 2 / (1 + 0.125))
    assert out["threshold"] == pytest.approx(out["lambda1"] / (2 * out["lambda2"]))
    assert 0 < out["threshold"] < 1e-2
    # a second route: sideq.paper.theory's rho and fourth-moment sup over the same (printed) Theta
    from sideq.paper import theory as T

    t9 = T.theorem_3_9(
        sideq.single_index("sigmoid"),
        [2.0],
        sideq.uniform(0.0, 1.0, 1),
        delta2=0.5,
        delta1=0.5,
        grid=9,
        region="printed",
    )
    assert out["rho"] == pytest.approx(t9.t38.rho, rel=1e-2)
    assert out["sup_fourth_moment"] == pytest.approx(t9.moment4, rel=1e-2)
    assert out["threshold"] == pytest.approx(t9.threshold, rel=2e-2)


def test_explicit_neuron_experiment_end_to_end(tmp_path):
    res = extended.run_one("explicit_neuron", str(tmp_path), quick=True, epochs=200)
    assert res["settings"]["epochs"] == 200
    for f in res["files"]:
        assert (tmp_path / f.split("/")[-1]).stat().st_size > 1000
    json.dumps(res)  # JSON-able
    for kind in ("deq", "explicit"):
        assert 0 < res["results"][kind]["loss_final"] < 0.05  # from about 0.06 at theta(0)


def test_basin_counts_non_unique_runs_that_reach_the_target(tmp_path):
    # 4 x 4 starts: the top row starts non-unique (θ2 ≥ 4 for the sigmoid),
    # leaves that regime and reaches 1e-6; it must count as reached, and its
    # status is that of its end, not NON_UNIQUE.
    res = extended.run_one("basin", str(tmp_path), quick=True, grid_points=4)
    s = res["sigmoid"]
    assert s["non_unique_reached_1e_6"] >= 1
    assert s["status_counts"].get("non_unique", 0) == 0
    assert s["reached_1e_6"] == 16 and s["fraction_reached_1e_6"] == 1.0
    assert s["epochs_to_1e_6_quantiles"][-1] >= s["epochs_to_1e_6_max_non_unique"]
    json.dumps(res)


def test_mask_outline_is_the_boundary_of_the_cells():
    m = np.zeros((3, 3), bool)
    m[1, 1] = True  # one cell: its four sides
    segs = extended._mask_outline(m, [0, 3, 0, 3])
    assert sorted(tuple(map(tuple, s)) for s in np.asarray(segs).tolist()) == sorted(
        [((1, 1), (1, 2)), ((2, 1), (2, 2)), ((1, 1), (2, 1)), ((1, 2), (2, 2))]
    )
    m[0, 0] = m[1, 0] = True  # an L of three cells (one at the box's corner): perimeter 8
    assert len(extended._mask_outline(m, [0, 3, 0, 3])) == 8


def test_tex_sci_has_no_spaced_minus():
    assert extended._tex_sci(4.03e-4) == r"4.0\times10^{-4}"
    assert extended._tex_sci(12345.0, 2) == r"1.23\times10^{4}"


@pytest.mark.parametrize("kind", ["file", "under_file"])
def test_script_bad_out_is_one_line_exit_2(tmp_path, capsys, kind):
    f = tmp_path / "afile"
    f.write_text("x")
    out = f if kind == "file" else f / "sub"
    assert extended.script_main("explicit_neuron", ["--out", str(out), "--quick"]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and "--out" in lines[0] and "folder" in lines[0]


# --------------------------------------------------------------------------- numpy references and fakes


def _np_equilibrium(t1, t2, x):
    """y = σ(t1 x + t2 y), sigmoid, t2 < 4 (root unique in (0, 1)): bisection, then Newton."""
    t1, t2, x = np.asarray(t1, float), np.asarray(t2, float), np.asarray(x, float)
    a = t1 * x
    lo, hi = np.zeros(np.broadcast(a, t2).shape), np.ones(np.broadcast(a, t2).shape)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        neg = mid - expit(a + t2 * mid) < 0
        lo, hi = np.where(neg, mid, lo), np.where(neg, hi, mid)
    y = 0.5 * (lo + hi)
    for _ in range(3):
        s = expit(a + t2 * y)
        y = y - (y - s) / (1 - t2 * s * (1 - s))
    return y


def _np_risk(theta, xi=2.0):
    """R(θ) = E[(y_θ(X) − σ(ξX))²], X ~ Unif[0, 1]; θ of shape (..., 2)."""
    theta = np.asarray(theta, float)
    t1, t2 = theta[..., 0:1], theta[..., 1:2]
    y = _np_equilibrium(t1, t2, XQ)
    return ((y - expit(xi * XQ)) ** 2) @ WQ


def _np_grad(theta, xi=2.0):
    """∇R by Eq. (1): 2 E[(y − f) σ'(w)/(1 − θ2 σ'(w)) (X, y)], w = θ1 X + θ2 y."""
    theta = np.asarray(theta, float)
    t1, t2 = theta[..., 0:1], theta[..., 1:2]
    y = _np_equilibrium(t1, t2, XQ)
    s = expit(t1 * XQ + t2 * y)
    k = s * (1 - s) / (1 - t2 * s * (1 - s))
    r = y - expit(xi * XQ)
    return 2 * np.stack([(r * k * XQ) @ WQ, (r * k * y) @ WQ], -1)


def _np_linear_grad(theta, xi=2.0, m2=1.0 / 3.0):
    """∇R of the linear DEQ written out here: R = m2 (θ1/(1 − θ2) − ξ)²."""
    t1, t2 = theta[..., 0], theta[..., 1]
    d = t1 / (1 - t2) - xi
    return np.stack([2 * m2 * d / (1 - t2), 2 * m2 * d * t1 / (1 - t2) ** 2], -1)


def _traj(theta, loss, distance, status=Status.MAX_STEPS, steps=None):
    theta, loss, distance = np.asarray(theta, float), np.asarray(loss, float), np.asarray(distance, float)
    n = len(loss)
    z = jnp.zeros(n)
    return Trajectory(
        theta=jnp.asarray(theta),
        loss=jnp.asarray(loss),
        grad_norm=z,
        distance=jnp.asarray(distance),
        w=z,
        gap=z,
        residual=z,
        status=jnp.asarray(int(status)),
        fail_step=jnp.asarray(-1),
        steps=jnp.asarray(n - 1 if steps is None else steps),
    )


def _pad(prefix, n):
    prefix = list(prefix)
    return np.asarray(prefix + [prefix[-1]] * (n - len(prefix)), float)


@pytest.fixture
def nosave(monkeypatch):
    """Figures drawn but not written (the numbers are under test here; the end-to-end
    tests above write the files)."""
    import matplotlib.pyplot as plt

    def _save(fig, out_dir, name):
        plt.close(fig)
        return [os.path.join(out_dir, f"{name}.png"), os.path.join(out_dir, f"{name}.pdf")]

    monkeypatch.setattr(extended, "_save", _save)


def test_first_below_is_the_first_index_at_or_below_tol():
    v = [5.0, 0.1, 0.05, 0.2, 0.01]
    assert extended._first_below(v, 0.1) == 1  # equality counts; the first, not the last
    assert extended._first_below(v, 0.06) == 2
    assert extended._first_below(v, 10.0) == 0
    assert extended._first_below(v, 1e-3) is None


# --------------------------------------------------------------------------- 1. activations


def test_activations_summary_keys_on_hand_built_runs(tmp_path, monkeypatch, nosave):
    import sideq.train
    from sideq.paper.reproduce import EXPERIMENTS as PAPER
    from sideq.paper.reproduce import draw

    calls = []
    # tanh: not monotone (0.5 -> 0.52); softplus: strictly decreasing; sigmoid: flat
    dist = {
        "tanh": [2.0, 1.0, 0.5, 0.52, 0.1, 0.05, 0.01, 0.005],
        "softplus": [2.0, 1.5, 1.0, 0.2, 0.09],
        "sigmoid": [2.0],
    }
    loss = [1.0, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 5e-7]

    def fake(model, theta0, *, xi, x, eta, epochs, **kw):
        calls.append(
            dict(
                model=model.name,
                theta0=np.asarray(theta0),
                x=np.asarray(x),
                eta=eta,
                epochs=epochs,
                xi=list(np.asarray(xi, float)),
            )
        )
        n = epochs + 1
        d = dist[model.name]
        d = np.asarray(d + list(np.linspace(d[-1], d[-1] * 0.9, n - len(d) + 1)[1:]))  # keeps decreasing
        th = np.linspace(np.asarray(theta0), [1.5, 0.1], n)
        return _traj(th, _pad(loss, n), d)

    monkeypatch.setattr(sideq.train, "descent", fake)
    res = extended.run_one("activations", str(tmp_path), quick=True, n=50, seed=3, eta=0.3)
    # settings: quick is 1000 epochs (README), the eta given, the three activations in order
    assert res["settings"]["epochs"] == 1000 and res["quick"] is True
    assert [c["model"] for c in calls] == ["tanh", "softplus", "sigmoid"]
    x_ref, th_ref = draw(dict(PAPER["sigmoid"], n=50), 3)  # "as sideq reproduce draws them", seed 3
    for c in calls:
        assert c["epochs"] == 1000 and c["eta"] == 0.3 and c["xi"] == [2.0]
        assert c["x"].shape == (50, 1)
        np.testing.assert_array_equal(c["x"], x_ref)
        np.testing.assert_array_equal(c["theta0"], th_ref)
    np.testing.assert_array_equal(res["theta_initial"], th_ref)
    t = res["runs"]["tanh"]
    assert t["distance_initial"] == 2.0
    assert t["distance_monotone"] is False
    assert t["largest_distance_increase"] == pytest.approx(0.02, abs=1e-12)
    assert t["epochs_to_distance_1e_1"] == 4 and t["epochs_to_distance_1e_2"] == 6
    assert t["epochs_to_loss_1e_6"] == 5
    s = res["runs"]["softplus"]
    assert s["distance_monotone"] is True
    assert s["largest_distance_increase"] < 0
    assert s["epochs_to_distance_1e_1"] == 4 and s["epochs_to_distance_1e_2"] is None
    json.dumps(res)


# --------------------------------------------------------------------------- 2. flow vs descent


def test_flow_vs_descent_rows_on_hand_built_runs(tmp_path, monkeypatch, nosave):
    import sideq.gradient_flow
    import sideq.train

    starts = [(0.3, 0.2), (0.25, 1.5)]
    # corrected Theorem 3.3 by hand: alpha = sign(1 - theta2) |theta - (0, 1)| / sqrt(5)
    lims, ferr = {}, {starts[0]: np.array([1e-3, -2e-3]), starts[1]: np.array([3e-3, 0.0])}
    for s in starts:
        a = math.copysign(math.hypot(s[0], s[1] - 1), 1 - s[1]) / math.sqrt(5)
        lims[s] = (a, np.array([2 * a, 1 - a]))
    flow_calls, gd_calls = [], []

    def fake_flow(model, theta0, *, xi, dist, t1, saveat_ts, gtol, max_steps, **kw):
        s = tuple(float(v) for v in theta0)
        flow_calls.append(dict(s=s, t1=t1, gtol=gtol))
        lim = lims[s][1]
        th = np.array([s, lim + [0.3, 0.1], lim + ferr[s]])
        return types.SimpleNamespace(
            theta=jnp.asarray(th),
            status=jnp.asarray(int(Status.CONVERGED)),
            drift=jnp.asarray([0.0, 3e-15, 1e-15]),
            t_final=jnp.asarray(7.5),
        )

    def fake_descent(model, theta0, *, xi, dist, eta, epochs, **kw):
        s = tuple(float(v) for v in theta0)
        gd_calls.append(dict(s=s, eta=eta, epochs=epochs, model=model.name))
        lim = lims[s][1]
        th = np.array([s, lim + [0.5, 0.5], lim + [eta, 0.0]])
        return _traj(th, [1.0, 0.5, 0.1], [1.0, 0.4, 1e-9])

    monkeypatch.setattr(sys.modules["sideq.gradient_flow"], "flow", fake_flow)
    monkeypatch.setattr(sideq.train, "descent", fake_descent)
    res = extended.run_one("flow_vs_descent", str(tmp_path), quick=True, starts=starts)
    assert res["settings"]["epochs"] == 200  # quick (README: full 600)
    assert {(c["eta"], c["epochs"], c["model"]) for c in gd_calls} == {(0.05, 200, "linear"), (0.2, 200, "linear")}
    assert all(c["t1"] == 60.0 and c["gtol"] == 1e-10 for c in flow_calls)
    for row, s in zip(res["runs"], starts):
        a, lim = lims[s]
        assert row["alpha"] == pytest.approx(a, rel=1e-12)
        np.testing.assert_allclose(row["predicted_limit"], lim, rtol=1e-12)
        assert row["flow_status"] == "converged" and row["t_final"] == 7.5
        assert row["flow_error_to_prediction"] == pytest.approx(np.linalg.norm(ferr[s]), rel=1e-6)
        assert row["flow_max_drift_w"] == 3e-15
        r0 = math.hypot(s[0], s[1] - 1)
        for eta in (0.05, 0.2):
            fin = lim + [eta, 0.0]
            np.testing.assert_allclose(row[f"gd_eta{eta:g}_final"], fin)
            assert row[f"gd_eta{eta:g}_error_to_prediction"] == pytest.approx(eta, rel=1e-9)
            assert row[f"gd_eta{eta:g}_radius_growth"] == pytest.approx(np.linalg.norm(fin - E) - r0, rel=1e-9)
            assert row[f"gd_eta{eta:g}_distance_to_line_final"] == 1e-9
            assert row[f"gd_eta{eta:g}_status"] == "max_steps"
    assert res["max_flow_error_to_prediction"] == pytest.approx(3e-3, rel=1e-6)
    assert res["max_gd_eta0.2_error_to_prediction"] == pytest.approx(0.2, rel=1e-9)


# --------------------------------------------------------------------------- 3. population vs empirical


def test_population_vs_empirical_on_hand_built_runs(tmp_path, monkeypatch, nosave):
    import sideq.train
    from sideq.paper.reproduce import EXPERIMENTS as PAPER
    from sideq.paper.reproduce import draw

    T, ns, seed = 6, [20, 40], 5
    th0 = draw(PAPER["sigmoid"], 0)[1]
    t = np.arange(T + 1)[:, None] / T
    paths = {None: th0 + t * [1.0, 0.4], 20: th0 + t * [1.3, 0.2], 40: th0 + t * [0.8, 0.6] + (t**2) * [0.1, 0]}
    losses = {n: 0.05 * 0.5 ** np.arange(T + 1) * (1 + (n or 0) / 100) for n in paths}
    got = {}

    def fake(model, theta0, *, xi, x=None, dist=None, eta, epochs, **kw):
        n = None if x is None else len(x)
        got[n] = dict(theta0=np.asarray(theta0), x=None if x is None else np.asarray(x), eta=eta, epochs=epochs)
        return _traj(paths[n], losses[n], np.zeros(T + 1))

    monkeypatch.setattr(sideq.train, "descent", fake)
    res = extended.run_one(
        "population_vs_empirical", str(tmp_path), quick=True, ns=ns, epochs=T, evaluated_epochs=4, data_seed=seed
    )["results"]
    for n, g in got.items():  # theta(0) of reproduce seed 0, eta 0.1, T epochs
        np.testing.assert_array_equal(g["theta0"], th0)
        assert g["eta"] == 0.1 and g["epochs"] == T
    for i, n in enumerate(ns):  # data: Unif[0, 1] from PRNGKey(data_seed + i), drawn here by jax.random directly
        ref = np.asarray(jax.random.uniform(jax.random.PRNGKey(seed + i), (n, 1), jnp.float64))
        np.testing.assert_allclose(got[n]["x"], ref, rtol=0, atol=1e-15)
        r = res[str(n)]
        R = float(_np_risk(paths[n][-1]))
        assert r["population_final"] == pytest.approx(R, rel=1e-9)
        assert r["empirical_final"] == losses[n][-1]
        assert r["population_over_empirical_final"] == pytest.approx(R / losses[n][-1], rel=1e-9)
        np.testing.assert_allclose(r["theta_final"], paths[n][-1])
        dd = np.linalg.norm(paths[n] - paths[None], axis=1)
        assert r["distance_to_population_run_final"] == pytest.approx(dd[-1], rel=1e-12)
        assert r["max_distance_to_population_run"] == pytest.approx(dd.max(), rel=1e-12)
    assert res["population_trained"]["risk_final"] == losses[None][-1]
    np.testing.assert_allclose(res["population_trained"]["theta_final"], paths[None][-1])


# --------------------------------------------------------------------------- 4. phase portrait


def test_phase_portrait_numbers_against_numpy_fields(tmp_path, nosave):
    res = extended.run_one("phase_portrait", str(tmp_path), quick=True, grid_points=6, singular_mask=0.45)
    assert res["linear_field_max_rel_error_vs_closed_form"] < 1e-10
    # linear grid: 6 x 8 (7 rows would put theta2 = 1 on the grid); rows with |1 - theta2| < 0.45 masked
    g1, g2 = np.linspace(-3, 3, 6), np.linspace(-2, 4, 8)
    assert np.min(np.abs(g2 - 1)) > 1e-3 and np.min(np.abs(np.linspace(-2, 4, 7) - 1)) < 1e-3
    T1, T2 = np.meshgrid(g1, g2)
    keep = np.abs(1 - T2) >= 0.45
    assert res["linear_nonfinite_points"] == int((~keep).sum()) == 12
    sp = np.linalg.norm(_np_linear_grad(np.stack([T1[keep], T2[keep]], -1)), axis=-1)
    np.testing.assert_allclose(res["linear_speed_range"], [sp.min(), sp.max()], rtol=1e-9)
    # sigmoid grid: 6 x 7 (theta2 = 1 is not a value of linspace(-4, 3.9, 7)); speed by Eq. (1) in numpy
    g1, g2 = np.linspace(-3, 7, 6), np.linspace(-4, 3.9, 7)
    assert np.min(np.abs(g2 - 1)) > 1e-3
    T1, T2 = np.meshgrid(g1, g2)
    sp = np.linalg.norm(_np_grad(np.stack([T1.ravel(), T2.ravel()], -1)), axis=-1)
    assert res["sigmoid_nonfinite_points"] == 0
    np.testing.assert_allclose(res["sigmoid_speed_range"], [sp.min(), sp.max()], rtol=1e-7)


def test_flow_field_sigmoid_is_minus_the_numpy_gradient():
    th = np.array([[1.0, 0.5], [3.0, -1.0], [-2.0, 3.5]])
    F = extended.flow_field(sideq.single_index("sigmoid"), th)
    np.testing.assert_allclose(F, -_np_grad(th), rtol=1e-8, atol=1e-14)


# --------------------------------------------------------------------------- 5. basin


def test_basin_summary_on_hand_built_sweeps(tmp_path, monkeypatch, nosave):
    import sideq.sweep

    m = 4
    C, M, D, N = int(Status.CONVERGED), int(Status.MAX_STEPS), int(Status.DIVERGED), int(Status.NON_UNIQUE)
    calls = {}

    def fake(model, *, xi, inits, eta, epochs, dist, dtol, progress):
        inits = np.asarray(inits)
        calls[model.name] = dict(inits=inits, eta=eta, epochs=epochs, dtol=dtol, nodes=dist.nodes)
        T = epochs
        if model.name == "linear":
            # run r = i*4 + j is (theta1_i, theta2_j), theta2 in {0.4, 0.9, 1.4, 1.9}
            status = [C] * 16
            steps = [20 + r for r in range(16)]
            dfin = [1e-7] * 16
            status[1], steps[1], dfin[1] = D, 3, np.inf  # failed although it met dtol once: not reached
            status[11], steps[11], dfin[11] = D, T, np.inf
            status[15], steps[15], dfin[15] = D, T, np.inf
            status[2], steps[2], dfin[2] = N, 50, 1e-9  # non-unique, reaches at epoch 50
            status[6], steps[6], dfin[6] = N, T, 1e-3  # non-unique, never reaches
            status[3], steps[3], dfin[3] = M, T, 5e-7  # meets dtol only at theta(T): reached
            status[4], steps[4], dfin[4] = M, T, 1e-2  # not reached
            status[12], steps[12], dfin[12] = M, T, 2e-2  # not reached (|1 - theta2| >= 0.5)
            fin = inits.copy()
            fin[0] = E + 3.0 * (inits[0] - E)  # thrown (3x)
            fin[5] = E + 2.5 * (inits[5] - E)  # thrown (2.5x)
            fin[7] = E + 1.5 * (inits[7] - E)  # 1.5x: not thrown
        else:
            status, steps, dfin, fin = [C] * 16, [100 + r for r in range(16)], [1e-8] * 16, inits.copy()
        non_unique = (np.asarray(status) == N) * 7  # (the runs that passed through the regime: 2 and 6)
        return types.SimpleNamespace(
            arrays=dict(
                status=np.asarray(status),
                distance_final=np.asarray(dfin, float),
                steps=np.asarray(steps),
                theta0=inits,
                theta_final=fin,
                non_unique_epochs=non_unique,
            )
        )

    monkeypatch.setattr(sideq.sweep, "run_sweep", fake)
    res = extended.run_one(
        "basin", str(tmp_path), quick=True, grid_points=m, linear=dict(box=[[-3, 3], [0.4, 1.9]], eta=0.1, epochs=400)
    )
    lin_inits = calls["linear"]["inits"]
    g1, g2 = np.linspace(-3, 3, 4), np.linspace(0.4, 1.9, 4)
    np.testing.assert_allclose(lin_inits, np.stack(np.meshgrid(g1, g2, indexing="ij"), -1).reshape(-1, 2))
    assert calls["linear"]["dtol"] == 1e-6 and calls["linear"]["nodes"] == 32
    assert (calls["sigmoid"]["eta"], calls["sigmoid"]["epochs"]) == (20.0, 600)  # quick sigmoid: 600 epochs
    L = res["linear"]
    assert L["status_counts"] == {"converged": 8, "max_steps": 3, "diverged": 3, "non_unique": 2}
    assert L["failed"] == 3
    reached = [0, 2, 3, 5, 7, 8, 9, 10, 13, 14]  # by hand: not 1, 11, 15 (failed), 4, 12 (far), 6 (never)
    assert L["reached_1e_6"] == len(reached) and L["fraction_reached_1e_6"] == pytest.approx(10 / 16)
    assert L["non_unique_reached_1e_6"] == 1 and L["epochs_to_1e_6_max_non_unique"] == 50
    assert L["not_reached_not_failed"] == 3
    steps = np.array([20 + r for r in range(16)])
    steps[2], steps[3] = 50, 400
    np.testing.assert_allclose(L["epochs_to_1e_6_quantiles"], np.quantile(steps[reached], [0, 0.05, 0.5, 0.95, 1]))
    # |1 - theta2(0)| per column j: 0.6, 0.1, 0.4, 0.9; failed runs 1 (j=1), 11 and 15 (j=3)
    assert L["fraction_failed_within_0.05_of_theta2_1"] is None
    assert L["fraction_failed_within_0.2_of_theta2_1"] == pytest.approx(1 / 4)
    assert L["fraction_failed_within_0.5_of_theta2_1"] == pytest.approx(1 / 8)
    assert L["fraction_failed_farther_than_0.5"] == pytest.approx(2 / 8)
    assert L["fraction_thrown_to_a_sphere_2x_larger"] == pytest.approx(2 / 16)
    np.testing.assert_allclose(L["theta2_0_range_of_thrown_runs"], [0.4, 0.9])
    # j in {0, 3}: runs 0, 3, 4, 7, 8, 11, 12, 15; not reached: 4, 11, 12, 15
    assert L["fraction_not_reached_with_abs_1_minus_theta2_0_ge_0.5"] == pytest.approx(4 / 8)
    S = res["sigmoid"]
    assert S["reached_1e_6"] == 16 and S["failed"] == 0 and S["epochs_to_1e_6_max_non_unique"] is None
    json.dumps(res)


def test_basin_quick_settings_reach_the_sweeps(tmp_path, monkeypatch, nosave):
    import sideq.sweep

    calls = {}

    def fake(model, *, xi, inits, eta, epochs, dist, dtol, progress):
        inits = np.asarray(inits)
        calls[model.name] = (inits, eta, epochs, list(np.asarray(xi, float)))
        k = len(inits)
        return types.SimpleNamespace(
            arrays=dict(
                status=np.zeros(k, int),
                distance_final=np.full(k, 1e-8),
                steps=np.full(k, 5),
                theta0=inits,
                theta_final=inits,
                non_unique_epochs=np.zeros(k, int),
            )
        )

    monkeypatch.setattr(sideq.sweep, "run_sweep", fake)
    res = extended.run_one("basin", str(tmp_path), quick=True, grid_points=2)
    # README: linear eta 0.1 on [-3, 3] x [-2, 4]; sigmoid eta 20 on [-4, 8] x [-4, 3.9];
    # quick: 400 and 600 epochs
    corners = lambda a, b, c, d: [[a, c], [a, d], [b, c], [b, d]]
    inits, eta, epochs, xi = calls["linear"]
    np.testing.assert_allclose(inits, corners(-3, 3, -2, 4))
    assert (eta, epochs, xi) == (0.1, 400, [2.0])
    inits, eta, epochs, xi = calls["sigmoid"]
    np.testing.assert_allclose(inits, corners(-4, 8, -4, 3.9))
    assert (eta, epochs, xi) == (20.0, 600, [2.0])
    assert res["linear"]["reached_1e_6"] == 4 and res["settings"]["dtol"] == 1e-6


# --------------------------------------------------------------------------- 6. step size


def test_step_size_threshold_by_numpy_on_a_small_grid():
    d1, d2 = 0.5, 2.0
    out = extended.step_size_threshold(2.0, delta1=d1, delta2=d2, n_theta1=3, n_theta2=3, nodes=128)
    assert out["init_radius_allowed"] == 2.0  # min{(1 + d1)|xi|, d2} = min{3, 2}
    assert out["init_radius_allowed_corrected"] == 1.0  # min{d1 |xi|, d2} = min{1, 2}  (ERRATA.md §5)
    L = 0.25
    M = (0.5 + L * 1.5 * 2) / (1 - L * d2)
    z = 3.0 + M * d2
    gamma = expit(z) * expit(-z)
    rho, S = np.inf, 0.0
    for t1 in (-3.0, 0.0, 3.0):
        for t2 in (-2.0, 0.0, 2.0):
            y = _np_equilibrium(t1, t2, XQ)
            A = np.array([[WQ @ XQ**2, WQ @ (XQ * y)], [WQ @ (XQ * y), WQ @ y**2]])
            rho = min(rho, np.linalg.eigvalsh(A)[0])
            S = max(S, WQ @ (XQ**2 + y**2) ** 2)
    lam1 = 2 * rho * gamma**2 / (1 + L * d2)
    lam2 = 4 * L**2 * (L / (1 - L * d2)) ** 2 * S
    assert out["gamma"] == pytest.approx(gamma, rel=1e-12)
    assert out["rho"] == pytest.approx(rho, rel=1e-8)
    assert out["sup_fourth_moment"] == pytest.approx(S, rel=1e-10)
    assert out["lambda1"] == pytest.approx(lam1, rel=1e-8) and out["lambda2"] == pytest.approx(lam2, rel=1e-10)
    assert out["threshold"] == pytest.approx(lam1 / (2 * lam2), rel=1e-8)


def test_step_size_summary_on_hand_built_sweep(tmp_path, monkeypatch, nosave):
    import sideq.paper.theory
    import sideq.sweep

    radius, T = 0.5, 10
    etas = np.logspace(-2, 3, 6)  # 0.01 ... 1000
    F = np.nan
    ratio = np.array(
        [[0.993, 0.93, 1e-7, 1e-4, 0.5, 2.0], [0.993, 0.93, 1e-8, 1e-9, 0.3, F], [0.993, 0.93, 1e-7, 5e-4, 1.5, 0.9]]
    )
    status = np.where(np.isnan(ratio), int(Status.DIVERGED), int(Status.MAX_STEPS))
    seen = {}

    def fake_sweep(model, *, xi, inits, eta, epochs, dist, progress):
        seen.update(inits=np.asarray(inits), eta=np.asarray(eta), epochs=epochs)
        return types.SimpleNamespace(arrays=dict(distance_final=(ratio * radius).ravel(), status=status.ravel()))

    def fake_own(xi, delta1, delta2, n_theta1, n_theta2):
        return dict(threshold=0.7, lambda1=0.3, lambda2=0.3 / 1.4, rho=0.01)

    def fake_t39(model, xi, dist, *, delta2, delta1, grid):
        return types.SimpleNamespace(lambda1=0.2, lambda2=0.2, threshold=0.5, t38=types.SimpleNamespace(rho=0.02))

    monkeypatch.setattr(sideq.sweep, "run_sweep", fake_sweep)
    monkeypatch.setattr(extended, "step_size_threshold", fake_own)
    monkeypatch.setattr(sideq.paper.theory, "theorem_3_9", fake_t39)
    res = extended.run_one("step_size", str(tmp_path), quick=True, n_inits=3, n_eta=6, eta_range=[1e-2, 1e3], epochs=T)
    # starts: 3 points on the circle of radius 0.5 about (2, 0), angles 0, 2pi/3, 4pi/3; etas log-spaced
    phi = 2 * np.pi * np.arange(3) / 3
    np.testing.assert_allclose(seen["inits"], np.stack([2 + radius * np.cos(phi), radius * np.sin(phi)], 1), atol=1e-15)
    np.testing.assert_allclose(seen["eta"], etas, rtol=1e-12)
    assert seen["epochs"] == T
    thr = res["theorem_3_9"]
    assert thr["threshold"] == 0.5 and thr["lambda1"] == 0.2  # sideq.paper.theory's, not the own estimate
    assert thr["own_estimate"]["threshold"] == 0.7
    assert thr["own_vs_theory_threshold_rel_diff"] == pytest.approx(0.4)
    # by hand from the table above
    assert res["largest_eta_all_contract"] == pytest.approx(10.0)
    assert res["largest_eta_all_reach_ratio_1e_6"] == pytest.approx(1.0)
    np.testing.assert_allclose(res["first_eta_without_contraction_per_init"], [1000.0, 1000.0, 100.0])
    assert res["eta_with_smallest_worst_final_distance"] == pytest.approx(1.0)
    assert res["fraction_converged_1e_3"] == pytest.approx(6 / 18)
    assert res["ratio_eta_max_reach_1e_6_over_threshold"] == pytest.approx(2.0)
    assert res["ratio_eta_max_contract_over_threshold"] == pytest.approx(20.0)
    # Theorem 3.9: |theta(T) - theta*| <= (1 - eta lambda1/2)^(T/2) |theta(0) - theta*|, here
    # 0.99501 (eta 0.01) and 0.95099 (eta 0.1) for the ratios 0.993 and 0.93
    assert (1 - 0.01 * 0.1) ** 5 > 0.993 > (1 - 0.01 * 0.1) ** 10
    assert res["theorem_bound_holds_for_eta_below_threshold"] is True
    # Hessian at (2, 0), zero residual: H = 2 E[σ'(2X)² (X, σ(2X))(X, σ(2X))ᵀ]
    s = expit(2 * XQ)
    ds = s * (1 - s)
    v = np.stack([XQ, s])
    H = 2 * (v * ds**2 * WQ) @ v.T
    ev = np.linalg.eigvalsh(H)
    np.testing.assert_allclose(res["hessian_eigenvalues_at_target"], ev, rtol=1e-8)
    assert res["stability_edge_2_over_lmax"] == pytest.approx(2 / ev[-1], rel=1e-8)


# --------------------------------------------------------------------------- 7. explicit neuron


def _fake_deq(monkeypatch, T_hit=3):
    import sideq.train

    seen = {}

    def fake(model, theta0, *, xi, x, eta, epochs, **kw):
        seen.update(x=np.asarray(x), theta0=np.asarray(theta0), eta=eta, epochs=epochs)
        n = epochs + 1
        th = np.linspace(np.asarray(theta0), [1.0, 0.0], n)  # ends at (1, 0): y_theta(x) = σ(x)
        loss = np.where(np.arange(n) >= T_hit, 1e-6, 1e-2)
        return _traj(th, loss, np.zeros(n))

    monkeypatch.setattr(sideq.train, "descent", fake)
    return seen


def test_explicit_neuron_against_numpy_descent(tmp_path, monkeypatch, nosave):
    from sideq.paper.reproduce import EXPERIMENTS as PAPER
    from sideq.paper.reproduce import draw

    seen = _fake_deq(monkeypatch)
    T, eta = 40, 5.0
    res = extended.run_one("explicit_neuron", str(tmp_path), quick=True, epochs=T, eta=eta)["results"]
    x, th0 = draw(PAPER["sigmoid"], 0)
    np.testing.assert_array_equal(seen["x"], x)
    np.testing.assert_array_equal(seen["theta0"], th0)
    assert seen["eta"] == eta and seen["epochs"] == T
    # explicit neuron sigma(theta x) by numpy gradient descent from theta1(0)
    y = expit(2 * x[:, 0])
    t, losses = th0[0], []
    for _ in range(T):
        s = expit(t * x[:, 0])
        losses.append(np.mean((s - y) ** 2))
        t = t - eta * np.mean(2 * (s - y) * s * (1 - s) * x[:, 0])
    t_final = t
    losses.append(np.mean((expit(t * x[:, 0]) - y) ** 2))
    grid = np.linspace(0, 1, 201)
    e = res["explicit"]
    assert e["theta_final"] == pytest.approx([t_final], rel=1e-10)
    assert e["loss_final"] == pytest.approx(losses[-1], rel=1e-9)
    first = next((k for k, v in enumerate(losses) if v <= 1e-4), None)
    assert first is not None and e["epochs_to_loss_1e_4"] == first
    assert e["sup_error_learned"] == pytest.approx(np.max(np.abs(expit(t_final * grid) - expit(2 * grid))), rel=1e-8)
    d = res["deq"]
    assert d["epochs_to_loss_1e_4"] == 3 and d["epochs_to_loss_1e_6"] == 3
    assert d["sup_error_learned"] == pytest.approx(np.max(np.abs(expit(grid) - expit(2 * grid))), rel=1e-10)
    np.testing.assert_allclose(d["theta_final"], [1.0, 0.0], atol=1e-15)


def test_explicit_neuron_uses_its_n_setting(tmp_path, monkeypatch, nosave):
    # the data drawn are n samples, whatever n is (not a fixed 1000)
    seen = _fake_deq(monkeypatch)
    res = extended.run_one("explicit_neuron", str(tmp_path), quick=True, epochs=5, n=200)
    assert res["settings"]["n"] == 200
    assert seen["x"].shape == (200, 1)


# --------------------------------------------------------------------------- driver and scripts


@pytest.fixture
def spy(monkeypatch):
    """EXPERIMENTS replaced by recorders ("spy" plus stand-ins for the seven that fail if called)."""
    calls = []

    def spy_exp(out_dir, quick=False, **overrides):
        calls.append(
            dict(
                out_dir=out_dir,
                quick=quick,
                overrides=overrides,
                x64=bool(jax.config.jax_enable_x64),
                dtype=str(jnp.zeros(()).dtype),
            )
        )
        return dict(settings=dict(overrides), files=[])

    def forbidden(out_dir, quick=False, **overrides):
        raise AssertionError("an experiment not asked for was run")

    table = {name: forbidden for name in extended.EXPERIMENTS}
    table["spy"] = spy_exp
    monkeypatch.setattr(extended, "EXPERIMENTS", table)
    return calls


def test_run_all_runs_only_the_named_with_quick_and_writes_the_json(tmp_path, spy):
    res = extended.run_all(str(tmp_path), quick=True, only=["spy"])
    assert len(spy) == 1 and spy[0]["quick"] is True and spy[0]["overrides"] == {}
    assert set(res) == {"spy", "wall_s"} and res["spy"]["quick"] is True
    with open(tmp_path / "extended_summary.json") as fh:
        on_disk = json.load(fh)
    assert set(on_disk) == {"spy", "wall_s"} and on_disk["spy"]["quick"] is True
    extended.run_all(str(tmp_path), quick=False, only=["spy"])
    assert spy[1]["quick"] is False


def test_run_one_scopes_float64_and_restores_the_flag(tmp_path, spy):
    with jax.enable_x64(False):
        assert jnp.zeros(()).dtype == jnp.float32
        res = extended.run_one("spy", str(tmp_path / "new"), quick=False, a=1)
        assert jnp.zeros(()).dtype == jnp.float32  # caller's setting untouched
    assert spy[0]["x64"] is True and spy[0]["dtype"] == "float64"
    assert spy[0]["overrides"] == {"a": 1} and res["quick"] is False and (tmp_path / "new").is_dir()


def test_script_main_config_applies_without_quick_only(tmp_path, spy, capsys, monkeypatch):
    cfg = dict(epochs=7, n=3)
    assert extended.script_main("spy", ["--out", str(tmp_path), "--quick"], config=cfg) == 0
    assert spy[-1]["quick"] is True and spy[-1]["overrides"] == {}  # --quick ignores CONFIG
    assert json.loads(capsys.readouterr().out)["quick"] is True
    assert extended.script_main("spy", ["--out", str(tmp_path)], config=cfg) == 0
    assert spy[-1]["quick"] is False and spy[-1]["overrides"] == cfg
    assert json.loads(capsys.readouterr().out)["settings"] == cfg
    monkeypatch.chdir(tmp_path)
    assert extended.script_main("spy", [], config=None) == 0
    assert spy[-1]["out_dir"] == "figures/extended" and (tmp_path / "figures" / "extended").is_dir()


SCRIPTS = {
    "exp1_activations.py": (
        "activations",
        dict(n=1000, eta=0.1, epochs=4000, seed=0, activations=["tanh", "softplus", "sigmoid"]),
    ),
    "exp2_flow_vs_descent.py": (
        "flow_vs_descent",
        dict(
            starts=[(0.3, 0.2), (-0.6, 0.4), (0.9, -0.4), (0.25, 1.5), (-0.7, 1.6), (0.5, 2.3)],
            etas=[0.05, 0.2],
            epochs=600,
            flow_t1=60.0,
            flow_gtol=1e-10,
        ),
    ),
    "exp3_population_vs_empirical.py": (
        "population_vs_empirical",
        dict(ns=[100, 1000, 10000], eta=0.1, epochs=4000, data_seed=1, evaluated_epochs=200),
    ),
    "exp4_phase_portrait.py": (
        "phase_portrait",
        dict(grid_points=160, linear_box=[[-3, 3], [-2, 4]], sigmoid_box=[[-3, 7], [-4, 3.9]], singular_mask=0.04),
    ),
    "exp5_basin.py": (
        "basin",
        dict(
            grid_points=100,
            dtol=1e-6,
            linear=dict(box=[[-3, 3], [-2, 4]], eta=0.1, epochs=1000),
            sigmoid=dict(box=[[-4, 8], [-4, 3.9]], eta=20.0, epochs=1000),
        ),
    ),
    "exp6_step_size.py": (
        "step_size",
        dict(n_inits=8, radius=0.5, n_eta=49, eta_range=[1e-4, 1e2], epochs=2000, delta1=0.5, delta2=0.5),
    ),
    "exp7_explicit_neuron.py": ("explicit_neuron", dict(n=1000, eta=0.1, epochs=4000, seed=0)),
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_scripts_run_their_experiment_with_the_documented_settings(script, monkeypatch):
    got = []
    monkeypatch.setattr(
        extended,
        "script_main",
        lambda name, argv=None, config=None: got.append((name, config, bool(jax.config.jax_enable_x64))) or 0,
    )
    jax.config.update("jax_enable_x64", False)  # the script must switch float64 on itself
    try:
        with pytest.raises(SystemExit) as info:
            runpy.run_path(os.path.join(ROOT, "experiments", script), run_name="__main__")
    finally:
        jax.config.update("jax_enable_x64", True)
    assert info.value.code == 0
    name, config = SCRIPTS[script]
    assert got == [(name, config, True)]
    assert name in extended.EXPERIMENTS


def test_settings_an_experiment_does_not_honour_are_refused(tmp_path, capsys):
    """An override the experiment would record and ignore (ξ, a descriptive entry,
    a typo) or one its figure cannot draw is refused before any work, in one line
    naming the setting; a script reports it as a CONFIG error."""
    for name, kw, needle in [
        ("phase_portrait", dict(xi=1.0), "^xi: is fixed"),
        ("explicit_neuron", dict(activation="tanh"), "^activation: is fixed"),
        ("population_vs_empirical", dict(population_nodes=64), "^population_nodes: is fixed"),
        ("basin", dict(epoch=5), "^epoch: is not a setting.*grid_points"),
        ("activations", dict(activations=["tanh", "softplus"]), "^activations: .*sigmoid"),
        ("flow_vs_descent", dict(etas=[0.05]), "^etas: .*two step sizes"),
    ]:
        with pytest.raises(sideq.SideqInputError, match=needle):
            extended.run_one(name, str(tmp_path / name), quick=False, **kw)
    assert extended.script_main("basin", ["--out", str(tmp_path)], config=dict(xi=3.0)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error: CONFIG xi: is fixed" in err
