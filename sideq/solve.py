r"""The equilibrium y_θ(x): root of F(y) = y − g_θ(x, y), differentiable in θ by Eq. (1).

This is the only module that imports jaxopt or optimistix.

Forward solve
-------------
F'(y) = 1 − θ2 σ'(ω) lies between ``1 − θ2·inf σ'`` and ``1 − θ2·sup σ'``.  When
both bounds have the same sign, F is strictly monotone with ``|F'| ≥ m > 0``: the
root is unique and, from any point y0, lies between y0 and ``y0 − F(y0)/(±m)``.
This covers the linear DEQ at every θ2 ≠ 1 (also |θ2| > 1, where fixed-point
iteration diverges), every contractive case |θ2|·L < 1, and θ2 ≤ 0 for monotone σ.
Otherwise (e.g. sigmoid with θ2 > 4) the root may not be unique: the solver
brackets with the range of σ when σ is bounded and the result carries
``Status.NON_UNIQUE``.  Inside the bracket a safeguarded Newton iteration runs
(a Newton step, or bisection when the step leaves the bracket): quadratic
convergence from a warm start, never worse than bisection.

Backends
--------
* ``"jaxopt"`` (default): the safeguarded Newton iteration above, wrapped in
  :func:`jaxopt.implicit_diff.custom_root`, so that reverse-mode derivatives come
  from the implicit function theorem, Eq. (1):
  ∇_θ y = (1 − ∂g/∂y)⁻¹ ∇_θ g.  jaxopt's rule is a ``custom_vjp``: reverse mode,
  also reverse-over-reverse (``jax.jacrev(jax.jacrev(...))``), but not forward mode.
* ``"optimistix"``: :func:`optimistix.root_find` with :class:`optimistix.Bisection`
  on the same bracket, differentiated by :class:`optimistix.ImplicitAdjoint`
  (a ``custom_jvp``: forward and reverse mode, ``jax.hessian``).  Slower (pure
  bisection), used as the independent second route and where forward mode is needed.
"""

from __future__ import annotations

import functools
from typing import NamedTuple
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from sideq.errors import SideqInputError, SingularModelError
from sideq.model import Model
from sideq.status import Status

__all__ = ["Equilibrium", "solve", "equilibrium", "uniqueness_margin", "BACKENDS", "default_tol"]

BACKENDS = ("jaxopt", "optimistix")


class Equilibrium(NamedTuple):
    """Solution of y = g_θ(x, y) with diagnostics (all arrays; batched under vmap)."""

    y: jax.Array  # the root y_θ(x) (NaN when singular or failed)
    residual: jax.Array  # |y − g_θ(x, y)|
    iterations: jax.Array  # solver iterations (int32)
    margin: jax.Array  # IFT margin 1 − ∂g/∂y at the solution, Eq. (1)
    status: jax.Array  # sideq.Status code (int32)


def default_tol(dtype) -> float:
    """Relative step tolerance of the Newton iteration: 64 machine epsilons."""
    return 64.0 * float(jnp.finfo(dtype).eps)


def uniqueness_margin(model: Model, theta2):
    r"""Signed lower bound on |F'| over all y, or ≤ 0 if F need not be monotone.

    With s⁻ = inf σ', s⁺ = sup σ': F'(y) ∈ [1 − max(θ2 s⁻, θ2 s⁺), 1 − min(θ2 s⁻, θ2 s⁺)].
    Returns ``(m, direction)``: ``m > 0`` means F is strictly monotone (direction
    +1 increasing, −1 decreasing) with |F'| ≥ m, so the equilibrium is unique.
    """
    act = model.activation
    p, q = theta2 * act.slope_min, theta2 * act.slope_max
    up = 1 - jnp.maximum(p, q)  # lower bound of F' (increasing case)
    down = jnp.minimum(p, q) - 1  # lower bound of -F' (decreasing case)
    increasing = up > 0
    m = jnp.where(increasing, up, down)
    direction = jnp.where(increasing, 1, -1).astype(jnp.result_type(theta2))
    return m, direction


def _bracket(model: Model, a, theta2, y0, F0):
    """Bracket [lo, hi] of a root given F0 = F(y0), the direction of F, and uniqueness."""
    act = model.activation
    m, direction = uniqueness_margin(model, theta2)
    unique = m > 0
    G0 = direction * F0  # G = direction·F is increasing
    far = y0 - G0 / jnp.where(unique, m, 1) * (1 + 1e-8)
    lo_u, hi_u = jnp.minimum(y0, far), jnp.maximum(y0, far)
    dtype = y0.dtype
    lo_r = jnp.asarray(act.range_min, dtype)
    hi_r = jnp.asarray(act.range_max, dtype)
    lo = jnp.where(unique, jnp.maximum(lo_u, lo_r), lo_r)
    hi = jnp.where(unique, jnp.minimum(hi_u, hi_r), hi_r)
    # In the non-unique regime F(y) → ±∞ as y → ±∞ only if σ is bounded, so the
    # range of σ is a valid bracket there; direction +1.
    direction = jnp.where(unique, direction, 1)
    return lo, hi, direction, unique


_UNROLL = 2  # Newton iterations written out before the while_loop (XLA fuses them)
_EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps),
        "float16": float(np.finfo(np.float16).eps), "bfloat16": 2.0**-7}
_NEWTON_ONLY = 6  # iterations of pure (bracketed) Newton before alternating with bisection


def _newton(model: Model, a, theta2, y0, tol, maxiter):
    """Safeguarded Newton iteration for G = direction·F on [lo, hi].

    Works on the offset a = θ1ᵀx + b (hoisted out of the loop).  The first
    ``_UNROLL`` iterations are straight-line code, which XLA fuses and which
    is all a warm start needs; a ``while_loop`` finishes the rest.
    Returns (y, iterations, converged).
    """
    act = model.activation
    # Every root lies in the closure of σ(ℝ); the bracket below has y_start as an end.
    y_start = jnp.clip(y0, act.range_min, act.range_max)
    F, dF = model.residual_and_slope_at(a, theta2, y_start)
    lo, hi, direction, _ = _bracket(model, a, theta2, y_start, F)
    bracketed = jnp.isfinite(lo) & jnp.isfinite(hi)

    def update(state, F, dF):
        y, lo, hi, it, done, prev = state
        G, dG = direction * F, direction * dF
        lo = jnp.where(G < 0, y, lo)
        hi = jnp.where(G > 0, y, hi)
        newton_step = G / dG
        y_newton = y - newton_step
        scale = jnp.maximum(1, jnp.abs(y))
        tiny = jnp.abs(newton_step) <= tol * scale  # y is (next to) the root: accept
        # Bisect when a Newton step does not land strictly inside the bracket, and
        # every other iteration once Newton has had _NEWTON_ONLY tries: plain
        # Newton can cycle between the bracket's ends (sigmoid, θ2 = −50).
        outside = ~jnp.isfinite(y_newton) | (y_newton <= lo) | (y_newton >= hi)
        stalled = (it >= _NEWTON_ONLY) & (it % 2 == 1)
        bisect = (outside | stalled) & bracketed & ~tiny
        y_new = jnp.where(bisect, 0.5 * (lo + hi), y_newton)
        # Converged when the Newton step from y is negligible: y_new is then
        # accurate to ~step² (quadratic convergence), also after bisection steps.
        # Or when two Newton steps in a row show quadratic convergence: with
        # e_{k+1} ≈ C e_k² and C ≈ s_k/s_{k−1}², the error left after this step
        # is ≈ s_k³/s_{k−1}²; below a few ulps there is nothing to confirm (this
        # saves the confirming iteration of a warm start: 2 evaluations, not 3).
        s_k = jnp.abs(newton_step)
        predicted = s_k**3 <= (4 * _EPS[y.dtype.name] * scale) * prev**2
        quadratic = (s_k <= 1e-3 * prev) & ~bisect & (prev < jnp.inf)
        converged = tiny | (quadratic & predicted) | ~jnp.isfinite(y_new)
        step_taken = jnp.where(bisect, jnp.inf, s_k)  # only Newton steps predict
        new = (y_new, lo, hi, it + 1, converged, step_taken)
        return tuple(jnp.where(done, o, n) for o, n in zip(state, new))

    def body(state):
        F, dF = model.residual_and_slope_at(a, theta2, state[0])
        return update(state, F, dF)

    def cond(state):
        return (~state[4]) & (state[3] < maxiter)

    inf = jnp.full_like(y_start, jnp.inf)
    state = (y_start, lo, hi, jnp.zeros((), jnp.int32), jnp.zeros((), bool), inf)
    state = update(state, F, dF)
    for _ in range(_UNROLL - 1):
        state = body(state)
    y, _, _, it, done, _ = jax.lax.while_loop(cond, body, state)
    return y, it, done


def _scalar_linear_solve(matvec, b):
    """The IFT linear system of Eq. (1) is 1×1: divide by F'(y*)."""
    return b / matvec(jnp.ones_like(b))


@functools.lru_cache(maxsize=None)
def _jaxopt_solver(model: Model, tol: float, maxiter: int):
    with warnings.catch_warnings():  # jaxopt warns at import that it is unmaintained
        warnings.simplefilter("ignore", DeprecationWarning)
        from jaxopt.implicit_diff import custom_root

    def optimality(y, theta, x):
        return model.residual(theta, x, y)

    @custom_root(optimality, has_aux=True, solve=_scalar_linear_solve)
    def solver(y0, theta, x):
        y, it, converged = _newton(model, model.offset(theta, x), theta[-1], y0, tol, maxiter)
        return y, (it, converged)

    return solver


def _optimistix_solve(model: Model, theta, x, y0, tol, maxiter):
    import optimistix as optx

    a, theta2 = model.offset(theta, x), theta[-1]
    y0 = jnp.clip(y0, model.activation.range_min, model.activation.range_max)
    lo, hi, direction, _ = _bracket(model, a, theta2, y0, model.residual_at(a, theta2, y0))
    # Bisection needs a finite bracket; in the (non-unique, unbounded σ) case use a
    # wide one and let the final residual check flag a miss.
    width = 1e6 * (1 + jnp.abs(y0))
    lo = jax.lax.stop_gradient(jnp.where(jnp.isfinite(lo), lo, y0 - width))
    hi = jax.lax.stop_gradient(jnp.where(jnp.isfinite(hi), hi, y0 + width))
    direction = jax.lax.stop_gradient(direction)

    def fn(y, args):
        theta, x = args
        return direction * model.residual(theta, x, y)

    solver = optx.Bisection(rtol=tol, atol=tol, flip=False)
    sol = optx.root_find(
        fn, solver, jnp.clip(jax.lax.stop_gradient(y0), lo, hi), args=(theta, x),
        options={"lower": lo, "upper": hi}, max_steps=maxiter, throw=False,
    )
    converged = sol.result == optx.RESULTS.successful
    return sol.value, sol.stats["num_steps"].astype(jnp.int32), converged


def _solve_impl(model: Model, theta, x, y0, backend: str, tol: float, maxiter: int) -> Equilibrium:
    dtype = jnp.result_type(theta, x, y0)
    theta, x, y0 = (jnp.asarray(a, dtype) for a in (theta, x, y0))
    if backend == "jaxopt":
        y, (it, converged) = _jaxopt_solver(model, tol, maxiter)(y0, theta, x)
    else:
        y, it, converged = _optimistix_solve(model, theta, x, y0, tol, maxiter)

    m, _ = uniqueness_margin(model, theta[-1])
    unique = m > 0
    a = model.offset(theta, x)
    F, margin = model.residual_and_slope_at(a, theta[-1], y)
    residual = jnp.abs(F)
    scale = 1 + jnp.abs(y) + jnp.abs(a)
    singular = model.is_linear & (margin == 0)
    finite = jnp.isfinite(y) & jnp.isfinite(residual)
    missed = residual > jnp.sqrt(tol) * scale  # a "converged" iterate that is not a root
    status = jnp.select(
        [singular, ~finite, missed, ~converged, ~unique],
        [Status.SINGULAR, Status.SOLVER_FAILURE, Status.SOLVER_FAILURE, Status.MAX_STEPS,
         Status.NON_UNIQUE],
        Status.CONVERGED,
    ).astype(jnp.int32)
    y = _poison(y, singular, theta, x)
    return Equilibrium(y, residual, it, margin, status)


def _poison(y, bad, theta, x):
    """NaN where ``bad``, in the value *and* in the derivatives w.r.t. θ and x.

    A select alone would give a finite (zero) gradient there.  The solver itself
    gets a zero cotangent where ``bad`` (lineax, under optimistix, raises on a
    non-finite one, which would kill a whole vmapped sweep); the NaN enters
    through an added term that is 0, with zero derivative, where the solve is fine.
    """
    nan_or_zero = jnp.where(bad, jnp.nan, 0)
    x_sum = jnp.sum(jnp.reshape(jnp.asarray(x), jnp.shape(y) + (-1,)), axis=-1)  # per element
    return jnp.where(bad, 0, y) + nan_or_zero * (jnp.sum(theta) + x_sum)


_solve_jit = jax.jit(_solve_impl, static_argnames=("model", "backend", "tol", "maxiter"))


def _concrete(a):
    """The value of ``a`` as numpy if it is concrete (not traced), else None."""
    if isinstance(a, jax.core.Tracer):
        return None
    return np.asarray(a)


def _prepare(model: Model, theta, x, y0, backend, tol, maxiter):
    """Check arguments at the Python boundary; returns arrays, batch flag and tol."""
    if not isinstance(model, Model):
        raise SideqInputError(
            f"model: expected sideq.linear() or sideq.single_index(...), got {type(model).__name__}"
        )
    if backend not in BACKENDS:
        raise SideqInputError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if int(maxiter) < 1:
        raise SideqInputError(f"maxiter: must be >= 1, got {maxiter}")
    theta = jnp.asarray(theta)
    x = jnp.asarray(x)
    if not jnp.issubdtype(theta.dtype, jnp.floating):
        theta = theta.astype(jnp.result_type(float))
    if theta.ndim != 1:
        raise SideqInputError(
            f"theta: expected shape (p,) = (d+{1 + int(model.bias)},), got {theta.shape}; "
            "use jax.vmap to batch over theta"
        )
    d = model.input_dim(theta)
    if d < 1:
        raise SideqInputError(
            f"theta: shape {theta.shape} leaves no room for theta1 "
            f"({'theta1, b, theta2' if model.bias else 'theta1, theta2'}); need at least "
            f"{2 + int(model.bias)} entries"
        )
    if x.ndim == 0 and d == 1:
        x, batched = x.reshape(1), False
    elif x.ndim == 1 and x.shape[0] == d:
        batched = False
    elif x.ndim == 1 and d == 1:
        x, batched = x[:, None], True
    elif x.ndim == 2 and x.shape[1] == d:
        batched = True
    else:
        raise SideqInputError(
            f"x: shape {x.shape} does not match theta of shape {theta.shape} "
            f"(d = {d}{' with bias' if model.bias else ''}); expected x of shape ({d},) "
            f"or (n, {d})"
        )
    theta_c, x_c = _concrete(theta), _concrete(x)
    if theta_c is not None and not np.all(np.isfinite(theta_c)):
        raise SideqInputError(f"theta: contains non-finite values {theta_c.tolist()}; pass finite numbers")
    if x_c is not None and not np.all(np.isfinite(x_c)):
        raise SideqInputError("x: contains NaN or inf; remove or impute those inputs")
    if theta_c is not None and model.is_linear and model.activation.slope_max * theta_c[-1] == 1:
        raise SingularModelError(
            f"theta: theta2 = {float(theta_c[-1])!r} makes the linear DEQ y = theta1'x + theta2*y "
            "singular (1 - dg/dy = 0); choose theta2 != 1"
        )
    dtype = jnp.result_type(theta, x)
    if y0 is None:
        y0 = jnp.zeros(x.shape[:-1], dtype)
        start = "default"
    else:
        y0 = jnp.broadcast_to(jnp.asarray(y0, dtype), x.shape[:-1])
        start = "given"
    tol = default_tol(dtype) if tol is None else float(tol)
    return theta, x, y0, batched, tol, start


def solve(model: Model, theta, x, *, y0=None, backend: str = "jaxopt", tol: float | None = None,
          maxiter: int = 100) -> Equilibrium:
    r"""Solve y = g_θ(x, y) and return the root with diagnostics.

    Args:
      model: ``sideq.linear()`` or ``sideq.single_index(activation)``.
      theta: ``(θ1, [b,] θ2)``, shape ``(p,)``; θ2 last.
      x: one input of shape ``(d,)`` (a scalar when d = 1), or a batch ``(n, d)``.
      y0: warm start (scalar or ``(n,)``); default σ(θ1ᵀx + b), one fixed-point
        iteration from 0.
      backend: ``"jaxopt"`` (default) or ``"optimistix"``.
      tol: relative step tolerance (default 64 machine epsilons of the dtype).
      maxiter: iteration limit.

    Returns an :class:`Equilibrium` ``(y, residual, iterations, margin, status)``;
    ``y`` is differentiable in θ and x by implicit differentiation (Eq. (1)).
    Works under ``jit`` and ``vmap``.  Outside jit, θ2 = 1 for the linear DEQ
    raises :class:`~sideq.errors.SingularModelError`; inside jit it gives NaN and
    ``Status.SINGULAR``.
    """
    theta, x, y0, batched, tol, start = _prepare(model, theta, x, y0, backend, tol, maxiter)
    if start == "default":
        y0 = _default_start(model, theta, x)

    def one(xi_, y0_):
        return _solve_jit(model, theta, xi_, y0_, backend, tol, int(maxiter))

    return jax.vmap(one)(x, y0) if batched else one(x, y0)


def _default_start(model, theta, x):
    """σ(θ1ᵀx + b): one fixed-point iteration from y = 0."""
    theta1, b, _ = model.split(theta)
    return model.activation(x @ theta1 + b)


def equilibrium(model: Model, theta, x, **kwargs):
    r"""The equilibrium y_θ(x) (Eq. (2) or (10)), differentiable in θ by Eq. (1).

    ``x`` of shape ``(d,)`` gives a scalar, ``(n, d)`` an ``(n,)`` array.  Values
    whose solve failed (singular, iteration limit, no root) are NaN, never a
    finite wrong number; a root that may not be unique (non-contractive θ2) is
    returned as found, with a warning when called outside jit.  Use :func:`solve`
    for the diagnostics.  Keyword arguments as for :func:`solve`.
    """
    sol = solve(model, theta, x, **kwargs)
    ok = (sol.status == Status.CONVERGED) | (sol.status == Status.NON_UNIQUE)
    status_c = _concrete(sol.status)
    if status_c is not None and np.any(status_c == Status.NON_UNIQUE):
        warnings.warn(
            f"equilibrium: {Status.NON_UNIQUE.message}", RuntimeWarning, stacklevel=2
        )
    # A failed solve must give a NaN gradient too, not a finite wrong one.
    return _poison(sol.y, ~ok, theta, x)
