"""Gradient flow of general DEQs (sideq.flow on a sideq.general.DEQ) against independent routes.

Routes: scipy's DOP853 on the closed-form risk tr((A − Ξ)M(A − Ξ)ᵀ),
A = (I − W2)⁻¹W1, with its gradient written out by hand (no equilibrium solver,
no jax), for the empirical risk (M = XᵀX/n) and the population risk
(M = E[XXᵀ]); the scalar library's flow for k = 1; the conservation law of
W1W1ᵀ + (I − W2)(I − W2)ᵀ (proved in sideq.gradient_flow.multi_linear_invariant).

Compile budget: four compiled flows (a vmapped empirical multi_linear batch,
a population multi_linear run, a k = 1 DEQ and the scalar flow it reproduces),
each shared by the tests that read it.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import sideq
from sideq.gradient_flow import DEQFlowTrajectory, flow_summary, multi_linear_invariant, until_stop
from sideq.status import Status

K, D = 2, 2
ML = sideq.multi_linear(K, solver="fixed_point")
XI = np.array([[1.0, -0.5], [0.3, 0.8]])
X = np.random.default_rng(0).normal(size=(12, D))
M_HAT = X.T @ X / len(X)
TS = np.array([0.0, 0.5, 2.0, 5.0])
T1, GTOL = 50.0, 1e-10
# Four starts: two ordinary ones, one with I − W2 singular (eigenvalue 1 of W2),
# one where fixed-point iteration diverges (eigenvalue 1.5 of W2; I − W2 is fine).
W1_0 = np.array(
    [[[0.4, -0.6], [0.1, 0.3]], [[-0.2, 0.5], [0.7, 0.2]], [[0.3, 0.1], [0.2, -0.4]], [[0.3, 0.1], [0.2, -0.4]]]
)
W2_0 = np.array(
    [[[0.2, -0.3], [0.1, 0.4]], [[-0.5, 0.2], [0.3, 0.1]], [[1.0, 0.0], [0.2, 0.4]], [[1.5, 0.0], [0.0, 0.2]]]
)
GOOD = (0, 1)


def closed_form_risk(W1, W2, xi, M):
    """tr((A − Ξ)M(A − Ξ)ᵀ), A = (I − W2)⁻¹W1 (Eq. (5) with k outputs)."""
    E = np.linalg.solve(np.eye(len(W2)) - W2, W1) - xi
    return np.trace(E @ M @ E.T)


def closed_form_field(theta, xi, M):
    """−∇R of :func:`closed_form_risk` on θ = (vec W1, vec W2), by hand: with
    B = I − W2 and G = 2(A − Ξ)M, ∇_{W1}R = B⁻ᵀG and ∇_{W2}R = B⁻ᵀG Aᵀ."""
    k, d = xi.shape
    W1, W2 = theta[: k * d].reshape(k, d), theta[k * d :].reshape(k, k)
    B = np.eye(k) - W2
    A = np.linalg.solve(B, W1)
    BG = np.linalg.solve(B.T, 2 * (A - xi) @ M)
    return -np.concatenate([BG.ravel(), (BG @ A.T).ravel()])


def reference(W1, W2, xi, M, ts):
    """θ(t) at ``ts`` by scipy's DOP853 on :func:`closed_form_field`, as (W1, W2) rows."""
    k, d = xi.shape
    theta0 = np.concatenate([np.ravel(W1), np.ravel(W2)])
    sol = solve_ivp(
        lambda t, th: closed_form_field(th, xi, M),
        (0.0, ts[-1]),
        theta0,
        t_eval=ts,
        method="DOP853",
        rtol=1e-12,
        atol=1e-12,
    )
    assert sol.success
    th = sol.y.T
    return th[:, : k * d].reshape(-1, k, d), th[:, k * d :].reshape(-1, k, k)


def run_batch(**kw):
    """The four starts as one vmapped flow (one compile, reused for every call)."""
    kw = {"t1": T1, "saveat_ts": TS, "gtol": GTOL, "max_steps": 250, **kw}
    return jax.vmap(lambda p: sideq.flow(ML, p, xi=XI, x=X, **kw))({"W1": jnp.asarray(W1_0), "W2": jnp.asarray(W2_0)})


@functools.lru_cache(maxsize=None)
def batch():
    return run_batch()


def one(traj, i):
    return jax.tree_util.tree_map(lambda v: v[i], traj)


# ----------------------------------------------------------------------------
# multi_linear, empirical risk: closed form, conservation, failures under vmap.


def test_empirical_flow_matches_closed_form_flow():
    """Each reached row (the saved times before the stop, and the stop) equals
    scipy's DOP853 on the hand-written field of tr((A − Ξ)M̂(A − Ξ)ᵀ) to 1e-8;
    the recorded loss is that risk; the flow converges to A = Ξ."""
    tr = batch()
    assert isinstance(tr, DEQFlowTrajectory)
    assert tr.params["W1"].shape == (4, len(TS) + 1, K, D) and tr.params["W2"].shape == (4, len(TS) + 1, K, K)
    for i in GOOD:
        run = until_stop(one(tr, i))
        assert int(run.status) == Status.CONVERGED and 0 < float(run.t_final) < T1
        assert run.grad_norm[-1] <= GTOL and np.all(np.diff(run.ts) > 0) and len(run.ts) == len(TS) + 1
        W1, W2 = reference(W1_0[i], W2_0[i], XI, M_HAT, run.ts)
        np.testing.assert_allclose(run.params["W1"], W1, rtol=0, atol=1e-8)
        np.testing.assert_allclose(run.params["W2"], W2, rtol=0, atol=1e-8)
        risk = [closed_form_risk(a, b, XI, M_HAT) for a, b in zip(run.params["W1"], run.params["W2"])]
        np.testing.assert_allclose(run.loss, risk, rtol=1e-10, atol=1e-20)
        assert np.all(run.residual < 1e-13)
        A = np.linalg.solve(np.eye(K) - run.params["W2"][-1], run.params["W1"][-1])
        np.testing.assert_allclose(A, XI, atol=1e-9)
    # the loss at θ(0) is the library's empirical risk (another code path: general.empirical_risk)
    emp = sideq.general.empirical_risk(ML, {"W1": W1_0[0], "W2": W2_0[0]}, X, xi=XI)
    assert float(tr.loss[0, 0]) == pytest.approx(float(emp), rel=1e-13)
    assert "params={'W1': <float64[5, 2, 2]>" in repr(one(tr, 0))


def test_multi_linear_invariant_is_conserved():
    """Q = W1W1ᵀ + (I − W2)(I − W2)ᵀ, recomputed in numpy, stays at Q(0) to
    1e-10 at every row (Theorem 3.1 for k outputs); a loose integration drifts."""
    tr = batch()
    for i in GOOD:
        run = one(tr, i)
        W1, B = np.asarray(run.params["W1"]), np.eye(K) - np.asarray(run.params["W2"])
        Q = np.einsum("tij,tkj->tik", W1, W1) + np.einsum("tij,tkj->tik", B, B)
        Q0 = W1_0[i] @ W1_0[i].T + (np.eye(K) - W2_0[i]) @ (np.eye(K) - W2_0[i]).T
        assert np.max(np.abs(Q - Q0)) <= 1e-10
        np.testing.assert_allclose(multi_linear_invariant(run.params), Q, rtol=0, atol=1e-15)
        assert flow_summary(ML, run)["conservation_drift"] <= 1e-10
        # the sign matters: W1W1ᵀ − BBᵀ is not conserved
        P = np.einsum("tij,tkj->tik", W1, W1) - np.einsum("tij,tkj->tik", B, B)
        assert np.max(np.abs(P - P[0])) > 1e-2
    loose = run_batch(rtol=1e-4, atol=1e-4)  # (traced tolerances: the same compiled flow)
    Q = multi_linear_invariant(one(loose, 0).params)
    assert np.max(np.abs(Q - Q[0])) > 1e-7


def test_failure_is_data_under_vmap():
    """The start with I − W2 singular ends SINGULAR, the one where fixed-point
    iteration diverges SOLVER_FAILURE, both at t = 0 with NaN risk; the other
    runs of the batch are the closed-form flow (previous tests) and CONVERGED;
    a concrete singular start is refused at the boundary."""
    tr = batch()
    for i, code in ((2, Status.SINGULAR), (3, Status.SOLVER_FAILURE)):
        bad = one(tr, i)
        assert int(bad.status) == code and float(bad.t_final) == 0.0
        assert np.all(np.isnan(np.asarray(bad.loss)))
        np.testing.assert_array_equal(np.asarray(bad.params["W2"])[-1], W2_0[i])  # held at θ(0)
    assert [int(tr.status[i]) for i in GOOD] == [Status.CONVERGED] * 2
    assert np.all(np.isfinite(np.asarray(tr.loss)[list(GOOD)]))
    s = flow_summary(ML, until_stop(one(tr, 2)))
    assert s["status"] == "singular" and s["loss_final"] is None
    with pytest.raises(sideq.SingularModelError, match=r"^theta0\['W2'\]: I - W2 is singular"):
        sideq.flow(ML, {"W1": W1_0[2], "W2": W2_0[2]}, xi=XI, x=X, t1=1.0)


# ----------------------------------------------------------------------------
# multi_linear, population risk.


def test_population_flow_matches_closed_form_flow():
    """dist=: the flow of R = E‖AX − ΞX‖² (sideq.general_risk's closed form)
    equals scipy on the hand-written field with M = E[XXᵀ] = Σ + μμᵀ to 1e-8."""
    mean, cov = np.array([0.2, -0.1]), np.array([[1.0, 0.3], [0.3, 0.5]])
    dist = sideq.gaussian(mean, cov)
    M = cov + np.outer(mean, mean)
    np.testing.assert_allclose(sideq.second_moment(dist), M, rtol=1e-15)
    p0 = {"W1": W1_0[0], "W2": W2_0[0]}
    tr = sideq.flow(ML, p0, xi=XI, dist=dist, t1=T1, saveat_ts=TS, gtol=GTOL)
    run = until_stop(tr)
    assert int(run.status) == Status.CONVERGED and len(run.ts) == len(TS) + 1
    W1, W2 = reference(W1_0[0], W2_0[0], XI, M, run.ts)
    np.testing.assert_allclose(run.params["W1"], W1, rtol=0, atol=1e-8)
    np.testing.assert_allclose(run.params["W2"], W2, rtol=0, atol=1e-8)
    risk = [closed_form_risk(a, b, XI, M) for a, b in zip(run.params["W1"], run.params["W2"])]
    np.testing.assert_allclose(run.loss, risk, rtol=1e-10, atol=1e-20)
    assert np.all(np.isnan(run.residual))  # (no solve: the closed form)
    Q = multi_linear_invariant(run.params)
    assert np.max(np.abs(Q - Q[0])) <= 1e-10
    # the population flow is not the empirical one (the routes differ)
    assert np.max(np.abs(run.params["W1"][1] - np.asarray(batch().params["W1"][0, 1]))) > 1e-3


# ----------------------------------------------------------------------------
# k = 1: a sideq.deq written as the scalar single-index model.


@pytest.mark.slow
def test_k1_deq_reproduces_scalar_flow():
    """sideq.deq(σ(W1x + W2y), k = 1) with θ = (vec W1, W2) follows the scalar
    single-index flow (Eq. (10), σ = sigmoid) row by row to 1e-10 (measured:
    1e-15), with the same loss, gradient norm, stop and status."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, D))
    xi = np.array([0.8, -0.6])
    y = 1.0 / (1.0 + np.exp(-x @ xi))
    theta0 = np.array([0.3, -0.2, 0.5])
    ts = np.array([0.0, 1.0, 3.0])
    kw = dict(t1=5.0, saveat_ts=ts, gtol=0.0)
    scalar = sideq.flow(sideq.single_index("sigmoid"), theta0, xi=xi, x=x, y=y, **kw)

    model = sideq.deq(
        lambda p, x, y: jax.nn.sigmoid(p["W1"] @ x + p["W2"] @ y),
        1,
        solver="fixed_point",
        certify=lambda p: jnp.abs(p["W2"][0, 0]) / 4 < 1,
    )  # Lip(sigmoid) = 1/4
    tr = sideq.flow(model, {"W1": theta0[None, :D], "W2": theta0[None, D:]}, x=x, y=y, **kw)
    theta = np.concatenate([np.asarray(tr.params["W1"])[:, 0], np.asarray(tr.params["W2"])[:, 0]], axis=1)
    assert int(scalar.status) == int(tr.status) == Status.MAX_STEPS
    assert float(tr.t_final) == float(scalar.t_final) == 5.0
    np.testing.assert_allclose(theta, np.asarray(scalar.theta), rtol=0, atol=1e-10)
    assert np.max(np.abs(theta[-1] - theta0)) > 0.05  # (it moved)
    np.testing.assert_allclose(tr.loss, scalar.loss, rtol=1e-10)
    np.testing.assert_allclose(tr.grad_norm, scalar.grad_norm, rtol=1e-10)
    assert abs(int(tr.steps) - int(scalar.steps)) <= 1  # (the same integrator on the same field)


# ----------------------------------------------------------------------------
# The boundary.


@pytest.mark.parametrize(
    "params, kw, match",
    [
        ({"W1": W1_0[0], "W3": W2_0[0]}, {}, r"^theta0: missing key 'W2'"),
        ({"W1": W1_0[0], "W2": W2_0[0], "c": 1.0}, {}, r"^theta0: unexpected key 'c'"),
        ({"W1": np.zeros((K, D + 1)), "W2": W2_0[0]}, {}, r"^theta0\['W1'\]: expected shape \(2, 2\)"),
        ({"W1": W1_0[0], "W2": W2_0[0]}, {"xi": np.ones((K, D + 1))}, r"^xi: expected shape \(2, 2\)"),
        ({"W1": W1_0[0], "W2": W2_0[0]}, {"dist": sideq.uniform(0, 1, D)}, r"^x/dist: give exactly one"),
        ({"W1": W1_0[0], "W2": W2_0[0]}, {"x": None}, r"^x/dist: give exactly one"),
        (
            {"W1": W1_0[0], "W2": W2_0[0]},
            {"x": None, "dist": sideq.uniform(0, 1, D), "y": X @ XI.T},
            r"^y: targets are only used with data x",
        ),
        ({"W1": W1_0[0], "W2": W2_0[0]}, {"backend": "optimistix"}, r"^backend/maxiter: set a sideq.general"),
        ({"W1": W1_0[0] + 0j, "W2": W2_0[0]}, {}, r"^theta0\['W1'\]: expected real numbers"),
        ({"W1": W1_0[0], "W2": W2_0[0]}, {"xi": None, "y": np.ones((12, 3))}, r"^y: expected shape \(12, 2\)"),
    ],
)
def test_bad_input_is_one_line(params, kw, match):
    kw = {"xi": XI, "x": X, "t1": 1.0, **kw}
    with pytest.raises(sideq.SideqInputError, match=match) as err:
        sideq.flow(ML, params, **kw)
    assert "\n" not in str(err.value)


def test_scalar_flow_still_needs_xi():
    with pytest.raises(sideq.SideqInputError, match=r"^xi: the target direction is required"):
        sideq.flow(sideq.linear(), [0.5, 0.9], dist=sideq.uniform(0, 1, 1))
