"""The laws of Section 3.1 for multi-output DEQs (MULTI_NEURON.md, sideq.paper.multi).

Second routes: central differences and jax.grad of an independent jnp risk for
Eqs. (M1)-(M2); scipy's DOP853 on the numpy field for the conservation law;
sideq.paper.theory's scalar formulas for k = 1; finite differences of the
quadrature gradient for the Hessian of Proposition M5.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import sideq
from sideq.paper import multi as MU
from sideq.paper import theory as T
from sideq.paper import verify as V

RNG = np.random.default_rng(20251124)


def _problem(k, d):
    W1 = RNG.normal(0, 0.7, (k, d))
    W2 = RNG.normal(0, 0.4, (k, k))
    xi = RNG.normal(size=(k, d))
    L = RNG.normal(size=(d, d))
    return W1, W2, xi, L @ L.T + 0.5 * np.eye(d)


def _risk_jnp(p, xi, M):
    """tr((A − Ξ) M (A − Ξ)ᵀ) with A from a dense jnp solve (no sideq code)."""
    E = jnp.linalg.solve(jnp.eye(p["W2"].shape[0]) - p["W2"], p["W1"]) - xi
    return jnp.trace(E @ M @ E.T)


def test_risk_and_gradient_closed_forms():
    W1, W2, xi, M = _problem(3, 2)
    p = {"W1": jnp.asarray(W1), "W2": jnp.asarray(W2)}
    R, g = jax.value_and_grad(_risk_jnp)(p, xi, M)
    g1, g2 = MU.linear_grad(W1, W2, xi, M)
    assert MU.linear_risk(W1, W2, xi, M) == pytest.approx(float(R), rel=1e-13)
    np.testing.assert_allclose(g1, g["W1"], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(g2, g["W2"], rtol=1e-12, atol=1e-13)
    # and central differences of the closed-form risk (one entry of each block)
    h = 1e-6
    for name, G in (("W1", g1), ("W2", g2)):
        E = np.zeros_like(p[name])
        E.flat[0] = h
        args = (W1 + E, W2) if name == "W1" else (W1, W2 + E)
        args_m = (W1 - E, W2) if name == "W1" else (W1, W2 - E)
        fd = (MU.linear_risk(*args, xi, M) - MU.linear_risk(*args_m, xi, M)) / (2 * h)
        assert fd == pytest.approx(G.flat[0], rel=1e-7, abs=1e-8)


def test_dC_dt_vanishes_for_any_risk_of_A():
    """Proposition M1's proof: the field is orthogonal to the GL(k) orbits, so
    d/dt [W1W1ᵀ + BBᵀ] = 0 for any risk that depends on A = B⁻¹W1 only (here a
    non-quadratic one, by jax.grad); the sign-flipped matrix is not conserved."""
    k, d = 3, 2
    W1, W2, xi, _ = _problem(k, d)

    def risk(p):
        A = jnp.linalg.solve(jnp.eye(k) - p["W2"], p["W1"])
        return jnp.sum(jnp.tanh(A - xi) ** 2) + jnp.sum(A) ** 4

    g = jax.grad(risk)({"W1": jnp.asarray(W1), "W2": jnp.asarray(W2)})
    dW1, dB = -np.asarray(g["W1"]), np.asarray(g["W2"])  # B = I − W2, so B' = −W2' = ∇_{W2}R
    B = np.eye(k) - W2
    dC = dW1 @ W1.T + W1 @ dW1.T + dB @ B.T + B @ dB.T
    dN = dW1 @ W1.T + W1 @ dW1.T - dB @ B.T - B @ dB.T
    scale = np.abs(dW1 @ W1.T).max()
    assert np.abs(dC).max() <= 1e-13 * scale
    assert np.abs(dN).max() >= 0.1 * scale


def _scipy_flow(W1, W2, xi, M, t1, rtol=1e-13):
    """θ' = −∇R with scipy's DOP853 on the numpy field of Eq. (M2)."""
    k, d = W1.shape

    def f(t, v):
        g1, g2 = MU.linear_grad(v[: k * d].reshape(k, d), v[k * d :].reshape(k, k), xi, M)
        return -np.concatenate([g1.ravel(), g2.ravel()])

    sol = solve_ivp(
        f,
        (0, t1),
        np.concatenate([W1.ravel(), W2.ravel()]),
        method="DOP853",
        rtol=rtol,
        atol=rtol,
        dense_output=False,
        t_eval=np.linspace(0, t1, 21),
    )
    assert sol.success
    y = sol.y.T
    return y[:, : k * d].reshape(-1, k, d), y[:, k * d :].reshape(-1, k, k)


def test_conservation_drift_at_rounding_level_along_scipy_flows():
    """Proposition M1 along an independent integrator (two starts, one near det(I − W2) = 0):
    C drifts by rounding only; W1W1ᵀ − BBᵀ moves by O(1)."""
    k, d = 3, 2
    xi = RNG.normal(size=(k, d))
    M = sideq.second_moment(sideq.uniform(0.0, 1.0, d))
    W1s, W2s = MU.linear_starts(k, d, 2, seed=5)
    for W1, W2 in zip(W1s, W2s):
        P1, P2 = _scipy_flow(W1, W2, xi, M, t1=1.0)
        C = MU.conserved(P1, P2)
        N = MU.naive_conserved(P1, P2)
        assert np.max(np.abs(C - C[0])) <= 1e-11 * np.abs(C[0]).max()
        assert np.max(np.abs(N - N[0])) >= 1e-2 * np.abs(N[0]).max()
        # Proposition M2's pointwise inequality on the conserved set
        assert np.min(MU.singular_ratio(P1, P2, C[0])) >= 1 - 1e-12
        # the risk decreases
        R = MU.linear_risk(P1, P2, xi, M)
        assert np.all(np.diff(R) <= 1e-12 * R[0])


def test_gradient_descent_step_adds_eta_squared_gradient_gram():
    """Eq. (8) for k outputs: one step of gradient descent on (W1, W2) moves
    C = ΘΘᵀ, Θ = [W1, I − W2], by exactly η² ∇_ΘR ∇_ΘRᵀ (the cross terms vanish as in
    Proposition M1), so C grows in the Loewner order along descent."""
    k, d = 3, 2
    W1, W2, xi, M = _problem(k, d)
    eta = 0.05
    g1, g2 = MU.linear_grad(W1, W2, xi, M)
    step = MU.conserved(W1 - eta * g1, W2 - eta * g2) - MU.conserved(W1, W2)
    gt = np.concatenate([g1, -g2], axis=1)  # ∇_Θ R, Θ = [W1, B], B = I − W2
    np.testing.assert_allclose(step, eta**2 * gt @ gt.T, rtol=1e-9, atol=1e-13)
    assert np.linalg.eigvalsh(step).min() >= -1e-14


def test_k1_reduces_to_theorem_3_1_and_corrected_theorem_3_3():
    """k = 1: C = w of Theorem 3.1; the limit formula is ERRATA.md §2's (theory's
    function); the frozen-rotation guess is exact (Q = ±1); Proposition M2's
    pointwise inequality is an equality, w = (1 − θ2)²(1 + φ²)."""
    xi = np.array([2.0])
    for theta0 in ([0.5, 1.01], [-0.3, 0.2], [0.0, 3.0]):
        theta0 = np.array(theta0)
        W1, W2 = theta0[None, :-1], theta0[-1:, None]
        assert MU.conserved(W1, W2)[0, 0] == pytest.approx(T.conserved_w(theta0), rel=1e-15)
        limit = T.theorem_3_3_limit_corrected(theta0, xi)
        np.testing.assert_allclose(MU.limit_k1(theta0, xi), limit, rtol=1e-15)
        g1, g2 = MU.limit_frozen_rotation(W1, W2, xi[None])
        np.testing.assert_allclose([g1[0, 0], g2[0, 0]], limit, rtol=1e-13, atol=1e-14)
        assert MU.singular_ratio(W1, W2, MU.conserved(W1, W2)) == pytest.approx(1.0, rel=1e-13)


def test_limit_set_parametrisation():
    """Proposition M3's limit set: B = C^{1/2} Q (I + ΞΞᵀ)^{−1/2}, W1 = BΞ lies on
    {A = Ξ, W1W1ᵀ + BBᵀ = C} for every orthogonal Q, and polar_rotation recovers Q."""
    k, d = 3, 2
    W1, W2, xi, _ = _problem(k, d)
    C = MU.conserved(W1, W2)
    lam, V_ = np.linalg.eigh(C)
    Ch = V_ @ np.diag(np.sqrt(lam)) @ V_.T
    lp, Vp = np.linalg.eigh(np.eye(k) + xi @ xi.T)
    Pih = Vp @ np.diag(lp**-0.5) @ Vp.T
    Q, _ = np.linalg.qr(RNG.normal(size=(k, k)))
    B = Ch @ Q @ Pih
    L1, L2 = B @ xi, np.eye(k) - B
    a_err, on_err, _ = MU.limit_residuals(L1, L2, xi, C)
    assert a_err <= 1e-14 and on_err <= 1e-14
    np.testing.assert_allclose(MU.conserved(L1, L2), C, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(MU.polar_rotation(L1, L2, xi, C), Q, atol=1e-12)


def test_verify_checks_hold_and_a_false_claim_is_reported_failing():
    """The verify records on three flows (one compiled flow): Propositions M1–M4 hold, the
    naive conserved matrix and the frozen-rotation limit fail, and each derived claim
    moved off its prediction fails."""
    args = (2, 1, "unif", 3)  # one start near det(I − W2) = 0 with W1 ≠ 0, two with W1 = 0
    for check in (V.check_multi_conservation, V.check_multi_singular, V.check_multi_limit, V.check_multi_rate):
        rec = check(*args)
        assert rec["holds"] and rec["should_hold"], rec
        moved = 1.1 * rec["tightness"] if rec["tightness"] else 1 + 1e-6
        assert not check(*args, perturb=moved)["holds"], check.__name__
    naive = V.check_multi_conservation(*args, variant="naive")
    assert not naive["holds"] and naive["should_hold"] is False
    frozen = V.check_multi_limit_frozen(*args)
    assert not frozen["holds"] and frozen["should_hold"] is False
    assert V.failures([naive, frozen]) == []
    # k = 1 on the scalar checks' starts (the same compiled flow): Theorem 3.1 and
    # ERRATA.md §2's Theorem 3.3; moving α by 1e-6 fails
    assert V.check_multi_k1("unif1", K=4)["holds"]
    assert not V.check_multi_k1("unif1", K=4, perturb=1 + 1e-6)["holds"]


def test_index_gradient_and_hessian():
    """Eq. (1) with k outputs (index_grad) against central differences of the quadrature
    risk; Proposition M5's blocks against central differences of index_grad at (Ξ, 0)."""
    k, d = 2, 2
    x, w = MU.quadrature(sideq.uniform(0.0, 1.0, d), 4)
    xi = RNG.normal(size=(k, d))
    W1, W2 = MU.index_starts(xi, 0.2, 1, seed=3)
    W1, W2 = W1[0], W2[0]
    g1, g2 = MU.index_grad("tanh", W1, W2, xi, x, w)
    h = 1e-6
    for i, j in ((0, 1), (1, 0)):
        E = np.zeros_like(W2)
        E[i, j] = h
        fd = (MU.index_risk("tanh", W1, W2 + E, xi, x, w) - MU.index_risk("tanh", W1, W2 - E, xi, x, w)) / (2 * h)
        assert fd == pytest.approx(g2[i, j], rel=1e-6, abs=1e-11)
        E = np.zeros_like(W1)
        E[i, j] = h
        fd = (MU.index_risk("tanh", W1 + E, W2, xi, x, w) - MU.index_risk("tanh", W1 - E, W2, xi, x, w)) / (2 * h)
        assert fd == pytest.approx(g1[i, j], rel=1e-6, abs=1e-11)
    # the equilibrium solves y = tanh(W1x + W2y) at every node
    y = MU.index_equilibrium("tanh", W1, W2, x)
    assert np.max(np.abs(y - np.tanh(x @ W1.T + y @ W2.T))) <= 1e-15
    # Hessian at (Ξ, 0): column of W2[0, 1] by central differences of the gradient
    H = MU.index_hessian("tanh", xi, x, w)
    E = np.zeros((k, k))
    E[0, 1] = h
    gp = np.concatenate([a.ravel() for a in MU.index_grad("tanh", xi, E, xi, x, w)])
    gm = np.concatenate([a.ravel() for a in MU.index_grad("tanh", xi, -E, xi, x, w)])
    np.testing.assert_allclose((gp - gm) / (2 * h), H[:, k * d + 1], atol=1e-9)
    assert MU.index_local_rate("tanh", xi, x, w) == pytest.approx(2 * np.linalg.eigvalsh(H)[0], rel=1e-10)


def test_linearized_r_is_the_quadratic_flow():
    """index_linearized_r at t = 0 is r(0), and it decays like e^{−2λt} along an eigenvector."""
    k, d = 2, 1
    x, w = MU.quadrature(sideq.uniform(0.0, 1.0, d), 8)
    xi = np.array([[1.0], [-0.7]])
    H = MU.index_hessian_blocks("tanh", xi, x, w)
    lam, vec = np.linalg.eigh(H[1])
    delta = 1e-3 * vec[:, 0]
    W1, W2 = xi.copy(), np.zeros((k, k))
    W1[1] += delta[:d]
    W2[1] += delta[d:]
    ts = np.array([0.0, 10.0, 1000.0])
    r = MU.index_linearized_r("tanh", W1, W2, xi, x, w, ts)
    np.testing.assert_allclose(r, 1e-6 * np.exp(-2 * lam[0] * ts), rtol=1e-10)


def test_quadrature_rules_integrate_second_moments():
    """E[XXᵀ] of the tensor rules against sideq.data.second_moment: Gauss–Legendre and
    Gauss–Hermite (n = 3, exact), and the composite normal rule (n = 96, d = 1)."""
    laws = [
        (sideq.uniform(0.0, 1.0, 3), 3),
        (sideq.gaussian(np.array([0.3, -0.2, 0.1]), np.array([4.0, 1.0, 0.1])), 3),
        (sideq.gaussian(0.5, 2.0, 1), 96),
    ]
    for dist, n in laws:
        x, w = MU.quadrature(dist, n)
        np.testing.assert_allclose((w * x.T) @ x, sideq.second_moment(dist), rtol=1e-11, atol=1e-12)
        assert math.isclose(w.sum(), 1.0, rel_tol=1e-12)


def test_rdot_identity_for_k_outputs():
    """Proposition M7's first step: r' = −2(θ − (Ξ, 0))ᵀ∇R equals
    −4 E[(z − z*)ᵀ D̄ (I − DW2)⁻¹ D (z − z*)], z = W1x + W2y, z* = Ξx, D = diag σ'(z),
    D̄ = diag (σ(z) − σ(z*))/(z − z*): Eq. (15) (with ERRATA.md §8's factor) for k outputs."""
    k, d = 2, 2  # (the shapes of test_index_gradient_and_hessian: no new compile)
    x, w = MU.quadrature(sideq.uniform(0.0, 1.0, d), 4)
    xi = RNG.normal(size=(k, d))
    W1, W2 = MU.index_starts(xi, 0.3, 1, seed=11)
    W1, W2 = W1[0], W2[0]
    g1, g2 = MU.index_grad("tanh", W1, W2, xi, x, w)
    lhs = -2 * (np.sum((W1 - xi) * g1) + np.sum(W2 * g2))
    y = MU.index_equilibrium("tanh", W1, W2, x)
    z, zs = x @ W1.T + y @ W2.T, x @ xi.T
    D, Dbar = 1 - np.tanh(z) ** 2, (np.tanh(z) - np.tanh(zs)) / (z - zs)
    e = z - zs
    rhs = 0.0
    for n in range(len(w)):
        J = np.eye(k) - D[n][:, None] * W2
        rhs += w[n] * (Dbar[n] * e[n]) @ np.linalg.solve(J, D[n] * e[n])
    assert lhs == pytest.approx(-4 * rhs, rel=1e-11)
