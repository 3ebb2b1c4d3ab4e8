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
``Status.NON_UNIQUE``.  Slope bounds estimated on a grid (a user callable
without ``slope_bounds=``) only guide the search: uniqueness is then not
claimed (``Status.UNVERIFIED``), and no Taylor certificate is issued.  A
failed solve returns NaN, never a finite non-root.  Inside the bracket a safeguarded Newton iteration runs
(a Newton step, or bisection when the step leaves the bracket): quadratic
convergence from a warm start, never worse than bisection.  From a good warm
start (:func:`predict_start`) one Newton step is usually *certified* by a
Taylor bound, and the solve costs a single evaluation of σ (see :func:`_newton`).

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
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sideq import general
from sideq.data import as_real
from sideq.errors import SideqInputError, SingularModelError
from sideq.model import Model
from sideq.status import Status, first_status, is_success, run_repr

__all__ = [
    "Equilibrium",
    "WarmStart",
    "warm_start",
    "Continuation",
    "continuation",
    "predict_start",
    "solve",
    "equilibrium",
    "uniqueness_margin",
    "BACKENDS",
    "default_tol",
]

BACKENDS = ("jaxopt", "optimistix")


class Equilibrium(NamedTuple):
    """Solution of y = g_θ(x, y) with diagnostics (all arrays; batched under vmap).

    Attributes:
      y: the root y_θ(x) (NaN when singular or failed).
      residual: |y − g_θ(x, y)|.
      iterations: solver iterations (int32).
      margin: IFT margin 1 − ∂g/∂y at the solution, Eq. (1).
      status: sideq.Status code (int32).
      omega: pre-activation ω = θ1ᵀx + b + θ2 y at the solution.
      sensitivity: ∂y/∂a = σ'(ω) / (1 − θ2 σ'(ω)), Eq. (1), a = θ1ᵀx + b.
    """

    y: jax.Array
    residual: jax.Array
    iterations: jax.Array
    margin: jax.Array
    status: jax.Array
    omega: jax.Array
    sensitivity: jax.Array

    def __repr__(self) -> str:
        return run_repr(self, "Equilibrium")


class WarmStart(NamedTuple):
    """What :func:`predict_start` needs from a previous solve (per element)."""

    y: jax.Array
    omega: jax.Array
    sensitivity: jax.Array


class Continuation(NamedTuple):
    """A warm start kept as the solutions y' at a nearby θ', their ∂y/∂a, and θ'
    itself (per element, except θ').  :func:`predict_start` makes the same
    first-order prediction from it as from a :class:`WarmStart`, with
    a + θ2 y' − ω' = (θ − θ')·(x, [1,] y') taken from θ − θ' instead of read
    from ω': gradient descent keeps two arrays per step instead of three.
    ``sensitivity=None``: taken from y' where the prediction is made, as
    σ'(ω') / (1 − θ2' σ'(ω')) with σ'(ω') = h(y') (``Activation.slope_of_value``,
    exact at a root): one array per step, for the sigmoid and tanh."""

    y: jax.Array
    sensitivity: jax.Array | None
    theta: jax.Array


def continuation(y0, theta, *, sensitivity: bool = True) -> Continuation:
    """A :class:`Continuation` from points ``y0`` alone at θ: the prediction at
    θ is ``y0`` itself (θ − θ' = 0).  ``sensitivity=False`` leaves it to be
    taken from the solutions (None), as gradient descent does for σ with
    ``slope_of_value`` (:func:`one_evaluation`).

    Args:
      y0: the points, a scalar or an array (one per input).
      theta: θ, shape ``(p,)``.
      sensitivity: store zero sensitivities (True) or None (False).

    Returns:
      A :class:`Continuation` ``(y0, zeros like y0 or None, theta)``.
    """
    y0 = jnp.asarray(y0)
    return Continuation(y0, jnp.zeros_like(y0) if sensitivity else None, jnp.asarray(theta))


def _slope_from_value(model: Model, theta2, y):
    r"""(σ'(ω), the IFT margin 1 − θ2 σ'(ω)) at a root y = σ(ω), with
    σ'(ω) = h(y) (``Activation.slope_of_value``): no evaluation of σ."""
    slope = model.activation.slope_of_value(y)
    return slope, 1 - theta2 * slope


def _sensitivity_of(model: Model, theta2, y):
    r"""∂y/∂a = σ'(ω)/(1 − θ2 σ'(ω)) of Eq. (1) at a root y, from
    :func:`_slope_from_value`."""
    if model.activation.slope_of_value is None:
        raise SideqInputError(
            f"previous: a Continuation without sensitivities needs an activation with slope_of_value "
            f"(sigmoid, tanh); {model.activation.name!r} has none: pass the sensitivities"
        )
    slope, margin = _slope_from_value(model, theta2, y)
    return slope / margin


def warm_start(start) -> WarmStart | Continuation:
    """A warm start from a previous solution (an :class:`Equilibrium`: its y, ω
    and ∂y/∂a), or from points ``y0`` alone (zero sensitivity: the prediction
    is ``y0`` itself).  A :class:`WarmStart` or :class:`Continuation` is
    returned as it is.

    Args:
      start: an :class:`Equilibrium`, a :class:`WarmStart`, a
        :class:`Continuation`, or points ``y0`` (a scalar or an array).

    Returns:
      A :class:`WarmStart` (for an Equilibrium or points: ω and ∂y/∂a from the
      solve, or zeros like ``y0``), or the given WarmStart or Continuation.
    """
    if isinstance(start, Equilibrium):
        return WarmStart(start.y, start.omega, start.sensitivity)
    if isinstance(start, (WarmStart, Continuation)):
        return start
    y0 = jnp.asarray(start)
    zero = jnp.zeros_like(y0)
    return WarmStart(y0, zero, zero)


def predict_start(model: Model, theta, x, previous: WarmStart | Continuation):
    r"""First-order prediction of y_θ(x) from the solution at a nearby θ'.

    By Eq. (1), dy = ∂y/∂a · (da + y dθ2) with a = θ1ᵀx + b; since
    da + y' dθ2 = (a + θ2 y') − ω' to first order, the prediction is
    y' + ∂y/∂a · (a + θ2 y' − ω'), with error O(‖θ − θ'‖²) instead of the
    O(‖θ − θ'‖) of reusing y' (the predictor step of a continuation method).
    From a :class:`Continuation` the same increment is (θ − θ')·(x, [1,] y'),
    computed from θ − θ'.  Falls back to y' where the prediction is not finite.

    Args:
      model: a scalar :class:`~sideq.model.Model`.
      theta: θ, shape ``(p,)``, where y_θ(x) is predicted.
      x: as for :func:`solve` (a point (d,), a batch (n, d), or for d = 1 a
        scalar or a batch (n,)), the inputs of the previous solve.
      previous: the previous solution as a :class:`WarmStart` (``y'``, ω',
        ∂y/∂a; :func:`warm_start` makes one from an Equilibrium) or a
        :class:`Continuation` (``y'``, ∂y/∂a or None, θ').

    Returns:
      The predicted y, shaped like ``previous.y`` (a scalar for one point).

    Raises:
      SideqInputError: a Continuation without sensitivities for a σ without
        ``slope_of_value``.
    """
    x = model.as_inputs(x, model.input_dim(theta))
    y_prev = previous.y
    sensitivity = previous.sensitivity
    if isinstance(previous, Continuation):
        delta = theta - previous.theta
        change = model.offset(delta, x) + delta[-1] * y_prev
        if sensitivity is None:
            sensitivity = _sensitivity_of(model, previous.theta[-1], y_prev)
    else:
        change = model.offset(theta, x) + theta[-1] * y_prev - previous.omega
    y_pred = y_prev + sensitivity * change
    return jnp.where(jnp.isfinite(y_pred), y_pred, y_prev)


def default_tol(dtype) -> float:
    """Relative step tolerance of the Newton iteration: 64 machine epsilons.

    Args:
      dtype: a float dtype.

    Returns:
      ``64 * finfo(dtype).eps`` as a Python float.
    """
    return 64.0 * float(jnp.finfo(dtype).eps)


def uniqueness_margin(model: Model, theta2):
    r"""Signed lower bound on |F'| over all y, or ≤ 0 if F need not be monotone.

    With s⁻ = inf σ', s⁺ = sup σ': F'(y) ∈ [1 − max(θ2 s⁻, θ2 s⁺), 1 − min(θ2 s⁻, θ2 s⁺)],
    F(y) = y − g_θ(x, y) and F' the IFT margin 1 − ∂g/∂y of Eq. (1).  The
    bounds are the activation's (exact, or estimated for a user callable
    without ``slope_bounds``); traceable, no checks.

    Args:
      model: a scalar :class:`~sideq.model.Model`.
      theta2: θ2, a scalar or an array (elementwise).

    Returns:
      ``(m, direction)``, arrays shaped like ``theta2``: ``m > 0`` means F is
      strictly monotone (direction +1 increasing, −1 decreasing, in θ2's
      dtype) with |F'| ≥ m, so the equilibrium is unique.
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


_EPS = {
    "float64": float(np.finfo(np.float64).eps),
    "float32": float(np.finfo(np.float32).eps),
    "float16": float(np.finfo(np.float16).eps),
    "bfloat16": 2.0**-7,
}
_NEWTON_ONLY = 6  # iterations of pure (bracketed) Newton before alternating with bisection
_CERTIFIED_ULPS = 2.0  # the one-step error bound must be below this many eps·max(1, |y|)


def _slope_sup(model: Model, theta2):
    """D = max(|1 − θ2 inf σ'|, |1 − θ2 sup σ'|) ≥ |F'(y)| for every y."""
    act = model.activation
    return jnp.maximum(jnp.abs(1 - theta2 * act.slope_min), jnp.abs(1 - theta2 * act.slope_max))


def _unit_range(model: Model) -> bool:
    """σ's range lies in [−1, 1] (sigmoid, tanh): every start point does too,
    and the scale max(1, |y|) of the step tests is 1."""
    return model.activation.range_min >= -1 and model.activation.range_max <= 1


def _acceptance(model: Model, theta2, dtype, tol):
    r"""``accept(step, scale)``: whether a Newton step needs no confirmation.

    Where F is strictly monotone with |F'| ≥ m (:func:`uniqueness_margin`) and
    |σ''| ≤ M2 (``Activation.curvature_max``), Taylor's theorem at y gives
    |y − s − y*| ≤ θ2² M2 F² / (2 |F'| m²) = θ2² M2 s² |F'| / (2 m²) for the
    step s = F/F', since the root is within |F|/m of y; with |F'| ≤ D (its sup
    over y) the bound needs the step alone.  A step is *certified* when that
    bound is below ``_CERTIFIED_ULPS`` eps·scale: y − s is the root to rounding.
    A certified step must also be short, |s| ≤ eps^(1/4)·scale: the computed
    step carries a rounding error of a few ulps of s (from F' and the
    division), which a long step (a cold start of the linear DEQ, certified by
    M2 = 0) would leave in y − s; for a short one it is a few eps^(5/4)·scale,
    about 1e-4 ulp in float64 and below 0.1 ulp in float32 (in float16 or
    bfloat16 it would approach an ulp: sideq does not run in those).  (A cap of √eps would refuse steps that the Taylor bound certifies: on the
    Section 4.2 run, 418 of 4000 epochs would need a second evaluation
    somewhere, against 258.)
    A *negligible* step
    |s| ≤ tol·scale is accepted too.  A step that is not a number is not
    accepted (comparisons with NaN are false).
    """
    act = model.activation
    eps = _EPS[jnp.dtype(dtype).name]
    short = eps**0.25
    m, _ = uniqueness_margin(model, theta2)
    if math.isfinite(act.curvature_max) and not act.estimated:  # (estimated bounds prove nothing)
        # certified ⇔ θ2² M2 D s² ≤ 2 m² c·eps·scale, with D ≥ |F'| (_slope_sup).
        cert_lhs = theta2**2 * act.curvature_max * _slope_sup(model, theta2)
        cert_rhs = 2 * jnp.where(m > 0, m, 0) ** 2 * (_CERTIFIED_ULPS * eps)
    else:
        cert_lhs = None

    def accept(step, scale):
        size = jnp.abs(step)
        ok = size <= tol * scale
        if cert_lhs is not None:
            certified = cert_lhs * size**2 <= cert_rhs * scale
            ok = ok | (certified & (size <= short * scale))
        return ok

    return accept


def one_evaluation(model: Model) -> bool:
    """Whether :func:`solve_warm` can skip the evaluation of σ at its answer:
    σ' is a function of σ's value (``Activation.slope_of_value``) and σ'' is
    bounded (:func:`_newton_residual`).

    Args:
      model: the scalar model.

    Returns:
      True for the sigmoid and tanh with their exact bounds (one σ evaluation
      per element and epoch in gradient descent), False otherwise.
    """
    act = model.activation
    return (
        act.slope_of_value is not None
        and math.isfinite(act.curvature_max)
        and not model.is_linear
        and not act.estimated
    )


def _newton_residual(model: Model, theta2, step, y):
    r"""A bound on |F(y)| at the end y of the Newton step s = ``step``, without
    evaluating F there: by Taylor's theorem at the step's start, where
    F + F'·(−s) = 0, F(y) = ½ F''(ξ) s² with |F''| = θ2² |σ''| ≤ θ2² M2; plus
    (D + 4)·eps·scale for rounding, with |F'| ≤ D (:func:`_acceptance`): an ulp
    of y through F', and the few ulps of scale by which the computed F at the
    start (y − σ, a difference of numbers of size scale) and an evaluation of
    F at y are off.  So a residual measured at y does not exceed it
    (``tests/test_solve.py`` checks this on 40,000 steps from 1e-14 to ~1).
    At a certified step (:func:`_acceptance`) this is a few eps."""
    eps = _EPS[y.dtype.name]
    scale = 1 if _unit_range(model) else jnp.maximum(1, jnp.abs(y))
    return 0.5 * theta2**2 * model.activation.curvature_max * step**2 + (_slope_sup(model, theta2) + 4) * eps * scale


def _start_point(model: Model, y0):
    """Where the Newton iteration starts: y0 clipped into the closure of σ(ℝ),
    where every root lies, or a cold start at 0 (clipped) where y0 is not a
    number (a failed warm start); the bracket is global, any point will do."""
    act = model.activation
    return jnp.clip(jnp.where(jnp.isfinite(y0), y0, 0), act.range_min, act.range_max)


def _step_end(model: Model, y_start, step, accept):
    """(y1, settled) for the Newton step ``step`` from ``y_start``: the step's end
    where finite (else the start), and whether the step is accepted.

    Where σ's range lies in [−1, 1] (sigmoid, tanh) the start point does too, so
    the scale max(1, |y_start|) is 1 and y_start − step is finite exactly where
    the step is: the test reads the step alone, the same numbers with one array
    where there were two (the fallback's test, :func:`solve_warm`, is then a
    reduction over the step only)."""
    y_fast = y_start - step
    if _unit_range(model):
        finite = jnp.isfinite(step)
        settled = accept(step, 1) & finite
    else:
        finite = jnp.isfinite(y_fast)
        settled = accept(step, jnp.maximum(1, jnp.abs(y_start))) & finite
    return jnp.where(finite, y_fast, y_start), settled


def _first_step(model: Model, a, theta2, y0, accept):
    """The fast path: one evaluation of F and F' at the start point (y0, or a
    cold start where y0 is not a number: :func:`_start_point`), one Newton step.
    Returns (y1, settled, step) (:func:`_step_end`)."""
    y_start = _start_point(model, y0)
    F, dF = model.residual_and_slope_at(a, theta2, y_start)
    step = F / dF
    y1, settled = _step_end(model, y_start, step, accept)
    return y1, settled, step


def _predicts_root(size, prev, eps, scale):
    r"""Two Newton steps in a row, |s_{k−1}| = ``prev`` then |s_k| = ``size``,
    show quadratic convergence with a few ulps left: with e_{k+1} ≈ C e_k² and
    C ≈ s_k/s_{k−1}², the error after step k is ≈ s_k³/s_{k−1}²."""
    return (size <= 1e-3 * prev) & (size**3 <= (4 * eps * scale) * prev**2)


def _second_step(model: Model, a, theta2, y, settled, prev, accept):
    r"""One more plain Newton step where not ``settled``, accepted when certified
    or when the two steps show quadratic convergence (:func:`_predicts_root`;
    ``prev`` = |s_{k−1}|).  Returns (y, settled, evaluations, |s_k|)."""
    eps = _EPS[y.dtype.name]
    F, dF = model.residual_and_slope_at(a, theta2, y)
    s_k = F / dF
    scale = jnp.maximum(1, jnp.abs(y))
    size = jnp.abs(s_k)
    ok = accept(s_k, scale) | _predicts_root(size, prev, eps, scale)
    y_new = y - s_k
    moved = ~settled & jnp.isfinite(y_new)
    evaluations = jnp.where(settled, 1, 2).astype(jnp.int32)
    return (jnp.where(moved, y_new, y), settled | (ok & moved), evaluations, jnp.where(moved, size, prev))


def _newton(model: Model, a, theta2, y0, tol, maxiter):
    r"""Safeguarded Newton iteration for G = direction·F on [lo, hi].

    Works on the offset a = θ1ᵀx + b (hoisted out of the loop).  Returns
    (y, iterations, converged).

    *Fast path* (straight-line code that XLA fuses, :func:`_first_step`): one
    evaluation of F and F' at y0 and one Newton step, accepted when certified
    or negligible (:func:`_acceptance`): from a good warm start
    (:func:`predict_start`) one σ evaluation is all a solve costs.

    *Second step* (:func:`_second_step`, in a loop of at most one iteration, so
    it costs nothing when every element is settled): one more plain Newton
    step, accepted when certified or when the two steps show quadratic
    convergence.  The safe path runs inside the same loop, so its set-up costs
    nothing either.

    *Safe path* (a ``while_loop`` that only runs while some element is not done):
    from the last iterate, the bracket of :func:`_bracket`, then Newton steps,
    bisecting when a step does not land strictly inside the bracket, and
    alternating with bisection after ``_NEWTON_ONLY`` tries (plain Newton can
    cycle between the bracket's ends: sigmoid, θ2 = −50).  It stops on an
    accepted step, or when two Newton steps in a row show quadratic convergence
    and the error left, ≈ s_k³/s_{k−1}², is a few ulps (for σ without a
    curvature bound).
    """
    eps = _EPS[jnp.result_type(y0).name]
    accept = _acceptance(model, theta2, jnp.result_type(y0), tol)
    y1, fast, step = _first_step(model, a, theta2, y0, accept)
    if maxiter < 2:
        return y1, jnp.ones(jnp.shape(y1), jnp.int32), fast

    # Everything past the fast path sits in a loop of at most one iteration
    # (a while_loop, so that under vmap it runs only when some element of the
    # batch needs it; a cond would become a select and always run): a second
    # plain Newton step, light, then the safe path for what is still not done,
    # each from the last Newton iterate (the bracket is global, so any start
    # point will do).
    def fallback(state):
        y, done, _, ran = state
        # (a non-finite step gives prev = inf or NaN: no quadratic prediction
        # from it.  The select on ``ran``, a no-op, keeps |step| from being
        # hoisted out of the loop as loop-invariant code, which would run always.)
        prev = jnp.abs(jnp.where(ran, jnp.inf, step))
        y, done, evaluations, prev = _second_step(model, a, theta2, y, done, prev, accept)
        y, it, done = _safe_path(model, a, theta2, y, done, prev, accept, eps, maxiter - 2)
        return y, done, it + evaluations, True

    y, done, evaluations, _ = jax.lax.while_loop(
        lambda st: (~st[3]) & ~jnp.all(st[1]),
        fallback,
        (y1, fast, jnp.ones(jnp.shape(y1), jnp.int32), jnp.zeros((), bool)),
    )
    return y, evaluations, done


def _safe_path(model: Model, a, theta2, y, done, prev, accept, eps, limit):
    """The safe path of :func:`_newton` for the elements not ``done``, from y:
    at most ``limit`` iterations of bracketed Newton/bisection.  Elementwise,
    so it runs on one element (under vmap) or on a whole batch alike.
    Returns (y, iterations, done)."""
    act = model.activation

    def active(state):
        return ~state[4] & (state[3] < limit)

    def body(state):
        y, lo, hi, it, done, prev = state
        first = it == 0  # set up the bracket, from a point in the closure of σ(ℝ)
        y = jnp.where(first, jnp.clip(y, act.range_min, act.range_max), y)
        F, dF = model.residual_and_slope_at(a, theta2, y)
        lo0, hi0, direction, _ = _bracket(model, a, theta2, y, F)
        lo, hi = jnp.where(first, lo0, lo), jnp.where(first, hi0, hi)
        bracketed = jnp.isfinite(lo) & jnp.isfinite(hi)
        G, dG = direction * F, direction * dF
        lo = jnp.where(G < 0, y, lo)
        hi = jnp.where(G > 0, y, hi)
        newton_step = G / dG
        y_newton = y - newton_step
        scale = jnp.maximum(1, jnp.abs(y))
        good = accept(newton_step, scale)
        # Bisect when a Newton step does not land strictly inside the bracket,
        # and every other iteration once Newton has had _NEWTON_ONLY tries.
        outside = ~jnp.isfinite(y_newton) | (y_newton <= lo) | (y_newton >= hi)
        stalled = (it >= _NEWTON_ONLY) & (it % 2 == 1)
        bisect = (outside | stalled) & bracketed & ~good
        y_new = jnp.where(bisect, 0.5 * (lo + hi), y_newton)
        # Two Newton steps in a row (no bisection between) that predict the root.
        s_k = jnp.abs(newton_step)
        predicted = _predicts_root(s_k, prev, eps, scale) & ~bisect & (prev < jnp.inf)
        converged = good | predicted | ~jnp.isfinite(y_new)
        step_taken = jnp.where(bisect, jnp.inf, s_k)  # only Newton steps predict
        new = (y_new, lo, hi, it + 1, converged, step_taken)
        go = active(state)
        return tuple(jnp.where(go, n, o) for o, n in zip(state, new))

    inf = jnp.full_like(y, jnp.inf)
    state = (y, -inf, inf, jnp.zeros(jnp.shape(y), jnp.int32), done, prev)
    y, _, _, it, done, _ = jax.lax.while_loop(lambda st: jnp.any(active(st)), body, state)
    return y, it, done


def _scalar_linear_solve(matvec, b):
    """The IFT linear system of Eq. (1) is 1×1: divide by F'(y*)."""
    return b / matvec(jnp.ones_like(b))


@functools.lru_cache(maxsize=None)
def _jaxopt_solver(model: Model, tol: float, maxiter: int):
    # (Imported here, as optimistix in _optimistix_solve: a backend's library
    # is loaded when that backend first solves.  Gradient descent and the
    # sweeps solve with solve_warm and need neither; each takes a second or
    # more to import.  docs/design.md lists these exceptions.)
    with warnings.catch_warnings():  # jaxopt warns at import that it is unmaintained
        warnings.simplefilter("ignore", DeprecationWarning)
        from jaxopt.implicit_diff import custom_root

    # The root is a function of the offset a = θ1ᵀx + b and of θ2 only, so the
    # implicit derivative is taken with respect to those two scalars per sample
    # (Eq. (1): ∂y/∂a = σ'/(1 − θ2σ'), ∂y/∂θ2 = y ∂y/∂a); ordinary autodiff of
    # a = θ1ᵀx + b does the rest.  Differentiating with respect to θ and x
    # directly would materialise an (n, p) array of per-sample gradients.
    def optimality(y, a, theta2):
        return model.residual_at(a, theta2, y)

    @custom_root(optimality, has_aux=True, solve=_scalar_linear_solve)
    def solver(y0, a, theta2):
        y, it, converged = _newton(model, a, theta2, y0, tol, maxiter)
        return y, (it, converged)

    return solver


def _optimistix_solve(model: Model, a, theta2, y0, tol, maxiter):
    import optimistix as optx  # (the backend's library, loaded on first use: see _jaxopt_solver)

    y0 = jnp.clip(y0, model.activation.range_min, model.activation.range_max)
    lo, hi, direction, _ = _bracket(model, a, theta2, y0, model.residual_at(a, theta2, y0))
    # Bisection needs a finite bracket; in the (non-unique, unbounded σ) case use a
    # wide one and let the final residual check flag a miss.
    width = 1e6 * (1 + jnp.abs(y0))
    lo = jax.lax.stop_gradient(jnp.where(jnp.isfinite(lo), lo, y0 - width))
    hi = jax.lax.stop_gradient(jnp.where(jnp.isfinite(hi), hi, y0 + width))
    direction = jax.lax.stop_gradient(direction)

    def fn(y, args):
        a, theta2 = args
        return direction * model.residual_at(a, theta2, y)

    solver = optx.Bisection(rtol=tol, atol=tol, flip=False)
    sol = optx.root_find(
        fn,
        solver,
        jnp.clip(jax.lax.stop_gradient(y0), lo, hi),
        args=(a, theta2),
        options={"lower": lo, "upper": hi},
        max_steps=maxiter,
        throw=False,
    )
    converged = sol.result == optx.RESULTS.successful
    return sol.value, sol.stats["num_steps"].astype(jnp.int32), converged


def solve_unchecked(model: Model, theta, x, y0, backend: str, tol: float, maxiter: int) -> Equilibrium:
    """One equilibrium of y = g_θ(x, y) (Eq. (2) or (10)) without the checks
    of :func:`solve`, for callers that checked θ and x already (the risks of
    :mod:`sideq.risk`, vmapped over the samples); jit- and vmap-able, and
    differentiable in θ and x by Eq. (1).

    Args:
      model: the scalar model.
      theta: (p,) θ.
      x: one input (d,).
      y0: a start point, or a :class:`WarmStart` (or :class:`Equilibrium`)
        from a nearby θ, whose first-order prediction (:func:`predict_start`)
        is then the start.
      backend, tol, maxiter: as for :func:`solve` (static).

    Returns:
      The :class:`Equilibrium`.  A failed solve is flagged by its status;
      its y is NaN only where the linear DEQ is singular (:func:`solve`
      makes every failure NaN, at the boundary).
    """
    theta, x, y0 = _start(model, theta, x, y0)
    a, theta2 = model.offset(theta, x), theta[-1]
    if backend == "jaxopt":
        y, (it, converged) = _jaxopt_solver(model, tol, maxiter)(y0, a, theta2)
    else:
        y, it, converged = _optimistix_solve(model, a, theta2, y0, tol, maxiter)
    return _equilibrium(model, theta, x, a, theta2, y, it, converged, tol)


def solve_steps(model: Model, theta, x, y0, tol: float, steps: int = 2):
    """(Equilibrium, settled): the first ``steps`` (1 or 2) Newton steps of
    :func:`_newton` (:func:`_first_step`, :func:`_second_step`), in
    straight-line code with no loop, and the equilibrium's fields at the last
    iterate.  Where ``settled``, the result is the one :func:`solve_unchecked`
    gives (the same steps, accepted by the same tests; with one evaluation,
    :func:`one_evaluation`, the fields of :func:`solve_warm`: σ' from y and
    the residual bounded from the last step, so two σ evaluations in all for
    two steps, one for one).  Elsewhere its status is MAX_STEPS (with one
    evaluation, SOLVER_FAILURE where a step is not a number) and the caller
    must solve again (:func:`sideq.risk._descent_terms` does, for the whole
    batch).  One step needs one evaluation (``route="one"``).  Not
    differentiable; for the closed-form gradient of gradient descent.

    Args:
      model, theta, x, y0, tol: as for :func:`solve_unchecked` (one input x).
      steps: 1 or 2 Newton steps (static).

    Returns:
      ``(Equilibrium, settled)``, settled a bool per element.
    """
    theta, x, y0 = _start(model, theta, x, y0)
    a, theta2 = model.offset(theta, x), theta[-1]
    accept = _acceptance(model, theta2, y0.dtype, tol)
    y, settled, step = _first_step(model, a, theta2, y0, accept)
    evaluations, last = jnp.ones(jnp.shape(y), jnp.int32), step
    if steps == 2:
        y, settled, evaluations, last = _second_step(model, a, theta2, y, settled, jnp.abs(step), accept)
    # (y is the end of the last Newton step, of size |last|: with one
    # evaluation, its residual is bounded from it, :func:`_newton_residual`.)
    residual = _newton_residual(model, theta2, last, y) if one_evaluation(model) else None
    return _equilibrium(model, theta, x, a, theta2, y, evaluations, settled, tol, residual), settled


def _unsettled(settled):
    """(count, any) of the elements not ``settled`` along the last axis, as
    int32, from one variadic reduction.  XLA:CPU splits a plain reduction over
    many elements into a reduce-window and a reduce, with the flags written out
    first (three kernels); its tree-reduction rewrite leaves variadic
    reductions alone, so this one is a single kernel that computes the flags as
    it reduces them.  (Both outputs must be used: XLA drops an unused one, and
    the variadic reduction with it.)"""
    bad = jnp.where(settled, 0, 1).astype(jnp.int32)
    zero = jnp.zeros((), jnp.int32)
    return jax.lax.reduce(
        (bad, bad), (zero, zero), lambda u, v: (u[0] + v[0], jnp.maximum(u[1], v[1])), (settled.ndim - 1,)
    )


def _at_most_once(body, state, settled):
    """``body(state, ran)`` in a loop of at most one iteration, run where some
    element is not ``settled``, and whether it ran (under vmap: per batch row).

    The loop's test is :func:`_unsettled`'s reduction, read by the test itself
    (combined outside it, the two outputs would be one more kernel).  ``ran``,
    false on entry, is for the body's no-op selects: XLA hoists loop-invariant
    code out of a loop, to run always, so what the body recomputes must depend
    on the loop's state.  It is false on entry for every row of a vmapped batch
    too, also those whose loop does not run."""

    def step(st):
        *inner, (_, worst) = st
        return (*body(tuple(inner), worst < 0), (jnp.zeros((), jnp.int32), -jnp.ones((), jnp.int32)))

    *out, (_, worst) = jax.lax.while_loop(
        lambda st: (st[-1][0] > 0) | (st[-1][1] > 0), step, (*state, _unsettled(settled))
    )
    return tuple(out), worst < 0


def solve_warm(model: Model, theta, x, previous, tol: float, maxiter: int) -> tuple[Equilibrium, jax.Array]:
    r"""The equilibria of a whole batch ``x`` (n, d) from a warm start: the
    iteration of :func:`_newton` with the same numbers, written on the batch
    rather than vmapped over its elements, and not differentiable (for the
    closed-form gradient of gradient descent, :func:`sideq.risk._descent_terms`).

    On the batch the loop past the fast path has one scalar test, whether every
    first step is accepted, taken by one reduction fused with the test itself
    (:func:`_unsettled`).  The acceptance flags are never written out: where
    the loop runs (some step not accepted), it recomputes them from the step,
    and the start point, the offset a = θ1ᵀx + b and the acceptance constants
    from the warm start and θ, inside the loop, so that none of them costs a
    pass or a kernel in the epochs where it does not run.  Without the loop
    every element is settled after one iteration; where it runs, it returns
    the convergence flags in the slot of the step, which it no longer needs,
    so that no array of flags is written in the epochs where it does not.

    *One evaluation* (:func:`one_evaluation`: sigmoid, tanh): where every
    first step is accepted, σ is not evaluated at the answer y.  At a root,
    σ'(ω) = h(y) (``Activation.slope_of_value``: y(1 − y) for the sigmoid),
    which gives the IFT margin and the sensitivity of Eq. (1) to rounding, and
    the residual is bounded from the step (:func:`_newton_residual`), a few
    eps, where an evaluation would measure it.  Where the loop runs it
    measures the residual, once, at its end; the margin and the sensitivity
    are h(y)'s there too (at an element the solve leaves unconverged they are
    then not σ'(ω)'s, which is no more use there).  One σ evaluation per
    element and epoch, where there were two: the Section 4.2 run's epoch is
    ≈ 20% shorter (BENCHMARKS.md).

    Returns ``(Equilibrium, g)`` with g = g_θ(x, y) at the solutions: the same
    points to within the residual, and the array the residual is computed from,
    so that a caller keeping it (gradient descent's next warm start) keeps an
    array already written instead of a copy of y.  With one evaluation, g is y.

    Args:
      model, theta, tol, maxiter: as for :func:`solve_unchecked`.
      x: the batch (n, d).
      previous: the warm start: a :class:`WarmStart`, a :class:`Continuation`,
        an :class:`Equilibrium`, or start points y0 (n,).
    """
    previous = warm_start(previous)  # (a WarmStart, a Continuation, an Equilibrium, or points y0)
    theta, x, _ = _start(model, theta, x, previous.y)
    previous = type(previous)(*(None if v is None else jnp.asarray(v, theta.dtype) for v in previous))
    theta2 = theta[-1]
    eps = _EPS[theta.dtype.name]
    accept = _acceptance(model, theta2, theta.dtype, tol)

    a, y0 = _offset_and_start(model, x, previous, theta)
    y1, settled, step = _first_step(model, a, theta2, y0, accept)
    n = jnp.shape(y1)

    def result(y, iterations, done, residual=None):
        eq = _equilibrium(model, theta, x, a, theta2, y, iterations, done, tol, residual)
        return eq, (model.activation(a + theta2 * y) if residual is None else y)

    if maxiter < 2:
        return result(y1, jnp.ones(n, jnp.int32), settled)
    one_eval = one_evaluation(model)
    fallback = functools.partial(_warm_fallback, model, theta, x, previous, tol, maxiter, eps, one_eval)
    (y, last, iterations), ran = _at_most_once(fallback, (y1, step, jnp.ones(n, jnp.int32)), settled)
    if one_eval:
        # Where the loop did not run, every first step was accepted and |F(y)|
        # is bounded from it (:func:`_newton_residual`): one σ evaluation per
        # element in all.
        residual = jnp.where(ran, jnp.abs(last), _newton_residual(model, theta2, last, y))
        return result(y, iterations, ~(ran & (last < 0)), residual)
    # Every step was accepted where the loop did not run.
    return result(y, iterations, ~ran | (last == 0))


def _offset_and_start(model: Model, x, previous, theta):
    """The offset a = θ1ᵀx + b and the start predicted from the warm start
    ``previous`` (:func:`predict_start`), at θ."""
    return model.offset(theta, x), predict_start(model, theta, x, previous)


def _warm_fallback(model: Model, theta, x, previous, tol, maxiter, eps, one_eval, state, ran):
    """The body of :func:`solve_warm`'s loop of at most one iteration, run
    where some first Newton step was not accepted: the second step, then the
    safe path (in a loop of at most one iteration too).  ``state`` is (y,
    the first step, iterations); returns (y, the step's slot: the residual
    with the convergence flags as its sign under one evaluation, else the
    flags, and the iterations)."""
    y, step, _ = state
    n = jnp.shape(y)
    # (The selects on ``ran``, no-ops, keep the recomputation inside the
    # loop, and the acceptance test's constants too: as operands of the
    # loop they would be written out every epoch, one kernel each.  A NaN
    # start in the rows of a vmapped batch whose loop does not run would
    # send them into the safe path, for nothing: ``ran`` is false there.)
    theta_ = jnp.where(ran, jnp.nan, theta)
    step_ = jnp.where(ran, jnp.nan, step)
    a_, y0_ = _offset_and_start(model, x, previous, theta_)
    theta2_ = theta_[-1]
    accept_ = _acceptance(model, theta2_, theta.dtype, tol)
    _, done = _step_end(model, _start_point(model, y0_), step_, accept_)
    y, done, evaluations, prev = _second_step(model, a_, theta2_, y, done, jnp.abs(step_), accept_)

    def safe(inner, ran):
        y, _, done = inner
        theta__ = jnp.where(ran, jnp.nan, theta_)  # (the same no-op selects, one level down)
        theta2__ = theta__[-1]
        accept__ = _acceptance(model, theta2__, theta.dtype, tol)
        return _safe_path(model, model.offset(theta__, x), theta2__, y, done, prev, accept__, eps, maxiter - 2)

    # The safe path, in a loop of at most one iteration too: where the
    # second step settles every element (most epochs that need it), its
    # set-up (the bracket's arrays, the offset, its loop's first test) costs
    # one reduction over the flags.
    (y, it, done), _ = _at_most_once(safe, (y, jnp.zeros(n, jnp.int32), done), done)
    it = it + evaluations
    if one_eval:
        # (The step's slot, no longer needed, returns r = |F(y)|, measured
        # here in the epochs that run this loop, with the convergence flags
        # as its sign: −(r + the smallest normal number) where not
        # converged, so that no signed zero is needed.  Arrays of flags or
        # residuals in the loop's state would be one more kernel per call,
        # to write their initial values; the count of evaluations, unused
        # by gradient descent, is then dropped from the loop.)
        r = jnp.abs(model.residual_at(a_, theta2_, y))
        return y, jnp.where(done, r, -(r + jnp.finfo(r.dtype).tiny)), it
    # (The step's slot returns the convergence flags, 0 where converged.)
    return y, jnp.where(done, 0, 1).astype(step.dtype), it


def _start(model: Model, theta, x, y0):
    """(theta, x, y0) in one dtype, with a warm start's prediction as y0."""
    if isinstance(y0, (WarmStart, Continuation, Equilibrium)):
        y0 = jax.lax.stop_gradient(predict_start(model, theta, x, y0))
    dtype = jnp.result_type(theta, x, y0)
    return tuple(jnp.asarray(v, dtype) for v in (theta, x, y0))


def _equilibrium(model: Model, theta, x, a, theta2, y, it, converged, tol, residual=None) -> Equilibrium:
    """The :class:`Equilibrium` at the solver's answer y: one evaluation of σ
    and σ' there gives the residual, the IFT margin and the sensitivity
    (Eq. (1)), and the status.

    With ``residual`` given (a bound on |F(y)|, :func:`_newton_residual`, or a
    measured one), σ is not evaluated: σ'(ω) = h(y) (``Activation.slope_of_value``,
    exact at the root), which gives the margin and the sensitivity."""
    m, _ = uniqueness_margin(model, theta2)
    unique = m > 0
    if residual is None:
        F, margin, slope = model.linearization_at(a, theta2, y)
        residual = jnp.abs(F)
    else:  # (as _sensitivity_of takes it, so the same numbers)
        slope, margin = _slope_from_value(model, theta2, y)
    scale = 1 + jnp.abs(y) + jnp.abs(a)
    singular = model.is_linear & (margin == 0)
    # Not a root: a "converged" iterate whose residual is too large, or NaN/inf
    # (a comparison with NaN is false).
    missed = ~(residual <= jnp.sqrt(tol) * scale)
    # Uniqueness is claimed only from exact slope bounds; estimated ones
    # (sideq.activation without slope_bounds) leave it unproven.
    proven = Status.UNVERIFIED if model.activation.estimated else Status.CONVERGED
    status = first_status(
        [
            (singular, Status.SINGULAR),
            (missed, Status.SOLVER_FAILURE),
            (~converged, Status.MAX_STEPS),
            (~unique, Status.NON_UNIQUE),
        ],
        default=proven,
    )
    if model.is_linear:  # (singular is a constant False otherwise: skip a useless reduction)
        y = _poison(y, singular, theta, x)
    omega = jax.lax.stop_gradient(a + theta2 * y)
    sensitivity = jax.lax.stop_gradient(slope / margin)
    return Equilibrium(y, residual, it, margin, status, omega, sensitivity)


def _poison(y, bad, theta, x):
    """NaN where ``bad``, in the value *and* in the derivatives w.r.t. θ and x.

    A select alone would give a finite (zero) gradient there.  The solver itself
    gets a zero cotangent where ``bad`` (lineax, under optimistix, raises on a
    non-finite one, which would kill a whole vmapped sweep); the NaN enters
    through an added term that is 0, with zero derivative, where the solve is fine.
    """
    nan_or_zero = jnp.where(bad, jnp.nan, 0)
    x_sum = jnp.sum(jnp.reshape(jnp.asarray(x), jnp.shape(y) + (-1,)), axis=-1)  # per element
    return jnp.where(bad, 0, y) + (nan_or_zero * (jnp.sum(theta) + x_sum)).astype(jnp.result_type(y))


_solve_jit = jax.jit(solve_unchecked, static_argnames=("model", "backend", "tol", "maxiter"))


def concrete(a):
    """The value of ``a`` as numpy if it is concrete (not traced), else None:
    the checks at the public boundary look at values only outside jit.

    Args:
      a: an array, a number or a tracer.

    Returns:
      ``np.asarray(a)``, or None for a tracer.
    """
    if isinstance(a, jax.core.Tracer):
        return None
    return np.asarray(a)


# The names these functions had when they were private, for the callers that
# still use them (sideq.risk, sideq.bench and tests).
_one_evaluation = one_evaluation
_solve_impl = solve_unchecked
_solve_steps = solve_steps
_solve_warm = solve_warm
_concrete = concrete


def _as_real_array(a, name):
    """``a`` as a jax array of real numbers (bool, int or float), or a one-line
    error naming ``name``: complex numbers, strings and Python objects are
    refused rather than cast (or left to fail deep inside jax)."""
    if not isinstance(a, (jax.Array, int, float, complex)):  # (Python numbers stay weakly typed)
        a = np.asarray(a)
        if a.dtype == object:  # (numbers held as objects are cast, others refused: data.as_real)
            a = as_real(a, f"{name}:")
    a = jnp.asarray(a) if isinstance(a, (int, float, complex)) else a
    if a.dtype.kind not in "biuf":
        what = "complex numbers" if a.dtype.kind == "c" else f"values of dtype {a.dtype}"
        raise SideqInputError(f"{name}: holds {what}; pass real numbers (an array of floats)")
    return a if isinstance(a, jax.Array) else jnp.asarray(a)


def _prepare(model: Model, theta, x, y0, backend, tol, maxiter):
    """Check arguments at the Python boundary; returns arrays, batch flag and tol."""
    if not isinstance(model, Model):
        raise SideqInputError(f"model: expected sideq.linear() or sideq.single_index(...), got {type(model).__name__}")
    if backend not in BACKENDS:
        raise SideqInputError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if int(maxiter) < 1:
        raise SideqInputError(f"maxiter: must be >= 1, got {maxiter}")
    theta = _as_real_array(theta, "theta")
    x = _as_real_array(x, "x")
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
        d_x = {0: 1, 2: x.shape[-1] if x.ndim == 2 else None}.get(x.ndim)
        other = f", or theta of {d_x + 1 + int(model.bias)} entries for this x" if d_x is not None and d_x >= 1 else ""
        raise SideqInputError(
            f"x: shape {x.shape} does not match theta of shape {theta.shape} "
            f"(d = {d}{' with bias' if model.bias else ''}); expected x of shape ({d},) "
            f"or (n, {d}){other}"
        )
    theta_c, x_c = concrete(theta), concrete(x)
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
    elif isinstance(y0, (WarmStart, Equilibrium)):
        y0 = WarmStart(
            *(jnp.broadcast_to(jnp.asarray(v, dtype), x.shape[:-1]) for v in (y0.y, y0.omega, y0.sensitivity))
        )
        start = "given"
    else:
        y0 = jnp.broadcast_to(jnp.asarray(y0, dtype), x.shape[:-1])
        start = "given"
    tol = default_tol(dtype) if tol is None else float(tol)
    return theta, x, y0, batched, tol, start


def solve(
    model: Model, theta, x, *, y0=None, backend: str = "jaxopt", tol: float | None = None, maxiter: int = 100
) -> Equilibrium:
    r"""Solve y = g_θ(x, y) and return the root with diagnostics.

    Args:
      model: ``sideq.linear()`` or ``sideq.single_index(activation)``.
      theta: ``(θ1, [b,] θ2)``, shape ``(p,)``; θ2 last.
      x: one input of shape ``(d,)`` (a scalar when d = 1), or a batch ``(n, d)``.
      y0: warm start (scalar or ``(n,)``); default σ(θ1ᵀx + b), one fixed-point
        iteration from 0.  A previous solution (the :class:`Equilibrium` returned
        at a nearby θ, or a :class:`WarmStart`) starts from its first-order
        prediction (:func:`predict_start`), which usually needs one iteration.
      backend: ``"jaxopt"`` (default) or ``"optimistix"``.
      tol: relative step tolerance (default 64 machine epsilons of the dtype).
      maxiter: iteration limit, ≥ 1.

    A :class:`sideq.general.DEQ` as ``model`` (``theta`` its params pytree)
    gives :func:`sideq.general.solve`'s :class:`~sideq.general.DEQEquilibrium`,
    ``tol`` and ``maxiter`` mapped by :func:`sideq.general.from_scalar_api`.
    Works under ``jit`` and ``vmap``; inside jit, θ2 = 1 for the linear DEQ
    gives NaN and ``Status.SINGULAR``.

    Returns:
      An :class:`Equilibrium` ``(y, residual, iterations, margin, status,
      omega, sensitivity)`` (ω = a + θ2 y and ∂y/∂a at the solution, for warm
      starts), each field a scalar for one input or ``(n,)`` for a batch;
      ``iterations`` and ``status`` are int32, the others in the promoted
      dtype of ``theta`` and ``x`` (an integer θ is cast to the default
      float).  ``y`` is differentiable in θ and x by implicit
      differentiation (Eq. (1)).  ``status`` (:class:`~sideq.status.Status`)
      claims no more than is proven: CONVERGED is a root to tolerance that the
      activation's exact slope bounds prove unique; UNVERIFIED a root whose
      uniqueness rests on estimated bounds; NON_UNIQUE a root where the bounds
      allow several.  For these three |y − g_θ(x, y)| ≤ √tol·(1 + |y| +
      |θ1ᵀx + b|); any other status is a failure and its ``y`` is NaN (with
      NaN derivatives), never a finite non-root.

    Raises:
      SideqInputError: ``model`` is not a Model, an unknown ``backend``,
        ``maxiter`` < 1, ``theta`` not of shape ``(p,)`` with d ≥ 1, ``x`` of a
        shape that does not match θ, or non-finite ``theta`` or ``x``
        (checked where concrete).
      SingularModelError: θ2 = 1 for the linear DEQ, outside jit.
    """
    if isinstance(model, general.DEQ):  # (a general DEQ: sideq.general.solve, the keywords mapped)
        model = general.from_scalar_api(model, entry="sideq.solve", backend=backend, tol=tol, maxiter=maxiter)
        return general.solve(model, theta, x, y0=y0)
    theta, x, y0, batched, tol, start = _prepare(model, theta, x, y0, backend, tol, maxiter)
    if start == "default":
        y0 = _default_start(model, theta, x)

    def one(xi_, y0_):
        sol = _solve_jit(model, theta, xi_, y0_, backend, tol, int(maxiter))
        # A failed solve returns NaN, value and derivatives, never a finite
        # non-root; its residual and iterations stay as diagnostics.  (Here
        # at the boundary: the risks, descent and flows inside report a
        # failure by status and freeze the run, and a select inside their
        # compiled loops would change how XLA fuses, and rounds, the rest.)
        return sol._replace(y=_poison(sol.y, ~is_success(sol.status), theta, xi_))

    return jax.vmap(one)(x, y0) if batched else one(x, y0)


def _default_start(model, theta, x):
    """σ(θ1ᵀx + b): one fixed-point iteration from y = 0."""
    theta1, b, _ = model.split(theta)
    return model.activation(x @ theta1 + b)


def equilibrium(model: Model, theta, x, **kwargs):
    r"""The equilibrium y_θ(x) (Eq. (2) or (10)), differentiable in θ by Eq. (1).

    ``x`` of shape ``(d,)`` gives a scalar, ``(n, d)`` an ``(n,)`` array.  Values
    whose solve failed (singular, iteration limit, no root) are NaN, never a
    finite wrong number; a root that may not be unique (NON_UNIQUE: non-contractive
    θ2; UNVERIFIED: estimated slope bounds) is returned as found, with a
    warning when called outside jit.  Use :func:`solve`
    for the diagnostics.  A :class:`sideq.general.DEQ` gives
    :func:`sideq.general.equilibrium` (no warnings).

    Args:
      model: ``sideq.linear()`` or ``sideq.single_index(activation)`` (or a
        :class:`sideq.general.DEQ`).
      theta: θ = ``(θ1, [b,] θ2)``, shape ``(p,)`` (a DEQ's params pytree).
      x: one input ``(d,)`` (a scalar when d = 1) or a batch ``(n, d)``.
      **kwargs: ``y0``, ``backend``, ``tol``, ``maxiter``, as for
        :func:`solve`.

    Returns:
      y_θ(x): a scalar for one input, ``(n,)`` for a batch; NaN where the
      solve failed.

    Raises:
      SideqInputError: as for :func:`solve`.
      SingularModelError: θ2 = 1 for the linear DEQ, outside jit.
    """
    if isinstance(model, general.DEQ):
        y0 = kwargs.pop("y0", None)
        model = general.from_scalar_api(model, entry="sideq.equilibrium", **kwargs)
        return general.equilibrium(model, theta, x, y0=y0)
    sol = solve(model, theta, x, **kwargs)
    status_c = concrete(sol.status)
    for unproven in (Status.NON_UNIQUE, Status.UNVERIFIED):
        if status_c is not None and np.any(status_c == unproven):
            warnings.warn(f"equilibrium: {unproven.message}", RuntimeWarning, stacklevel=2)
    # (solve already returns NaN, with NaN derivatives, where it failed)
    return sol.y
