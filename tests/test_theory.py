"""sideq.paper.theory: the formulas and constants of Section 3 against independent computations.

Every expected value comes from a second route: a closed form derived by hand
(the derivation is in the comment), plain numpy/scipy (Gauss–Legendre and
Gauss–Hermite rules from numpy.polynomial, equilibria by brentq or by a
vectorised numpy fixed-point iteration, scipy.integrate.quad), Monte Carlo, or
finite differences -- never from the function under test.  float64 is on
(tests/conftest.py).
"""

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

import sideq
from sideq.paper import theory as T


def test_conserved_w_and_limits_errata_example():
    # ERRATA.md §2: from (0.5, 1.01), xi = 2, the flow goes to (-0.447, 1.224).
    th0 = np.array([0.5, 1.01])
    assert T.conserved_w(th0) == pytest.approx(0.25 + 0.01**2)
    corr = T.theorem_3_3_limit_corrected(th0, [2.0])
    a = -math.sqrt(0.25 + 0.01**2) / math.sqrt(5.0)  # sign(1 - 1.01) ||theta(0) - e|| / sqrt(xi^2 + 1)
    assert corr == pytest.approx([2 * a, 1 - a], rel=1e-15)
    assert corr == pytest.approx([-0.4473, 1.2236], abs=1e-4)  # as quoted in ERRATA.md
    assert T.conserved_w(corr) == pytest.approx(T.conserved_w(th0), rel=1e-14)  # on the sphere
    a = math.hypot(0.5, 1.01) / math.sqrt(5.0)  # sign(theta2(0)) ||theta(0)|| / sqrt(xi^2 + 1)
    assert T.theorem_3_3_limit_printed(th0, [2.0]) == pytest.approx([2 * a, 1 - a], rel=1e-15)
    # the paper's sign(0) = +1 (Section 1.3): from theta2(0) = 0 the printed alpha is +||theta(0)||/sqrt(5)
    a = 0.5 / math.sqrt(5.0)
    assert T.theorem_3_3_limit_printed([0.5, 0.0], [2.0]) == pytest.approx([2 * a, 1 - a], rel=1e-14)


def test_eq_3_as_printed_errata_example():
    # ERRATA.md §1: at theta = (0.7, 2.5), xi = 2, X ~ Unif[0, 1] the printed formula gives 0.487 for
    # dR/dtheta1 (and nothing for theta2), the risk's derivative is (1.0963, -0.5116)
    d = sideq.uniform(0, 1, 1)
    assert T.eq_3_grad_printed([0.7, 2.5], [2.0], d) == pytest.approx([0.487243], abs=1e-6)
    risk = lambda t1, t2: quad(lambda x: (t1 * x / (1 - t2) - 2 * x) ** 2, 0, 1)[0]
    h = 1e-5
    fd = [(risk(0.7 + h, 2.5) - risk(0.7 - h, 2.5)) / (2 * h), (risk(0.7, 2.5 + h) - risk(0.7, 2.5 - h)) / (2 * h)]
    assert T.linear_grad(np.array([0.7, 2.5]), [2.0], d) == pytest.approx(fd, rel=1e-7)
    assert fd == pytest.approx([1.0963, -0.5116], abs=1e-4)


def test_second_moment_matches_library():
    for dist in [sideq.uniform(-1, 2, 2), sideq.gaussian([0.3, -1.0], [[2.0, 0.3], [0.3, 0.5]])]:
        assert T.second_moment_np(dist) == pytest.approx(np.asarray(sideq.second_moment(dist)), rel=1e-12)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus"])
def test_equilibrium_against_brentq(act, ref):
    m = sideq.single_index(act)
    s = ref.act[act][0]
    x = np.linspace(-2, 2, 7)[:, None]
    y = T.equilibria(m, np.array([[1.3], [-0.4]]), np.array([0.6, -0.9]), x)
    for k, (t1, t2) in enumerate([(1.3, 0.6), (-0.4, -0.9)]):
        for xi, yi in zip(x[:, 0], y[k]):
            assert yi == pytest.approx(ref.brent_root(s, t1 * xi, t2), abs=1e-12)
    # sigma and sigma' are the library's activation and its derivative
    z = np.linspace(-6, 6, 13)
    sz, dsz = T.sigma(m, z)
    assert sz == pytest.approx(ref.act[act][0](z), abs=1e-15)
    assert dsz == pytest.approx(ref.act[act][1](z), abs=1e-15)


def test_float64_whatever_the_global_flag(ref):
    import jax

    m = sideq.single_index("sigmoid")
    with jax.enable_x64(False):
        y = T.equilibria(m, np.array([[1.0]]), np.array([0.5]), np.array([[0.3]]))
        s, _ = T.sigma(m, 0.1)
    assert y.dtype == np.float64 and s.dtype == np.float64
    assert y[0, 0] == pytest.approx(ref.brent_root(ref.act["sigmoid"][0], 0.3, 0.5), abs=1e-14)


def test_lmin_block_against_quad():
    # lambda_min of E[(X, y)(X, y)^T] for X ~ Unif[0,1], tanh, theta = (0.8, 0.3), by scipy.quad
    m = sideq.single_index("tanh")
    yf = lambda x: brentq(lambda v: v - math.tanh(0.8 * x + 0.3 * v), -5, 5, xtol=1e-15)
    a = quad(lambda x: x * x, 0, 1)[0]
    b = quad(lambda x: x * yf(x), 0, 1, epsabs=1e-13)[0]
    c = quad(lambda x: yf(x) ** 2, 0, 1, epsabs=1e-13)[0]
    ref = np.linalg.eigvalsh([[a, b], [b, c]])[0]
    x, w = T.expectation_nodes(sideq.uniform(0, 1, 1), 1.0)
    got = T._lmin_block(m, np.array([[0.8]]), np.array([0.3]), x, w)[0]
    assert got == pytest.approx(ref, rel=1e-8)


def test_fourth_moment_against_quad():
    # E[(X^2 + y^2)^2] of Theorem 3.9 for X ~ Unif[0,1], sigmoid, theta = (1.2, -0.3), by scipy.quad + brentq,
    # through the function the sup of lambda2 is taken over
    m = sideq.single_index("sigmoid")
    yf = lambda x: brentq(lambda v: v - 1 / (1 + math.exp(-(1.2 * x - 0.3 * v))), -5, 5, xtol=1e-15)
    want = quad(lambda x: (x * x + yf(x) ** 2) ** 2, 0, 1, epsabs=1e-14)[0]
    got = T._expectation_fun(m, sideq.uniform(0, 1, 1), None, "m4")(np.array([[1.2]]), np.array([-0.3]))[0]
    assert got == pytest.approx(want, rel=1e-12)
    # the sup over the ball B((1, 0), 0.5), which holds (1.2, -0.3), is at least that, and is attained at its arg
    sup, info = T.moment4_sup(m, [1.0], sideq.uniform(0, 1, 1), 0.5, 0.5, grid=9, region="corrected")
    assert sup >= got
    t1, t2 = np.array([info["arg"][:-1]]), np.array([info["arg"][-1]])
    assert T._expectation_fun(m, sideq.uniform(0, 1, 1), None, "m4")(t1, t2)[0] == pytest.approx(sup, rel=1e-12)


def test_truncated_gaussian_nodes():
    # E[X^2 1{|X| <= a}] for N(0.5, 4): closed form against the nodes
    x, w = T.expectation_nodes(sideq.gaussian(0.5, 4.0, 1), 1.5)
    ref = quad(lambda t: t * t * math.exp(-((t - 0.5) ** 2) / 8) / math.sqrt(8 * math.pi), -1.5, 1.5)[0]
    assert (x[:, 0] ** 2) @ w == pytest.approx(ref, rel=1e-10)


def test_rho_tanh_printed_is_zero_corrected_positive():
    m = sideq.single_index("tanh")
    d = sideq.uniform(0, 1, 1)
    r_p, info = T.rho(m, [1.0], d, 0.5, 0.5, 1.0, grid=21)
    assert abs(r_p) < 1e-12 and abs(info["arg"][0]) < 1e-2  # attained near theta1 = 0 (y = 0)
    r_c, _ = T.rho(m, [1.0], d, 0.5, 0.5, 1.0, grid=21, region="corrected")
    assert r_c > 1e-7
    # the corrected set lies inside the printed one, so its infimum is larger
    r_sig_p, _ = T.rho(sideq.single_index("sigmoid"), [1.0], d, 0.5, 0.5, 1.0, grid=21)
    r_sig_c, _ = T.rho(sideq.single_index("sigmoid"), [1.0], d, 0.5, 0.5, 1.0, grid=21, region="corrected")
    assert 0 < r_sig_p <= r_sig_c * (1 + 1e-9)


def test_theorem_3_8_and_3_9_constants():
    m = sideq.single_index("softplus")
    t9 = T.theorem_3_9(m, [1.0], sideq.uniform(0, 1, 1), delta2=0.5, grid=21, region="corrected")
    t8 = t9.t38
    L = 1.0
    assert t8.M == pytest.approx((math.log(2) + L * 1.0 * 1.5) / 0.5)
    assert t8.zmax == pytest.approx(1.5 + 0.5 * t8.M)
    assert t8.gamma == pytest.approx(1 / (1 + math.exp(t8.zmax)), rel=1e-9)  # softplus' = sigmoid, min at -zmax
    assert t8.rate == pytest.approx(4 * t8.rho * t8.gamma**2 / 1.5)  # corrected: ERRATA.md §8
    assert t9.lambda1 == t8.rate
    assert t9.threshold == pytest.approx(t9.lambda1 / (2 * t9.lambda2))
    assert t9.lambda2 == pytest.approx(4 * (1 / 0.5) ** 2 * t9.moment4)


def test_theorem_3_8_printed_and_corrected_rate_and_radius():
    m, d = sideq.single_index("softplus"), sideq.uniform(0, 1, 1)
    p = T.theorem_3_8(m, [1.0], d, delta2=0.5, delta1=0.2, grid=5, region="printed")
    c = T.theorem_3_8(m, [1.0], d, delta2=0.5, delta1=0.2, grid=5, region="corrected")
    assert p.rate == pytest.approx(2 * p.rho * p.gamma**2 / 1.5)
    assert c.rate == pytest.approx(4 * c.rho * c.gamma**2 / 1.5)
    assert p.radius == 0.5 and c.radius == pytest.approx(0.2)  # min{(1+d1)|xi|, d2} / min{d1|xi|, d2} (§5)


def test_theorem_3_6_printed_vs_corrected_and_lemma_3_7():
    d = sideq.uniform(0, 1, 1)
    th0 = np.array([0.4, 0.2])
    kp, qp = T.theorem_3_6_rate_printed(d, th0, 1e-3)
    kc, qc = T.theorem_3_6_rate_corrected(d, th0, 1e-3)
    assert kp == kc == pytest.approx(1.0)
    assert (1 - qc) / (1 - qp) == pytest.approx(2 * (1 / 3))  # corrected = printed * 2 lambda_min
    c = T.lemma_3_7(sideq.linear(), th0, [2.0], d)
    phi = 0.4 / 0.8
    assert c["R0"] == pytest.approx((phi - 2) ** 2 / 3)
    assert c["c0"] == pytest.approx(math.sqrt(c["R0"] * 3))
    assert T.in_theta_3_7(th0, c)
    P, lam = T.theorem_3_4_rate_corrected(d, th0)
    assert P == 1.0 and lam == pytest.approx(4 / 3 / T.conserved_w(th0))
    assert T.eq_8_next_w(1.0, 0.1, 4.0) == pytest.approx(1.04)


# ---------------------------------------------------------------------------
# Lemma 3.7 / Theorem 3.6: eta0 and its ingredients (linear DEQ).

LINEAR_LAWS = [
    (sideq.uniform(0, 1, 1), [2.0]),
    (sideq.gaussian([0.2, -0.1, 0.0], np.diag([10.0, 1.0, 0.1]), nodes=48), [1.0, -0.5, 0.8]),
]


@pytest.mark.parametrize("law", range(2))
def test_linear_risk_gradient_hessian_against_library(law):
    import jax

    dist, xi = LINEAR_LAWS[law]
    risk = lambda t: sideq.population_risk(sideq.linear(), t, xi, dist, quadrature=True)  # noqa: E731
    # implicit differentiation, once and twice; one compilation (eagerly the three points took 30 s)
    library = jax.jit(lambda t: (risk(t), jax.grad(risk)(t), jax.jacrev(jax.jacrev(risk))(t)))
    rng = np.random.default_rng(law)
    for _ in range(3):
        th = np.append(rng.normal(0, 0.8, len(xi)), 1 - rng.choice([-1, 1]) * rng.uniform(0.1, 2))
        R, G, H = (np.asarray(v) for v in library(th))
        assert T.linear_risk(th, xi, dist) == pytest.approx(float(R), rel=1e-12)
        assert T.linear_grad(th, xi, dist) == pytest.approx(G, rel=1e-10)
        assert T.linear_hessian(th, xi, dist) == pytest.approx(H, rel=1e-10, abs=1e-10 * np.abs(H).max())


def _in_K(theta, c):
    """Distance of theta to Lemma 3.7's Theta (one side) <= beta/2, in the (|theta1|, |1-theta2|) plane."""
    n = np.linalg.norm(theta[..., :-1], axis=-1)
    g = np.abs(1 - theta[..., -1])
    dn = np.maximum(n - c["upper"], 0)
    dg = np.maximum(np.maximum(c["beta"] - g, g - c["upper"]), 0)
    return np.hypot(dn, dg) <= c["beta"] / 2 * (1 + 1e-12)


@pytest.mark.parametrize("law", range(2))
def test_lipschitz_bound_certified_and_attained(law):
    dist, xi = LINEAR_LAWS[law]
    d = len(xi)
    th0 = np.append(np.full(d, 0.4), 1.3) if law else np.array([0.4, 0.2])
    lip = T.lemma_3_7_lipschitz(th0, xi, dist)
    c = T.lemma_3_7(None, th0, xi, dist)
    # attained at a point of K, where the closed-form Hessian has that norm
    assert _in_K(lip["arg"], c)
    assert np.linalg.norm(T.linear_hessian(lip["arg"], xi, dist), 2) == pytest.approx(lip["L_attained"], rel=1e-12)
    assert 1 <= lip["certificate_ratio"] < 1.05
    # second route: 200,000 random points of K (rejection sampling) never exceed the bound
    rng = np.random.default_rng(5)
    side = np.sign(1 - th0[-1])
    g = rng.uniform(c["beta"] / 2, c["upper"] + c["beta"] / 2, 200_000)
    g = np.concatenate([g, c["beta"] / 2 + rng.exponential(c["beta"] / 20, 50_000)])  # dense near the edge
    u = rng.standard_normal((len(g), d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    t1 = u * (c["upper"] + c["beta"] / 2) * rng.uniform(0, 1, (len(g), 1)) ** (1 / d)
    pts = np.concatenate([t1, (1 - side * g)[:, None]], 1)
    pts = pts[_in_K(pts, c)]
    norms = np.linalg.norm(T.linear_hessian(pts, xi, dist), 2, axis=(-2, -1))
    assert norms.max() <= lip["L_bound"]
    assert norms.max() <= lip["L_attained"] * (1 + 1e-2)  # the search found (nearly) the largest


def test_eta0_terms():
    dist, xi = LINEAR_LAWS[0]
    th0 = np.array([0.4, 0.2])
    e = T.theorem_3_6_eta0(th0, xi, dist)
    lam, beta, R0, c0 = 1 / 3, e["beta"], e["R0"], e["c0"]
    G = 2 / beta * math.sqrt(lam * R0 * (1 + (2 + c0) ** 2))
    assert e["terms"]["beta/(2G)"] == pytest.approx(beta / (2 * G))
    assert e["terms"]["beta^2/(4R0)"] == pytest.approx(beta**2 / (4 * R0))
    assert e["terms"]["1/L"] == pytest.approx(1 / e["L_bound"])
    assert e["eta0"] == min(e["terms"].values()) and e["eta0_printed"] >= e["eta0"]
    # G bounds the gradient on Theta ∩ {R <= R0}: check on random points
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(-e["upper"], e["upper"], 100_000), 1 - rng.uniform(beta, e["upper"], 100_000)], 1)
    pts = pts[T.linear_risk(pts, xi, dist) <= R0]
    assert np.linalg.norm(T.linear_grad(pts, xi, dist), axis=1).max() <= e["G"]


# ---------------------------------------------------------------------------
# Theorem 3.8 / 3.9 expectations for Gaussian X in d > 1 (sideq.paper.theory.gaussian_block).

GAUSS_CASES = [
    (sideq.gaussian(0.0, np.diag([1.0, 0.01])), 2.0),  # cond 100, with the indicator
    (sideq.gaussian([0.3, -0.2], [[1.0, 0.3], [0.3, 0.5]]), 1.7),  # correlated, off-centre
    (sideq.gaussian([0.1, 0.2, -0.3], np.diag([1.0, 0.1, 0.01])), None),  # d = 3, no indicator
]


@pytest.mark.parametrize("case", range(3))
def test_gaussian_block_against_monte_carlo(case):
    dist, alpha = GAUSS_CASES[case]
    d = dist.d
    m = sideq.single_index("softplus")
    t1 = np.array([[0.9, -1.7, 0.4][:d], [0.0] * d])  # also theta1 = 0 (y constant)
    t2 = np.array([0.4, -0.3])
    M, m4 = T.gaussian_block(m, t1, t2, dist, alpha)
    M2, m42 = T.gaussian_block(m, t1, t2, dist, alpha, n=2 * T.GAUSS_BLOCK_NODES)
    assert np.max(np.abs(M - M2)) <= 1e-13 * np.max(np.abs(M))  # converged in the node count
    rng = np.random.default_rng(case)
    # 2.5e5 samples: the standard errors below are those of this N (twice those of
    # 1e6), and the quadrature's own convergence is checked above to 1e-13
    N = 250_000
    x = np.asarray(dist.mean) + rng.standard_normal((N, d)) @ np.asarray(dist.cov_sqrt).T
    ind = np.ones(N) if alpha is None else (np.linalg.norm(x, axis=1) <= alpha)
    y = T.equilibria(m, t1, t2, x)
    for k in range(2):
        v = np.concatenate([x, y[k][:, None]], 1)
        terms = v[:, :, None] * v[:, None, :] * ind[:, None, None]
        mc, se = terms.mean(0), terms.std(0) / math.sqrt(N)
        # (1e-10: naive float summation of 1e6 terms along a strided axis)
        assert np.all(np.abs(M[k] - mc) <= 4.5 * se + 1e-10 * np.abs(mc)), (M[k], mc, se)
        if alpha is None:
            q = np.sum(v * v, 1) ** 2
            assert abs(m4[k] - q.mean()) <= 4.5 * q.std() / math.sqrt(N)
            assert m42[k] == pytest.approx(m4[k], rel=1e-13)


def test_gaussian_block_perturbed_law_is_detected():
    # the Monte Carlo comparison above can fail: a 2 % change of the covariance is seen
    dist, alpha = GAUSS_CASES[0]
    m = sideq.single_index("softplus")
    # (the θ of case 0 above, whose compiled program this reuses; the first row is compared)
    t1, t2 = np.array([[0.9, -1.7], [0.0, 0.0]]), np.array([0.4, -0.3])
    M, _ = T.gaussian_block(m, t1, t2, dist, alpha)
    Mp, _ = T.gaussian_block(m, t1, t2, sideq.gaussian(0.0, np.diag([1.02, 0.01])), alpha)
    assert np.max(np.abs(M[0] - Mp[0]) / np.abs(M[0])) > 1e-2


def test_gaussian_rho_and_theorem_3_8_d2():
    # beta of assumption 1(ii) = trace of the X-block; rho = lambda_min at the minimiser
    m = sideq.single_index("softplus")
    dist = sideq.gaussian(0.0, np.diag([1.0, 0.01]))
    t8 = T.theorem_3_8(m, [1.0, 2.0], dist, delta2=0.5, grid=11, region="corrected")
    M, _ = T.gaussian_block(m, np.zeros((1, 2)), np.zeros(1), dist, t8.alpha)
    assert t8.beta == pytest.approx(np.trace(M[0, :2, :2]), rel=1e-14)
    arg = np.asarray(t8.rho_info["arg"])
    Ma, _ = T.gaussian_block(m, arg[None, :2], arg[2:], dist, t8.alpha)
    assert t8.rho == pytest.approx(np.linalg.eigvalsh(Ma[0])[0], rel=1e-12)
    assert np.linalg.norm(arg - [1.0, 2.0, 0.0]) <= 0.5 * (1 + 1e-9)  # in the ball
    assert 0 < t8.rho <= M[0, 1, 1] < 0.01  # lambda_min <= E[X2^2 1{|X| <= alpha}] (variance 0.01)
    with pytest.raises(ValueError, match="d = 2 only"):
        T.gaussian_block(m, np.zeros((1, 3)), np.zeros(1), sideq.gaussian(0.0, 1.0, 3), 2.0)


def test_gaussian_block_singular_cov():
    # Sigma = diag(1, 0): X = (Z + 0.3, 0.5).  Against quad over Z of the equilibria (brentq),
    # incl. theta1 = (0, 1) orthogonal to the support (e'Sigma e = 0: y is one constant)
    m = sideq.single_index("softplus")
    mu = np.array([0.3, 0.5])
    dist = sideq.gaussian(mu, np.diag([1.0, 0.0]))
    t2 = 0.4
    for t1 in ([0.0, 1.0], [0.7, -1.2]):
        t1 = np.asarray(t1)

        def y(z):
            a = t1 @ (mu + [z, 0.0])
            return brentq(lambda v: v - np.logaddexp(0.0, a + t2 * v), -50.0, 50.0, xtol=1e-15)

        def e(f):
            g = lambda z: f(z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
            return quad(g, -12, 12, epsabs=1e-14, epsrel=1e-13, limit=200)[0]

        def v(z):
            return np.array([z + mu[0], mu[1], y(z)])

        want = np.array([[e(lambda z: v(z)[i] * v(z)[j]) for j in range(3)] for i in range(3)])
        want_m4 = e(lambda z: (v(z) @ v(z)) ** 2)
        M, m4 = T.gaussian_block(m, t1[None], np.array([t2]), dist)
        assert np.all(np.isfinite(M)) and np.isfinite(m4[0])
        np.testing.assert_allclose(M[0], want, rtol=1e-10, atol=1e-12)
        assert m4[0] == pytest.approx(want_m4, rel=1e-10)
    with pytest.raises(ValueError, match="singular cov"):
        T.gaussian_block(m, np.zeros((1, 2)), np.zeros(1), dist, 2.0)
    with pytest.raises(ValueError, match="singular cov"):
        T.theorem_3_8(m, [1.0, 2.0], dist, delta2=0.5, grid=5, region="corrected")


# ---------------------------------------------------------------------------
# numpy references for the constants below (worked out by hand in settings where a
# simpler one would hide a slip): equilibria by fixed-point iteration, Gauss–Legendre rules.


def _np_equilibria(sigma, t1, t2, u, iters=400):
    """y = sigma(t1 * u + t2 * y) by fixed-point iteration in numpy: a contraction
    with factor |t2| L <= 1/2 in every use below (1/8 for sigmoid with |t2| <= 1/2),
    so ``iters`` steps leave an error below 2^-iters (8^-iters)."""
    t1, t2, u = np.broadcast_arrays(np.asarray(t1, float), np.asarray(t2, float), np.asarray(u, float))
    y = np.zeros_like(u)
    for _ in range(iters):
        y = sigma(t1 * u + t2 * y)
    return y


def _gl(a, b, n=64):
    """Gauss–Legendre nodes/weights for E over Unif[a, b] (numpy only)."""
    t, w = np.polynomial.legendre.leggauss(n)
    return a + (b - a) * (t + 1) / 2, w / 2


# ---------------------------------------------------------------------------
# Section 3.1 (linear DEQ): rates of Theorems 3.4 and 3.6 where kappa != 1.
# In d = 1 (kappa = 1, lambda_min = lambda_max) a swapped eigenvalue or a
# dropped kappa would be invisible.

# X ~ Unif([-1, 1] x [-3, 3]): Sigma_2 = diag(1/3, 3) (mean 0, variances (b-a)^2/12),
# so lambda_min = 1/3, lambda_max = 3, kappa = 9.
BOX = sideq.uniform([-1.0, -3.0], [1.0, 3.0])
LMIN, KAPPA = 1 / 3, 9.0


def test_theorem_3_4_and_3_6_rates_with_kappa_9():
    th0 = np.array([0.3, -0.4, 1.7])
    w0 = 0.3**2 + 0.4**2 + 0.7**2  # ||theta(0) - e||^2 = 0.74
    beta, eta = 0.6, 1e-2
    # Theorem 3.4 as printed: (1, 4 lambda_min / beta^2)
    assert T.theorem_3_4_rate_printed(BOX, beta) == pytest.approx((1.0, 4 * LMIN / beta**2), rel=1e-14)
    # corrected (ERRATA §3): (kappa, 4 lambda_min / w(0))
    assert T.theorem_3_4_rate_corrected(BOX, th0) == pytest.approx((KAPPA, 4 * LMIN / w0), rel=1e-14)
    assert T.theorem_3_6_kappa(BOX) == pytest.approx(KAPPA, rel=1e-14)
    # Theorem 3.6 printed: q = 1 - eta/(4 kappa w0); corrected (ERRATA §4): 1 - eta lambda_min/(2 kappa w0)
    qp = 1 - eta / (4 * KAPPA * w0)
    qc = 1 - eta * LMIN / (2 * KAPPA * w0)
    assert T.theorem_3_6_rate_printed(BOX, th0, eta) == pytest.approx((KAPPA, qp), rel=1e-14)
    assert T.theorem_3_6_rate_corrected(BOX, th0, eta) == pytest.approx((KAPPA, qc), rel=1e-14)
    # the -log q variants (used by sideq verify at eta0) are the same q's, by math.log, not log1p
    assert T.theorem_3_6_log_rate_printed(BOX, th0, eta) == pytest.approx((KAPPA, -math.log(qp)), rel=1e-10)
    assert T.theorem_3_6_log_rate_corrected(BOX, th0, eta) == pytest.approx((KAPPA, -math.log(qc)), rel=1e-10)


def test_theorem_3_6_log_rates_at_tiny_eta():
    # at eta0-sized steps q rounds towards 1; -log q = x + x^2/2 + ... with x = 1 - q (series by hand)
    th0 = np.array([0.4, 0.2])  # X ~ Unif[0, 1]: lambda = 1/3, kappa = 1, w0 = 0.8
    eta = 1e-9
    for fn, x in [
        (T.theorem_3_6_log_rate_printed, eta / (4 * 0.8)),
        (T.theorem_3_6_log_rate_corrected, eta / 3 / (2 * 0.8)),
    ]:
        k, mlogq = fn(sideq.uniform(0, 1, 1), th0, eta)
        assert k == pytest.approx(1.0, rel=1e-14)
        assert mlogq == pytest.approx(x + x * x / 2, rel=1e-14)


# ---------------------------------------------------------------------------
# Lemma 3.7: beta, the radius 2 sqrt(w0), the partial eta0 and the set Theta, by hand.


def test_lemma_3_7_constants_by_hand():
    # X ~ Unif[0, 1] (Sigma_2 = 1/3), xi = 2, theta(0) = (0.4, 0.2): phi = 0.5, R0 = 1.5^2/3 = 0.75,
    # c0 = sqrt(R0/lambda) = 1.5, w0 = 0.16 + 0.64 = 0.8,
    # beta = min{0.8, sqrt(0.8)/(sqrt 2 (1.5 + 2 + 1))} = sqrt(0.4)/4.5
    dist, th0 = sideq.uniform(0, 1, 1), np.array([0.4, 0.2])
    c = T.lemma_3_7(None, th0, [2.0], dist)
    beta = math.sqrt(0.4) / 4.5
    assert c["beta"] == pytest.approx(beta, rel=1e-14)
    assert c["upper"] == pytest.approx(2 * math.sqrt(0.8), rel=1e-14)
    assert c["eta0_partial"] == pytest.approx(min(beta / 2, beta**2 / (4 * 0.75)), rel=1e-14)
    assert c["eta0_partial"] == pytest.approx(beta**2 / 3, rel=1e-14)  # the binding one here
    # Theta = {beta <= |1 - theta2| <= 2 sqrt(w0), ||theta1|| <= 2 sqrt(w0)}: one point per face
    U = 2 * math.sqrt(0.8)
    pts = np.array(
        [
            [0.0, 1 - 1.001 * beta],
            [0.0, 1 - 0.999 * beta],  # inner face |1 - theta2| = beta
            [0.0, 1 - 0.999 * U],
            [0.0, 1 - 1.001 * U],  # outer face |1 - theta2| = U
            [0.999 * U, 0.2],
            [1.001 * U, 0.2],
            [-1.001 * U, 0.2],
        ]
    )  # ||theta1|| = U
    assert T.in_theta_3_7(pts, c).tolist() == [True, False, True, False, True, False, False]


def test_eta0_printed_when_beta_over_2_binds():
    # X ~ Unif[0, 1e-3] shrinks Sigma_2 (and so L_Theta and R0) by 1e6: the printed eta0's beta/2
    # becomes its binding term, which the Unif[0, 1] setting never reaches.  By hand as above with
    # lambda = 1e-6/3: phi = 0.5, R0 = 2.25 lambda, c0 = 1.5, w0 = 0.8, beta = sqrt(0.4)/4.5 again.
    dist, th0 = sideq.uniform(0, 1e-3, 1), np.array([0.4, 0.2])
    e = T.theorem_3_6_eta0(th0, [2.0], dist)
    beta, R0 = math.sqrt(0.4) / 4.5, 2.25e-6 / 3
    assert e["beta"] == pytest.approx(beta, rel=1e-13) and e["R0"] == pytest.approx(R0, rel=1e-12)
    want = min(1 / e["L_bound"], beta**2 / (4 * R0), beta / 2)
    assert want == beta / 2  # 1/L_Theta ~ 3.6 and beta^2/(4 R0) ~ 6.6e3 here
    assert e["eta0_printed"] == pytest.approx(beta / 2, rel=1e-14) and e["binding_printed"] == "beta/2"


# ---------------------------------------------------------------------------
# Eq. (13) and Eq. (18) (single-index DEQ).


def test_eq_13_bound_negative_theta2_by_hand():
    # (|sigma(0)| + L ||theta1|| ||x||)/(1 - L |theta2|); sigmoid: sigma(0) = 1/2, L = 1/4.
    m = sideq.single_index("sigmoid")
    th = np.array([[1.0, -0.5], [-2.0, 0.5]])
    x = np.array([[1.0], [-3.0]])
    want = np.array(
        [
            [(0.5 + 0.25 * 1 * 1) / (1 - 0.125), (0.5 + 0.25 * 1 * 3) / (1 - 0.125)],
            [(0.5 + 0.25 * 2 * 1) / (1 - 0.125), (0.5 + 0.25 * 2 * 3) / (1 - 0.125)],
        ]
    )
    assert T.eq_13_bound(m, th, x) == pytest.approx(want, rel=1e-14)


def test_eq_18_terms_against_per_sample_finite_differences(ref):
    # jensen = 4 E[(y - f)^2 s^2 ||(X, y)||^2] is E ||grad_theta (y_theta(X) - f(X))^2||^2 (Eq. (1)):
    # the per-sample gradient by central differences of the numpy fixed point, averaged with a
    # numpy Gauss–Legendre rule.  chain = 4 L^2 (L/(1 - L delta2))^2 E[(X^2 + y^2)^2] r by scipy.quad.
    m = sideq.single_index("sigmoid")
    sig = ref.act["sigmoid"][0]
    xi, delta2, L = 1.0, 0.5, 0.25
    theta = np.array([1.3, -0.35])
    u, w = _gl(0.0, 1.0)
    f = sig(xi * u)

    def loss(t):
        return (_np_equilibria(sig, t[0], t[1], u) - f) ** 2

    h = 1e-6
    grads = np.stack([(loss(theta + h * e) - loss(theta - h * e)) / (2 * h) for e in np.eye(2)])
    jensen_fd = np.sum(grads**2, 0) @ w
    b = T.eq_18_bounds(m, theta[None], [xi], sideq.uniform(0, 1, 1), delta2)
    assert b["jensen"][0] == pytest.approx(jensen_fd, rel=1e-7)
    r = (1.3 - 1.0) ** 2 + 0.35**2
    q2 = quad(lambda x: (x * x + float(_np_equilibria(sig, 1.3, -0.35, x)) ** 2) ** 2, 0, 1, epsabs=1e-14)[0]
    assert b["r"][0] == pytest.approx(r, rel=1e-14)
    assert b["chain"][0] == pytest.approx(4 * L**2 * (L / (1 - L * delta2)) ** 2 * q2 * r, rel=1e-10)


# ---------------------------------------------------------------------------
# Theorem 3.8: the defaults (delta1, alpha), beta of assumption 1(ii), max_norm.


def test_theorem_3_8_defaults_by_hand():
    m = sideq.single_index("softplus")
    # uniform, |xi| = 2, X ~ Unif[-3, 1]: delta1 = delta2/|xi| = 0.25; alpha = sup|X| = 3;
    # beta = E[X^2] = (1 + 27)/(3 * 4) = 7/3; M = (log 2 + L alpha (1 + delta1)|xi|)/(1 - L delta2)
    t8 = T.theorem_3_8(m, [2.0], sideq.uniform(-3.0, 1.0, 1), delta2=0.5, grid=5, region="corrected")
    assert t8.delta1 == pytest.approx(0.25, rel=1e-15)
    assert t8.alpha == pytest.approx(3.0, rel=1e-15)
    assert t8.beta == pytest.approx(7 / 3, rel=1e-13)
    assert t8.M == pytest.approx((math.log(2) + 3 * 1.25 * 2) / 0.5, rel=1e-14)
    assert t8.radius == pytest.approx(0.5, rel=1e-15)  # min{delta1 |xi|, delta2}
    # max_norm: the farthest corner of the box, sqrt(3^2 + 2^2) for [-3, 1] x [-1, 2]
    assert T.max_norm(sideq.uniform([-3.0, -1.0], [1.0, 2.0])) == pytest.approx(math.sqrt(13), rel=1e-15)


def test_theorem_3_8_gaussian_alpha_default():
    # Gaussian: alpha = 2 sqrt(tr Sigma_2); N(0.5, 4) in d = 1: 2 sqrt(4.25), and
    # beta = E[X^2 1{|X| <= alpha}] by scipy.quad against the normal density
    m = sideq.single_index("softplus")
    t8 = T.theorem_3_8(m, [1.0], sideq.gaussian(0.5, 4.0, 1), delta2=0.5, grid=3, region="corrected")
    a = 2 * math.sqrt(4.25)
    assert t8.alpha == pytest.approx(a, rel=1e-15)
    dens = lambda t: math.exp(-((t - 0.5) ** 2) / 8) / math.sqrt(8 * math.pi)  # noqa: E731
    assert t8.beta == pytest.approx(quad(lambda t: t * t * dens(t), -a, a, epsabs=1e-13)[0], rel=1e-10)


# ---------------------------------------------------------------------------
# rho: the infimum over the region, against a numpy brute-force grid.


def _np_lmin(sig, t1, t2, u, w):
    """lambda_min of E[(X, y)(X, y)^T] over Unif nodes u (weights w), per theta (arrays)."""
    y = _np_equilibria(sig, t1[:, None], t2[:, None], u[None, :], iters=30)  # sigmoid: 8^-30
    a = np.full(len(t1), (u * u) @ w)
    b, c = (y * u) @ w, (y * y) @ w
    return (a + c) / 2 - np.sqrt(((a - c) / 2) ** 2 + b * b)  # smaller eigenvalue of [[a, b], [b, c]]


def test_rho_corrected_is_over_the_ball_of_radius_delta2(ref):
    # delta1 != delta2 (xi = 2: delta1 = 0.25, delta2 = 0.5): the ball is B((2, 0), delta2).
    # Brute force: a 121 x 240 polar grid of the ball, lambda_min in closed form for 2 x 2, numpy
    # fixed points.  rho (grid 5 + Nelder-Mead) must reach the brute-force minimum (within the
    # grid's resolution) and may not go below it by more than that.
    sig = ref.act["sigmoid"][0]
    u, w = _gl(0.0, 1.0)
    rr, aa = np.meshgrid(np.linspace(0, 0.5, 121), np.linspace(0, 2 * np.pi, 240, endpoint=False))
    t1, t2 = 2 + rr.ravel() * np.cos(aa.ravel()), rr.ravel() * np.sin(aa.ravel())
    brute = _np_lmin(sig, t1, t2, u, w).min()
    r, info = T.rho(
        sideq.single_index("sigmoid"), [2.0], sideq.uniform(0, 1, 1), 0.25, 0.5, 1.0, grid=5, region="corrected"
    )
    assert brute * (1 - 1e-4) <= r <= brute * (1 + 1e-9)
    assert np.hypot(info["arg"][0] - 2, info["arg"][1]) == pytest.approx(0.5, abs=1e-6)  # on the sphere


def test_rho_printed_is_over_the_box(ref):
    # Theta printed = {|theta1| <= (1 + delta1)|xi|, |theta2| <= delta2}; sigmoid, xi = 1,
    # delta1 = delta2 = 0.5, X ~ Unif[-1, 0] (the mirror image of Unif[0, 1]: the infimum sits at
    # theta1 < 0): the box [-1.5, 1.5] x [-0.5, 0.5], brute-forced on a 301 x 101 grid.
    sig = ref.act["sigmoid"][0]
    u, w = _gl(-1.0, 0.0)
    a1, a2 = np.meshgrid(np.linspace(-1.5, 1.5, 301), np.linspace(-0.5, 0.5, 101))
    lm = _np_lmin(sig, a1.ravel(), a2.ravel(), u, w)
    brute, at = lm.min(), a1.ravel()[np.argmin(lm)]
    assert at == -1.5  # the infimum is at the corner theta = (-1.5, -0.5) for this law
    r, info = T.rho(sideq.single_index("sigmoid"), [1.0], sideq.uniform(-1, 0, 1), 0.5, 0.5, 1.0, grid=5)
    assert brute * (1 - 1e-4) <= r <= brute * (1 + 1e-9)
    # the 5 x 5 grid spans the whole box (its corners included), so the grid alone finds the corner;
    # Nelder-Mead could hide a grid that misses half the box
    assert info["grid_value"] == pytest.approx(brute, rel=1e-9)


def test_theorem_3_9_constants_with_L_below_1(ref):
    # sigmoid: L = 1/4, so L^2 != L (softplus' L = 1 hides a wrong power).  Theorem 3.8 by hand:
    # alpha = 1, delta1 = delta2/|xi| = 0.5, M = (1/2 + L * 1.5)/(1 - L/2) = 1, zmax = 1.5 + M/2 = 2,
    # gamma = sigma'(2); lambda1 = 4 rho gamma^2/(1 + L/2) (corrected);
    # lambda2 = 4 L^2 (L/(1 - L/2))^2 sup E||(X, y)||^4 with the sup over B((1, 0), 0.5) brute-forced.
    sig, dsig = ref.act["sigmoid"]
    t9 = T.theorem_3_9(
        sideq.single_index("sigmoid"), [1.0], sideq.uniform(0, 1, 1), delta2=0.5, grid=5, region="corrected"
    )
    L, t8 = 0.25, t9.t38
    assert (t8.M, t8.zmax) == pytest.approx((1.0, 2.0), rel=1e-14)
    assert t8.gamma == pytest.approx(dsig(2.0), rel=1e-12)
    assert t9.lambda1 == pytest.approx(4 * t8.rho * dsig(2.0) ** 2 / (1 + L * 0.5), rel=1e-12)
    u, w = _gl(0.0, 1.0)
    rr, aa = np.meshgrid(np.linspace(0, 0.5, 61), np.linspace(0, 2 * np.pi, 120, endpoint=False))
    t1, t2 = 1 + (rr * np.cos(aa)).ravel(), (rr * np.sin(aa)).ravel()
    y = _np_equilibria(sig, t1[:, None], t2[:, None], u[None, :], iters=30)
    brute = ((((u * u)[None, :] + y * y) ** 2) @ w).max()
    assert brute * (1 - 1e-9) <= t9.moment4 <= brute * (1 + 1e-4)
    assert t9.lambda2 == pytest.approx(4 * L**2 * (L / (1 - L * 0.5)) ** 2 * t9.moment4, rel=1e-14)
    assert t9.threshold == pytest.approx(t9.lambda1 / (2 * t9.lambda2), rel=1e-14)


# ---------------------------------------------------------------------------
# Theorem 3.8 / 3.9 accessors and Corollary 3.1.


def test_bound_and_factor_by_hand():
    t8 = T.Theorem38(
        L=1.0,
        delta1=0.5,
        delta2=0.5,
        alpha=1.0,
        beta=1 / 3,
        M=1.0,
        zmax=1.0,
        gamma=0.2,
        rho=0.01,
        rho_info={},
        rate=0.3,
        radius=0.5,
    )
    assert t8.bound(2.0, [0.0, 1.0, 10.0]) == pytest.approx(2.0 * np.exp([0.0, -0.3, -3.0]), rel=1e-15)
    t9 = T.Theorem39(lambda1=0.3, lambda2=5.0, moment4=1.0, threshold=0.03, t38=t8)
    assert t9.factor(0.03) == pytest.approx(1 - 0.03 * 0.3 / 2, rel=1e-15)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus"])
def test_corollary_3_1_radius_is_one_over_sup_slope(name, ref):
    z = np.linspace(-30, 30, 600_001)
    L = np.abs(ref.act[name][1](z)).max()  # numpy sup |sigma'| (attained at 0 on the grid, or 1 as z -> inf)
    assert T.corollary_3_1_radius(sideq.single_index(name)) == pytest.approx(1 / L, rel=1e-6)


# ---------------------------------------------------------------------------
# gaussian_block's fourth moment against a tensor Gauss–Hermite rule (exact for the polynomial part).


def test_gaussian_block_fourth_moment_gauss_hermite(ref):
    mean = np.array([0.5, -0.4, 0.3])
    cov_sqrt = np.array([[1.0, 0.0, 0.0], [0.3, 0.6, 0.0], [-0.2, 0.1, 0.4]])
    cov = cov_sqrt @ cov_sqrt.T
    dist = sideq.gaussian(mean, cov)
    m = sideq.single_index("softplus")
    sp = ref.act["softplus"][0]
    t1 = np.array([[0.0, 0.0, 0.0], [0.7, -0.5, 0.2]])
    t2 = np.array([0.45, -0.3])
    _, m4 = T.gaussian_block(m, t1, t2, dist)
    z, wz = np.polynomial.hermite_e.hermegauss(40)
    wz = wz / math.sqrt(2 * math.pi)
    Z = np.stack(np.meshgrid(z, z, z, indexing="ij"), -1).reshape(-1, 3)
    W = np.prod(np.stack(np.meshgrid(wz, wz, wz, indexing="ij"), -1).reshape(-1, 3), 1)
    X = mean + Z @ cov_sqrt.T
    for k in range(2):
        y = _np_equilibria(sp, 1.0, t2[k], X @ t1[k])
        want = ((np.sum(X * X, 1) + y * y) ** 2) @ W
        assert m4[k] == pytest.approx(want, rel=1e-10)


# ---------------------------------------------------------------------------
# sigma: the built-in activations' slopes as sideq.paper.theory evaluates them.


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "relu", "leaky_relu", "gelu", "identity"])
def test_builtin_slopes_match_the_numpy_reference(name, ref):
    # jax.grad of each built-in against conftest's numpy sigma' on a grid through 0, the kink of
    # relu / leaky_relu included (their conventions there: 0 and 1, one-sided from the right)
    z = np.linspace(-10, 10, 2001)
    assert 0.0 in z
    np.testing.assert_allclose(T.sigma(sideq.single_index(name), z)[1], ref.act[name][1](z), rtol=1e-13, atol=1e-15)
