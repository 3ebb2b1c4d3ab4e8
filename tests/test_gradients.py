r"""Gradients of the equilibrium y_θ(x), Eq. (1):  ∇_θ y = (1 − ∂g/∂y)⁻¹ ∇_θ g.

Each jax.grad of sideq.equilibrium is checked in float64 against three
independent routes, to relative 1e-12 where the route is exact to rounding
((b), (c); the measured gap is ≤ 5e-15) and to 1e-8 against finite differences:
  (a) a 4-point central finite-difference stencil on the library's own values,
  (b) jax.grad through 200 unrolled Newton steps written in plain jnp (no sideq),
  (c) the closed formula σ'(ω)/(1 − θ2 σ'(ω))·(x, [1,] y), ω = θ1ᵀx + b + θ2 y,
      with y from scipy's brentq and σ' in numpy;
for both backends, under jit and under vmap over x and over θ; float32 against
float64; forward mode (optimistix) against reverse-over-reverse (jaxopt).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sideq

BACKENDS = sideq.BACKENDS

# name -> (model factory arg, theta, x); d = 2 throughout, theta2 last.
CASES = {
    "sigmoid": ("sigmoid", False, [0.8, -1.2, -1.5], [0.7, -0.4]),
    "tanh_bias": ("tanh", True, [0.5, -0.3, 0.2, 0.6], [1.1, 0.4]),
    "softplus": ("softplus", False, [-0.4, 0.9, -3.0], [0.3, 1.6]),
    "linear_bias_theta2>1": ("linear", True, [0.6, -0.8, 0.3, 2.5], [0.9, -0.2]),
}
# plain-jax σ for the unrolled Newton route (independent of sideq.activations)
_JAX_SIGMA = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "softplus": jax.nn.softplus, "linear": lambda z: z}

H = 1e-3  # 4-point stencil: truncation O(H⁴) ≈ 1e-12, solver noise / H ≈ 1e-11
_STENCIL = np.array([2.0, 1.0, -1.0, -2.0])
_WEIGHTS = np.array([-1.0, 8.0, -8.0, 1.0]) / 12.0


def _model(name, bias):
    return sideq.linear(bias=bias) if name == "linear" else sideq.single_index(name, bias=bias)


EXACT = 1e-12  # routes exact to rounding: the closed form, unrolled Newton, the other backend
FD = 1e-8  # 4-point finite differences


def _assert_rel(got, want, rtol=EXACT, what=""):
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert np.all(np.isfinite(got)), what
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max(), err_msg=what)


def _stencil_points(v):
    """Rows v ± H e_i, v ± 2H e_i (order: i major, _STENCIL minor)."""
    v = np.asarray(v, float)
    pts = np.repeat(v[None, :], 4 * v.size, axis=0)
    for i in range(v.size):
        pts[4 * i : 4 * i + 4, i] += _STENCIL * H
    return pts


def _fd(values, n):
    return (np.asarray(values).reshape(n, 4) @ _WEIGHTS) / H


@functools.lru_cache(maxsize=None)
def _vg(case, backend):
    """jit(vmap(value_and_grad)) of equilibrium w.r.t. (theta, x), mapped over theta
    and x together.  Evaluated at finite-difference stencils (θ-stencil rows share x,
    x-stencil rows share θ): the values give route (a), the gradients the jit/vmap checks."""
    name, bias, _, _ = CASES[case]
    model = _model(name, bias)
    vg = jax.value_and_grad(lambda t, x: sideq.equilibrium(model, t, x, backend=backend), argnums=(0, 1))
    return jax.jit(jax.vmap(vg))


@functools.lru_cache(maxsize=None)
def _unrolled_newton_grad(name, bias):
    """jax.grad through 200 Newton steps y ← y − F/F', F = y − σ(a + θ2 y), y0 = 0."""
    sigma = _JAX_SIGMA[name]
    dsigma = jax.grad(sigma)

    def y_of(theta, x):
        d = x.shape[-1]
        a = theta[:d] @ x + (theta[d] if bias else 0.0)
        t2 = theta[-1]

        def step(_, y):
            w = a + t2 * y
            return y - (y - sigma(w)) / (1.0 - t2 * dsigma(w))

        return jax.lax.fori_loop(0, 200, step, jnp.zeros((), theta.dtype))

    return jax.jit(jax.value_and_grad(y_of, argnums=(0, 1)))


def _reference(case, ref):
    name, bias, theta, x = CASES[case]
    theta, x = np.asarray(theta), np.asarray(x)
    sigma, dsigma = ref.act[name]
    a = theta[:2] @ x + (theta[2] if bias else 0.0)
    y = a / (1 - theta[-1]) if name == "linear" else ref.brent_root(sigma, a, theta[-1])
    g_theta, g_x = ref.closed_form_grads(dsigma, theta, x, y, bias)
    return theta, x, y, g_theta, g_x


def _stencil_batch(theta, x):
    """Rows (θ, x): the θ stencil at x, the x stencil at θ, then the base point."""
    pt, px = _stencil_points(theta), _stencil_points(x)
    thetas = np.vstack([pt, np.repeat(theta[None], len(px) + 1, axis=0)])
    xs = np.vstack([np.repeat(x[None], len(pt), axis=0), px, x])
    return thetas, xs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_gradient_three_routes(case, backend, ref):
    name, bias, _, _ = CASES[case]
    theta, x, y, g_theta, g_x = _reference(case, ref)
    thetas, xs = _stencil_batch(theta, x)
    vals, (gts, gxs) = _vg(case, backend)(jnp.asarray(thetas), jnp.asarray(xs))
    vals, gts, gxs = np.asarray(vals), np.asarray(gts), np.asarray(gxs)
    nt = 4 * theta.size
    assert vals[-1] == pytest.approx(y, rel=1e-12, abs=1e-14)
    g_lib_t, g_lib_x = gts[-1], gxs[-1]
    # (c) closed formula
    _assert_rel(g_lib_t, g_theta, what="dy/dtheta vs closed form")
    _assert_rel(g_lib_x, g_x, what="dy/dx vs closed form")
    # (a) finite differences of the library's own values
    _assert_rel(g_lib_t, _fd(vals[:nt], theta.size), rtol=FD, what="dy/dtheta vs FD")
    _assert_rel(g_lib_x, _fd(vals[nt:-1], x.size), rtol=FD, what="dy/dx vs FD")
    # under vmap every row's gradient is the closed form at its own (θ, x)
    for t, xi, gt, gx in list(zip(thetas, xs, gts, gxs))[:-1:3]:
        _, _, _, gtp, gxp = _reference_at(name, bias, t, xi, ref)
        _assert_rel(gt, gtp, what=f"vmap dtheta at {t}, {xi}")
        _assert_rel(gx, gxp, what=f"vmap dx at {t}, {xi}")
    # (b) unrolled Newton, differentiated by jax.grad (no sideq involved)
    yn, (gn_t, gn_x) = _unrolled_newton_grad(name, bias)(jnp.asarray(theta), jnp.asarray(x))
    assert float(yn) == pytest.approx(y, rel=1e-13, abs=1e-15)  # Newton did converge
    _assert_rel(g_lib_t, gn_t, what="dy/dtheta vs unrolled Newton")
    _assert_rel(g_lib_x, gn_x, what="dy/dx vs unrolled Newton")


def _reference_at(name, bias, theta, x, ref):
    theta, x = np.asarray(theta, float), np.asarray(x, float)
    sigma, dsigma = ref.act[name]
    a = theta[:2] @ x + (theta[2] if bias else 0.0)
    y = a / (1 - theta[-1]) if name == "linear" else ref.brent_root(sigma, a, theta[-1])
    return (theta, x, y) + ref.closed_form_grads(dsigma, theta, x, y, bias)


@pytest.mark.parametrize("backend, case", [("jaxopt", "tanh_bias"), ("optimistix", "sigmoid")])
def test_gradient_float32_matches_float64(case, backend):
    _, _, theta, x = CASES[case]
    thetas = np.array([theta, np.asarray(theta) * 0.9, theta])
    xs = np.array([x, x, [0.2, 0.5]])
    vg = _vg(case, backend)
    v64, (gt64, gx64) = vg(jnp.asarray(thetas), jnp.asarray(xs))
    v32, (gt32, gx32) = vg(jnp.asarray(thetas, jnp.float32), jnp.asarray(xs, jnp.float32))
    for a32, a64 in [(v32, v64), (gt32, gt64), (gx32, gx64)]:
        assert a32.dtype == jnp.float32 and a64.dtype == jnp.float64
        _assert_rel(a32, a64, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_of_batched_equilibrium_plain_grad(backend, ref):
    """Outside jit, x a batch (n, d): grad of Σ_i y_θ(x_i) is Σ_i of the closed forms."""
    name, bias, theta, _ = CASES["tanh_bias"]
    model = _model(name, bias)
    xs = np.array([[1.1, 0.4], [-0.3, 0.8], [0.0, -2.0]])
    g = jax.grad(lambda t: jnp.sum(sideq.equilibrium(model, t, jnp.asarray(xs), backend=backend)))(jnp.asarray(theta))
    want = sum(_reference_at(name, bias, theta, xi, ref)[3] for xi in xs)
    _assert_rel(g, want)


@pytest.mark.parametrize("backend", ["jaxopt"])
def test_gradient_at_non_unique_root(backend, ref):
    """θ2 = 8 > 4 for sigmoid: the value is one of three roots; its gradient is Eq. (1)
    at that root (the implicit function theorem holds locally, margin ≠ 0)."""
    model = sideq.single_index("sigmoid")
    theta = jnp.array([-4.0, 7.0])
    with pytest.warns(RuntimeWarning):
        y = float(sideq.equilibrium(model, theta, 1.0, backend=backend))
    with pytest.warns(RuntimeWarning):
        g = jax.grad(lambda t: sideq.equilibrium(model, t, 1.0, backend=backend))(theta)
    assert abs(y - ref.act["sigmoid"][0](-4.0 + 7.0 * y)) <= 1e-12
    want, _ = ref.closed_form_grads(ref.act["sigmoid"][1], np.array([-4.0, 7.0]), [1.0], y, False)
    _assert_rel(g, want)


# ---------------------------------------------------------------------------
# Forward mode and second derivatives
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["tanh_bias"])
def test_forward_mode_optimistix_matches_reverse_jaxopt(case, ref):
    name, bias, theta, x = CASES[case]
    model = _model(name, bias)
    theta, x = jnp.asarray(theta), jnp.asarray(x)

    def eq(backend):
        return lambda t: sideq.equilibrium(model, t, x, backend=backend)

    # (each derivative compiled whole: faster than transforming op by op)
    jf = jax.jit(jax.jacfwd(eq("optimistix")))(theta)
    _assert_rel(jf, jax.jit(jax.jacrev(eq("jaxopt")))(theta), what="jacfwd(optimistix) vs jacrev(jaxopt)")
    _assert_rel(jf, _reference(case, ref)[3], what="jacfwd(optimistix) vs closed form")
    hf = jax.jit(jax.hessian(eq("optimistix")))(theta)
    hr = jax.jit(jax.jacrev(jax.jacrev(eq("jaxopt"))))(theta)
    assert hf.shape == hr.shape == (theta.size, theta.size)
    _assert_rel(hf, hr, what="hessian(optimistix) vs jacrev(jacrev(jaxopt))")
    _assert_rel(hf, hf.T, rtol=1e-12, what="symmetric")
    # independent: 4-point differences of the closed-form gradient (numpy + brentq)
    th = np.asarray(theta)
    gp = np.array([_reference_at(name, bias, p, np.asarray(x), ref)[3] for p in _stencil_points(th)])
    h_fd = np.stack([(gp[4 * i : 4 * i + 4].T @ _WEIGHTS) / H for i in range(th.size)])
    _assert_rel(hf, h_fd, rtol=1e-7, what="hessian vs FD of Eq. (1)")


def test_jaxopt_forward_mode_is_unsupported():
    """Documented limitation: jaxopt's implicit rule is a custom_vjp (reverse only)."""
    model = sideq.single_index("sigmoid")
    f = lambda t: sideq.equilibrium(model, t, jnp.array([0.7]))  # noqa: E731
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jacfwd(f)(jnp.array([0.8, -1.5]))
    with pytest.raises(TypeError, match="forward-mode"):
        jax.hessian(f)(jnp.array([0.8, -1.5]))


# ---------------------------------------------------------------------------
# Where y is NaN the gradient must not be a finite number
# ---------------------------------------------------------------------------


def _singular_grads(backend):
    model = sideq.linear()
    f = jax.jit(jax.grad(lambda t, x: sideq.equilibrium(model, t, x, backend=backend), argnums=(0, 1)))
    return f(jnp.array([0.7, 1.0]), jnp.array(2.0))


def test_singular_gradient_is_not_finite_jaxopt():
    gt, gx = _singular_grads("jaxopt")
    assert not np.any(np.isfinite(np.asarray(gt))) and not np.isfinite(float(gx))


def test_singular_gradient_is_not_finite_optimistix():
    gt, gx = _singular_grads("optimistix")
    assert not np.any(np.isfinite(np.asarray(gt))) and not np.isfinite(float(gx))


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_solve_gradient_is_not_finite(backend):
    model = sideq.single_index("softplus")  # y = softplus(0.5 + 2y) has no root
    theta = jnp.array([0.5, 2.0])
    assert np.isnan(float(sideq.equilibrium(model, theta, 1.0, backend=backend)))
    g = jax.grad(lambda t: sideq.equilibrium(model, t, 1.0, backend=backend))(theta)
    assert not np.any(np.isfinite(np.asarray(g))), np.asarray(g)
