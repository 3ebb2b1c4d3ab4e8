"""sideq.paper.theory / sideq.activations: tests for what a mutation audit left unprotected.

Every expected value comes from a second route: a closed form derived by hand
(the derivation is in the comment), plain numpy/scipy (Gauss–Legendre and
Gauss–Hermite rules from numpy.polynomial, equilibria by a vectorised numpy
fixed-point iteration, scipy.integrate.quad), or finite differences -- never
from the function under test.  float64 is on (tests/conftest.py).
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

import sideq
from sideq import SideqInputError
from sideq.paper import theory as T


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
# All existing checks use d = 1 (kappa = 1, lambda_min = lambda_max), where a
# swapped eigenvalue or a dropped kappa is invisible.

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
    for fn, x in [(T.theorem_3_6_log_rate_printed, eta / (4 * 0.8)),
                  (T.theorem_3_6_log_rate_corrected, eta / 3 / (2 * 0.8))]:
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
    pts = np.array([[0.0, 1 - 1.001 * beta], [0.0, 1 - 0.999 * beta],     # inner face |1 - theta2| = beta
                    [0.0, 1 - 0.999 * U], [0.0, 1 - 1.001 * U],           # outer face |1 - theta2| = U
                    [0.999 * U, 0.2], [1.001 * U, 0.2], [-1.001 * U, 0.2]])  # ||theta1|| = U
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
    want = np.array([[(0.5 + 0.25 * 1 * 1) / (1 - 0.125), (0.5 + 0.25 * 1 * 3) / (1 - 0.125)],
                     [(0.5 + 0.25 * 2 * 1) / (1 - 0.125), (0.5 + 0.25 * 2 * 3) / (1 - 0.125)]])
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
    dens = lambda t: math.exp(-(t - 0.5) ** 2 / 8) / math.sqrt(8 * math.pi)  # noqa: E731
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
    r, info = T.rho(sideq.single_index("sigmoid"), [2.0], sideq.uniform(0, 1, 1), 0.25, 0.5, 1.0,
                    grid=5, region="corrected")
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
    t9 = T.theorem_3_9(sideq.single_index("sigmoid"), [1.0], sideq.uniform(0, 1, 1), delta2=0.5, grid=5,
                       region="corrected")
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
    t8 = T.Theorem38(L=1.0, delta1=0.5, delta2=0.5, alpha=1.0, beta=1 / 3, M=1.0, zmax=1.0, gamma=0.2,
                     rho=0.01, rho_info={}, rate=0.3, radius=0.5)
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
# activations: Lipschitz constants of decreasing activations, slope_of_value's check.

def test_lipschitz_of_a_decreasing_activation():
    # sigma = -2 tanh: sigma' = -2 sech^2 in [-2, 0); L = sup |sigma'| = 2 (finite differences agree)
    act = sideq.activation(lambda z: -2 * jnp.tanh(z))
    z = np.linspace(-5, 5, 100_001)
    h = 1e-6
    fd = (-2 * np.tanh(z + h) + 2 * np.tanh(z - h)) / (2 * h)
    assert act.slope_min == pytest.approx(fd.min(), abs=1e-8)
    assert act.slope_max == pytest.approx(0.0, abs=1e-12)  # sup sigma' (-> 0 at +-20), not sup |sigma'|
    assert act.lipschitz == pytest.approx(np.abs(fd).max(), abs=1e-8)
    assert act.lipschitz == pytest.approx(2.0, abs=1e-9)
    given = sideq.activation(lambda z: -3 * jnp.tanh(z) + 0.5 * z, slope_bounds=(-2.5, 0.5))
    assert given.lipschitz == 2.5 and not given.monotone and not given.meets_corollary_3_1


def test_slope_of_value_check_refuses_near_misses_and_nan():
    # tanh: sigma' = 1 - sigma^2 exactly; the check is to 1e-9 relative on [-20, 20]
    sideq.activation(jnp.tanh, slope_of_value=lambda y: 1 - y * y)  # accepted
    for bad in (lambda y: (1 - y * y) * (1 + 1e-6),  # a 1e-6 relative error
                lambda y: jnp.where(jnp.abs(y) > 0.9, 0.0, 1 - y * y),  # wrong only for |z| > 1.47
                lambda y: jnp.nan * y):  # not a number at all
        with pytest.raises(SideqInputError, match="^activation: slope_of_value"):
            sideq.activation(jnp.tanh, slope_of_value=bad)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "relu", "leaky_relu", "gelu", "identity"])
def test_builtin_slopes_match_the_numpy_reference(name, ref):
    # jax.grad of each built-in against conftest's numpy sigma' on a grid through 0, the kink of
    # relu / leaky_relu included (their conventions there: 0 and 1, one-sided from the right)
    z = np.linspace(-10, 10, 2001)
    assert 0.0 in z
    np.testing.assert_allclose(T.sigma(sideq.single_index(name), z)[1], ref.act[name][1](z), rtol=1e-13, atol=1e-15)
