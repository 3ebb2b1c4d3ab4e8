"""Forward solve: residual and value against closed forms / scipy brentq, the
non-unique and no-root regimes, the singular linear DEQ, diagnostics (margin,
iterations, warm start, backend agreement), batching, precision and bad input."""

import functools
import math
import warnings
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import sideq
from sideq import SideqInputError, SingularModelError, Status

BACKENDS = sideq.BACKENDS


@functools.lru_cache(maxsize=None)
def _vsolve(model, backend):
    """jit(vmap over theta) of solve(model, theta, x) with x shared (x may be a batch)."""
    return jax.jit(jax.vmap(lambda th, x: sideq.solve(model, th, x, backend=backend), in_axes=(0, None)))


def _theta_for(a, theta2, x, bias, rng):
    """A theta = (θ1, [b,] θ2) with θ1ᵀx + b = a (up to rounding)."""
    t1 = rng.normal(size=x.shape[-1])
    if bias:
        b = 0.3 * a
        t1 = t1 * ((a - b) / (t1 @ x))
        return np.concatenate([t1, [b, theta2]])
    return np.concatenate([t1 * (a / (t1 @ x)), [theta2]])


def _offset(theta, x, bias):
    d = x.shape[-1]
    return theta[:d] @ x + (theta[d] if bias else 0.0)


# ---------------------------------------------------------------------------
# 2. Residual and value: linear DEQ vs the closed form
# ---------------------------------------------------------------------------

_TH2_LINEAR = np.concatenate([np.linspace(-10.0, 10.0, 41), [0.999, 1.001, 0.995, 1.2, -1.0]])
_TH2_LINEAR = _TH2_LINEAR[np.abs(1.0 - _TH2_LINEAR) >= 1e-3]


def _exact_linear(theta, x, y, bias):
    """Exact rational arithmetic on the float64 values: the closed form
    y* = (θ1ᵀx + b)/(1 − θ2) and the residual |y − (θ1ᵀx + b + θ2 y)| of y."""
    d = x.shape[-1]
    F = Fraction
    a = sum(F(float(t)) * F(float(v)) for t, v in zip(theta[:d], x))
    if bias:
        a += F(float(theta[d]))
    t2, yy = F(float(theta[-1])), F(float(y))
    return float(a / (1 - t2)), float(abs(yy - a - t2 * yy))


@pytest.mark.parametrize(
    "backend, d, bias", [("jaxopt", 1, False), ("jaxopt", 3, True), ("optimistix", 3, False), ("optimistix", 1, True)]
)
def test_linear_residual_and_closed_form(backend, d, bias):
    rng = np.random.default_rng(10 * d + bias)
    model = sideq.linear(bias=bias)
    xs = rng.normal(size=(3, d))
    thetas = []
    for theta2 in _TH2_LINEAR:
        t = rng.normal(size=d + 1 + bias)
        t[-1] = theta2
        a_max = np.max(np.abs([_offset(t, x, bias) for x in xs]))
        t[:-1] *= rng.uniform(0.2, 5.0) / a_max  # |θ1ᵀx + b| ≤ 5, scale varies
        thetas.append(t)
    thetas = np.array(thetas)
    sol = _vsolve(model, backend)(jnp.asarray(thetas), jnp.asarray(xs))
    assert sol.y.shape == (len(thetas), len(xs))
    assert np.all(np.asarray(sol.status) == Status.CONVERGED)
    assert np.all(np.asarray(sol.residual) <= 1e-12)
    y = np.asarray(sol.y)
    for i, t in enumerate(thetas):
        for j, x in enumerate(xs):
            a = _offset(t, x, bias)
            assert abs(a) <= 5.0 + 1e-12
            y_cf, res = _exact_linear(t, x, y[i, j], bias)
            # relative 1e-12; the absolute floor is the bisection backend's atol (64 eps)
            assert abs(y[i, j] - y_cf) <= 1e-12 * abs(y_cf) + 1.5e-14, (t, x, y[i, j], y_cf)
            assert res <= 1e-12, (t, x)
    # margin of a linear DEQ is 1 − θ2 (Eq. (1)); it is the same at every x
    np.testing.assert_allclose(np.asarray(sol.margin), np.broadcast_to(1 - thetas[:, -1:], y.shape), rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------
# 2 + 5. Single-index DEQ vs brentq where F is strictly monotone; margin by hand
# ---------------------------------------------------------------------------

# θ2 values where F(y) = y − σ(a + θ2 y) is strictly monotone: |θ2|·L < 1, θ2 ≤ 0
# for monotone σ, and θ2·inf σ' > 1 for leaky_relu (F strictly decreasing).
_TH2_SI = {
    "sigmoid": [-50.0, -4.0, -1.0, 0.0, 2.0, 3.9],
    "tanh": [-50.0, -3.0, -0.5, 0.5, 0.95],
    "softplus": [-50.0, -2.0, 0.5, 0.95],
    "gelu": [-0.88, -0.5, 0.0, 0.4, 0.88],  # 1/L = 0.8857
    "leaky_relu": [-50.0, -1.0, 0.5, 0.95, 150.0],
}
_A_SI = [-5.0, -2.0, -0.3, 0.0, 0.7, 2.5, 5.0]

# (d, bias) per activation: every backend sees all four combinations across activations
_CONFIG_SI = {
    "sigmoid": (1, False),
    "tanh": (3, True),
    "softplus": (3, False),
    "gelu": (1, True),
    "leaky_relu": (3, True),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("act", sorted(_TH2_SI))
def test_single_index_residual_vs_brentq(act, backend, ref):
    sigma, dsigma = ref.act[act]
    d, bias = _CONFIG_SI[act]
    rng = np.random.default_rng(sorted(_TH2_SI).index(act))
    model = sideq.single_index(act, bias=bias)
    x = rng.normal(size=d)
    cases = [(a, t2) for t2 in _TH2_SI[act] for a in _A_SI]
    thetas = np.array([_theta_for(a, t2, x, bias, rng) for a, t2 in cases])
    sol = _vsolve(model, backend)(jnp.asarray(thetas), jnp.asarray(x))
    status = np.asarray(sol.status)
    assert np.all(status == Status.CONVERGED), [c for c, s in zip(cases, status) if s]
    assert np.all(np.asarray(sol.residual) <= 1e-12)
    assert np.all(np.asarray(sol.iterations) >= 1)
    for t, y, margin in zip(thetas, np.asarray(sol.y), np.asarray(sol.margin)):
        a, t2 = _offset(t, x, bias), t[-1]
        y_ref = ref.brent_root(sigma, a, t2)
        assert abs(y - y_ref) <= 1e-12 * max(1.0, abs(y_ref)), (a, t2, y, y_ref)
        assert abs(y - sigma(a + t2 * y)) <= 1e-12, (a, t2)
        # 5. margin = 1 − θ2 σ'(ω) at the solution, by hand
        assert margin == pytest.approx(1.0 - t2 * dsigma(a + t2 * y), rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("a, theta2", [(5.0, -50.0), (3.0, -50.0), (4.0, -20.0)])
def test_jaxopt_newton_cycles_between_bracket_ends(a, theta2, ref):
    """σ = sigmoid, θ2 ≤ 0: F' ≥ 1, unique root; plain Newton alternates between the
    bracket's ends here (a regression: the safeguard must bisect)."""
    model = sideq.single_index("sigmoid")
    sol = sideq.solve(model, jnp.array([a, theta2]), jnp.array([1.0]))
    y_ref = ref.brent_root(ref.act["sigmoid"][0], a, theta2)
    assert int(sol.status) == Status.CONVERGED, (float(sol.y), y_ref, int(sol.iterations))
    assert float(sol.y) == pytest.approx(y_ref, rel=1e-12)


# ---------------------------------------------------------------------------
# 3. Non-unique and no-root regimes
# ---------------------------------------------------------------------------


def _sigmoid_three_roots(sigma):
    """x = 1, θ1 = −4, θ2 = 8: F(y) = y − σ(8y − 4) is odd about y = 1/2."""
    F = lambda y: y - sigma(-4.0 + 8.0 * y)  # noqa: E731
    edges = [0.0, 0.25, 0.75, 1.0]
    roots = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        assert F(lo) * F(hi) < 0
        roots.append(brentq(F, lo, hi, xtol=1e-20, rtol=4 * np.finfo(float).eps))
    # no root outside [0, 1] (σ ∈ (0, 1)), and exactly one per piece: F' has only
    # two zeros (σ' = 1/8 twice), so F has at most three roots
    assert roots[1] == pytest.approx(0.5, abs=1e-15)
    assert roots[0] == pytest.approx(1.0 - roots[2], abs=1e-15)
    return np.array(roots)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_unique_sigmoid(backend, ref):
    sigma, dsigma = ref.act["sigmoid"]
    roots = _sigmoid_three_roots(sigma)
    model = sideq.single_index("sigmoid")
    theta, x = jnp.array([-4.0, 8.0]), jnp.array(1.0)
    sol = sideq.solve(model, theta, x, backend=backend)
    assert int(sol.status) == Status.NON_UNIQUE
    y = float(sol.y)
    assert np.min(np.abs(roots - y)) <= 1e-12
    assert float(sol.residual) <= 1e-12
    assert float(sol.margin) == pytest.approx(1 - 8 * dsigma(-4 + 8 * y), rel=1e-12)
    with pytest.warns(RuntimeWarning, match="unique"):
        y_eq = sideq.equilibrium(model, theta, x, backend=backend)
    assert float(y_eq) == y
    # under jit: same value, status is data, nothing raised
    sol_j = jax.jit(lambda t, x: sideq.solve(model, t, x, backend=backend))(theta, x)
    assert int(sol_j.status) == Status.NON_UNIQUE and float(sol_j.y) == y
    # other starting points reach (possibly other) true roots
    for y0 in [0.0, 0.45, 0.55, 1.0]:
        s = sideq.solve(model, theta, x, y0=y0, backend=backend)
        assert int(s.status) == Status.NON_UNIQUE
        assert np.min(np.abs(roots - float(s.y))) <= 1e-12


def test_softplus_no_root_reference(ref):
    """y = softplus(a + 2y): F = y − softplus(a + 2y) has F' = 1 − 2σ(a + 2y), so
    max F = F(−a/2) = −a/2 − log 2 < 0 for a = 0.5: no root exists."""
    softplus = ref.act["softplus"][0]
    a = 0.5
    ys = np.linspace(-50, 50, 100_001)
    F = ys - softplus(a + 2 * ys)
    assert F.max() < 0
    assert F.max() == pytest.approx(-a / 2 - math.log(2.0), abs=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softplus_no_root(backend):
    model = sideq.single_index("softplus")
    theta, x = jnp.array([0.5, 2.0]), jnp.array(1.0)
    sol = sideq.solve(model, theta, x, backend=backend)
    assert int(sol.status) not in (Status.CONVERGED, Status.NON_UNIQUE)
    assert float(sol.residual) > 0.1 or not np.isfinite(float(sol.residual))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no NON_UNIQUE warning either
        y = sideq.equilibrium(model, theta, x, backend=backend)
    assert np.isnan(float(y))
    yj = jax.jit(lambda t, x: sideq.equilibrium(model, t, x, backend=backend))(theta, x)
    assert np.isnan(float(yj))


@pytest.mark.parametrize("backend", BACKENDS)
def test_softplus_two_roots_never_finite_wrong(backend, ref):
    """a = −3, θ2 = 2: two roots (F(0) < 0, max F > 0, F → −∞).  σ is unbounded, so
    there is no range bracket: a backend may fail, but what it returns as a value
    must be a true root or NaN (the optimistix backend returns NaN here)."""
    softplus = ref.act["softplus"][0]
    F = lambda y: y - softplus(-3.0 + 2.0 * y)  # noqa: E731
    roots = [brentq(F, 0.0, 1.5, xtol=1e-20), brentq(F, 1.5, 10.0, xtol=1e-20)]
    model = sideq.single_index("softplus")
    sol = sideq.solve(model, jnp.array([-3.0, 2.0]), 1.0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = float(sideq.equilibrium(model, jnp.array([-3.0, 2.0]), 1.0, backend=backend))
    if int(sol.status) in (Status.CONVERGED, Status.NON_UNIQUE):
        assert int(sol.status) == Status.NON_UNIQUE
        assert min(abs(y - r) for r in roots) <= 1e-12
    else:
        assert np.isnan(y)


# ---------------------------------------------------------------------------
# 4. Singular linear DEQ (θ2 = 1)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
def test_singular_raises_outside_jit(bias):
    for model in [sideq.linear(bias=bias), sideq.single_index("identity", bias=bias)]:
        theta = jnp.array([0.7, -0.2, 1.0] if bias else [0.7, 1.0])
        for fn in (sideq.solve, sideq.equilibrium):
            with pytest.raises(SingularModelError) as exc:
                fn(model, theta, jnp.array(2.0))
            assert isinstance(exc.value, SideqInputError)
            msg = str(exc.value)
            assert msg.startswith("theta:") and "theta2" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_singular_inside_jit_is_nan_and_flagged(backend):
    model = sideq.linear()
    f = jax.jit(lambda t, x: sideq.solve(model, t, x, backend=backend))
    for a in [0.7, 0.0]:  # no solution / infinitely many
        sol = f(jnp.array([a, 1.0]), jnp.array(2.0))
        assert int(sol.status) == Status.SINGULAR
        assert np.isnan(float(sol.y))
        assert float(sol.margin) == 0.0
    # under vmap over θ only the singular entry is NaN
    thetas = jnp.array([[0.7, 0.5], [0.7, 1.0], [0.7, 3.0]])
    sol = _vsolve(model, backend)(thetas, jnp.array(2.0))
    np.testing.assert_array_equal(np.asarray(sol.status), [Status.CONVERGED, Status.SINGULAR, Status.CONVERGED])
    y = np.asarray(sol.y)
    assert np.isnan(y[1])
    np.testing.assert_allclose(y[[0, 2]], [1.4 / 0.5, 1.4 / -2.0], rtol=1e-14)


# ---------------------------------------------------------------------------
# 5. Diagnostics: warm start, backend agreement
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "act, theta, bias",
    [
        ("sigmoid", [1.3, -0.4, -2.0], True),
        ("gelu", [0.6, 0.2, 0.7], False),
    ],
)
def test_warm_start_and_backend_agreement(act, theta, bias, ref):
    sigma = ref.act[act][0]
    model = sideq.single_index(act, bias=bias)
    x = np.array([1.5] if bias else [1.5, -0.4])
    theta = np.asarray(theta)
    y_ref = ref.brent_root(sigma, _offset(theta, x, bias), theta[-1])
    sols = {be: sideq.solve(model, jnp.asarray(theta), jnp.asarray(x), backend=be) for be in BACKENDS}
    for be, s in sols.items():
        assert int(s.status) == Status.CONVERGED
        assert 1 <= int(s.iterations) <= 100
        warm = sideq.solve(model, jnp.asarray(theta), jnp.asarray(x), y0=y_ref, backend=be)
        assert int(warm.status) == Status.CONVERGED
        assert 1 <= int(warm.iterations) <= 2, (be, int(warm.iterations))
        assert float(warm.y) == pytest.approx(y_ref, rel=1e-12)
    assert float(sols["jaxopt"].y) == pytest.approx(float(sols["optimistix"].y), rel=1e-12, abs=1e-14)
    assert float(sols["jaxopt"].margin) == pytest.approx(float(sols["optimistix"].margin), rel=1e-12)
    # Newton from the default start converges fast; far from the root, still ≤ 100
    s = sideq.solve(model, jnp.asarray(theta), jnp.asarray(x), y0=1e3)
    assert int(s.status) == Status.CONVERGED and float(s.y) == pytest.approx(y_ref, rel=1e-12)


# ---------------------------------------------------------------------------
# 6. Batching, vmap, jit
# ---------------------------------------------------------------------------


def _assert_same(sol, sols, rtol=1e-14):
    """sol (batched Equilibrium) equals the list of per-element Equilibria."""
    for field in sol._fields:
        got = np.asarray(getattr(sol, field))
        want = np.array([np.asarray(getattr(s, field)) for s in sols])
        assert got.shape == want.shape, field
        if field in ("iterations", "status"):
            np.testing.assert_array_equal(got, want, err_msg=field)
        else:
            np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-15, err_msg=field)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_and_jit_match_loop(backend):
    model = sideq.single_index("sigmoid", bias=True)
    rng = np.random.default_rng(3)
    xs = jnp.asarray(rng.normal(size=(5, 2)))
    theta = jnp.array([1.2, -0.7, 0.3, -2.5])
    loop_x = [sideq.solve(model, theta, xs[i], backend=backend) for i in range(5)]
    # batch inside solve, jax.vmap over x, jit of the batch
    _assert_same(sideq.solve(model, theta, xs, backend=backend), loop_x)
    _assert_same(jax.vmap(lambda x: sideq.solve(model, theta, x, backend=backend))(xs), loop_x)
    f = jax.jit(lambda t, x: sideq.solve(model, t, x, backend=backend))
    _assert_same(f(theta, xs), loop_x)
    # a batched warm start (y0 of shape (n,)) at the roots converges at once
    warm = sideq.solve(model, theta, xs, y0=np.array([float(s.y) for s in loop_x]), backend=backend)
    np.testing.assert_allclose(np.asarray(warm.y), [float(s.y) for s in loop_x], rtol=1e-13)
    assert np.all(np.asarray(warm.iterations) <= 2)
    # vmap over theta, mixing unique, non-unique (θ2 = 6) and |θ2| > 1 entries so that
    # the batched while loop has members that finish at different iterations
    thetas = jnp.array([[1.2, -0.7, 0.3, -2.5], [0.4, 0.1, -3.0, 6.0], [-2.0, 1.0, 0.0, 3.0], [0.0, 0.0, 0.0, -40.0]])
    x = xs[0]
    loop_t = [sideq.solve(model, thetas[i], x, backend=backend) for i in range(4)]
    assert len({int(s.iterations) for s in loop_t}) > 1
    assert int(loop_t[1].status) == Status.NON_UNIQUE
    _assert_same(jax.vmap(lambda t: sideq.solve(model, t, x, backend=backend))(thetas), loop_t)


def test_batch_shapes(backend="jaxopt"):  # shape handling is backend-independent
    model = sideq.single_index("tanh")
    theta = jnp.array([0.9, -0.6])
    xs = np.array([-1.0, 0.0, 0.5, 2.0])
    one = [float(sideq.solve(model, theta, float(v), backend=backend).y) for v in xs]
    for x in [jnp.asarray(xs), jnp.asarray(xs)[:, None]]:
        s = sideq.solve(model, theta, x, backend=backend)
        assert s.y.shape == s.status.shape == s.iterations.shape == (4,)
        np.testing.assert_allclose(np.asarray(s.y), one, rtol=1e-14)
        assert sideq.equilibrium(model, theta, x, backend=backend).shape == (4,)
    for x in [jnp.asarray(0.5), jnp.array([0.5]), 0.5]:
        s = sideq.solve(model, theta, x, backend=backend)
        assert s.y.shape == () and float(s.y) == pytest.approx(one[2], rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_in_float32_out(backend, ref):
    model = sideq.single_index("sigmoid")
    theta = [0.5, -0.3, -2.0]
    x = np.array([[1.0, 2.0], [-0.5, 0.3]])
    s32 = sideq.solve(model, jnp.asarray(theta, jnp.float32), jnp.asarray(x, jnp.float32), backend=backend)
    for field in ("y", "residual", "margin"):
        assert getattr(s32, field).dtype == jnp.float32, field
    assert np.all(np.asarray(s32.status) == Status.CONVERGED)
    y_ref = [ref.brent_root(ref.act["sigmoid"][0], np.asarray(theta[:2]) @ xi, theta[-1]) for xi in x]
    np.testing.assert_allclose(np.asarray(s32.y), y_ref, rtol=2e-5)
    assert np.all(np.asarray(s32.residual) <= 1e-5)
    y = sideq.equilibrium(model, np.asarray(theta, np.float32), np.float32(x), backend=backend)
    assert y.dtype == jnp.float32
    # a Python scalar x does not promote float32 theta to float64
    assert sideq.solve(model, jnp.asarray([0.5, 0.3], jnp.float32), 0.5, backend=backend).y.dtype == jnp.float32


# ---------------------------------------------------------------------------
# 8. Bad input
# ---------------------------------------------------------------------------

_LIN, _LINB, _SIG = sideq.linear(), sideq.linear(bias=True), sideq.single_index("sigmoid")
_BAD = [
    # (model, theta, x, kwargs, message prefix, substring)
    (_SIG, np.ones(5), np.ones(3), {}, "x:", "theta"),  # theta has d = 4, x has 3
    (_SIG, np.ones(3), np.ones(1), {}, "x:", "theta"),  # theta has d = 2
    (_LINB, np.ones(4), np.ones(3), {}, "x:", "with bias"),  # bias: theta (4,) means d = 2
    (_SIG, np.ones((2, 3)), np.ones(2), {}, "theta:", "vmap"),  # theta must be 1-D
    (_SIG, np.float64(1.0), np.ones(1), {}, "theta:", "()"),
    (_SIG, np.ones(1), np.ones(1), {}, "theta:", "theta1"),  # no room for theta1
    (_LINB, np.ones(2), np.ones(1), {}, "theta:", "theta1"),
    (_SIG, np.ones(3), np.ones((4, 3)), {}, "x:", "(4, 3)"),
    (_SIG, np.ones(3), np.ones((2, 2, 2)), {}, "x:", ""),
    (_SIG, np.ones(4), np.float64(1.0), {}, "x:", ""),  # scalar x only when d = 1
    (_SIG, np.array([0.5, np.nan, 0.1]), np.ones(2), {}, "theta:", "non-finite"),
    (_SIG, np.array([0.5, 0.2, np.inf]), np.ones(2), {}, "theta:", "non-finite"),
    (_SIG, np.ones(3), np.array([[1.0, 2.0], [np.nan, 0.0]]), {}, "x:", "NaN"),
    (_SIG, np.ones(3), np.array([1.0, -np.inf]), {}, "x:", ""),
    (_SIG, np.ones(3), np.ones(2), {"backend": "scipy"}, "backend:", "'scipy'"),
    (_SIG, np.ones(3), np.ones(2), {"maxiter": 0}, "maxiter:", ""),
    ("sigmoid", np.ones(3), np.ones(2), {}, "model:", ""),
]


@pytest.mark.parametrize("fn", [sideq.solve, sideq.equilibrium], ids=["solve", "equilibrium"])
@pytest.mark.parametrize("case", range(len(_BAD)))
def test_bad_input_names_the_argument(fn, case):
    model, theta, x, kwargs, prefix, sub = _BAD[case]
    with pytest.raises(SideqInputError) as exc:
        fn(model, theta, x, **kwargs)
    msg = str(exc.value)
    assert msg.startswith(prefix), msg
    assert sub in msg, msg
    assert "\n" not in msg


def test_bad_activation_name():
    with pytest.raises(SideqInputError, match="^activation:.*sigmoid"):
        sideq.single_index("swish")


# ---------------------------------------------------------------------------
# 6. The certified one-evaluation stop and the first-order warm start
# ---------------------------------------------------------------------------

_CERT_CASES = [("sigmoid", 0.8, -2.5), ("tanh", -0.4, 0.6), ("softplus", 0.3, -1.5), ("gelu", 0.5, 0.4)]


@pytest.mark.parametrize("act, a, theta2", _CERT_CASES)
def test_certified_newton_step_is_the_root(act, a, theta2, ref):
    """From y* + δ the solver stops after one evaluation exactly when Taylor's
    bound θ2² M2 F²/(2|F'| m²) certifies the Newton step, and the result is the
    brentq root to a few ulps either way."""
    sigma = ref.act[act][0]
    y_ref = ref.brent_root(sigma, a, theta2)
    model = sideq.single_index(act)
    theta = jnp.array([a, theta2])  # x = 1, so θ1ᵀx = a
    iters = {}
    for delta in (1e-3, 1e-6, 1e-9, 1e-12):
        sol = sideq.solve(model, theta, jnp.array([1.0]), y0=y_ref + delta)
        assert int(sol.status) == Status.CONVERGED
        assert abs(float(sol.y) - y_ref) <= 4 * np.finfo(float).eps * max(1.0, abs(y_ref))
        iters[delta] = int(sol.iterations)
    assert iters[1e-12] == 1 and iters[1e-3] >= 2, iters


def test_a_certified_step_longer_than_sqrt_eps_is_exact(ref):
    """Section 4.2's sigmoid near its optimum (θ2 = 0.27): Taylor's bound
    certifies a Newton step of 1e-7, longer than √eps (the cap is
    eps^(1/4)).  One evaluation, and the brentq root to a
    few ulps; the step's own rounding is ~1e-7 ulp."""
    a, theta2 = 1.6, 0.27
    y_ref = ref.brent_root(ref.act["sigmoid"][0], a, theta2)
    model, theta, x = sideq.single_index("sigmoid"), jnp.array([a, theta2]), jnp.array([1.0])
    for delta in (1e-7, -2e-7):
        sol = sideq.solve(model, theta, x, y0=y_ref + delta)
        assert int(sol.iterations) == 1 and int(sol.status) == Status.CONVERGED
        assert abs(float(sol.y) - y_ref) <= 4 * np.finfo(float).eps * max(1.0, abs(y_ref))


def test_curvature_bound_is_what_makes_one_step_exact():
    """The same tanh with a false curvature bound (1e-12 instead of 4/(3√3))
    accepts an uncertified first Newton step where the constant θ2²M2/(2|F'|)
    of the quadratic error is large (θ2 = −50): the root is then off by more
    than rounding.  The true bound asks for a second evaluation and is exact.
    (The certificate also requires a step ≤ eps^(1/4), so only a large
    constant can make the difference.)"""
    true = sideq.single_index("tanh")
    false = sideq.single_index(
        sideq.activation(
            jnp.tanh, name="tanh_false", slope_bounds=(0.0, 1.0), range_bounds=(-1.0, 1.0), curvature_bound=1e-12
        )
    )
    theta, x = jnp.array([30.0, -50.0]), jnp.array([1.0])
    exact = sideq.solve(true, theta, x)
    good = sideq.solve(true, theta, x, y0=float(exact.y) + 1e-8)
    bad = sideq.solve(false, theta, x, y0=float(exact.y) + 1e-8)
    assert int(bad.iterations) == 1 < int(good.iterations)
    assert abs(float(good.y) - float(exact.y)) <= 2.3e-16
    assert abs(float(bad.y) - float(exact.y)) > 1e-15


def test_predict_start_is_second_order_and_needs_one_evaluation():
    """predict_start(θ + h v) from the solution at θ: error O(h²) (halving h
    quarters it), and the prediction makes the solve stop after one evaluation."""
    model = sideq.single_index("sigmoid", bias=True)
    theta = jnp.array([1.1, -0.6, 0.3, -1.4])
    v = jnp.array([0.3, -0.2, 0.5, 0.4])
    x = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, (50, 2)))
    base = sideq.solve(model, theta, x)
    errors = []
    for h in (1e-2, 5e-3, 2.5e-3):
        exact = sideq.solve(model, theta + h * v, x)
        pred = jax.vmap(lambda xi_, w: sideq.predict_start(model, theta + h * v, xi_, w))(x, sideq.warm_start(base))
        errors.append(float(jnp.max(jnp.abs(pred - exact.y))))
        naive = float(jnp.max(jnp.abs(base.y - exact.y)))
        assert errors[-1] < 0.1 * naive  # far better than reusing y
    for coarse, fine in zip(errors, errors[1:]):
        assert coarse / fine == pytest.approx(4.0, rel=0.1)
    # a small step: the predicted start is certified at once, and exact
    near = sideq.solve(model, theta + 1e-5 * v, x, y0=base)
    cold = sideq.solve(model, theta + 1e-5 * v, x)
    assert int(jnp.max(near.iterations)) == 1 < int(jnp.max(cold.iterations))
    np.testing.assert_allclose(np.asarray(near.y), np.asarray(cold.y), rtol=0, atol=4e-16)
    # zero sensitivity (warm_start from points) predicts the points themselves
    w = sideq.warm_start(cold.y)
    same = jax.vmap(lambda xi_, ww: sideq.predict_start(model, theta, xi_, ww))(x, w)
    np.testing.assert_array_equal(np.asarray(same), np.asarray(cold.y))


def test_predict_start_takes_every_input_shape_solve_takes():
    """For d = 1 a batch may be x of shape (n,), as in solve: the prediction is
    the same as from (n, 1) (it once summed θ1·x over the batch instead)."""
    model = sideq.single_index("sigmoid")
    theta, step = jnp.array([2.0, 0.3]), jnp.array([1e-3, -2e-3])
    x = jnp.linspace(0.0, 1.0, 5)
    w = sideq.warm_start(sideq.solve(model, theta, x))
    flat = sideq.predict_start(model, theta + step, x, w)
    column = sideq.predict_start(model, theta + step, x[:, None], w)
    np.testing.assert_array_equal(np.asarray(flat), np.asarray(column))
    exact = sideq.solve(model, theta + step, x).y
    assert float(jnp.max(jnp.abs(flat - exact))) < 1e-6 < float(jnp.max(jnp.abs(w.y - exact)))
    one = sideq.predict_start(model, theta + step, x[2], jax.tree_util.tree_map(lambda v: v[2], w))
    assert float(one) == pytest.approx(float(flat[2]), rel=1e-15)


def test_non_finite_warm_start_falls_back_to_a_cold_start():
    """A warm start that is not a number (left by a failed solve) starts cold
    instead of failing again; the root is the same."""
    model = sideq.single_index("tanh", bias=True)
    theta, x = jnp.array([0.8, -0.3, 0.5, -1.2]), jnp.array([[0.3, 1.0], [-2.0, 0.4]])
    cold = sideq.solve(model, theta, x)
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        sol = sideq.solve(model, theta, x, y0=jnp.array([bad, 0.1]))
        assert np.all(np.asarray(sol.status) == Status.CONVERGED)
        np.testing.assert_allclose(np.asarray(sol.y), np.asarray(cold.y), rtol=0, atol=4e-16)
    # the same through a warm-start record whose y is NaN
    w = sideq.WarmStart(jnp.array([jnp.nan, 0.1]), jnp.zeros(2), jnp.ones(2))
    sol = sideq.solve(model, theta, x, y0=w)
    np.testing.assert_allclose(np.asarray(sol.y), np.asarray(cold.y), rtol=0, atol=4e-16)


# (model, theta, a scale for x): warm starts that one step settles, cold and NaN
# starts that need the second step or the safe path (sigmoid θ2 = −50 cycles
# between the bracket's ends; θ2 = 8 is non-unique), the linear DEQ near θ2 = 1.
_BATCH_CASES = [
    ("sigmoid", [1.6, 0.23]),
    ("sigmoid", [3.0, -50.0]),
    ("sigmoid", [2.0, 8.0]),
    ("tanh", [0.8, 0.5]),
    ("softplus", [1.2, -0.7]),
    ("gelu", [1.0, 0.4]),
    ("relu", [1.0, 0.6]),
    ("linear", [2.0, 0.999]),
    ("linear", [0.5, 3.0]),
]


@functools.lru_cache(maxsize=None)
def _batch_and_vmap(name):
    from sideq.scalar import _solve_impl, _solve_warm

    model = sideq.linear() if name == "linear" else sideq.single_index(name)
    tol = 64 * 2.0**-52
    batch = jax.jit(lambda th, x, w: _solve_warm(model, th, x, w, tol, 100)[0])
    per_element = jax.jit(
        jax.vmap(lambda th, x, w: _solve_impl(model, th, x, w, "jaxopt", tol, 100), in_axes=(None, 0, 0))
    )
    return model, batch, per_element


def _assert_same_equilibria(a, b, model, theta2):
    """``a`` (gradient descent's batch solve) against ``b`` (the vmapped
    jaxopt solve): the same iterations and statuses, y and ω to an ulp.  With
    one σ evaluation (sigmoid, tanh: ``_one_evaluation``) the margin and the
    sensitivity come from σ'(ω) = h(y) instead of σ'(ω) measured.  At a root
    they agree; at the computed y the two slopes differ by |h'|·|y − y*| ≤
    2·residual/|F'| plus rounding, which the margin carries times |θ2| and the
    sensitivity s = σ'/(1 − θ2σ') times 1/margin² (compared where converged;
    elsewhere h(y) is not σ'(ω)).  The residual is a bound from the step: at
    least the measured one, and at most (|F'| + 6) eps above it.  (Where the
    fallback ran, both are measured, by differently fused code: an ulp or two
    apart.)"""
    from sideq.scalar import _one_evaluation

    eps = float(jnp.finfo(jnp.float64).eps)
    one = _one_evaluation(model)
    converged = np.asarray(b.status) == int(Status.CONVERGED)
    measured, margin = np.asarray(b.residual), np.asarray(b.margin)
    dslope = 4 * eps + 2 * measured / np.abs(margin)  # |h(y) − σ'(ω)|, bounded
    for field, u, v in zip(a._fields, a, b):
        u, v = np.asarray(u), np.asarray(v)
        if jnp.issubdtype(u.dtype, jnp.integer):
            np.testing.assert_array_equal(u, v, err_msg=field)
        elif one and field in ("margin", "sensitivity"):
            tol = (abs(theta2) * dslope if field == "margin" else dslope / margin**2) + 4 * eps * np.abs(v)
            off = np.abs(u - v)[converged] > tol[converged]
            assert not off.any(), (field, np.abs(u - v)[converged][off], tol[converged][off])
        elif one and field == "residual":
            np.testing.assert_array_equal(np.isnan(u), np.isnan(v), err_msg=field)
            ok = ~np.isnan(v)
            assert np.all(u[ok] >= v[ok] - 2 * eps), field
            assert np.all(u[ok] <= v[ok] + (abs(theta2) + 7) * eps), field
        else:
            np.testing.assert_allclose(u, v, rtol=4e-16, atol=1e-15, err_msg=field)


@pytest.mark.slow
@pytest.mark.parametrize("name, theta", _BATCH_CASES)
def test_batch_solve_is_the_vmapped_solve(name, theta):
    """``_solve_warm`` (gradient descent's solve: the whole batch at once, the
    fallback's test one reduction) gives every field of the vmapped jaxopt
    solve, from a warm start at a nearby θ, a cold start and NaN, with the
    fallback and the safe path run for part of the batch: the same iterations
    and statuses, and the same numbers to an ulp (the same operations, fused
    differently)."""
    from sideq.scalar import WarmStart, warm_start

    model, batch, per_element = _batch_and_vmap(name)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.uniform(-1.0, 1.0, (40, 1)))
    theta = jnp.asarray(theta)
    near = theta + jnp.asarray([1e-3, -1e-3])
    cold = jnp.zeros(40)
    warm = warm_start(per_element(near, x, warm_start(cold)))
    mixed = WarmStart(*(v.at[::7].set(jnp.nan) for v in warm))
    ran = set()
    for start in (warm, warm_start(cold), mixed, warm_start(jnp.full(40, jnp.nan))):
        a, b = batch(theta, x, start), per_element(theta, x, start)
        _assert_same_equilibria(a, b, model, float(theta[-1]))
        ran.add(int(jnp.max(a.iterations)))
    assert max(ran) >= 2  # the fallback ran for part of a batch
    if float(theta[-1]) == -50.0:
        assert max(ran) > 2  # and the safe path


def test_batch_solve_reports_unconverged_elements_and_vmaps():
    """``_solve_warm`` where the iterations run out for part of the batch (the
    safe path cut at maxiter = 5): the same statuses (MAX_STEPS where the
    vmapped solve gives it), iterations and numbers as the vmapped solve.
    And vmapped over θ, with the fallback run for one θ and not the other,
    each row is the batch solve of that θ alone (the loop's flags come back
    only from the rows where it ran)."""
    from sideq.scalar import _solve_impl, _solve_warm, warm_start

    _solve_warm = jax.jit(_solve_warm, static_argnums=(0, 4, 5))  # one compilation for the four calls below

    model = sideq.single_index("sigmoid")
    tol = 64 * 2.0**-52
    x = jnp.asarray(np.random.default_rng(4).uniform(-1.0, 1.0, (40, 1)))
    cold = warm_start(jnp.zeros(40))
    theta = jnp.asarray([3.0, -50.0])
    batch = _solve_warm(model, theta, x, cold, tol, 5)[0]
    per_element = jax.vmap(lambda x_, w: _solve_impl(model, theta, x_, w, "jaxopt", tol, 5))(x, cold)
    statuses = set(np.asarray(batch.status).tolist())
    assert int(Status.MAX_STEPS) in statuses and int(Status.CONVERGED) in statuses
    _assert_same_equilibria(batch, per_element, model, -50.0)
    # Two θ: at the first every step from its own solutions is accepted at once
    # (the loop does not run), at the second the cold start needs the loop.
    easy = jnp.asarray([1.6, 0.23])
    own = warm_start(_solve_warm(model, easy, x, cold, tol, 100)[0])
    starts = jax.tree_util.tree_map(lambda u, v: jnp.stack([u, v]), own, cold)
    thetas = jnp.stack([easy, theta])
    both = jax.vmap(lambda th, w: _solve_warm(model, th, x, w, tol, 5)[0])(thetas, starts)
    for i in range(2):
        alone = _solve_warm(model, thetas[i], x, jax.tree_util.tree_map(lambda v: v[i], starts), tol, 5)[0]
        for field, u, v in zip(alone._fields, alone, both):
            np.testing.assert_allclose(np.asarray(v[i]), np.asarray(u), rtol=4e-16, atol=1e-15, err_msg=field)
    assert int(jnp.max(both.iterations[0])) == 1 and int(jnp.max(both.iterations[1])) > 2
    assert bool(jnp.all(both.status[0] == Status.CONVERGED))


def test_continuation_predicts_as_the_warm_start_does():
    """predict_start from a Continuation (y', ∂y/∂a, θ') is the prediction from
    the WarmStart (y', ω', ∂y/∂a) of the same solutions, to rounding: the
    increment (θ − θ')·(x, 1, y') is a + θ2 y' − ω' with ω' = a' + θ2' y'."""
    from sideq.scalar import Continuation

    model = sideq.single_index("tanh", bias=True)
    x = jnp.asarray(np.random.default_rng(5).uniform(-1, 1, (30, 2)))
    theta_prev, theta = jnp.array([0.7, -0.2, 0.1, 0.4]), jnp.array([0.72, -0.21, 0.12, 0.38])
    sol = sideq.solve(model, theta_prev, x)
    cont = Continuation(sol.y, sol.sensitivity, theta_prev)
    by_cont = jax.vmap(lambda xi_, y, s: sideq.predict_start(model, theta, xi_, Continuation(y, s, theta_prev)))(
        x, cont.y, cont.sensitivity
    )
    by_warm = jax.vmap(lambda xi_, w: sideq.predict_start(model, theta, xi_, w))(x, sideq.warm_start(sol))
    np.testing.assert_allclose(np.asarray(by_cont), np.asarray(by_warm), rtol=0, atol=1e-15)
    # Without the sensitivities (gradient descent's carry for tanh): taken from
    # y' and θ', σ'(ω') = 1 − y'², the same prediction to rounding.
    taken = sideq.predict_start(model, theta, x, Continuation(sol.y, None, theta_prev))
    np.testing.assert_allclose(np.asarray(taken), np.asarray(by_cont), rtol=0, atol=1e-15)
    softplus = sideq.single_index("softplus", bias=True)  # (σ' is not a function of σ there)
    with pytest.raises(SideqInputError, match="^previous: a Continuation without sensitivities"):
        sideq.predict_start(softplus, theta, x, Continuation(sol.y, None, theta_prev))
    exact = sideq.solve(model, theta, x)
    assert float(jnp.max(jnp.abs(by_cont - exact.y))) < 0.1 * float(jnp.max(jnp.abs(sol.y - exact.y)))


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_newton_residual_bounds_the_measured_residual(name):
    """_newton_residual bounds |F| at the end of a Newton step without
    evaluating F there (Taylor's theorem with sup|σ''|, plus y's rounding):
    over 20,000 random (a, θ2, start) per activation, from starts 1e-14 to 1
    away from the root (steps down to rounding), the measured |F(y1)| never
    exceeds it, and where the Taylor term dominates the bound comes within 3×
    of the measured residual somewhere (not vacuous)."""
    from sideq.scalar import _newton_residual

    model = sideq.single_index(name)
    rng = np.random.default_rng(11)
    k = 20_000
    a = jnp.asarray(rng.uniform(-4, 4, k))
    theta2 = jnp.asarray(rng.uniform(-6, 6, k))
    ys = jax.vmap(lambda a_, t2: sideq.solve(model, jnp.stack([a_, t2]), jnp.ones((1,))).y)(a, theta2)
    lo, hi = model.activation.range_min, model.activation.range_max
    y0 = jnp.clip(ys + jnp.asarray(10.0 ** rng.uniform(-14, 0, k) * rng.choice([-1, 1], k)), lo, hi)
    F, dF = model.residual_and_slope_at(a, theta2, y0)
    step = F / dF
    y1 = y0 - step
    measured = jnp.abs(model.residual_at(a, theta2, y1))
    bound = jax.vmap(lambda t2, s, y: _newton_residual(model, t2, s, y))(theta2, step, y1)
    eps = float(jnp.finfo(jnp.float64).eps)
    ok = np.isfinite(np.asarray(measured))
    assert ok.mean() > 0.99
    assert np.all(np.asarray(measured)[ok] <= np.asarray(bound)[ok])
    assert np.min(np.asarray(bound - measured)[ok]) < 8 * eps  # (the rounding term is not loose either)
    taylor = np.asarray(bound - measured) > 0
    big = ok & taylor & (np.asarray(measured) > 1e-8)
    assert big.sum() > 100
    assert np.min(np.asarray(bound)[big] / np.asarray(measured)[big]) < 3


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_unit_scale_acceptance_is_the_general_one(name):
    """Where σ's range lies in [−1, 1], _step_end reads the step alone (scale 1,
    finite where the step is); the flags and the iterate are those of the
    general test, on steps from 1e-300 to 1e300, ±inf and NaN."""
    import dataclasses

    from sideq.scalar import _acceptance, _step_end

    model = sideq.single_index(name)
    wide = sideq.single_index(dataclasses.replace(model.activation, range_min=-np.inf, range_max=np.inf))
    rng = np.random.default_rng(8)
    steps = np.r_[
        np.logspace(-300, 300, 52) * rng.choice([-1, 1], 52),
        1e-8,
        3e-7,
        -1e-4,
        np.inf,
        -np.inf,
        np.nan,
        0.0,
        -0.0,
        1.5e-8,
        1.2e-4,
        1.3e-4,
    ]
    y_start = jnp.asarray(rng.uniform(model.activation.range_min, model.activation.range_max, steps.size))
    accept = _acceptance(model, jnp.asarray(0.27), jnp.float64, 64 * 2.0**-52)
    a = _step_end(model, y_start, jnp.asarray(steps), accept)
    b = _step_end(wide, y_start, jnp.asarray(steps), accept)
    np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b[1]))
    np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert 0 < int(jnp.sum(a[1])) < steps.size


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus", "linear"])
def test_uniqueness_margin_against_a_dense_grid_of_slopes(act):
    """m > 0 iff F' = 1 − θ2σ' keeps one sign, with |F'| ≥ m, and m is the infimum:
    σ' from numpy on a dense grid of z (no sideq)."""
    z = np.linspace(-40.0, 40.0, 400001)
    slope = {
        "sigmoid": lambda z: np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))) ** 2,
        "tanh": lambda z: 1 / np.cosh(z) ** 2,
        "softplus": lambda z: 1 / (1 + np.exp(-z)),
        "linear": lambda z: np.ones_like(z),
    }[act](z)
    model = sideq.linear() if act == "linear" else sideq.single_index(act)
    for theta2 in (-3.0, -0.5, 0.0, 0.5, 0.99, 1.01, 3.9, 4.1, 6.0):
        m, direction = sideq.uniqueness_margin(model, jnp.asarray(theta2))
        fprime = 1 - theta2 * slope
        one_sign = bool(np.all(fprime > 0) or np.all(fprime < 0))
        if float(m) > 0:
            assert one_sign and np.all(float(direction) * fprime >= float(m) - 1e-12)
            assert float(np.min(np.abs(fprime))) == pytest.approx(float(m), abs=1e-9)  # the infimum, attained
        else:  # F' reaches 0 or changes sign on the grid, or only in the limit |z| -> inf
            assert not one_sign or float(np.min(np.abs(fprime))) <= 1e-6 + abs(float(m))


def test_unconverged_solve_in_the_non_unique_regime_is_max_steps_not_a_value():
    """θ2 = 8 > 4 (sigmoid may have three roots) and maxiter = 3: the solve stops
    unconverged, which must read MAX_STEPS (and y = NaN from equilibrium), not
    NON_UNIQUE with a finite y."""
    model = sideq.single_index("sigmoid", bias=True)
    theta = jnp.array([1.0, -4.0, 8.0])
    sol = sideq.solve(model, theta, 0.3, y0=0.0, maxiter=3)
    assert int(sol.status) == Status.MAX_STEPS
    assert np.isnan(float(sideq.equilibrium(model, theta, 0.3, y0=0.0, maxiter=3)))


@pytest.mark.parametrize("act, theta2", [("sigmoid", -50.0), ("sigmoid", -500.0), ("tanh", -8.0)])
def test_steep_negative_feedback_converges_everywhere(act, theta2):
    """Strong negative feedback makes plain Newton cycle inside the bracket at some
    points; alternating with bisection after the Newton-only steps settles every
    one of 2001 inputs within the default iteration limit."""
    model = sideq.single_index(act)
    x = np.linspace(-10.0, 10.0, 2001)
    sol = sideq.solve(model, jnp.array([1.0, theta2]), x[:, None], y0=jnp.zeros(2001))
    assert np.all(np.asarray(sol.status) == Status.CONVERGED)
