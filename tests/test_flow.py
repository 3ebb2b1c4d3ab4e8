"""Gradient flow (sideq.flow) against closed forms, scipy, gradient descent and vmap.

Every check has an independent route: the limit of Theorem 3.3 in closed form
(corrected, see test_theorem_3_3_limit), w(t) recomputed in numpy, scipy's DOP853
on the hand-written field of Eq. (4), sideq.train.descent, single runs vs vmap.

Compile budget: one compiled flow per static configuration (model, law or data
shape, number of saved times), reused across tests through ``grid``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import sideq
from sideq.gradient_flow import (
    FlowTrajectory,
    _flow_population,
    flow,
    flow_summary,
    gradient_flow,
    until_stop,
    vector_field,
)
from sideq.risk import default_y0, empirical_objective
from sideq.scalar import Equilibrium
from sideq.status import Status
from sideq.train import descent

LIN = sideq.linear()
SIG = sideq.single_index("sigmoid")

# d = 1: X ~ Unif(0, 1), E[X²] = 1/3.
U1 = sideq.uniform(0.0, 1.0, 1)
XI1 = np.array([2.0])
# d = 3: anisotropic Gaussian with a mean, E[XXᵀ] = cov + μμᵀ (the linear DEQ's
# population risk is Eq. (5) in closed form; the node count is not used).
MU3 = np.array([0.2, 0.0, -0.1])
COV3 = np.array([[6.0, 0.3, 0.0], [0.3, 0.15, 0.05], [0.0, 0.05, 1.0]])  # eigenvalues 0.13, 1.0, 6.0
G3 = sideq.gaussian(MU3, COV3, nodes=24)
M3 = COV3 + np.outer(MU3, MU3)
XI3 = np.array([1.0, 0.0, 0.5])


def _recolour(x, m):
    """Rows x with (1/n) xᵀx = m exactly: the empirical risk is then Eq. (5) with E[XXᵀ] = m."""
    lam, v = np.linalg.eigh(x.T @ x / len(x))
    lam_m, v_m = np.linalg.eigh(m)
    return x @ (v / np.sqrt(lam)) @ v.T @ (v_m * np.sqrt(lam_m)) @ v_m.T


X3 = _recolour(np.asarray(sideq.sample(G3, jax.random.PRNGKey(0), 20)), M3)  # n = 20

GTOL = 1e-10


def grid(t1):
    """The saved times of every linear-DEQ run: one shape, hence one compile per law.
    Geometric, because near θ2 = 1 the flow moves on a time scale ~|1 − θ2(0)|⁴."""
    return np.concatenate([[0.0], np.geomspace(1e-9, t1, 60)])


def e_last(p):
    e = np.zeros(p)
    e[-1] = 1.0
    return e


def limit_3_3(theta0, xi):
    """Corrected Theorem 3.3: α = sign(1 − θ2(0)) ‖θ(0) − (0,…,0,1)‖ / √(‖ξ‖² + 1),
    limit (αξ, 1 − α).  The printed statement uses sign(θ2(0)) and ‖θ(0)‖."""
    theta0 = np.asarray(theta0, float)
    r = np.linalg.norm(theta0 - e_last(len(theta0)))
    alpha = np.sign(1 - theta0[-1]) * r / np.sqrt(xi @ xi + 1)
    return np.concatenate([alpha * xi, [1 - alpha]])


def limit_3_3_printed(theta0, xi):
    theta0 = np.asarray(theta0, float)
    alpha = np.sign(theta0[-1]) * np.linalg.norm(theta0) / np.sqrt(xi @ xi + 1)
    return np.concatenate([alpha * xi, [1 - alpha]])


def eq4_field(theta, xi, M):
    """−∇R for the linear DEQ, written out by hand from Eq. (5):
    R = (φ − ξ)ᵀM(φ − ξ), φ = θ1/(1 − θ2)."""
    t1, t2 = theta[:-1], theta[-1]
    phi = t1 / (1 - t2)
    g1 = 2 * M @ (phi - xi) / (1 - t2)
    g2 = 2 * t1 @ M @ (phi - xi) / (1 - t2) ** 2
    return -np.concatenate([g1, [g2]])


def numpy_w(traj):
    th = np.asarray(traj.theta)
    return np.sum((th - e_last(th.shape[1])) ** 2, axis=1)


def run(kind, theta0, t1=500.0, **kw):
    kw.setdefault("saveat_ts", grid(t1))
    kw.setdefault("gtol", GTOL)
    if kind == "u1":
        return flow(LIN, theta0, xi=XI1, dist=U1, t1=t1, **kw)
    if kind == "g3":
        return flow(LIN, theta0, xi=XI3, dist=G3, t1=t1, **kw)
    return flow(LIN, theta0, xi=XI3, x=X3, t1=t1, **kw)


@functools.lru_cache(maxsize=None)
def _cached(kind, theta0):
    return run(kind, list(theta0))


def flow_from(kind, theta0):
    """Default-settings run, shared between tests (the Gaussian ones cost ~1 s each)."""
    return _cached(kind, tuple(float(v) for v in theta0))


# Starts on both sides of θ2 = 1, the first two at |1 − θ2(0)| = 1e-2.
STARTS_1 = [[0.5, 0.99], [1.5, 1.01], [-1.5, 0.3], [2.0, 1.7], [0.3, -0.5], [-0.2, 2.5]]
STARTS_3 = [
    [0.5, -0.3, 0.2, 0.99],
    [1.5, 1.0, -1.0, 1.01],
    [-2.0, 0.5, 1.0, 0.6],
    [0.1, 0.1, 0.1, 1.4],
    [1.0, 1.0, 1.0, -0.5],
]


# ----------------------------------------------------------------------------
# The vector field.


def test_vector_field_is_eq4_and_supports_forward_mode():
    """f = −∇R is the hand-written field of Eq. (4), and its forward-mode Jacobian
    (used by implicit solvers) is −∇²R of the closed-form risk, Eq. (5).

    Erratum: the printed Eq. (3)-(4) has only the θ1 block, with an extra factor
    1/(1 − θ2)²; the proof of Theorem 3.3 has the right gradient (used here)."""
    x = jnp.asarray(X3)
    obj = empirical_objective(LIN, x, x @ jnp.asarray(XI3))
    f = jax.jit(vector_field(obj, lambda th: default_y0(LIN, th, x)))
    for theta in STARTS_3:
        theta = np.array(theta)
        np.testing.assert_allclose(np.asarray(f(0.0, theta, None)), eq4_field(theta, XI3, M3), rtol=1e-11)
    # The printed Eq. (3)-(4) carries an extra factor 1/(1 − θ2)² on the θ1 block.
    theta = np.array(STARTS_3[0])
    printed = -eq4_field(theta, XI3, M3)[:-1] / (1 - theta[-1]) ** 2
    assert not np.allclose(-np.asarray(f(0.0, theta, None))[:-1], printed, rtol=1e-3)

    # Forward mode through the jaxopt backend (reverse-only implicit differentiation)
    # against jax.hessian of the closed-form risk of Eq. (5) (no equilibrium solver).
    def eq5_risk(theta):
        phi = theta[:-1] / (1 - theta[-1])
        return (phi - XI3) @ jnp.asarray(M3) @ (phi - XI3)

    jac_fwd = jax.jit(jax.jacfwd(lambda th: f(0.0, th, None)))  # (each compiled once for both θ)
    hessian = jax.jit(jax.hessian(eq5_risk))
    for theta in (jnp.asarray(STARTS_3[1]), jnp.asarray(STARTS_3[2])):
        np.testing.assert_allclose(np.asarray(jac_fwd(theta)), -np.asarray(hessian(theta)), rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------
# Linear DEQ: Theorems 3.1, 3.3, 3.4.


@pytest.mark.slow
@pytest.mark.parametrize("kind, starts, xi", [("u1", STARTS_1, XI1), ("g3", STARTS_3, XI3), ("emp", STARTS_3, XI3)])
def test_theorem_3_3_limit(kind, starts, xi):
    """The flow converges to (αξ, 1 − α), α = sign(1 − θ2(0))‖θ(0) − e‖/√(‖ξ‖²+1), e = (0,…,0,1).

    Erratum: the printed Theorem 3.3 has sign(θ2(0)) and ‖θ(0)‖.  Both are wrong:
    Theorem 3.1 keeps θ on the sphere around (0,…,0,1), not around 0, and Lemma 3.2
    keeps θ2 on its side of 1, so α > 0 exactly when θ2(0) < 1.
    """
    for theta0 in starts:
        traj = flow_from(kind, theta0)
        assert int(traj.status) == Status.CONVERGED, (theta0, flow_summary(LIN, traj))
        final = np.asarray(traj.theta[-1])
        np.testing.assert_allclose(final, limit_3_3(theta0, xi), rtol=0, atol=1e-8)
        assert np.linalg.norm(final - limit_3_3_printed(theta0, xi)) > 1e-2
        # θ2 never crossed the singular hyperplane (Lemma 3.2)
        th2 = np.asarray(traj.theta)[:, -1]
        assert np.all(np.sign(1 - th2) == np.sign(1 - theta0[-1]))


@pytest.mark.parametrize("kind", ["u1", "g3", "emp"])
def test_theorem_3_1_conservation(kind):
    """|w(t) − w(0)| ≤ 1e-10 at every saved time, w = ‖θ − (0,…,0,1)‖², recomputed in
    numpy, for starts at |1 − θ2(0)| = 1e-2 on both sides of 1 and further away.
    No projection is applied, so looser tolerances do break the check."""
    starts = [[0.5, 0.99], [1.5, 1.01], [-3.0, 0.99], [0.2, 1.5]] if kind == "u1" else STARTS_3
    for theta0 in starts:
        traj = flow_from(kind, theta0)
        w = numpy_w(traj)
        w0 = np.sum((np.asarray(theta0) - e_last(len(theta0))) ** 2)
        assert np.max(np.abs(w - w0)) <= 1e-10, (theta0, np.max(np.abs(w - w0)))
        np.testing.assert_allclose(np.asarray(traj.drift), np.abs(w - w0), rtol=0, atol=1e-14)
        assert flow_summary(LIN, traj)["conservation_drift"] <= 1e-10
    # The check can fail: a loose integration drifts visibly.
    loose = run(kind, starts[1], rtol=1e-6, atol=1e-6)
    assert np.max(np.abs(numpy_w(loose) - numpy_w(loose)[0])) > 1e-9


def test_flow_matches_scipy_on_eq4_and_theorem_3_4_counterexample():
    """The d = 3 flow (empirical risk with E[XXᵀ] = M3) equals scipy's DOP853 on the
    hand-written field.

    The start has φ(0) = (0.7, −1.8, 0.4), where (φ−ξ)ᵀ(I + φφᵀ)M(φ−ξ) < 0: the
    quantity r = ‖φ − ξ‖² of Theorem 3.4 first *grows*, so the bound
    r(t) ≤ r(0)e^{−λt} of Theorem 3.4 fails for anisotropic E[XXᵀ] in d ≥ 2 (its
    proof takes λ_min of the non-symmetric (I + φφᵀ)M).  φ(t) → ξ all the same.
    """
    phi0 = np.array([0.7, -1.8, 0.4])
    v = phi0 - XI3
    assert v @ M3 @ v + (v @ phi0) * (phi0 @ M3 @ v) < 0
    theta0 = np.concatenate([0.5 * phi0, [0.5]])
    t1 = 500.0
    traj = run("emp", theta0, t1=t1)
    ts = np.asarray(traj.ts)[:-1]
    reached = ts <= float(traj.t_final)
    ref = solve_ivp(
        lambda t, th: eq4_field(th, XI3, M3),
        (0, float(traj.t_final)),
        theta0,
        t_eval=ts[reached],
        method="DOP853",
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(np.asarray(traj.theta)[:-1][reached], ref.y.T, rtol=0, atol=1e-8)
    th = np.asarray(traj.theta)
    phi = th[:, :-1] / (1 - th[:, -1:])
    r = np.sum((phi - XI3) ** 2, axis=1)
    assert r.max() > 1.05 * r[0]  # grows first ...
    assert r[-1] < 1e-14  # ... and still φ → ξ
    # The corrected Theorem 3.4 (ERRATA.md): R(t) ≤ R(0) e^{−4λ_min t/β²} and
    # r(t) ≤ κ r(0) e^{−4λ_min t/β²}, with β = ‖θ(0) − e‖ an upper bound on |1 − θ2|.
    lam = np.linalg.eigvalsh(M3)
    beta2 = np.sum((theta0 - np.r_[np.zeros(3), 1.0]) ** 2)
    t = np.minimum(np.asarray(traj.ts), float(traj.t_final))
    decay = np.exp(-4 * lam[0] * t / beta2)
    R = np.einsum("ti,ij,tj->t", phi - XI3, M3, phi - XI3)
    assert np.all(R <= R[0] * decay * (1 + 1e-8) + 1e-20)
    assert np.all(r <= (lam[-1] / lam[0]) * r[0] * decay * (1 + 1e-8) + 1e-20)
    assert np.all(np.abs(1 - th[:, -1]) <= np.sqrt(beta2) * (1 + 1e-10))


@pytest.mark.parametrize("kind, xi", [("u1", XI1), ("g3", XI3)])
def test_theorem_3_4_phi_converges(kind, xi):
    """φ(t) = θ1/(1 − θ2) → ξ.  In d = 1 also the rate of Theorem 3.4 with β an *upper*
    bound on |1 − θ2(t)| (the printed lower bound gives the inequality the wrong way):
    β = ‖θ(0) − (0, 1)‖ by Theorem 3.1, so r(t) ≤ r(0) exp(−4E[X²]t/β²)."""
    starts = STARTS_1[:4] if kind == "u1" else STARTS_3[:3]
    for theta0 in starts:
        traj = flow_from(kind, theta0)
        th = np.asarray(traj.theta)
        phi = th[:, :-1] / (1 - th[:, -1:])
        r = np.sum((phi - xi) ** 2, axis=1)
        assert r[-1] <= 1e-14 * max(1.0, r[0])
        if kind == "u1":
            beta2 = np.sum((np.asarray(theta0) - [0.0, 1.0]) ** 2)
            t = np.asarray(traj.ts)
            t = np.minimum(t, float(traj.t_final))  # rows after the stop hold the final state
            bound = r[0] * np.exp(-4 * (1 / 3) * t / beta2)
            assert np.all(r <= bound * (1 + 1e-8) + 1e-20)


# ----------------------------------------------------------------------------
# Single-index DEQ: Theorem 3.8.


def test_theorem_3_8_sigmoid_converges_monotonically():
    """From inside B((ξ, 0), 1/L) = B((ξ, 0), 4) the sigmoid flow converges to (ξ, 0)
    and ‖θ(t) − (ξ, 0)‖ is non-increasing (Theorem 3.8, Corollary 3.1)."""
    dist = sideq.uniform(-3.0, 3.0, 1)
    xi = np.array([1.0])
    t1 = 3000.0
    ts = np.linspace(0.0, t1, 61)
    for theta0 in ([0.0, 1.5], [2.5, -1.0], [1.0, 3.0], [-1.5, 0.5]):
        assert np.linalg.norm(np.array(theta0) - [1.0, 0.0]) < 4.0
        traj = flow(SIG, theta0, xi=xi, dist=dist, t1=t1, saveat_ts=ts, gtol=GTOL)
        assert int(traj.status) == Status.CONVERGED
        th = np.asarray(traj.theta)
        dist_t = np.linalg.norm(th - [1.0, 0.0], axis=1)
        np.testing.assert_allclose(np.asarray(traj.distance), dist_t, rtol=1e-14, atol=1e-15)
        assert dist_t[-1] < 1e-6
        assert np.all(np.diff(dist_t) <= 1e-12 * dist_t[0])
    assert "conservation_drift" not in flow_summary(SIG, traj)  # Theorem 3.1 is about the linear DEQ


# ----------------------------------------------------------------------------
# Gradient descent is the Euler discretisation of the flow.


def test_descent_converges_to_flow_at_first_order():
    """GD with step η for t1/η steps lands within ~1e-3 (relative) of θ(t1), and the
    error halves with η (first order)."""
    theta0, t1, T = np.array([0.5, -0.3, 0.2, 0.5]), 1.0, 400
    traj = run("emp", theta0, t1=t1, gtol=0.0)
    assert int(traj.status) == Status.MAX_STEPS and float(traj.t_final) == t1
    ref = np.asarray(traj.theta[-1])
    errs = []
    for eta in (t1 / T, t1 / (2 * T)):  # one compile: both run 2T epochs
        gd = descent(LIN, theta0, xi=XI3, x=X3, eta=eta, epochs=2 * T)
        k = int(round(t1 / eta))
        errs.append(np.linalg.norm(np.asarray(gd.theta[k]) - ref) / np.linalg.norm(ref))
    assert 1e-5 < errs[0] < 3e-3, errs
    assert errs[1] / errs[0] == pytest.approx(0.5, abs=0.05), errs


# ----------------------------------------------------------------------------
# Batching and status.


def test_vmapped_flow_equals_single_runs():
    x, xi = jnp.asarray(X3), jnp.asarray(XI3)
    objective = empirical_objective(LIN, x, x @ xi)
    ts = jnp.asarray(grid(500.0))

    @sideq.xla.jit  # compiled like flow() itself (sideq.xla), so the two can agree to rounding
    @jax.vmap
    def batch(theta0):
        return gradient_flow(
            LIN, objective, theta0, xi, cold_start=lambda th: default_y0(LIN, th, x), t1=500.0, saveat_ts=ts, gtol=GTOL
        )

    starts = np.array(STARTS_3[:3])
    out = batch(jnp.asarray(starts))
    assert isinstance(out, FlowTrajectory) and out.theta.shape == (3, 62, 4)
    for i, theta0 in enumerate(starts):
        single = flow_from("emp", theta0)
        np.testing.assert_allclose(np.asarray(out.theta[i]), np.asarray(single.theta), rtol=1e-12, atol=1e-14)
        assert float(out.t_final[i]) == pytest.approx(float(single.t_final), rel=1e-12)
        assert int(out.status[i]) == int(single.status) == Status.CONVERGED
        assert int(out.steps[i]) == int(single.steps)


def test_status_converged_vs_max_steps():
    conv = flow_from("u1", [0.5, 0.99])
    assert int(conv.status) == Status.CONVERGED
    assert 0 < float(conv.t_final) < 500.0
    assert float(conv.grad_norm[-1]) <= GTOL
    assert int(conv.steps) > 0 and int(conv.rejected) >= 0
    # rows after the stop hold the final state
    late = np.asarray(conv.ts)[:-1] > float(conv.t_final)
    assert late.any()
    np.testing.assert_array_equal(
        np.asarray(conv.theta)[:-1][late], np.broadcast_to(np.asarray(conv.theta[-1]), (late.sum(), 2))
    )
    # until_stop keeps the rows reached, in time order, ending at the stop
    kept = until_stop(conv)
    before = np.asarray(conv.ts)[:-1] < float(conv.t_final)
    assert before.sum() > 10 and np.all(np.diff(kept.ts) > 0)
    np.testing.assert_array_equal(kept.ts, np.append(np.asarray(conv.ts)[:-1][before], conv.t_final))
    np.testing.assert_array_equal(
        kept.theta, np.concatenate([np.asarray(conv.theta)[:-1][before], np.asarray(conv.theta)[-1:]])
    )
    assert kept.status == conv.status and kept.drift.shape == kept.ts.shape
    with pytest.raises(sideq.SideqInputError, match="^traj: until_stop takes one flow"):
        until_stop(jax.tree_util.tree_map(lambda v: jnp.stack([v, v]), conv))

    # the saved times are integrator states (steps clipped onto them): w is conserved there to rounding
    assert float(np.max(np.asarray(conv.drift))) < 1e-14
    # the summary's drift is the largest over the rows, wherever it is
    drift = np.zeros(len(conv.ts))
    drift[3] = 3e-11
    assert flow_summary(LIN, conv._replace(drift=jnp.asarray(drift)))["conservation_drift"] == 3e-11

    short = run("u1", [0.5, 0.99], t1=1e-3)
    assert int(short.status) == Status.MAX_STEPS
    # t1 is a saved time and the stop time: until_stop keeps it once
    np.testing.assert_array_equal(until_stop(short).ts, grid(1e-3))
    # t1, tolerances and θ(0) are traced: no recompilation for a new value
    compiled = _flow_population._cache_size()
    run("u1", [0.4, 1.2], t1=2e-3, gtol=1e-9, rtol=1e-11)
    assert _flow_population._cache_size() == compiled
    assert float(short.t_final) == 1e-3
    assert float(short.grad_norm[-1]) > GTOL
    s = flow_summary(LIN, short)
    assert s["status"] == "max_steps" and s["t_final"] == 1e-3


def test_steps_and_rejected_are_the_integrators_counts():
    """diffrax counts accepted and rejected steps against ``max_steps`` together, so
    a flow stopped by the limit has steps + rejected = max_steps; near θ2 = 1 the
    controller rejects some steps."""
    tr = flow(LIN, [0.5, 0.99], xi=XI1, dist=U1, t1=500.0, gtol=GTOL, max_steps=60)
    assert int(tr.status) == Status.MAX_STEPS and float(tr.t_final) < 500.0
    assert int(tr.rejected) > 0 and int(tr.steps) + int(tr.rejected) == 60


def test_failures_are_data_under_vmap():
    """A flow that runs into a region where ∇R is NaN stalls there and reports
    DIVERGED; one that escapes to infinity stops at |θ| > divergence; neither
    affects the other runs of the batch.  (R is a toy: ‖θ − a‖², NaN beyond a wall,
    or −θ1 for the escaping run.)"""

    def run_one(theta0, a, wall, escape, band_code, band):
        def objective(theta, y0):
            quad = jnp.sum((theta - a) ** 2)
            r = jnp.where(escape, -theta[0], quad) * jnp.where(theta[0] > wall, jnp.nan, 1.0)
            z = jnp.zeros_like(y0)
            # the equilibria report band_code while band[0] < θ1 < band[1]
            code = jnp.where((theta[0] > band[0]) & (theta[0] < band[1]), band_code, 0) + z.astype(jnp.int32)
            eq = Equilibrium(y0, z, z.astype(jnp.int32), z + 1, code, z, z)
            return r, eq

        return gradient_flow(
            LIN,
            objective,
            theta0,
            a[:1],
            cold_start=lambda th: jnp.zeros(3),
            t1=20.0,
            saveat_ts=jnp.array([np.log(2) / 2, 20.0]),
            gtol=1e-10,
            max_steps=512,
            divergence=10.0,
        )

    theta0 = jnp.zeros((5, 2))
    a = jnp.array([[2.0, 0.5]] * 5)
    wall = jnp.array([jnp.inf, 1.0, jnp.inf, jnp.inf, jnp.inf])
    escape = jnp.array([False, False, True, False, False])
    # run 3: a failed solve at the saved row t = ln(2)/2 (θ1 = 1) only; run 4: NON_UNIQUE throughout
    band_code = jnp.array([0, 0, 0, Status.SOLVER_FAILURE, Status.NON_UNIQUE])
    band = jnp.array([[0.0, 0.0]] * 3 + [[0.9, 1.1], [-jnp.inf, jnp.inf]])
    out = jax.jit(jax.vmap(run_one))(theta0, a, wall, escape, band_code, band)
    assert [int(s) for s in out.status] == [
        Status.CONVERGED,
        Status.DIVERGED,
        Status.DIVERGED,
        Status.SOLVER_FAILURE,
        Status.NON_UNIQUE,
    ]
    assert float(out.grad_norm[4, -1]) <= 1e-10  # run 4 did reach its steady state
    # the drift is measured from θ(0), also when the saved times do not start at 0
    w0 = np.sum((np.zeros(2) - [0.0, 1.0]) ** 2)
    th = np.asarray(out.theta[0])
    np.testing.assert_allclose(np.asarray(out.drift[0]), np.abs(np.sum((th - [0.0, 1.0]) ** 2, 1) - w0), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out.theta[0, -1]), [2.0, 0.5], atol=1e-10)
    # the stalled run stopped at the wall θ1 = 1, reached at t = ln(2)/2
    assert abs(float(out.theta[1, -1, 0]) - 1.0) < 1e-6
    assert float(out.t_final[1]) == pytest.approx(np.log(2) / 2, rel=1e-4)
    # the escaping run θ1(t) = t stopped just past |θ| = 10 (at the end of the step that crossed it)
    assert 10.0 < float(out.theta[2, -1, 0]) < 12.0
    assert np.all(np.isfinite(np.asarray(out.theta)))


# ----------------------------------------------------------------------------
# Checked entry point.


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(t1=0.0), "t1"),
        (dict(t1=float("nan")), "t1"),
        (dict(gtol=-1.0), "gtol"),
        (dict(rtol=0.0), "rtol"),
        (dict(saveat_ts=[0.0, 2.0, 1.0]), "saveat_ts"),
        (dict(saveat_ts=[0.0, 20.0]), "saveat_ts"),
        (dict(max_steps=0), "max_steps"),
        (dict(maxiter=0), "maxiter"),
        (dict(solver="dopri8"), "solver"),
        (dict(backend="scipy"), "backend"),
        (dict(theta0=[0.1, 0.2, 0.3]), "theta0"),
        (dict(xi=[1.0, 2.0]), "xi"),
        (dict(dist=None), "x/dist"),
    ],
)
def test_flow_bad_input(kwargs, match):
    args = dict(theta0=[0.1, 0.2], xi=XI1, dist=U1, t1=10.0)
    args.update(kwargs)
    theta0 = args.pop("theta0")
    with pytest.raises(sideq.SideqInputError, match=f"^{match}"):
        flow(LIN, theta0, **args)


def test_flow_singular_start():
    with pytest.raises(sideq.SingularModelError, match="theta0"):
        flow(LIN, [0.3, 1.0], xi=XI1, dist=U1)
