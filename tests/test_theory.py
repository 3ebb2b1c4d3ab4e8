"""sideq.paper.theory: the formulas of Section 3 against independent computations."""

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
    ref = quad(lambda t: t * t * math.exp(-(t - 0.5) ** 2 / 8) / math.sqrt(8 * math.pi), -1.5, 1.5)[0]
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

LINEAR_LAWS = [(sideq.uniform(0, 1, 1), [2.0]),
               (sideq.gaussian([0.2, -0.1, 0.0], np.diag([10.0, 1.0, 0.1]), nodes=48), [1.0, -0.5, 0.8])]


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
    N = 1_000_000
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
    M, _ = T.gaussian_block(m, np.array([[0.9, -1.7]]), np.array([0.4]), dist, alpha)
    Mp, _ = T.gaussian_block(m, np.array([[0.9, -1.7]]), np.array([0.4]),
                             sideq.gaussian(0.0, np.diag([1.02, 0.01])), alpha)
    assert np.max(np.abs(M - Mp) / np.abs(M)) > 1e-2


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
