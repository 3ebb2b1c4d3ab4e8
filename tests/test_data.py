"""Laws of X (uniform, gaussian, and a law written here from the protocol),
the shared quadrature rules, sampling, E[XXᵀ] and load_data.

References are analytic moments, scipy, numpy Monte Carlo and numpy-written
files; nothing here reuses sideq to build an expected value.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sideq
from sideq import general, general_risk
from sideq.data import as_array


def _raises(prefix, fn, exc=sideq.SideqInputError):
    with pytest.raises(exc) as info:
        fn()
    assert str(info.value).startswith(prefix), str(info.value)
    return str(info.value)


# ---------------------------------------------------------------------------
# Constructors.


def test_uniform_constructor():
    u = sideq.uniform(0.0, 1.0, 3)
    assert u.d == 3 and np.array_equal(u.low, np.zeros(3)) and np.array_equal(u.high, np.ones(3))
    u = sideq.uniform([-1.0, 0.5], [2.0, 3.0])  # d inferred from the vectors
    assert u.d == 2 and np.array_equal(u.high, [2.0, 3.0])
    assert sideq.uniform().d == 1  # the paper's Unif([0, 1])


def test_gaussian_constructor_cov_forms():
    g = sideq.gaussian(0.5, 2.0, d=3)  # isotropic
    np.testing.assert_array_equal(g.cov, 2.0 * np.eye(3))
    g = sideq.gaussian([0.0, 1.0], [1.0, 4.0])  # diagonal
    np.testing.assert_array_equal(g.cov, np.diag([1.0, 4.0]))
    C = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
    g = sideq.gaussian([1.0, 2.0, 3.0], C)
    np.testing.assert_array_equal(g.cov, C)
    np.testing.assert_allclose(g.cov_sqrt @ g.cov_sqrt.T, C, rtol=0, atol=1e-14)
    # singular (PSD) covariance is allowed; its square root still reproduces it
    v = np.array([1.0, -2.0, 0.5])
    g = sideq.gaussian(0.0, np.outer(v, v))
    np.testing.assert_allclose(g.cov_sqrt @ g.cov_sqrt.T, np.outer(v, v), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "case,prefix",
    [
        ("high-equal", "high:"),
        ("high-below", "high:"),
        ("low-shape", "low:"),
        ("low-nan", "low:"),
        ("d-zero", "d:"),
    ],
)
def test_uniform_bad_input(case, prefix):
    call = {
        "high-equal": lambda: sideq.uniform(1.0, 1.0, 1),
        "high-below": lambda: sideq.uniform([0.0, 1.0], [1.0, 0.5]),
        "low-shape": lambda: sideq.uniform([0.0, 0.0, 0.0], 1.0, 2),
        "low-nan": lambda: sideq.uniform(np.nan, 1.0, 1),
        "d-zero": lambda: sideq.uniform(0.0, 1.0, 0),
    }[case]
    _raises(prefix, call)


@pytest.mark.parametrize(
    "case,prefix",
    [
        ("nonsymmetric", "cov:"),
        ("not-psd", "cov:"),
        ("nan", "cov:"),
        ("shape", "cov:"),
        ("diag-negative", "cov:"),
        ("mean-inf", "mean:"),
    ],
)
def test_gaussian_bad_input(case, prefix):
    call = {
        "nonsymmetric": lambda: sideq.gaussian([0.0, 0.0], [[1.0, 0.5], [0.2, 1.0]]),
        "not-psd": lambda: sideq.gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]),  # eigenvalues 3, -1
        "nan": lambda: sideq.gaussian([0.0, 0.0], [[1.0, np.nan], [np.nan, 1.0]]),
        "shape": lambda: sideq.gaussian([0.0, 0.0, 0.0], np.eye(2)),
        "diag-negative": lambda: sideq.gaussian([0.0, 0.0], [1.0, -0.5]),
        "mean-inf": lambda: sideq.gaussian([0.0, np.inf], 1.0),
    }[case]
    _raises(prefix, call)


@pytest.mark.parametrize("law", ["uniform", "gaussian"])
def test_negative_nodes_rejected(law):
    with pytest.raises(sideq.SideqInputError, match=r"^(nodes|dist):"):
        dist = sideq.uniform(0.0, 1.0, 1, nodes=-1) if law == "uniform" else sideq.gaussian(0.0, 1.0, nodes=-1)
        sideq.population_risk(sideq.linear(), jnp.array([1.0, 0.5]), jnp.array([2.0]), dist)


def test_non_distribution_rejected():
    for fn in [lambda: sideq.sample({"low": 0.0}, jax.random.PRNGKey(0), 3), lambda: sideq.second_moment(np.eye(2))]:
        _raises("dist:", fn)
    _raises("n:", lambda: sideq.sample(sideq.uniform(), jax.random.PRNGKey(0), 0))


# ---------------------------------------------------------------------------
# Sampling and E[XXᵀ].


def test_sample_shapes_dtypes_and_support():
    key = jax.random.PRNGKey(0)
    u = sideq.uniform([-1.0, 0.5], [2.0, 3.0])
    x = sideq.sample(u, key, 1000)
    assert x.shape == (1000, 2) and x.dtype == jnp.float64
    assert np.all(np.asarray(x) >= [-1.0, 0.5]) and np.all(np.asarray(x) <= [2.0, 3.0])
    x = sideq.sample(sideq.uniform(), key, 7)
    assert x.shape == (7, 1) and x.dtype == jnp.float64
    g = sideq.gaussian([1.0, 2.0, 3.0], 0.5)
    x = sideq.sample(g, key, 5)
    assert x.shape == (5, 3) and x.dtype == jnp.float64 and np.all(np.isfinite(np.asarray(x)))
    # same key, same draws; different key, different draws
    assert np.array_equal(np.asarray(sideq.sample(g, key, 5)), np.asarray(x))
    assert not np.array_equal(np.asarray(sideq.sample(g, jax.random.PRNGKey(1), 5)), np.asarray(x))


def test_second_moment_analytic():
    # Unif[a, b] per axis: E[X_i X_j] = m_i m_j + δ_ij (b_i − a_i)²/12
    low, high = np.array([-1.0, 0.5]), np.array([2.0, 3.0])
    want = np.array([[1.0, 0.875], [0.875, 3.0625 + 6.25 / 12]])
    np.testing.assert_allclose(sideq.second_moment(sideq.uniform(low, high)), want, rtol=1e-15)
    np.testing.assert_allclose(sideq.second_moment(sideq.uniform(0.0, 1.0, 1)), [[1 / 3]], rtol=1e-15)
    mu = np.array([1.0, -2.0])
    C = np.array([[2.0, 0.6], [0.6, 1.0]])
    np.testing.assert_allclose(sideq.second_moment(sideq.gaussian(mu, C)), [[3.0, -1.4], [-1.4, 5.0]], rtol=1e-15)
    np.testing.assert_allclose(
        sideq.second_moment(sideq.gaussian(mu, [2.0, 1.0])), [[3.0, -2.0], [-2.0, 5.0]], rtol=1e-15
    )


@pytest.mark.parametrize("law", ["uniform", "gaussian"])
def test_sample_moments_vs_second_moment(law):
    """Monte Carlo E[XXᵀ] from sideq.sample agrees with second_moment within 5 standard errors,
    and the sample mean with the law's mean."""
    if law == "uniform":
        dist, mean = sideq.uniform([-1.0, 0.5, 0.0], [2.0, 3.0, 0.1]), np.array([0.5, 1.75, 0.05])
    else:
        C = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
        mean = np.array([1.0, -2.0, 0.5])
        dist = sideq.gaussian(mean, C)
    n = 200_000
    x = np.asarray(sideq.sample(dist, jax.random.PRNGKey(42), n))
    prods = x[:, :, None] * x[:, None, :]
    mc, se = prods.mean(0), prods.std(0, ddof=1) / math.sqrt(n)
    M = sideq.second_moment(dist)
    assert np.all(np.abs(mc - M) < 5 * se), (mc, M, se)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * x.std(0, ddof=1) / math.sqrt(n))


# ---------------------------------------------------------------------------
# The shared quadrature rules.


def test_gauss_legendre_and_product_rules_integrate_polynomials():
    t, w = sideq.data.gauss_legendre_rule(5)  # exact to degree 9 on [0, 1]
    for k in range(10):
        assert float(w @ t**k) == pytest.approx(1 / (k + 1), rel=1e-14)
    x, wx = sideq.data.product_rule(t, w, 3)
    assert x.shape == (125, 3) and wx.shape == (125,)
    # ∫ over [0, 1]³ of t1² t2 t3⁴ = (1/3)(1/2)(1/5)
    assert float(wx @ (x[:, 0] ** 2 * x[:, 1] * x[:, 2] ** 4)) == pytest.approx(1 / 30, rel=1e-14)


def test_normal_rule_moments_and_truncation():
    from scipy.special import ndtr

    z, w = sideq.data.normal_rule(144)
    assert z.shape == (144,) and np.allclose(z, -z[::-1], atol=0)  # symmetric about 0
    assert float(w @ z**2) == pytest.approx(1.0, rel=1e-13)
    assert float(w @ z**4) == pytest.approx(3.0, rel=1e-13)
    assert float(w @ np.cos(z)) == pytest.approx(math.exp(-0.5), rel=1e-13)
    assert sideq.data.normal_rule(133)[0].shape == (144,)  # whole panels of 12
    z, w = sideq.data.normal_rule(48, -0.5, 2.0)  # E[1{-0.5 ≤ Z ≤ 2}] = Φ(2) − Φ(−0.5)
    assert float(w.sum()) == pytest.approx(ndtr(2.0) - ndtr(-0.5), rel=1e-13)


def test_check_law_and_describe():
    msg = _raises("dist:", lambda: sideq.data.check_law({"low": 0.0}))
    assert "\n" not in msg and "dict" in msg
    assert sideq.data.describe(sideq.uniform(0.0, 1.0, 2, nodes=8)) == {
        "law": "uniform",
        "nodes": 8,
        "law_params": {"low": [0.0, 0.0], "high": [1.0, 1.0]},
    }
    assert sideq.data.describe(sideq.gaussian([1.0, 0.0], 2.0)) == {
        "law": "gaussian",
        "nodes": 0,
        "law_params": {"mean": [1.0, 0.0], "cov": [[2.0, 0.0], [0.0, 2.0]]},
    }
    assert sideq.data.describe(LAPLACE) == {
        "law": "laplace",
        "nodes": 0,
        "law_params": {"loc": [0.3, -0.2], "scale": [0.5, 0.8]},
    }


@pytest.mark.parametrize("law", ["uniform", "gaussian"])
def test_builtin_laws_moments_and_tensor_rules(law):
    """moments() and the tensor rule (standard rule mapped by affine) of the two
    laws give the analytic E[X] and E[XXᵀ]."""
    if law == "uniform":
        dist, mean = sideq.uniform([-1.0, 0.5], [2.0, 3.0]), np.array([0.5, 1.75])
        M = np.array([[1.0, 0.875], [0.875, 3.0625 + 6.25 / 12]])
    else:
        dist, mean = sideq.gaussian([1.0, -2.0], [[2.0, 0.6], [0.6, 1.0]]), np.array([1.0, -2.0])
        M = np.array([[3.0, -1.4], [-1.4, 5.0]])
    m, L = dist.moments()
    L = np.diag(L) if L.ndim == 1 else L
    np.testing.assert_allclose(m, mean, rtol=1e-15)
    np.testing.assert_allclose(np.outer(m, m) + L @ L.T, M, rtol=1e-14)
    x, w = dist.tensor_rule()
    np.testing.assert_allclose(w @ x, mean, rtol=1e-13)
    np.testing.assert_allclose((x * w[:, None]).T @ x, M, rtol=1e-12)
    shift, scale = dist.affine()
    t, wt = dist.standard_rule()
    np.testing.assert_array_equal(wt, w)
    np.testing.assert_allclose(shift + (t * scale if scale.ndim == 1 else t @ scale.T), x, rtol=1e-15, atol=1e-15)


# ---------------------------------------------------------------------------
# A new law, written here from the protocol of sideq.data alone: the risks,
# the scalar models' and the multi-neuron DEQs', take it without a change.

LAGUERRE = 12  # Gauss–Laguerre nodes per half-axis: 24 nodes per axis, 576 in d = 2


@dataclasses.dataclass(frozen=True)
class Laplace:
    """X with independent coordinates Xᵢ ~ Laplace(locᵢ, scaleᵢ) (density
    e^{−|x − loc|/b}/(2b)); ``rule=False`` leaves it without a tensor rule."""

    loc: np.ndarray
    scale: np.ndarray
    rule: bool = True

    @property
    def d(self):
        return int(np.shape(self.loc)[0])

    def moments(self, dtype=None):  # Var Xᵢ = 2bᵢ²
        return as_array(self.loc, dtype), as_array(self.scale, dtype) * math.sqrt(2.0)

    def sample(self, key, n, dtype):
        t = jax.random.laplace(key, (n, self.d), dtype)
        return jnp.asarray(self.loc, dtype) + jnp.asarray(self.scale, dtype) * t

    def tensor_rule(self):
        if not self.rule:
            return None
        # E[h(T)], T ~ Laplace(0, 1): ½∫₀^∞ (h(s) + h(−s)) e^{−s} ds by Gauss–Laguerre
        s, ws = np.polynomial.laguerre.laggauss(LAGUERRE)
        t, w = np.concatenate([-s, s]), np.concatenate([ws, ws]) / 2
        grids = np.meshgrid(*([t] * self.d), indexing="ij")
        nodes = np.stack([g.ravel() for g in grids], axis=1)
        weights = np.ones(1)
        for _ in range(self.d):
            weights = np.multiply.outer(weights, w).ravel()
        return self.loc + nodes * self.scale, weights


jax.tree_util.register_dataclass(Laplace, data_fields=["loc", "scale"], meta_fields=["rule"])
LOC, SCALE = np.array([0.3, -0.2]), np.array([0.5, 0.8])
LAPLACE = Laplace(LOC, SCALE)
M2 = np.outer(LOC, LOC) + np.diag(2 * SCALE**2)  # E[XXᵀ], analytic


def _numpy_laplace(n, seed=5):
    return np.random.default_rng(seed).laplace(LOC, SCALE, size=(n, 2))


def _mean_se(r):
    return float(r.mean()), float(r.std(ddof=1) / math.sqrt(r.size))


def test_new_law_moments_sampling_and_rule():
    np.testing.assert_allclose(sideq.second_moment(LAPLACE), M2, rtol=1e-15)  # from moments()
    x, w = LAPLACE.tensor_rule()
    np.testing.assert_allclose(w @ x, LOC, rtol=1e-13)  # exact for polynomials
    np.testing.assert_allclose((x * w[:, None]).T @ x, M2, rtol=1e-13)
    draws = np.asarray(sideq.sample(LAPLACE, jax.random.PRNGKey(1), 40_000))
    assert draws.shape == (40_000, 2) and draws.dtype == np.float64
    for j in range(2):  # E|Xⱼ − locⱼ| = bⱼ
        m, se = _mean_se(np.abs(draws[:, j] - LOC[j]))
        assert abs(m - SCALE[j]) < 4 * se


def test_new_law_linear_risk_against_eq5():
    """The linear DEQ's risk from the law's moments equals Eq. (5) written
    out in numpy with the analytic E[XXᵀ] and E[X]."""
    theta, xi = np.array([0.3, -0.2, 0.1, 0.4]), np.array([1.0, -0.5])
    closed = float(sideq.population_risk(sideq.linear(bias=True), theta, xi, LAPLACE))
    e, beta = theta[:2] / (1 - theta[3]) - xi, theta[2] / (1 - theta[3])
    assert closed == pytest.approx(e @ M2 @ e + 2 * beta * e @ LOC + beta**2, rel=1e-14)


def _numpy_tanh_errors(theta, xi, x):
    """(y_θ(x) − tanh(ξᵀx))² with y = tanh(θ1ᵀx + θ2 y) by fixed-point iteration (|θ2| < 1)."""
    a, y = x @ theta[:-1], np.zeros(len(x))
    for _ in range(80):
        y = np.tanh(a + theta[-1] * y)
    return (y - np.tanh(x @ xi)) ** 2


def test_new_law_single_index_risk_against_monte_carlo_and_fallback():
    """The single-index DEQ's risk by the law's tensor rule matches a numpy
    Monte Carlo within 4 standard errors; without the rule the risk is the
    fixed-sample Monte Carlo of the law's own draws (equal to numpy on those
    draws), and matches the rule's value within 4 of its standard errors.
    The law goes into jit as an argument (a pytree)."""
    model, theta, xi = sideq.single_index("tanh"), np.array([0.9, -0.6, 0.3]), np.array([0.8, 0.5])
    risk = jax.jit(lambda law: sideq.population_risk(model, theta, xi, law))
    quad = float(risk(LAPLACE))
    assert sideq.risk.n_nodes(LAPLACE, model) == (2 * LAGUERRE) ** 2
    m, se = _mean_se(_numpy_tanh_errors(theta, xi, _numpy_laplace(40_000)))
    assert abs(quad - m) < 4 * se, (quad, m, se)
    bare = Laplace(LOC, SCALE, rule=False)
    n = general_risk.DEFAULT_SAMPLES
    assert sideq.risk.n_nodes(bare, model) == n
    mc = float(risk(bare))
    draws = np.asarray(bare.sample(jax.random.PRNGKey(0), n, jnp.float64))
    m, se = _mean_se(_numpy_tanh_errors(theta, xi, draws))
    assert mc == pytest.approx(m, rel=1e-12)
    assert abs(mc - quad) < 4 * se, (mc, quad, se)
    _raises("dist:", lambda: sideq.risk.quadrature_rule(bare))


def test_new_law_multi_index_risk_routes():
    """multi_index on the new law: the quadrature route (the law's rule)
    matches a numpy Monte Carlo and the Monte Carlo route within 4 standard
    errors; without a rule the default route is Monte Carlo; multi_linear's
    closed form (the law's moments) equals Eq. (5) in numpy."""
    k = 2
    rng = np.random.default_rng(3)
    params = {"W1": rng.normal(size=(k, 2)), "W2": 0.3 * rng.normal(size=(k, k))}
    xi = rng.normal(size=(k, 2))
    model = general.multi_index("tanh", k, solver="fixed_point")
    quad = general_risk.population_risk_estimate(model, params, xi, LAPLACE)
    assert quad.route == "quadrature" and quad.n_nodes == (2 * LAGUERRE) ** 2
    x = _numpy_laplace(20_000)
    y = np.zeros((len(x), k))
    for _ in range(80):
        y = np.tanh(x @ params["W1"].T + y @ params["W2"].T)
    m, se = _mean_se(np.sum((y - np.tanh(x @ xi.T)) ** 2, axis=1))
    assert abs(float(quad.value) - m) < 4 * se, (float(quad.value), m, se)
    mc = general_risk.population_risk_estimate(model, params, xi, LAPLACE, samples=quad.n_nodes, key=1)
    assert mc.route == "monte_carlo" and abs(float(mc.value) - float(quad.value)) < 4 * float(mc.stderr)
    bare = Laplace(LOC, SCALE, rule=False)
    assert general_risk.route_for(model, bare) == "monte_carlo"
    assert general_risk.n_nodes(model, bare) == general_risk.DEFAULT_SAMPLES
    with pytest.raises(sideq.SideqInputError, match="^dist: Laplace has no tensor rule"):
        general_risk.population_risk(model, params, xi, bare, route="quadrature")
    linear = general.multi_linear(k)
    closed = float(general_risk.population_risk(linear, params, xi, LAPLACE))
    A = np.linalg.solve(np.eye(k) - params["W2"], params["W1"]) - xi  # Eq. (5), numpy
    assert closed == pytest.approx(np.trace(A @ M2 @ A.T), rel=1e-13)


# ---------------------------------------------------------------------------
# load_data.

RNG = np.random.default_rng(0)
X2 = RNG.normal(size=(6, 2))
Y6 = RNG.normal(size=6)


def test_load_npy_shapes(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, X2[:, 0])  # (n,) -> (n, 1)
    x, y = sideq.load_data(p)
    assert x.shape == (6, 1) and y is None and np.array_equal(x[:, 0], X2[:, 0])
    np.save(p, X2)  # (n, d)
    x, y = sideq.load_data(p)
    assert y is None and np.array_equal(x, X2)
    x, y = sideq.load_data(p, d=2)
    assert y is None and np.array_equal(x, X2)
    np.save(p, np.column_stack([X2, Y6]))  # (n, d + 1) with d given: last column is y
    x, y = sideq.load_data(str(p), d=2)
    assert np.array_equal(x, X2) and np.array_equal(y, Y6)
    x, y = sideq.load_data(p)  # without d: all columns are x
    assert x.shape == (6, 3) and y is None


def test_load_npz(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, x=X2, y=Y6)
    x, y = sideq.load_data(p, d=2)
    assert np.array_equal(x, X2) and np.array_equal(y, Y6) and x.dtype == np.float64
    np.savez(p, x=X2)
    x, y = sideq.load_data(p)
    assert np.array_equal(x, X2) and y is None
    np.savez(p, x=X2[:, 1].astype(np.float32), y=Y6)  # (n,) x, float32 -> float64
    x, y = sideq.load_data(p, d=1)
    assert x.shape == (6, 1) and x.dtype == np.float64 and np.array_equal(x[:, 0], X2[:, 1].astype(np.float32))


def _write_csv(path, header, arr):
    lines = ([",".join(header)] if header else []) + [",".join(repr(float(v)) for v in row) for row in arr]
    path.write_text("\n".join(lines) + "\n")


def test_load_csv(tmp_path):
    p = tmp_path / "a.csv"
    _write_csv(p, ["x1", "x2", "y"], np.column_stack([X2, Y6]))
    x, y = sideq.load_data(p, d=2)
    assert np.array_equal(x, X2) and np.array_equal(y, Y6)
    _write_csv(p, ["y", "x1", "x2"], np.column_stack([Y6, X2]))  # y need not be last
    x, y = sideq.load_data(p)
    assert np.array_equal(x, X2) and np.array_equal(y, Y6)
    _write_csv(p, [" x1", " x2 "], X2)  # header without y (whitespace tolerated)
    x, y = sideq.load_data(p)
    assert np.array_equal(x, X2) and y is None
    _write_csv(p, None, X2)  # headerless: all x
    x, y = sideq.load_data(p, d=2)
    assert np.array_equal(x, X2) and y is None
    _write_csv(p, None, np.column_stack([X2, Y6]))  # headerless, d + 1 columns: last is y
    x, y = sideq.load_data(p, d=2)
    assert np.array_equal(x, X2) and np.array_equal(y, Y6)
    p.write_text("1.5\n\n-2.0\n")  # one column, blank line skipped
    x, y = sideq.load_data(p)
    assert np.array_equal(x, [[1.5], [-2.0]]) and y is None


def _bad_files(tmp_path):
    t = tmp_path
    (t / "empty.csv").write_text("")
    (t / "header_only.csv").write_text("x1,x2,y\n")
    (t / "nan_x.csv").write_text("x1,y\n1.0,2.0\nnan,3.0\n")
    (t / "inf_y.csv").write_text("x1,y\n1.0,2.0\n2.0,inf\n")
    (t / "text.csv").write_text("x1,y\n1.0,abc\n")
    np.savez(t / "nan_y.npz", x=X2, y=np.where(np.arange(6) == 2, np.nan, Y6))
    np.savez(t / "y_len.npz", x=X2, y=Y6[:4])
    np.savez(t / "no_x.npz", X=X2, y=Y6)
    np.save(t / "wrong_d.npy", X2)
    np.save(t / "three_d.npy", np.zeros((2, 2, 2)))
    np.save(t / "empty.npy", np.zeros((0,)))
    (t / "a.txt").write_text("1,2\n")
    return {
        "missing": (t / "nope.npy", {}),
        "empty-csv": (t / "empty.csv", {}),
        "header-only-csv": (t / "header_only.csv", {}),
        "empty-array-npy": (t / "empty.npy", {}),
        "nan-x": (t / "nan_x.csv", {}),
        "inf-y": (t / "inf_y.csv", {}),
        "non-numeric": (t / "text.csv", {}),
        "nan-y-npz": (t / "nan_y.npz", {}),
        "y-length": (t / "y_len.npz", {}),
        "npz-without-x": (t / "no_x.npz", {}),
        "wrong-d": (t / "wrong_d.npy", {"d": 3}),  # 2 columns, neither d nor d + 1
        "three-d": (t / "three_d.npy", {}),
        "extension": (t / "a.txt", {}),
    }


BAD = [
    "missing",
    "empty-csv",
    "header-only-csv",
    "empty-array-npy",
    "nan-x",
    "inf-y",
    "non-numeric",
    "nan-y-npz",
    "y-length",
    "npz-without-x",
    "wrong-d",
    "three-d",
    "extension",
]


@pytest.mark.parametrize("case", BAD)
def test_load_data_errors(tmp_path, case):
    path, kw = _bad_files(tmp_path)[case]
    msg = _raises("data:", lambda: sideq.load_data(path, **kw))
    assert "Traceback" not in msg and "\n" not in msg


@pytest.mark.parametrize("name", ["empty.npy", "empty.npz", "text.npy"])
def test_load_data_unreadable_numpy_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"" if name.startswith("empty") else b"1,2,3\n")
    _raises("data:", lambda: sideq.load_data(p))
    if name.endswith(".npy"):  # not numpy's advice to unpickle it
        with pytest.raises(sideq.SideqInputError, match="is not a .npy file"):
            sideq.load_data(p)


def test_load_data_object_array(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(sideq.SideqInputError, match="holds Python objects, not numbers"):
        sideq.load_data(p)


@pytest.mark.parametrize("fmt", ["csv-header", "npz"])
def test_load_data_does_not_take_named_x_column_as_y(tmp_path, fmt):
    arr = np.column_stack([X2, Y6])  # three x columns
    if fmt == "npz":
        p = tmp_path / "a.npz"
        np.savez(p, x=arr)
    else:
        p = tmp_path / "a.csv"
        _write_csv(p, ["x1", "x2", "x3"], arr)
    _raises("data:", lambda: sideq.load_data(p, d=2))
