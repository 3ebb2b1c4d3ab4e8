r"""Risks with the squared loss ℓ(y, ŷ) = (ŷ − y)² (Sections 3.1.1 and 3.2.1).

* empirical risk  R̂(θ) = (1/n) Σᵢ (y_θ(xᵢ) − yᵢ)²
* population risk R(θ, ξ) = E[(y_θ(X) − f(X))²], f(x) = σ(ξᵀx) (ξᵀx for the linear DEQ),
  computed from the law of X (:mod:`sideq.data`'s protocol: the risk uses the
  law's members, never its class).

Linear DEQ (:attr:`~sideq.model.Model.is_linear`), any law, any d: Eq. (5)
in closed form (:func:`_linear_risk`) from the law's ``moments()``.  The equilibrium
y_θ(x) = (θ1ᵀx + b)/(1 − θ2) is affine in x, so with φ = θ1/(1 − θ2) and
β = b/(1 − θ2) (β = 0 without a bias)

    R(θ) = (φ − ξ)ᵀE[XXᵀ](φ − ξ) + 2β (φ − ξ)ᵀE[X] + β²,

which needs only the first two moments of X (E[XXᵀ] is
:func:`sideq.data.second_moment`).  It is evaluated as
‖Lᵀ(φ − ξ)‖² + (E[X]ᵀ(φ − ξ) + β)² with L Lᵀ = Cov(X), the same number written
as a sum of squares (so it cannot come out negative through cancellation), and
its gradient (and Hessian) is the autodiff of that expression, exact.  No
equilibrium is solved.  θ2 = 1 gives a NaN risk and gradient and
Status.SINGULAR (:func:`population_objective` says what its Equilibrium holds).
An affine σ(z) = s z + c other than the identity is handled the same way, with
y_θ(x) = (s(θ1ᵀx + b) + c)/(1 − sθ2) and f(x) = s ξᵀx + c.
``quadrature=True`` (:func:`population_risk`, :func:`population_objective`,
:func:`initial_nodes_y0`, :func:`n_nodes`) takes the quadrature below for the
linear DEQ too: the second, independent route of the tests.

Single-index DEQ (and the linear DEQ with ``quadrature=True``), one
equilibrium solved per node, by the first of these the law has:

* A projected rule (:func:`sideq.data.has_projection`; X ~ N(μ, Σ), any d):
  y_θ(x) depends on x only through u = θ1ᵀx + b and f only through v = ξᵀx,
  so R = E[(Y(u) − f(v))²] over the bivariate normal (u, v), integrated by a
  tensor rule in two standard normal coordinates (composite Gauss–Legendre
  against the normal density, 144 × 144 nodes by default; see
  :func:`sideq.data.normal_rule` and :meth:`sideq.data.Gaussian.project`).
  The rule is exact in d; it stays smooth where θ1 ∥ ξ (the law of (u, v) is
  degenerate, e.g. at the optimum (ξ, 0)).
* A tensor rule (``tensor_rule()``, or ``standard_rule()`` mapped by
  ``affine`` for a location–scale law; X ~ Unif(box): Gauss–Legendre,
  128, 64, 24, 12, 8 nodes per axis for d = 1..5).  For d = 1 the default
  128 nodes integrate the paper's risks to rounding error; for the linear DEQ
  the integrand is a quadratic polynomial, integrated exactly.
* Otherwise (a law with no rule, or Unif in d > 5 without ``nodes``), a
  fixed-sample Monte Carlo: the mean over the law's
  ``sample(PRNGKey(0), DEFAULT_SAMPLES)`` (for a location–scale law, its
  ``standard_sample`` mapped by ``affine``), the same inputs at every θ, so a
  smooth deterministic function of θ, and the draws
  :func:`sideq.general_risk.population_risk` takes for the same law.  Its
  error is a sampling error of order s/√n (s² the variance of the squared
  error): :func:`sideq.general_risk.population_risk_estimate` for
  ``multi_index(σ, 1)`` on the same law reports it.

On the last two routes the nodes do not move with θ, so the gradient is
taken in closed form (Eq. (1)) and descent's step in one pass.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sideq.data import UNIFORM_NODES, as_real, check_law, has_projection, is_location_scale
from sideq.errors import SideqInputError
from sideq.general import DEQ
from sideq.general import empirical_risk as general_empirical_risk
from sideq.general_risk import DEFAULT_SAMPLES
from sideq.general_risk import population_risk as general_population_risk
from sideq.model import Model
from sideq.scalar import (
    BACKENDS,
    Continuation,
    Equilibrium,
    WarmStart,
    concrete,
    default_tol,
    one_evaluation,
    predict_start,
    solve_steps,
    solve_unchecked,
    solve_warm,
)
from sideq.status import Status, has_status, is_success, status_bit

__all__ = [
    "targets",
    "empirical_risk",
    "population_risk",
    "quadrature_rule",
    "empirical_objective",
    "population_objective",
]

_UNIFORM_NODES = UNIFORM_NODES  # (sideq.cli reads this name: the d with a default uniform rule)


def targets(model: Model, xi, x):
    """The targets f(xᵢ) = σ(ξᵀxᵢ) of Section 3.2 (ξᵀxᵢ for the linear DEQ, Section 3.1).

    No checks; traceable.

    Args:
      model: a scalar :class:`~sideq.model.Model` (its σ is used).
      xi: ξ, shape ``(d,)`` (a scalar when d = 1).
      x: inputs of shape ``(n, d)``, or ``(n,)`` when d = 1; one point ``(d,)``.

    Returns:
      f(x), shape ``(n,)`` (a scalar for one point), in the dtype of ``x @ xi``.
    """
    xi = jnp.asarray(xi)
    return model.activation(model.as_inputs(x, xi.shape[-1] if xi.ndim else 1) @ xi)


def _no_rule(dist):
    return SideqInputError(
        f"dist: {type(dist).__name__} in d = {dist.d} has no quadrature rule (a tensor rule needs nodes**d "
        "points); give the law nodes=k with k**d affordable, or use the empirical risk"
    )


def quadrature_rule(dist):
    """Nodes and weights (numpy, float64) of the rule used for ``dist``.

    A law with a projected rule (Gaussian): the 1-D rule ``(z (n,), w (n,))``
    for N(0, 1) used on each of the two axes.  Otherwise its tensor rule
    ``(x (N, d), w (N,))`` (Uniform: on the box).

    Args:
      dist: a law of X (:mod:`sideq.data`'s protocol).

    Returns:
      ``(nodes, weights)``, numpy float64 arrays: ``(z (n,), w (n,))`` for a
      projected rule, else ``(x (N, d), w (N,))``.

    Raises:
      SideqInputError: ``dist`` is not a law, or has no rule (its risk is a
        Monte Carlo).
    """
    check_law(dist)
    if has_projection(dist):
        return dist.projected_rule()
    rule = dist.tensor_rule()
    if rule is None:
        raise _no_rule(dist)
    return rule


def _fixed_rule(dist, dtype):
    """(x (N, d), w (N,)) in ``dtype``: the nodes of a law without a projected
    rule (its tensor rule, else a fixed Monte Carlo sample with wᵢ = 1/N; see
    the module docstring).  Traceable where the law's arrays are traced; the
    standard nodes and draws are concrete."""
    if is_location_scale(dist):
        with jax.ensure_compile_time_eval():
            rule = dist.standard_rule()
            if rule is None:
                t = dist.standard_sample(jax.random.PRNGKey(0), DEFAULT_SAMPLES, dtype)
                w = jnp.full((DEFAULT_SAMPLES,), 1.0 / DEFAULT_SAMPLES, dtype)
            else:
                t, w = jnp.asarray(rule[0], dtype), jnp.asarray(rule[1], dtype)
        shift, scale = dist.affine(dtype)
        x = shift + t * scale if jnp.ndim(scale) == 1 else shift + t @ scale.T
        return x, w
    rule = dist.tensor_rule()
    if rule is None:
        with jax.ensure_compile_time_eval():
            x = dist.sample(jax.random.PRNGKey(0), DEFAULT_SAMPLES, dtype)
            return x, jnp.full((DEFAULT_SAMPLES,), 1.0 / DEFAULT_SAMPLES, dtype)
    return jnp.asarray(rule[0], dtype), jnp.asarray(rule[1], dtype)


def _n_fixed(dist) -> int:
    """The number of nodes of :func:`_fixed_rule` (without building the draws)."""
    rule = dist.standard_rule() if is_location_scale(dist) else dist.tensor_rule()
    return DEFAULT_SAMPLES if rule is None else len(rule[1])


def _solve_batch(model, theta, x, y0, backend, tol, maxiter) -> Equilibrium:
    return jax.vmap(lambda xi_, y0_: solve_unchecked(model, theta, xi_, y0_, backend, tol, maxiter))(x, y0)


def default_y0(model, theta, x):
    """A cold start for the equilibria at ``x``: y0 = σ(θ1ᵀx + b), the map's value
    at y = 0 (one step of fixed-point iteration from 0)."""
    theta1, b, _ = model.split(theta)
    return model.activation(x @ theta1 + b)


_FUSED_FEATURES = 8  # up to this d, ∂R/∂θ1 joins the one-pass reduction; beyond it, a matvec


def _closed_form_gradient(model: Model, theta, x, target, weights, sol: Equilibrium, *, summary=False):
    r"""(R, ∇R) for R(θ) = Σᵢ wᵢ (y_θ(xᵢ) − tᵢ)² with y_θ(xᵢ) = ``sol.y``, in closed form.

    By Eq. (1) the root depends on θ through a = θ1ᵀx + b and θ2 only, with
    ∂y/∂a = σ'(ω)/(1 − θ2σ'(ω)) =: s (``sol.sensitivity``) and ∂y/∂θ2 = y·s, so

        ∂R/∂θ1 = 2 Σ wᵢ rᵢ sᵢ xᵢ,   ∂R/∂b = 2 Σ wᵢ rᵢ sᵢ,   ∂R/∂θ2 = 2 Σ wᵢ rᵢ sᵢ yᵢ,

    with rᵢ = yᵢ − tᵢ.  These sums and R are taken in one pass over the samples
    (a variadic reduction) where autodiff through the implicit function makes a
    pass for each.  ``weights`` is a scalar (the same for every sample) or (n,).
    ``summary=True`` also returns, from the same pass, the set of the
    equilibria's statuses as a bit mask (bit k: code k occurs) and their worst
    residual: (R, ∇R, flags, max residual).
    """
    r = sol.y - target
    rs = r * sol.sensitivity
    d = x.shape[-1]
    scalar_w = jnp.ndim(weights) == 0
    w = 1 if scalar_w else weights
    wrs = rs if scalar_w else w * rs
    fused = d <= _FUSED_FEATURES
    terms = [w * r * r] + ([wrs * x[:, j] for j in range(d)] if fused else [])
    terms += ([wrs] if model.bias else []) + [wrs * sol.y]
    zero = jnp.zeros((), r.dtype)
    inits = [zero] * len(terms)
    n_sums = len(terms)
    if summary:
        terms += [status_bit(sol.status), sol.residual]
        inits += [jnp.int32(0), zero]

    def combine(u, v):
        out = tuple(a + b for a, b in zip(u[:n_sums], v[:n_sums]))
        if summary:
            out += (u[n_sums] | v[n_sums], jnp.maximum(u[n_sums + 1], v[n_sums + 1]))
        return out

    sums = jax.lax.reduce(tuple(terms), tuple(inits), combine, (0,))
    loss, rest = sums[0], list(sums[1:n_sums])
    theta1, rest = (jnp.stack(rest[:d]), rest[d:]) if fused else (wrs @ x, rest)
    grad = 2 * jnp.concatenate([theta1, jnp.stack(rest)])
    if scalar_w:
        loss, grad = weights * loss, weights * grad
    grad = grad.astype(jnp.result_type(theta))
    if summary:
        return loss, grad, sums[n_sums], sums[n_sums + 1]
    return loss, grad


class Evaluation(NamedTuple):
    """What a step of gradient descent needs from the risk at θ (all reduced
    over the samples except the warm start)."""

    loss: jax.Array  # R(θ)
    grad: jax.Array  # ∇R(θ), shape (p,)
    warm: Continuation  # the equilibria, as the next step's warm start
    flags: jax.Array  # statuses that occur among the equilibria, bit k for code k (int32)
    residual: jax.Array  # worst |y − g_θ(x, y)| over the samples


def _descent_terms(model: Model, theta, x, target, weights, y0, tol, maxiter, solve, route="auto") -> Evaluation:
    r"""R(θ), ∇R(θ) (Eq. (1), closed form) and the step's summaries, reduced
    over the samples in one pass (:func:`_closed_form_gradient`).

    Three routes give the same numbers (to rounding).  ``route="auto"`` takes
    ``"straight"`` for float64 when JAX's default backend is an accelerator
    and ``"solve"`` otherwise (decided when the step is traced;
    ``jax.lax.platform_dependent`` would trace and compile both routes,
    doubling the compile time on CPU): on a GPU the straight-line route is
    the faster in float64 and the slower in float32 (``benchmarks/routes.py``;
    the figures are in BENCHMARKS.md).  ``"one"`` is taken only when asked
    for: on CPU it wins over long runs and loses over a sweep's first epochs,
    and on a GPU it is slower than the route ``"auto"`` takes.

    * ``"one"`` (:func:`sideq.scalar.one_evaluation` only): one Newton step
      from each warm start in straight-line code
      (:func:`sideq.scalar._solve_steps` with one step), with σ' from y and the residual
      bounded from the step, then the reduction, whose statuses say whether
      every step was accepted; if not, the batch is solved again by
      :func:`sideq.scalar._solve_warm` from the same starts, and reduced again,
      inside a loop of at most one iteration (6.5% of the Section 4.2 run's
      epochs).  One σ evaluation per sample, and four passes over the
      samples per epoch where ``"solve"`` makes five (XLA:CPU writes each as
      an array): the prediction, the step, the solutions, the reduction.

    * ``"solve"``: the safeguarded Newton solver of :func:`sideq.scalar.solve`
      on the whole batch (:func:`sideq.scalar._solve_warm`, the same iterates
      as the vmapped solve), whose loop of at most one iteration skips the
      second Newton step wherever one step is certified; then the reduction.
      For the sigmoid and tanh that is one σ evaluation per sample in all: σ'
      at the root is a function of y, and the residual is bounded from the
      step (:func:`sideq.scalar._solve_warm`).
      ``y0`` is a :class:`~sideq.scalar.Continuation`, and so is the
      :class:`Evaluation`'s warm start.
    * ``"straight"``: two Newton steps from each warm start and σ at
      the result (:func:`sideq.scalar._solve_steps`: three σ evaluations in
      straight-line code; two for the sigmoid and tanh, which need no σ at the
      result), then the reduction.  Where the two steps settle an
      equilibrium they are the first two steps of that same solver, accepted by
      the same tests.  If some equilibrium is not settled (a cold start, a
      large step in θ), the batch is solved again by ``solve`` inside a
      loop of at most one iteration, which costs nothing when it does not run
      (on the Section 4.2 problem it never ran, in either precision).  A loop
      between the first step and the reduction, as the solver has, makes each
      iterate a round trip through memory; without one a GPU can fuse the pass
      into a kernel that reads and writes the warm start only.  XLA:CPU makes
      no kernel with several outputs, so on CPU this code splits into ~30
      kernels and loses to the solver's loop in steady state, but not in a
      sweep's first epochs, where the solver's loop runs in most epochs.
    """

    one_step = one_evaluation(model)

    def evaluate(sol, g=None):
        # The next warm start: the solutions, or g_θ(x, y) there (the same to
        # within the residual) where the solve gives it (solve_warm).
        loss, grad, flags, residual = _closed_form_gradient(model, theta, x, target, weights, sol, summary=True)
        # With one σ evaluation per solve (sigmoid, tanh) the next prediction
        # takes the sensitivity from the solutions (_sensitivity_of), where a
        # kept array would cost a pass to write it and one to read it.
        warm = Continuation(sol.y if g is None else g, None if one_step else sol.sensitivity, theta)
        return Evaluation(loss, grad, warm, flags, residual)

    def by_solve(y0):
        return evaluate(*solve_warm(model, theta, x, y0, tol, maxiter))

    def straight(y0, one=False):
        if isinstance(y0, (WarmStart, Continuation, Equilibrium)):  # predict on the batch, solve from points
            y0 = predict_start(model, theta, x, y0)
        steps = 1 if one else 2
        sol, _ = jax.vmap(lambda x_, y0_: solve_steps(model, theta, x_, y0_, tol, steps))(x, y0)

        def again(state):
            _, ran = state
            # (The selects on ``ran``, no-ops, keep the solve from being hoisted
            # out of the loop as loop-invariant code, which would then run every
            # time: a = θ1ᵀx + b alone is a pass over the batch.)
            theta_, start = jax.tree_util.tree_map(lambda v: jnp.where(ran, jnp.nan, v), (theta, y0))
            if one:
                return evaluate(*solve_warm(model, theta_, x, start, tol, maxiter)), jnp.ones((), bool)
            return evaluate(solve(theta_, start)), jnp.ones((), bool)

        def unsettled(state):
            ev, ran = state
            return ~ran & has_status(ev.flags, Status.SINGULAR, Status.SOLVER_FAILURE, Status.MAX_STEPS)

        out, _ = jax.lax.while_loop(unsettled, again, (evaluate(sol), jnp.zeros((), bool)))
        return out

    if route == "auto":
        accelerator = jax.default_backend() != "cpu"
        route = "straight" if accelerator and jnp.result_type(theta) == jnp.float64 else "solve"
    if route == "one":
        return straight(y0, one=True)
    return straight(y0) if route == "straight" else by_solve(y0)


ROUTES = ("auto", "solve", "straight", "one")


def _check_route(route, model: Model):
    if route not in ROUTES:
        raise SideqInputError(f"route: expected one of {ROUTES}, got {route!r}")
    if route == "one" and not one_evaluation(model):
        raise SideqInputError(
            f"route: 'one' needs a sigma whose slope is a function of its value (slope_of_value) and a "
            f"curvature bound, as sigmoid and tanh have; {model.activation.name!r} has not: use 'auto'"
        )


def empirical_objective(model: Model, x, y, *, backend="jaxopt", tol=None, maxiter=100, route="auto"):
    """``objective(theta, y0) -> (R̂(θ), Equilibrium)`` for jit/grad/scan (no checks).

    ``y0`` (shape (n,)) warm-starts each sample's equilibrium; the returned
    Equilibrium's ``y`` is the next warm start.  Differentiate with
    ``jax.value_and_grad(objective, has_aux=True)`` (implicit differentiation,
    any order of reverse mode).  ``objective.value_and_grad(theta, y0)`` returns
    the same ``((R̂, Equilibrium), ∇R̂)`` with the gradient in closed form from
    Eq. (1), in one pass over the samples (:func:`_closed_form_gradient`); it is
    not differentiable.  ``objective.descent_terms(theta, y0)`` (with the
    default backend) returns the :class:`Evaluation` a step of
    :func:`sideq.dynamics.gradient_descent` needs, which uses it: the same risk
    and gradient with the statuses and worst residual from the same pass, by
    the ``route`` of :func:`_descent_terms` (``"auto"``: by platform;
    ``"solve"``, ``"straight"`` or ``"one"`` to choose, for tests and
    benchmarks); it is attached only for ``backend="jaxopt"`` and
    ``maxiter >= 2``.

    Args:
      model: a scalar :class:`~sideq.model.Model` (static).
      x: inputs, shape ``(n, d)``; not checked.
      y: targets, shape ``(n,)``; not checked.
      backend: the equilibrium solver, ``"jaxopt"`` or ``"optimistix"``.
      tol: the solver's relative step tolerance; default
        :func:`sideq.scalar.default_tol` of ``x``'s dtype.
      maxiter: the solver's iteration limit.
      route: ``"auto"``, ``"solve"``, ``"straight"`` or ``"one"``, for
        ``descent_terms``.

    Returns:
      The function ``objective(theta, y0)``, with the attributes
      ``value_and_grad`` (and ``descent_terms``, above).  R̂ is the mean
      squared error over the samples; a failed solve is reported in the
      Equilibrium's ``status``, not by a NaN risk.

    Raises:
      SideqInputError: an unknown ``route``, or ``"one"`` for a σ without
        ``slope_of_value`` and a curvature bound.
    """
    _check_route(route, model)
    tol = default_tol(jnp.result_type(x)) if tol is None else tol
    n = jnp.shape(x)[0]

    def objective(theta, y0):
        sol = _solve_batch(model, theta, x, y0, backend, tol, maxiter)
        return jnp.mean((sol.y - y) ** 2), sol

    def value_and_grad(theta, y0):
        sol = _solve_batch(model, theta, x, y0, backend, tol, maxiter)
        loss, grad = _closed_form_gradient(model, theta, jnp.asarray(x), y, 1.0 / n, sol)
        return (loss, sol), grad

    objective.value_and_grad = value_and_grad
    if backend == "jaxopt" and maxiter >= 2:

        def descent_terms(theta, y0):
            solve = lambda th, start: _solve_batch(model, th, x, start, backend, tol, maxiter)  # noqa: E731
            return _descent_terms(model, theta, jnp.asarray(x), y, 1.0 / n, y0, tol, maxiter, solve, route)

        descent_terms.carries_sensitivity = not one_evaluation(model)  # (the Continuation it takes)
        objective.descent_terms = descent_terms
    return objective


def _rule_nodes(model, theta, xi, dist):
    """(nodes x, weights, targets f(x)) of :func:`_fixed_rule`, in θ's dtype."""
    dtype = jnp.result_type(theta)
    x, w = _fixed_rule(dist, dtype)
    return x, w, targets(model, jnp.asarray(xi, dtype), x)


def _population_nodes_solve(model, theta, xi, dist, y0, backend, tol, maxiter):
    """Equilibria at the fixed nodes: (nodes, weights, targets f, Equilibrium)."""
    x, w, f = _rule_nodes(model, theta, xi, dist)
    return x, w, f, _solve_batch(model, theta, x, y0, backend, tol, maxiter)


def _population_nodes(model, theta, xi, dist, y0, backend, tol, maxiter):
    _, w, f, sol = _population_nodes_solve(model, theta, xi, dist, y0, backend, tol, maxiter)
    return jnp.sum(w * (sol.y - f) ** 2), sol


def _projected_uv(model, theta, xi, dist, z):
    """Nodes (u_jk, v_j) of the law's 2-D rule for (u, v) = (θ1ᵀX + b, ξᵀX), in θ's dtype."""
    theta1, b, _ = model.split(theta)
    return dist.project(theta1, b, xi, z, jnp.result_type(theta))


def _population_projected(model, theta, xi, dist, y0, backend, tol, maxiter):
    z, w = dist.projected_rule()
    dtype = jnp.result_type(theta)
    u, v = _projected_uv(model, theta, xi, dist, z)
    # y_θ(x) = Y(u): the same DEQ in one dimension with θ = (1, θ2) and input u.
    reduced = Model(model.activation, False, model.kind)
    theta_r = jnp.stack([jnp.ones((), dtype), theta[-1]])
    sol = _solve_batch(reduced, theta_r, u.reshape(-1, 1), y0, backend, tol, maxiter)
    f = model.activation(v)[:, None]
    w = jnp.asarray(w, dtype)
    W = w[:, None] * w[None, :]
    return jnp.sum(W * (sol.y.reshape(u.shape) - f) ** 2), sol


def _closed_form(model: Model, quadrature: bool) -> bool:
    """Whether the population risk of ``model`` is taken in closed form (Eq. (5))."""
    return model.is_linear and not quadrature


def _linear_risk(model: Model, theta, xi, dist):
    r"""(R(θ), Equilibrium) for the linear DEQ in closed form, Eq. (5) (module docstring).

    For σ(z) = s z + c (the identity: s = 1, c = 0), k = 1 − sθ2,
    e = sθ1/k − sξ and β = (sb + c)/k − c (b = 0 without a bias), so that
    y_θ(x) − f(x) = eᵀx + β for every x and

        R = E[(eᵀX + β)²] = ‖Lᵀe‖² + (E[X]ᵀe + β)²,   L Lᵀ = Cov(X),

    which equals eᵀE[XXᵀ]e + 2β eᵀE[X] + β² (with s = 1: e = φ − ξ, Eq. (5)).
    Where k = 0 (θ2 = 1/s, the singular hyperplane) the risk is NaN and so
    is every derivative of it: the NaN enters through a term that is zero,
    with zero derivative, elsewhere (as :func:`sideq.scalar._poison` does for
    the equilibria).  Differentiable to any order in θ, forward and reverse.

    The Equilibrium has one element (shape (1,)) and stands for the whole
    law; no equilibrium is solved, nothing is iterated:

    * ``y``: y_θ(E[X]), the equilibrium at the mean input, which for an affine
      g is also the mean prediction E[y_θ(X)]; NaN where singular.
    * ``residual``: 0, the closed form has no solver error (NaN where singular).
    * ``iterations``: 0.
    * ``margin``: the IFT margin 1 − sθ2, the same at every x.
    * ``status``: Status.SINGULAR where 1 − sθ2 == 0, else Status.CONVERGED
      (an exact value; a non-finite risk is left to the caller, which reports
      DIVERGED from it: :func:`sideq.dynamics.solve_failure`).
    * ``omega``: the pre-activation θ1ᵀE[X] + b + θ2 y at the mean input.
    * ``sensitivity``: ∂y/∂a = s/(1 − sθ2), the same at every x (NaN where singular).
    """
    dtype = jnp.result_type(theta)
    theta = jnp.asarray(theta, dtype)
    xi = jnp.asarray(xi, dtype)
    mean, chol = dist.moments(dtype)  # (L = chol: (d,) for a diagonal L, else (d, d))
    s = model.activation.slope_max
    c = model.activation(jnp.zeros((), dtype))
    theta1, b, theta2 = model.split(theta)
    k = 1 - s * theta2
    singular = k == 0
    k_safe = jnp.where(singular, jnp.ones((), dtype), k)
    e = s * theta1 / k_safe - s * xi
    beta = (s * b + c) / k_safe - c
    spread = chol * e if jnp.ndim(chol) == 1 else chol.T @ e
    mean_error = mean @ e + beta  # E[y_θ(X) − f(X)]
    risk = spread @ spread + mean_error * mean_error
    nan_or_zero = jnp.where(singular, jnp.nan, 0).astype(dtype)
    risk = jnp.where(singular, jnp.zeros((), dtype), risk) + nan_or_zero * jnp.sum(theta)

    a = theta1 @ mean + b  # the offset at the mean input
    y = jnp.where(singular, jnp.nan, (s * a + c) / k_safe)
    one = lambda v: jnp.reshape(v, (1,)).astype(dtype)  # noqa: E731
    eq = Equilibrium(
        y=one(y),
        residual=one(nan_or_zero),
        iterations=jnp.zeros((1,), jnp.int32),
        margin=one(k),
        status=jnp.reshape(jnp.where(singular, Status.SINGULAR, Status.CONVERGED), (1,)).astype(jnp.int32),
        omega=one(a + theta2 * y),
        sensitivity=one(jnp.where(singular, jnp.nan, s / k_safe)),
    )
    return risk, eq


def _linear_objective(model: Model, xi, dist):
    """The closed-form ``objective`` of :func:`population_objective` for the linear DEQ."""

    def objective(theta, y0):
        del y0  # (nothing is solved: no start is needed)
        return _linear_risk(model, theta, xi, dist)

    value_and_grad = jax.value_and_grad(objective, has_aux=True)
    objective.value_and_grad = value_and_grad

    def descent_terms(theta, y0):
        (loss, eq), grad = value_and_grad(theta, y0)
        warm = Continuation(eq.y, eq.sensitivity, jnp.asarray(theta))
        return Evaluation(loss, grad, warm, status_bit(eq.status[0]), eq.residual[0])

    descent_terms.carries_sensitivity = True  # (the Continuation it takes and gives)
    objective.descent_terms = descent_terms
    return objective


def n_nodes(dist, model: Model | None = None, *, quadrature: bool = False) -> int:
    """Number of equilibria per population-risk evaluation: the length of the
    ``y0`` that :func:`population_objective` takes and of its Equilibrium.

    1 for the linear DEQ in closed form (``model`` given, linear, and not
    ``quadrature``); otherwise the number of quadrature nodes of ``dist``
    (also when ``model`` is None), or of Monte Carlo inputs for a law with no
    rule."""
    if model is not None and _closed_form(model, quadrature):
        return 1
    if has_projection(dist):
        return len(dist.projected_rule()[0]) ** 2
    return _n_fixed(dist)


def population_objective(
    model: Model, xi, dist, *, backend="jaxopt", tol=None, maxiter=100, route="auto", quadrature: bool = False
):
    """``objective(theta, y0) -> (R(θ, ξ), Equilibrium)`` for jit/grad/scan (no checks).

    Linear DEQ (unless ``quadrature``): Eq. (5) in closed form under either law
    (:func:`_linear_risk`, which says what each field of its one-element
    Equilibrium means); ``y0`` is ignored (give :func:`initial_nodes_y0`'s,
    shape (1,)), ``backend``, ``tol``, ``maxiter`` and ``route`` do not apply.
    ``objective.value_and_grad`` is ``jax.value_and_grad`` of it (exact) and
    ``objective.descent_terms`` gives a descent step's terms from it, for any
    backend.

    Otherwise by quadrature (or, for a law with no rule, a fixed Monte Carlo
    sample): ``y0`` has shape ``(n_nodes(dist),)``, one warm start per node.
    Where the nodes are fixed (every law without a projected rule, e.g. the
    uniform) ``objective.value_and_grad`` gives the gradient in closed form and
    ``objective.descent_terms`` a descent step's terms, as for
    :func:`empirical_objective` (the projected rule's nodes move with θ, so
    there the gradient is taken by implicit differentiation).
    ``quadrature=True`` takes this route for the linear DEQ too (tests).

    Args:
      model: a scalar :class:`~sideq.model.Model` (static).
      xi: ξ, shape ``(d,)``; not checked.
      dist: a law of X (:mod:`sideq.data`'s protocol).
      backend: the equilibrium solver, ``"jaxopt"`` or ``"optimistix"``.
      tol: the solver's relative step tolerance; default
        :func:`sideq.scalar.default_tol` of θ's dtype.
      maxiter: the solver's iteration limit.
      route: ``"auto"``, ``"solve"``, ``"straight"`` or ``"one"``, for
        ``descent_terms`` (as for :func:`empirical_objective`).
      quadrature: take the quadrature for the linear DEQ too.

    Returns:
      The function ``objective(theta, y0)``, with ``value_and_grad`` and
      ``descent_terms`` attributes where described above.

    Raises:
      SideqInputError: ``dist`` is not a law, or a bad ``route``.
    """
    check_law(dist)
    _check_route(route, model)
    if _closed_form(model, quadrature):
        return _linear_objective(model, xi, dist)
    projected = has_projection(dist)
    impl = _population_projected if projected else _population_nodes

    def tol_for(theta):
        return default_tol(jnp.result_type(theta)) if tol is None else tol

    def objective(theta, y0):
        return impl(model, theta, xi, dist, y0, backend, tol_for(theta), maxiter)

    if not projected:

        def value_and_grad(theta, y0):
            x, w, f, sol = _population_nodes_solve(model, theta, xi, dist, y0, backend, tol_for(theta), maxiter)
            loss, grad = _closed_form_gradient(model, theta, x, f, w, sol)
            return (loss, sol), grad

        objective.value_and_grad = value_and_grad
        if backend == "jaxopt" and maxiter >= 2:

            def descent_terms(theta, y0):
                x, w, f = _rule_nodes(model, theta, xi, dist)
                tol_ = tol_for(theta)
                solve = lambda th, start: _solve_batch(model, th, x, start, backend, tol_, maxiter)  # noqa: E731
                return _descent_terms(model, theta, x, f, w, y0, tol_, maxiter, solve, route)

            descent_terms.carries_sensitivity = not one_evaluation(model)
            objective.descent_terms = descent_terms
    return objective


def initial_nodes_y0(model: Model, theta, xi, dist, *, quadrature: bool = False):
    """A cold start for :func:`population_objective`: σ(offset) at every node,
    shape ``(n_nodes(dist, model, quadrature=quadrature),)``.  For the linear
    DEQ in closed form, σ(θ1ᵀE[X] + b) at the mean input, shape (1,) (the
    objective does not use it)."""
    dtype = jnp.result_type(theta)
    if _closed_form(model, quadrature):
        mean, _ = dist.moments(dtype)
        return jnp.reshape(default_y0(model, jnp.asarray(theta, dtype), mean), (1,))
    if has_projection(dist):
        z, _ = dist.projected_rule()
        u, _ = _projected_uv(model, theta, xi, dist, z)
        return model.activation(u.reshape(-1))
    rule = dist.tensor_rule()
    x = _fixed_rule(dist, dtype)[0] if rule is None else jnp.asarray(rule[0], dtype)
    return default_y0(model, theta, x)


# ----------------------------------------------------------------------------
# Checked public entry points.


def _check_model_theta(model, theta, d, what):
    if not isinstance(model, Model):
        raise SideqInputError(f"model: expected sideq.linear() or sideq.single_index(...), got {type(model).__name__}")
    theta = jnp.asarray(theta)
    if not jnp.issubdtype(theta.dtype, jnp.floating):
        theta = theta.astype(jnp.result_type(float))
    p = model.n_params(d)
    if theta.shape != (p,):
        raise SideqInputError(
            f"theta: expected shape ({p},) for {what} of dimension d = {d}"
            f"{' with bias' if model.bias else ''}, got {theta.shape}"
        )
    tc = concrete(theta)
    if tc is not None:
        if not np.all(np.isfinite(tc)):
            raise SideqInputError(f"theta: contains non-finite values {tc.tolist()}; pass finite numbers")
        if model.is_linear and model.activation.slope_max * tc[-1] == 1:
            from sideq.errors import SingularModelError

            raise SingularModelError(
                f"theta: theta2 = {float(tc[-1])!r} makes the linear DEQ singular (1 - dg/dy = 0); choose theta2 != 1"
            )
    return theta


def _check_backend(backend):
    if backend not in BACKENDS:
        raise SideqInputError(f"backend: expected one of {BACKENDS}, got {backend!r}")


def empirical_risk(
    model: Model, theta, x, y=None, *, xi=None, backend: str = "jaxopt", tol: float | None = None, maxiter: int = 100
):
    r"""R̂(θ) = (1/n) Σᵢ (y_θ(xᵢ) − yᵢ)² on arrays.

    ``x`` has shape (n, d) (or (n,) when d = 1); ``y`` shape (n,).  If ``y`` is
    None the targets are f(xᵢ) = σ(ξᵀxᵢ) and ``xi`` is required.  Differentiable
    in θ (implicit differentiation, Eq. (1)); jit-able with ``model`` static.

    A :class:`~sideq.general.DEQ` ``model`` (k outputs) is handed to
    :func:`sideq.general.empirical_risk`: ``theta`` is its params, ``y``
    (n, k) or ``xi`` (k, d), and R̂ = (1/n) Σᵢ ‖y(xᵢ) − yᵢ‖²; its solver
    settings are the model's, so ``backend``, ``tol``, ``maxiter`` stay unset.

    Args:
      model: ``sideq.linear()`` or ``sideq.single_index(activation)`` (or a
        :class:`~sideq.general.DEQ`, above).
      theta: θ = ``(θ1, [b,] θ2)``, shape ``(p,)``; an integer θ is cast to the
        default float dtype.
      x: inputs, shape ``(n, d)`` or ``(n,)`` when d = 1; n ≥ 1, finite.
      y: targets, shape ``(n,)``, finite; None for f(x) = σ(ξᵀx).
      xi: ξ, shape ``(d,)``, nonzero and finite; required when ``y`` is None.
      backend: the equilibrium solver, ``"jaxopt"`` or ``"optimistix"``.
      tol: the solver's relative step tolerance (default 64 machine epsilons
        of the dtype).
      maxiter: the solver's iteration limit.

    Returns:
      R̂(θ), a scalar in the promoted dtype of ``theta``, ``x`` and ``y``;
      NaN (with NaN derivatives) when any equilibrium's solve failed.

    Raises:
      SideqInputError: a bad ``model``, ``backend``, shape of ``x``, ``theta``
        or ``y``, no sample, non-finite values (checked where concrete), no
        targets (neither ``y`` nor ``xi``), a bad ``xi``, or solver settings
        given with a DEQ.
      SingularModelError: θ2 = 1 for the linear DEQ (outside jit).
    """
    if isinstance(model, DEQ):
        if (backend, tol, maxiter) != ("jaxopt", None, 100):
            raise SideqInputError(
                "backend/tol/maxiter: a sideq.general.DEQ carries its own solver settings; "
                "set them on the model (sideq.deq(..., solver=, tol=, maxiter=))"
            )
        return general_empirical_risk(model, theta, x, y, xi=xi)
    _check_backend(backend)
    x = jnp.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise SideqInputError(f"x: expected shape (n, d) or (n,), got {x.shape}")
    n, d = x.shape
    if n == 0:
        raise SideqInputError("x: no samples (n = 0); pass at least one input")
    theta = _check_model_theta(model, theta, d, "x")
    xc = concrete(x)
    if xc is not None and not np.all(np.isfinite(xc)):
        raise SideqInputError("x: contains NaN or inf; remove those samples")
    if y is None:
        if xi is None:
            raise SideqInputError("y: no targets given; pass y (shape (n,)) or xi to use f(x) = sigma(xi'x)")
        xi = _check_xi(xi, d)
        y = targets(model, xi, x)
    y = jnp.asarray(y)
    if y.shape != (n,):
        raise SideqInputError(f"y: expected shape ({n},) to match x, got {y.shape}")
    yc = concrete(y)
    if yc is not None and not np.all(np.isfinite(yc)):
        raise SideqInputError("y: contains NaN or inf; remove those samples")
    dtype = jnp.result_type(theta, x, y)
    theta, x, y = (a.astype(dtype) for a in (theta, x, y))
    objective = empirical_objective(model, x, y, backend=backend, tol=tol, maxiter=int(maxiter))
    return _nan_unless_solved(*objective(theta, default_y0(model, theta, x)))


def _nan_unless_solved(risk, sol: Equilibrium):
    """The risk, or NaN (with NaN derivatives) where some equilibrium's solve
    failed: a public risk is never a finite number computed from a non-root."""
    return risk * jnp.where(jnp.all(is_success(sol.status)), 1, jnp.nan).astype(jnp.result_type(risk))


def _check_xi(xi, d):
    # (numpy where ξ is concrete: each eager jax call is a dispatch of its own)
    if isinstance(xi, jax.core.Tracer):
        xi_arr = jnp.atleast_1d(xi)
    else:
        xi_arr = np.atleast_1d(np.asarray(xi))
        if xi_arr.dtype.kind not in "biuf":  # (complex, objects, strings: refused in one line)
            xi_arr = as_real(xi_arr, "xi:")
    if xi_arr.shape != (d,):
        raise SideqInputError(f"xi: expected shape ({d},) to match the inputs, got {xi_arr.shape}")
    xc = concrete(xi_arr)
    if xc is not None and not np.all(np.isfinite(xc)):
        raise SideqInputError(f"xi: contains non-finite values {xc.tolist()}")
    if xc is not None and not np.any(xc != 0):
        raise SideqInputError("xi: must be nonzero (the paper's target f(x) = sigma(xi'x) needs xi != 0)")
    return xi_arr


def population_risk(
    model: Model,
    theta,
    xi,
    dist,
    *,
    backend: str = "jaxopt",
    tol: float | None = None,
    maxiter: int = 100,
    quadrature: bool = False,
):
    r"""R(θ, ξ) = E[(y_θ(X) − f(X))²] (see the module docstring).

    ``dist`` is a law of X: ``sideq.uniform(low, high, d)``,
    ``sideq.gaussian(mean, cov)`` or any object with :mod:`sideq.data`'s
    protocol (a law with no quadrature rule gets a fixed-sample Monte Carlo).
    For the linear DEQ it is Eq. (5) in closed form,
    (φ − ξ)ᵀE[XXᵀ](φ − ξ) with φ = θ1/(1 − θ2) (plus 2β(φ − ξ)ᵀE[X] + β²,
    β = b/(1 − θ2), with a bias), from the first two moments of X; no
    equilibrium is solved and ``backend``, ``tol``, ``maxiter`` do not apply.
    ``quadrature=True`` computes it by quadrature instead, as for the
    single-index DEQ (an independent route, for tests).  Differentiable in θ,
    also where θ1 ∥ ξ; jit-able with ``model`` static (``dist`` is a pytree).
    θ2 = 1 for the linear DEQ raises :class:`~sideq.errors.SingularModelError`
    here; inside jit the risk and its gradient are NaN.

    A :class:`~sideq.general.DEQ` ``model`` (multi_linear or multi_index, k
    outputs) is handed to :func:`sideq.general_risk.population_risk`:
    ``theta`` is its params, ``xi`` is Ξ (k, d) and R = E[‖y(X) − f(X)‖²]
    (Eq. (5) in closed form for multi_linear; ``quadrature=True`` takes the
    quadrature there too).  Its solver settings are the model's, so
    ``backend``, ``tol``, ``maxiter`` stay unset.

    Args:
      model: ``sideq.linear()`` or ``sideq.single_index(activation)`` (or a
        :class:`~sideq.general.DEQ`, above).
      theta: θ = ``(θ1, [b,] θ2)``, shape ``(p,)`` with p =
        :meth:`~sideq.model.Model.n_params` of ``dist.d``; finite.
      xi: ξ, shape ``(d,)``, nonzero and finite.
      dist: a law of X (:mod:`sideq.data`'s protocol).
      backend: the equilibrium solver, ``"jaxopt"`` or ``"optimistix"``.
      tol: the solver's relative step tolerance (default 64 machine epsilons
        of the dtype).
      maxiter: the solver's iteration limit.
      quadrature: compute the linear DEQ's risk by quadrature, not Eq. (5).

    Returns:
      R(θ, ξ), a scalar in the promoted dtype of ``theta`` and ``xi``; NaN
      (with NaN derivatives) when any node's equilibrium solve failed.

    Raises:
      SideqInputError: a bad ``model``, ``backend``, law, ``xi`` or
        ``theta``; ξᵀ Cov(X) ξ = 0 under a Gaussian law (a constant target);
        solver settings given with a DEQ.
      SingularModelError: θ2 = 1 for the linear DEQ (outside jit).
    """
    if isinstance(model, DEQ):
        if (backend, tol, maxiter) != ("jaxopt", None, 100):
            raise SideqInputError(
                "backend/tol/maxiter: a sideq.general.DEQ carries its own solver settings; "
                "set them on the model (sideq.deq(..., solver=, tol=, maxiter=))"
            )
        return general_population_risk(model, theta, xi, dist, route="quadrature" if quadrature else None)
    _check_backend(backend)
    check_law(dist)
    xi = _check_xi(xi, dist.d)
    theta = _check_model_theta(model, theta, dist.d, "the law of X")
    xc = concrete(xi)
    if has_projection(dist) and xc is not None:  # (the projected rule divides by ‖Lᵀξ‖)
        chol = dist.moments()[1]
        q = chol * xc if chol.ndim == 1 else chol.T @ xc
        if float(q @ q) == 0.0:
            raise SideqInputError(
                "xi: xi' cov xi = 0, so the target is constant under this law; choose another xi or cov"
            )
    dtype = jnp.result_type(theta, xi)
    theta, xi = theta.astype(dtype), xi.astype(dtype)
    objective = population_objective(
        model, xi, dist, backend=backend, tol=tol, maxiter=int(maxiter), quadrature=quadrature
    )
    return _nan_unless_solved(*objective(theta, initial_nodes_y0(model, theta, xi, dist, quadrature=quadrature)))
