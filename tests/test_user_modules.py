"""Proposed tests from the mutation audit of sideq/{train,data,model,reproduce}.py.

Each test names the mutant(s) of /tmp/audit_user/mutants.py it kills.  Expected
values come from closed forms, numpy/scipy, the paper's text, or hand-built
inputs whose answer is known by construction -- never from the function under
test.  The claim checks of sideq.paper.reproduce are exercised on small synthetic
trajectories (monkeypatched ``seed_runs``), so that each check is seen to FAIL
on a seed that breaks its claim.
"""

import sys
import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit

import sideq
from sideq.paper import reproduce
from sideq.dynamics import Trajectory, distance_to_target
from sideq.status import Status
from sideq.train import descent, summary

X16 = np.linspace(0.05, 0.95, 16)[:, None]
XI = np.array([2.0])
LIN = sideq.linear()
SIG = sideq.single_index("sigmoid")


def _raises(prefix, fn, exc=sideq.SideqInputError):
    with pytest.raises(exc) as info:
        fn()
    assert str(info.value).startswith(prefix), str(info.value)


def _lin_grad(theta, x, y):
    """∇R̂ of the linear DEQ by hand: y_θ = θ1 x/(1 − θ2)."""
    t1, t2 = theta
    r = t1 * x / (1 - t2) - y
    return np.array([np.mean(2 * r * x / (1 - t2)), np.mean(2 * r * t1 * x / (1 - t2) ** 2)])


# ---------------------------------------------------------------------------
# data.py


def test_uniform_infers_d_from_either_bound():  # D02
    u = sideq.uniform(0.0, [1.0, 2.0])
    assert u.d == 2 and np.array_equal(u.low, [0.0, 0.0]) and np.array_equal(u.high, [1.0, 2.0])
    u = sideq.uniform([-1.0, 0.0, 0.5], 3.0)
    assert u.d == 3 and np.array_equal(u.high, [3.0, 3.0, 3.0])


@pytest.mark.parametrize("bad", [True, False, 2.5, "8"])
def test_nodes_must_be_an_integer(bad):  # D03
    _raises("nodes:", lambda: sideq.uniform(0.0, 1.0, 1, nodes=bad))
    _raises("nodes:", lambda: sideq.gaussian(0.0, 1.0, nodes=bad))


def test_gaussian_rejects_an_indefinite_cov_beyond_rounding():  # D18
    # eigenvalues (1, -1e-3): indefinite by far more than rounding (eps ~ 1e-16)
    c, s = math.cos(0.3), math.sin(0.3)
    Q = np.array([[c, -s], [s, c]])
    C = Q @ np.diag([1.0, -1e-3]) @ Q.T
    C = (C + C.T) / 2
    _raises("cov:", lambda: sideq.gaussian([0.0, 0.0], C))
    # and a PSD one built the same way (eigenvalues 1, 0) is accepted
    P = Q @ np.diag([1.0, 0.0]) @ Q.T
    sideq.gaussian([0.0, 0.0], (P + P.T) / 2)


def test_seeded_normal_is_mean_plus_std_times_a_standard_normal():  # D11
    from sideq.data import seeded_normal

    p = 50
    z = np.stack([seeded_normal(s, 0.0, 1.0, p) for s in range(40)])  # 2000 draws
    # affine in (mean, std): theta(0) = MEAN + STD z with the same z
    for s in (0, 7):
        np.testing.assert_allclose(seeded_normal(s, 0.5, 0.3, p), 0.5 + 0.3 * z[s], rtol=0, atol=1e-15)
        mean = np.arange(p) / p
        np.testing.assert_allclose(seeded_normal(s, mean, 0.1, p), mean + 0.1 * z[s], rtol=0, atol=1e-15)
    # z is standard normal (Monte Carlo, 5 standard errors)
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var(ddof=1) - 1.0) < 5 * math.sqrt(2 / (n - 1))
    # and the std is the std: the spread of 0.3 z is 0.3
    w = np.stack([seeded_normal(s, 0.0, 0.3, p) for s in range(40)])
    assert abs(w.std(ddof=1) / 0.3 - 1.0) < 5 / math.sqrt(2 * (n - 1))


def test_quadrature_rule_maps_onto_the_box():  # Q01
    from sideq.risk import quadrature_rule

    a, b = -1.0, 2.0
    x, w = quadrature_rule(sideq.uniform(a, b, 1))
    assert np.all((x > a) & (x < b)) and math.isclose(w.sum(), 1.0, rel_tol=1e-14)
    for k in range(1, 6):  # E[X^k] = (b^{k+1} − a^{k+1}) / ((k+1)(b − a)), exact for Gauss–Legendre
        want = (b ** (k + 1) - a ** (k + 1)) / ((k + 1) * (b - a))
        assert np.sum(w * x[:, 0] ** k) == pytest.approx(want, rel=1e-13, abs=1e-14)
    lo, hi = np.array([-0.5, 1.0]), np.array([1.0, 4.0])
    x, w = quadrature_rule(sideq.uniform(lo, hi))
    m = (lo + hi) / 2
    assert np.all((x > lo) & (x < hi))
    np.testing.assert_allclose(w @ x, m, rtol=1e-13)
    assert np.sum(w * x[:, 0] * x[:, 1]) == pytest.approx(m[0] * m[1], rel=1e-13)


# ---------------------------------------------------------------------------
# train.py


def test_descent_defaults_are_eta_0_1_and_100_epochs():  # T01, T02
    theta0 = np.array([0.3, -0.4])
    traj = descent(LIN, theta0, xi=XI, x=X16)
    assert traj.theta.shape == (101, 2)
    theta1 = theta0 - 0.1 * _lin_grad(theta0, X16[:, 0], 2.0 * X16[:, 0])
    np.testing.assert_allclose(np.asarray(traj.theta[1]), theta1, rtol=1e-13)


def test_descent_dtol_counts_to_the_first_epoch_near_the_line():  # T06
    theta0, eta, T = np.array([0.3, -0.4]), 0.05, 30
    x, y = X16[:, 0], 2.0 * X16[:, 0]
    th, dist = theta0.copy(), []
    for _ in range(T + 1):  # hand-written steps; distance to {(2a, 1 − a)} = |θ1 + 2θ2 − 2|/√5
        dist.append(abs(th[0] + 2 * th[1] - 2) / math.sqrt(5))
        th = th - eta * _lin_grad(th, x, y)
    dist = np.array(dist)
    k = T // 2
    dtol = (dist[k - 1] + dist[k]) / 2 if dist[k] < dist[k - 1] else None
    assert dtol is not None and np.all(np.diff(dist) < 0)
    traj = descent(LIN, theta0, xi=XI, x=X16, eta=eta, epochs=T, dtol=dtol)
    assert int(traj.steps) == k and int(traj.status) == Status.CONVERGED


@pytest.mark.parametrize("kwargs, prefix", [
    (dict(eta=0.0), "eta:"),  # T08: a step size must be positive
    (dict(epochs=True), "epochs:"),  # T09
    (dict(epochs=2.0), "epochs:"),
    (dict(backend="scipy"), "backend:"),  # T10
    (dict(optimizer="adam"), "optimizer:"),  # T11
    (dict(y=2.0 * X16), "y:"),  # T13: y of shape (n, 1) would broadcast to (n, n)
    (dict(x=None, dist=sideq.uniform(), y=np.ones(16)), "y:"),  # T14
    (dict(x=np.where(np.arange(16)[:, None] == 3, np.nan, X16)), "x:"),  # T15
])
def test_descent_rejects_bad_arguments(kwargs, prefix):
    args = dict(xi=XI, x=X16, eta=0.1, epochs=3)
    args.update(kwargs)
    _raises(prefix, lambda: descent(SIG, np.array([0.1, 0.2]), **args))


def test_identity_single_index_singular_start_is_rejected():  # T12
    # single_index("identity") is the linear DEQ: θ2(0) = 1 is its singular hyperplane
    with pytest.raises(sideq.SingularModelError, match="^theta0"):
        descent(sideq.single_index("identity"), np.array([0.3, 1.0]), xi=XI, x=X16, eta=0.1, epochs=3)


def test_summary_reports_fail_step_zero_and_the_epochs():  # T16, T17
    # maxiter = 2 from a cold start fails the run at epoch 0 (tests/test_dynamics.py)
    traj = descent(SIG, np.array([0.5, 0.5]), xi=XI, x=X16, eta=0.1, epochs=3, maxiter=2)
    s = summary(SIG, traj)
    assert s["status"] == "solver_failure" and s["fail_step"] == 0 and s["epochs"] == 3
    s = summary(LIN, descent(LIN, np.array([0.3, -0.4]), xi=XI, x=X16, eta=0.05, epochs=7))
    assert s["epochs"] == 7 and "fail_step" not in s and s["model"] == "linear"


# ---------------------------------------------------------------------------
# model.py


def test_single_index_distance_with_bias_is_to_xi_0_0():  # O01
    model = sideq.single_index("tanh", bias=True)
    theta = np.array([0.3, -1.2, 0.7, 0.4])  # (θ1 (2), b, θ2)
    xi = np.array([1.5, -0.5])
    want = np.linalg.norm(theta - np.array([1.5, -0.5, 0.0, 0.0]))
    assert float(distance_to_target(model, jnp.asarray(theta), xi)) == pytest.approx(want, rel=1e-14)


def test_model_names_and_the_default_activation():  # O03, O04
    assert sideq.linear().name == "linear" and sideq.linear(bias=True).name == "linear"
    m = sideq.single_index()
    assert m.name == "sigmoid" and m.activation.name == "sigmoid" and not m.bias


def test_model_target_is_sigma_of_xi_x():  # O05
    x = np.array([[0.2, -1.0], [1.5, 0.3], [-0.7, 2.0]])
    xi = np.array([0.8, -0.6])
    np.testing.assert_allclose(np.asarray(SIG.target(xi, x)), expit(x @ xi), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(sideq.single_index("tanh").target(xi, x)), np.tanh(x @ xi), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(LIN.target(xi, x)), x @ xi, rtol=1e-14)


# ---------------------------------------------------------------------------
# reproduce.py: settings, seeds


def test_experiments_are_the_papers_settings():  # R14, R15
    """Section 4 of the paper: xi = 2, 1000 samples from Unif[0, 1]; 4.1: eta = 0.01, 200
    epochs, theta(0) ~ N(0, 0.1² I) (Figs 1-2) and N((0, 1), 0.1² I) (Fig 3); 4.2: sigmoid,
    eta = 0.1, 4000 epochs, theta(0) ~ N(0, 0.1² I)."""
    E = reproduce.EXPERIMENTS
    paper = {
        "linear": ("linear", 0.01, 200, (0.0, 0.0)),
        "linear_near_trivial": ("linear", 0.01, 200, (0.0, 1.0)),
        "sigmoid": ("sigmoid", 0.1, 4000, (0.0, 0.0)),
    }
    assert set(E) == set(paper)
    for name, (model, eta, epochs, mean) in paper.items():
        c = E[name]
        assert (c["model"], c["eta"], c["epochs"], tuple(c["init_mean"])) == (model, eta, epochs, mean), name
        assert c["xi"] == 2.0 and c["n"] == 1000 and c["init_std"] == 0.1, name


def test_seed_runs_runs_each_seed_on_its_own_data():  # R09, R18
    cfg = reproduce.EXPERIMENTS["linear"]
    _, traj = reproduce.seed_runs("linear", 2, base_seed=3, epochs=3)
    for k in range(2):
        x, theta = reproduce.draw(cfg, 3 + k)
        assert x.shape == (1000, 1) and np.all((x >= 0) & (x <= 1))
        x = x[:, 0]
        for t in range(4):
            np.testing.assert_allclose(np.asarray(traj.theta[k, t]), theta, rtol=1e-12, atol=1e-15)
            theta = theta - cfg["eta"] * _lin_grad(theta, x, 2.0 * x)


def test_reproduce_checks_claims_from_its_seed(monkeypatch, tmp_path):  # R16
    seen = {}
    summ = dict(theta_initial=[0.0, 0.0], theta_final=[0.0, 0.0], loss_final=0.0, status="max_steps",
                wall_s=0.0, settings=dict(figures=["fig1", "fig2"]))
    monkeypatch.setattr(reproduce, "run_experiment", lambda name, seed: (None, None, None, dict(summ)))
    monkeypatch.setattr(reproduce, "draw_figures", lambda *a: {})
    monkeypatch.setattr(reproduce, "check_claims", lambda seeds, base, figs: seen.update(args=(seeds, base, figs)) or [])
    assert reproduce.reproduce(out=str(tmp_path), only="fig1", seed=7, seeds=3, as_json=True) == 0
    assert seen["args"] == (3, 7, ["fig1"])


def test_run_state_reports_a_failed_run():  # R19
    assert reproduce._run_state({"status": "max_steps"}) == "ok"
    assert reproduce._run_state({"status": "converged"}) == "ok"
    assert reproduce._run_state({"status": "diverged"}) == "diverged"


# ---------------------------------------------------------------------------
# reproduce.py: every claim check can FAIL (synthetic trajectories)

S, T = 3, 6  # seeds, epochs of the synthetic runs
BAD = 1  # the seed that breaks a claim: not the first one


def _traj(theta, loss, distance, w, steps=None):
    s, t1 = loss.shape
    z = np.zeros((s, t1))
    return Trajectory(theta=theta, loss=loss, grad_norm=z, distance=distance, w=w, gap=z, residual=z,
                      status=np.full(s, int(Status.MAX_STEPS)), fail_step=np.full(s, -1),
                      steps=np.full(s, t1 - 1) if steps is None else steps,
                      non_unique_epochs=np.zeros(s, int), non_unique_first=np.full(s, -1),
                      non_unique_last=np.full(s, -1))


def _linear_good():
    """S seeds where every linear claim holds: R(0) = 0.5 (2 eta R(0) = 0.01), w grows by 0.004."""
    loss = np.tile(np.geomspace(0.5, 1e-13, T + 1), (S, 1))
    dist = np.tile(np.geomspace(0.3, 1e-8, T + 1), (S, 1))
    w = np.tile(1.0 + np.linspace(0.0, 0.004, T + 1), (S, 1))
    theta = np.zeros((S, T + 1, 2))
    return dict(theta=theta, loss=loss, distance=dist, w=w)


def _break_linear(arrays, claim):
    a = {k: v.copy() for k, v in arrays.items()}
    if claim == "loss":
        a["loss"][BAD, -1] = 3e-10  # above 1e-10
    elif claim == "line":
        a["distance"][BAD, -1] = 3e-5  # above 1e-5
    elif claim == "circle":  # w(T) − w(0) = 0.015 > 2 eta R(0) = 0.01, below 10x that
        a["w"][BAD] = 1.0 + np.linspace(0.0, 0.015, T + 1)
    elif claim == "circle-small-R0":  # this seed's R(0) is 0.05: its bound is 0.001 < 0.004
        a["loss"][BAD] = np.geomspace(0.05, 1e-13, T + 1)
    elif claim == "monotone":  # one epoch where w falls (and w(T) > w(0))
        a["w"][BAD, 3] = a["w"][BAD, 2] - 1e-4
    return a


LINEAR_CLAIMS = {  # claim text (start) -> which break violates it
    "loss": "the loss converges to zero",
    "line": "theta(T) is on the solution line",
    "circle": "it stays near Theorem 3.1's circle",
    "circle-small-R0": "it stays near Theorem 3.1's circle",
    "monotone": "the iterates move further from (0, 1) every epoch",
}


def _fake_seed_runs(arrays, model, calls=None):
    def fake(name, seeds, base_seed=0, epochs=None, history=True, dtol=0.0):
        if calls is not None:
            calls.append(dict(name=name, seeds=seeds, epochs=epochs, dtol=dtol))
        a = arrays(seeds, epochs) if callable(arrays) else arrays
        return model, _traj(**{k: np.asarray(v)[:seeds] for k, v in a.items()})
    return fake


def _claims(records, text):
    return [c for c in records if c["claim"].startswith(text)]


def test_linear_claims_hold_on_a_good_run(monkeypatch):
    monkeypatch.setattr(reproduce, "seed_runs", _fake_seed_runs(_linear_good(), LIN))
    out = reproduce.check_claims(S, 0, ["fig2"])
    assert len(out) == 4 and all(c["holds"] and c["fraction"] == 1.0 for c in out), out


@pytest.mark.parametrize("broken", list(LINEAR_CLAIMS))
def test_linear_claim_fails_when_one_seed_breaks_it(monkeypatch, broken):  # R01-R04, R17
    monkeypatch.setattr(reproduce, "seed_runs", _fake_seed_runs(_break_linear(_linear_good(), broken), LIN))
    out = reproduce.check_claims(S, 0, ["fig2"])
    for c in out:
        if c["claim"].startswith(LINEAR_CLAIMS[broken]):
            assert not c["holds"] and c["fraction"] == pytest.approx((S - 1) / S), c
        else:
            assert c["holds"], c


def _sigmoid_arrays(bad=None, variant_bad=False):
    """Runs near theta* = (2, 0): loss 1e-9, distance 1e-3 and falling, unless broken."""
    def arrays(seeds, epochs):
        t1 = T + 1
        dist = np.tile(np.geomspace(2.0, 1e-3, t1), (seeds, 1))
        loss = np.tile(np.geomspace(0.05, 1e-9, t1), (seeds, 1))
        theta = np.tile(np.array([2.0, 0.0]), (seeds, t1, 1))
        if epochs is not None:  # the variant (ten times the epochs)
            if variant_bad and seeds > BAD:
                dist[BAD, -1] = 2e-2
            return dict(theta=theta, loss=loss, distance=dist, w=np.zeros((seeds, t1)))
        if bad == "loss":
            loss[BAD, -1] = 3e-6  # above 1e-6
        elif bad == "reach":  # falls from 2 to 0.5: closer, but not at the target
            dist[BAD] = np.geomspace(2.0, 0.5, t1)
        elif bad == "monotone":  # rises for one mid-run epoch
            dist[BAD, 3] = dist[BAD, 2] + 1e-3
        return dict(theta=theta, loss=loss, distance=dist, w=np.zeros((seeds, t1)))
    return arrays


SIGMOID_CLAIMS = {
    "loss": "the loss converges to zero",
    "reach": "theta(T) reaches the target (2, 0)",
    "monotone": "the distance to (2, 0) decreases monotonically",
}


@pytest.mark.parametrize("broken", [None] + list(SIGMOID_CLAIMS))
def test_sigmoid_claims_fail_when_one_seed_breaks_them(monkeypatch, broken):  # R05, R06, R07, R12
    calls = []
    monkeypatch.setattr(reproduce, "seed_runs", _fake_seed_runs(_sigmoid_arrays(broken), SIG, calls))
    out = reproduce.check_claims(S, 0, ["fig4"])
    assert len(out) == 4
    for c in out:
        if broken is not None and c["claim"].startswith(SIGMOID_CLAIMS[broken]):
            assert not c["holds"] and c["fraction"] == pytest.approx((S - 1) / S), c
        else:
            assert c["holds"] and c["fraction"] == 1.0, c
    assert calls[0]["epochs"] is None and calls[1]["epochs"] == 10 * reproduce.EXPERIMENTS["sigmoid"]["epochs"]


def test_sigmoid_variant_looks_at_more_than_one_seed(monkeypatch):  # R08
    calls = []
    monkeypatch.setattr(reproduce, "seed_runs", _fake_seed_runs(_sigmoid_arrays(variant_bad=True), SIG, calls))
    out = reproduce.check_claims(8, 0, ["fig5"])
    (variant,) = [c for c in out if c["figure"] == "fig5 (variant)"]
    assert calls[1]["seeds"] >= 2 and calls[1]["dtol"] == 1e-2
    assert not variant["holds"] and variant["fraction"] == pytest.approx(1 - 1 / calls[1]["seeds"])


def test_figure3_flow_variant_fails_on_a_seed_off_the_limit(monkeypatch):  # R10, R11
    """The check compares the flow's end point with the corrected Theorem 3.3 limit.  A
    stand-in flow lands exactly on alpha = sign(1 - theta2(0)) |theta(0) - (0, 1)| / sqrt(xi^2 + 1)
    (written here), except for one seed's theta(0), which it leaves 1e-3 off: that seed, and
    only that seed, must fail, although its end point is on the solution line."""
    import collections

    import sideq.gradient_flow

    cfg = reproduce.EXPERIMENTS["linear_near_trivial"]
    base = 5
    bad_theta0 = jnp.asarray(reproduce.draw(cfg, base + BAD)[1])
    xi = cfg["xi"]
    Flow = collections.namedtuple("Flow", "theta distance drift")

    def fake_flow(model, objective, t0, xi_, **kw):
        alpha = jnp.sign(1 - t0[1]) * jnp.sqrt(t0[0] ** 2 + (t0[1] - 1) ** 2) / math.sqrt(xi**2 + 1)
        alpha = alpha + jnp.where(jnp.all(t0 == bad_theta0), 1e-3, 0.0)  # still on the line
        end = jnp.stack([alpha * xi, 1 - alpha])
        return Flow(theta=jnp.stack([t0, end]), distance=jnp.zeros(2), drift=jnp.zeros(2))

    monkeypatch.setattr(sys.modules["sideq.gradient_flow"], "gradient_flow", fake_flow)
    rec = reproduce._figure3_flow_variant(S, base)
    assert not rec["holds"] and rec["fraction"] == pytest.approx((S - 1) / S), rec
    # and with no seed off the limit the check holds
    bad_theta0 = jnp.full(2, jnp.nan)
    rec = reproduce._figure3_flow_variant(S, base)
    assert rec["holds"] and rec["fraction"] == 1.0, rec


# ---------------------------------------------------------------------------
# Two holes the audit found at the boundary: descent() took any maxiter (flow() and
# run_sweep() checked it), and load_data dropped the imaginary part of complex data.


@pytest.mark.parametrize("bad", [0, -3, "abc"])
def test_descent_rejects_a_bad_maxiter(bad):
    _raises("maxiter:", lambda: descent(SIG, np.array([0.1, 0.2]), xi=XI, x=X16, eta=0.1, epochs=3, maxiter=bad))


def test_load_data_rejects_complex_numbers(tmp_path):
    p = tmp_path / "c.npy"
    np.save(p, np.array([0.1 + 5j, 0.7 - 2j]))
    _raises("data:", lambda: sideq.load_data(p))


def test_descent_rejects_complex_data():
    x = X16[:, 0].astype(complex)
    x[3] += 0.5j
    _raises("x holds complex", lambda: descent(LIN, np.array([0.1, 0.2]), xi=XI, x=x, eta=0.1, epochs=3))
    y = np.zeros(16, complex)
    y[0] = 1j
    _raises("y holds complex", lambda: descent(LIN, np.array([0.1, 0.2]), xi=XI, x=X16, y=y, eta=0.1, epochs=3))


def test_load_data_names_a_ragged_csv(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("x,y\n0.1,0.2\n0.3,0.4,0.5\n")
    _raises("data:", lambda: sideq.load_data(p))
    with pytest.raises(sideq.SideqInputError, match="rows of different lengths .*data row 2 has 3 columns, expected 2"):
        sideq.load_data(p)
