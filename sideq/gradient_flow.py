r"""Gradient flow θ'(t) = −∇R(θ(t)) (Section 2; Eq. (4) for the linear DEQ), with diffrax.

The flow is the continuous-time limit of gradient descent (:mod:`sideq.dynamics`)
and the object of Theorems 3.1–3.4 (linear DEQ, Eq. (2)) and 3.8 (single-index
DEQ, Eq. (10)).  :func:`gradient_flow` integrates it for any
``objective(theta, y0) -> (risk, Equilibrium)`` from :mod:`sideq.risk`; the
equilibria are solved afresh (cold start) at every evaluation of the vector
field, and ∇R comes from implicit differentiation, Eq. (1).

For the linear DEQ, Theorem 3.1 keeps θ(t) on the sphere
‖θ − (0,…,0,1)‖ = ‖θ(0) − (0,…,0,1)‖ and Lemma 3.2 keeps θ2 on its side of 1,
so the limit of Theorem 3.3 is (αξ, 1 − α) with
α = sign(1 − θ2(0)) ‖θ(0) − (0,…,0,1)‖ / √(‖ξ‖² + 1)
(the printed statement has sign(θ2(0)) and ‖θ(0)‖; see tests/test_flow.py).

Integrator
----------
Explicit 8th-order Dormand–Prince (``diffrax.Dopri8``) with a PID step-size
controller (``pcoeff=0.4, icoeff=0.3``) at ``rtol = atol = 1e-12`` (float64),
chosen by measurement.  For the linear DEQ the field grows like |1 − θ2|⁻³ near
the singular hyperplane θ2 = 1, so the flow starts on a time scale ~|1 − θ2(0)|⁴
and then slows down by many orders of magnitude; adaptive explicit steps follow
that without trouble (≈ 230–380 steps from |1 − θ2(0)| = 1e-2 to a steady
state), and the conserved quantity of Theorem 3.1 drifts by ≲ 3e-13.  Tsit5
and Dopri5 need 2.3–3.5× more steps and drift up to 15× more.  The implicit
Kvaerno5 needs ≈ 25× more accepted steps plus thousands of rejected ones (its
chord iteration keeps failing at these tolerances); it is
available through ``solver=`` (the field supports forward mode, see
:func:`vector_field`).

Saved times are hit exactly: the controller is clipped to step onto every
requested time (``diffrax.ClipStepSizeController(step_ts=...)``), so the saved
rows are integrator states, not values of the dense interpolant (whose error is
100–300× the step error for Dopri8 at these tolerances, enough to spoil a
1e-10 conservation check).

Nothing is projected or renormalised: w(t) = ‖θ(t) − (0,…,0,1)‖² is *not*
enforced, so its drift |w(t) − w(0)| measures the integration error for the
linear DEQ (Theorem 3.1 says it is exactly zero for the flow).

General DEQs
------------
:func:`deq_gradient_flow` runs the same integration (the same solver,
controller, stops and status rules) for a :class:`sideq.general.DEQ`, whose θ
is a params pytree, integrated as its flat vector (``ravel_pytree``), with R̂
of :func:`sideq.general.empirical_risk` or R of
:func:`sideq.general_risk.population_risk`.  For
:func:`sideq.general.multi_linear` the k × k matrix
W1W1ᵀ + bbᵀ + (I − W2)(I − W2)ᵀ is conserved (:func:`multi_linear_invariant`,
Theorem 3.1 for k outputs).
"""

from __future__ import annotations

import collections
import math
from typing import Any, Callable, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from sideq import general, general_risk, xla
from sideq.dynamics import distance_to_target, solve_failure, w_distance
from sideq.errors import SideqInputError, SingularModelError
from sideq.model import Model
from sideq.risk import (
    default_y0,
    empirical_objective,
    initial_nodes_y0,
    population_objective,
)
from sideq.scalar import BACKENDS
from sideq.status import Status, first_status, has_status, run_repr, status_flags
from sideq.train import check_maxiter, check_problem, check_theta0

__all__ = [
    "FlowTrajectory",
    "DEQFlowTrajectory",
    "gradient_flow",
    "deq_gradient_flow",
    "deq_empirical_objective",
    "deq_population_objective",
    "vector_field",
    "default_flow_tol",
    "flow",
    "flow_summary",
    "until_stop",
    "reached_rows",
    "multi_linear_invariant",
    "PROBE",
]

# Relative length of the probe step used to tell a stall at the edge of a
# non-finite region from an honest step limit (see gradient_flow).
PROBE = 1e-6


class FlowTrajectory(NamedTuple):
    """A gradient-flow run (batched under vmap: a leading run axis everywhere).

    Rows are the requested times followed by one last row at the stop time
    ``t_final``: ``theta[-1]`` is always θ(t_final).  Requested times after the
    stop hold the final state (and its diagnostics): after a steady state the
    flow is at rest there to within ``gtol``; after a step limit or a failure
    (``t_final < t1`` without CONVERGED) they are placeholders.  K = number of
    requested times (1 when none were requested: the row t = 0).

    Attributes:
      ts: (K+1,) requested times, then t_final.
      theta: (K+1, p) θ(t).
      loss: (K+1,) R(θ(t)).
      grad_norm: (K+1,) ‖∇R(θ(t))‖.
      distance: (K+1,) distance to the target set
        (sideq.dynamics.distance_to_target).
      w: (K+1,) ‖θ(t) − (0,…,0,1)‖².
      drift: (K+1,) |w(t) − w(0)|; ≡ 0 for the exact linear-DEQ flow (Theorem
        3.1).
      gap: (K+1,) |1 − θ2(t)|.
      residual: (K+1,) worst |y − g(y)| over samples / nodes.
      t_final: () stop time: the steady-state time, or t1.
      status: () sideq.Status code of the flow's end (see gradient_flow).
      steps: () accepted integrator steps.
      rejected: () rejected integrator steps.
      non_unique_rows: () reached rows whose equilibria were possibly
        non-unique.
      non_unique_t_first: () the first such row's time, NaN if none.
      non_unique_t_last: () the last such row's time, NaN if none.
    """

    ts: jax.Array
    theta: jax.Array
    loss: jax.Array
    grad_norm: jax.Array
    distance: jax.Array
    w: jax.Array
    drift: jax.Array
    gap: jax.Array
    residual: jax.Array
    t_final: jax.Array
    status: jax.Array
    steps: jax.Array
    rejected: jax.Array
    non_unique_rows: jax.Array
    non_unique_t_first: jax.Array
    non_unique_t_last: jax.Array

    def __repr__(self) -> str:
        return run_repr(self, "FlowTrajectory")


def default_flow_tol(dtype) -> float:
    """Default ``rtol = atol``: 1e-12 in float64, 100 machine epsilons in lower precision.

    Args:
      dtype: a float dtype.

    Returns:
      ``max(1e-12, 100 * finfo(dtype).eps)`` as a Python float.
    """
    return max(1e-12, 100.0 * float(jnp.finfo(dtype).eps))


def _risk_fn(objective: Callable, cold_start: Callable):
    """θ ↦ (R(θ), Equilibrium), the equilibria solved from ``cold_start(θ)``."""

    def risk(theta):
        y0 = jax.lax.stop_gradient(cold_start(theta))
        return objective(theta, y0)

    return risk


def _symmetric_jacobian(grad_fn):
    """``grad_fn`` with a JVP rule that is its VJP.

    ∇R has a symmetric Jacobian (the Hessian), so Hv = Hᵀv: forward-mode
    derivatives (needed by diffrax's implicit solvers) come from one reverse
    pass.  This is what makes implicit solvers usable with the default jaxopt
    backend, whose implicit differentiation is reverse-mode only.
    """

    @jax.custom_jvp
    def g(theta):
        return grad_fn(theta)

    @g.defjvp
    def _jvp(primals, tangents):
        (theta,), (v,) = primals, tangents
        out, vjp = jax.vjp(grad_fn, theta)
        return out, vjp(v)[0]

    return g


def vector_field(objective: Callable, cold_start: Callable):
    r"""The gradient-flow field f(t, θ, args) = −∇R(θ) of Eq. (4) (Section 2 in general).

    ``objective(theta, y0) -> (R, Equilibrium)`` as from :mod:`sideq.risk`;
    ``cold_start(theta) -> y0`` gives the equilibrium solver's starting points.
    The result supports reverse and forward mode (its Jacobian −∇²R is
    symmetric, so the JVP is computed as a VJP).

    Args:
      objective: ``objective(theta, y0) -> (R, Equilibrium)``, e.g. from
        :func:`sideq.risk.empirical_objective`.
      cold_start: ``theta -> y0``; its value is not differentiated
        (``stop_gradient``).

    Returns:
      ``f(t, theta, args) -> −∇R(θ)`` (``t`` and ``args`` unused), a diffrax
      vector field; ∇R is jitted once.
    """
    # jit: diffrax traces the field a dozen times (stages, shapes, events); the
    # jitted gradient is traced once and then reused from the cache.
    grad = jax.jit(jax.grad(lambda theta: _risk_fn(objective, cold_start)(theta)[0]))
    g = _symmetric_jacobian(grad)

    def f(t, theta, args):
        del t, args
        return -g(theta)

    return f


def gradient_flow(
    model: Model,
    objective: Callable,
    theta0,
    xi,
    *,
    cold_start: Callable,
    t1,
    saveat_ts=None,
    rtol=None,
    atol=None,
    gtol=0.0,
    max_steps: int = 4096,
    solver: diffrax.AbstractSolver | None = None,
    divergence=1e8,
) -> FlowTrajectory:
    r"""Integrate the gradient flow θ'(t) = −∇R(θ(t)), θ(0) = θ0 (Section 2; for the
    linear DEQ, Eq. (4) with the gradient of ERRATA.md §1).

    Args:
      model: the DEQ (for the diagnostics).
      objective: ``objective(theta, y0) -> (risk, Equilibrium)``, e.g. from
        :func:`sideq.risk.empirical_objective` or :func:`sideq.risk.population_objective`.
      theta0: θ(0), shape (p,).
      xi: target ξ (for the distance diagnostics).
      cold_start: ``theta -> y0``, the equilibrium solver's start at each
        evaluation, e.g. ``lambda th: sideq.risk.default_y0(model, th, x)`` or
        ``lambda th: sideq.risk.initial_nodes_y0(model, th, xi, dist)``.
      t1: end time (traced: a sweep over t1 does not recompile).
      saveat_ts: times (K,) in [0, t1], non-decreasing, at which to record the
        flow; the integrator steps exactly onto them.  None: only t = 0 (the
        result always ends with a row at the stop time).
      rtol, atol: step-size controller tolerances; default
        :func:`default_flow_tol` of the dtype (1e-12 in float64).
      gtol: stop at the first accepted step with ‖∇R(θ)‖ ≤ gtol (a steady state;
        0 never stops early).
      max_steps: integrator step limit, accepted and rejected together (static).
      solver: a diffrax solver; default ``diffrax.Dopri8()`` (see the module
        docstring for why).
      divergence: stop (status DIVERGED) once max|θ| exceeds this.

    Pure and jit/vmap-able (``model``, ``objective``, ``cold_start``,
    ``max_steps``, ``solver`` and the presence of ``saveat_ts`` are static);
    nothing is checked: use :func:`flow` for validated single runs.

    Returns:
      A :class:`FlowTrajectory` (K + 1 rows: the requested times, then the
      stop time).  Status (of the flow's end): CONVERGED when the steady state
      was reached, MAX_STEPS when t1 or ``max_steps`` came first, NON_UNIQUE
      (UNVERIFIED) when an equilibrium at θ(t_final) may not be unique (its
      uniqueness rests on estimated slope bounds); the recorded rows in the
      non-unique regime are counted in ``non_unique_rows``, with the first and
      last such time beside them; DIVERGED on non-finite values or |θ| >
      ``divergence``, SINGULAR / SOLVER_FAILURE when an equilibrium solve or
      the integrator failed.  diffrax rejects steps into regions where ∇R is
      not finite, so such a flow stalls at the edge until ``max_steps``; it is
      reported DIVERGED when ∇R is non-finite a small probe step (relative
      length :data:`PROBE`) further along the flow.
    """
    theta0 = jnp.asarray(theta0)
    value_and_grad = jax.value_and_grad(_risk_fn(objective, cold_start), has_aux=True)
    f = vector_field(objective, cold_start)
    run = _integrate(
        f,
        theta0,
        t1=t1,
        saveat_ts=saveat_ts,
        rtol=rtol,
        atol=atol,
        gtol=gtol,
        max_steps=max_steps,
        solver=solver,
        divergence=divergence,
    )
    theta = run.theta

    def diagnostics(th):
        (loss, eq), grad = value_and_grad(th)
        flags = status_flags(eq.status)
        code = solve_failure(eq.status, loss, grad, flags=flags)
        code = jnp.where(jnp.all(jnp.isfinite(th)), code, Status.DIVERGED)
        return (
            loss,
            jnp.linalg.norm(grad),
            distance_to_target(model, th, xi),
            w_distance(th),
            jnp.abs(1 - th[-1]),
            jnp.max(eq.residual),
            code,
            has_status(flags, Status.NON_UNIQUE),
            has_status(flags, Status.UNVERIFIED),
            grad,
        )

    loss, gnorm, dist, w, gap, resid, codes, non_unique, unverified, grads = jax.vmap(diagnostics)(theta)
    drift = jnp.abs(w - w_distance(theta0))
    end = _flow_end(run, f, codes, non_unique, unverified, gnorm[-1], grads[-1])
    return FlowTrajectory(run.ts, theta, loss, gnorm, dist, w, drift, gap, resid, run.t_final, *end)


class _Run(NamedTuple):
    """The integration of θ' = f(θ) (see :func:`_integrate`)."""

    sol: diffrax.Solution
    ts: jax.Array  # (K+1,) requested times, then t_final
    theta: jax.Array  # (K+1, p) θ at those rows
    t_final: jax.Array  # ()
    reached: jax.Array  # (K+1,) rows the flow integrated to


def _integrate(
    f, theta0, *, t1, saveat_ts, rtol, atol, gtol, max_steps, solver, divergence, hold_unsaved: bool = False
) -> _Run:
    """Integrate θ' = f(t, θ, None) from θ(0) = ``theta0`` (a flat vector) with
    the steady-state and divergence stops of :func:`gradient_flow`; rows at the
    requested times (those after the stop hold the final state), then t_final.

    ``hold_unsaved``: a flow that never accepts a step (∇R not finite at θ(0))
    ends at t_final = 0 without saving its t = 0 row, which diffrax leaves as
    inf; with this flag such rows hold the final state, θ(0), instead.  (Steps
    with non-finite values are rejected, so a non-finite saved row is always
    an unsaved one.)"""
    dtype = theta0.dtype
    tol = default_flow_tol(dtype)
    rtol = jnp.asarray(tol if rtol is None else rtol, dtype)
    atol = jnp.asarray(tol if atol is None else atol, dtype)
    gtol = jnp.asarray(gtol, dtype)
    divergence = jnp.asarray(divergence, dtype)
    t1 = jnp.asarray(t1, dtype)
    t0 = jnp.zeros((), dtype)
    solver = diffrax.Dopri8() if solver is None else solver

    def steady(t, theta, args, **kwargs):
        return jnp.linalg.norm(f(t, theta, args)) <= gtol

    def blown(t, theta, args, **kwargs):
        return ~(jnp.max(jnp.abs(theta)) <= divergence)  # also catches NaN

    controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.4, icoeff=0.3)
    if saveat_ts is None:
        ts = t0[None]
        first = diffrax.SubSaveAt(t0=True)
    else:
        ts = jnp.asarray(saveat_ts, dtype)
        first = diffrax.SubSaveAt(ts=ts)
        controller = diffrax.ClipStepSizeController(controller, step_ts=ts)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(f),
        solver,
        t0,
        t1,
        None,
        theta0,
        saveat=diffrax.SaveAt(subs=[first, diffrax.SubSaveAt(t1=True)]),
        stepsize_controller=controller,
        event=diffrax.Event([steady, blown]),
        max_steps=max_steps,
        throw=False,
    )
    ys, y_final = sol.ys
    t_final = sol.ts[1][0]
    theta_final = y_final[0]
    # Rows after the stop were never reached (diffrax fills them with inf): they
    # hold the final state (at rest to within gtol after a steady state).
    reached = ts <= t_final
    saved = reached & jnp.all(jnp.isfinite(ys), axis=1) if hold_unsaved else reached
    rows = jnp.where(saved[:, None], ys, theta_final[None, :])
    theta = jnp.concatenate([rows, theta_final[None]])
    ts_out = jnp.concatenate([ts, t_final[None]])
    return _Run(sol, ts_out, theta, t_final, jnp.concatenate([reached, jnp.ones((1,), bool)]))


def _flow_end(run: _Run, f, codes, non_unique, unverified, gnorm_final, grad_final):
    """(status, steps, rejected, non_unique_rows, non_unique_t_first,
    non_unique_t_last) of a flow, from the per-row failure ``codes`` and
    non-unique / unverified flags (see :func:`gradient_flow` for the rules)."""
    sol, theta_final, t_final = run.sol, run.theta[-1], run.t_final
    dtype = theta_final.dtype
    failed = codes != Status.CONVERGED
    fail_code = codes[jnp.argmax(failed)]
    result = sol.result
    steady_hit, blown_hit = sol.event_mask
    event = result == diffrax.RESULTS.event_occurred
    limit = (result == diffrax.RESULTS.successful) | (result == diffrax.RESULTS.max_steps_reached)
    # A stall at the edge of a non-finite region ends at max_steps: probe ahead.
    f_final = -grad_final
    step = PROBE * (1 + jnp.linalg.norm(theta_final)) / jnp.maximum(gnorm_final, jnp.finfo(dtype).tiny)
    probe_ok = jnp.all(jnp.isfinite(f(t_final, theta_final + step * f_final, None)))
    stalled = (result == diffrax.RESULTS.max_steps_reached) & ~probe_ok
    # The status of the flow's end: a failure at any recorded row, else the
    # equilibria at θ(t_final) (the last row), then how the integration ended.
    status = jnp.select(
        [
            jnp.any(failed),
            event & blown_hit,
            stalled,
            ~(event | limit),
            non_unique[-1],
            unverified[-1],
            event & steady_hit,
        ],
        [
            fail_code,
            Status.DIVERGED,
            Status.DIVERGED,
            Status.SOLVER_FAILURE,
            Status.NON_UNIQUE,
            Status.UNVERIFIED,
            Status.CONVERGED,
        ],
        Status.MAX_STEPS,
    ).astype(jnp.int32)
    # The history in the non-unique regime, over the rows the flow reached
    # (the requested times up to t_final, and t_final).
    seen = non_unique & run.reached
    anyseen = jnp.any(seen)
    stats = sol.stats
    return (
        status,
        jnp.asarray(stats["num_accepted_steps"], jnp.int32),
        jnp.asarray(stats["num_rejected_steps"], jnp.int32),
        jnp.sum(seen).astype(jnp.int32),
        jnp.where(anyseen, jnp.min(jnp.where(seen, run.ts, jnp.inf)), jnp.nan),
        jnp.where(anyseen, jnp.max(jnp.where(seen, run.ts, -jnp.inf)), jnp.nan),
    )


# ----------------------------------------------------------------------------
# General DEQs y = g(params, x, y) (sideq.general): the same flow on a params pytree.


class DEQFlowTrajectory(NamedTuple):
    """A gradient-flow run of a :class:`sideq.general.DEQ` (batched under vmap: a
    leading run axis everywhere).

    The rows, the stop and the status fields are those of :class:`FlowTrajectory`
    (requested times, then the stop time ``t_final``; rows after the stop hold
    the final state); θ is the params pytree, each leaf stacked over the rows:
    ``params["W1"]`` has shape (K+1, k, d) for :func:`sideq.general.multi_linear`.

    Attributes:
      ts: (K+1,) requested times, then t_final.
      params: pytree, leaves (K+1, ...) θ(t).
      loss: (K+1,) R(θ(t)).
      grad_norm: (K+1,) ‖∇R(θ(t))‖ over all leaves.
      residual: (K+1,) worst ‖y − g(y)‖∞ over the samples (NaN for a
        population risk).
      t_final, status, steps, rejected: as in :class:`FlowTrajectory`.
      non_unique_rows, non_unique_t_first, non_unique_t_last: as in
        :class:`FlowTrajectory`.
    """

    ts: jax.Array
    params: Any
    loss: jax.Array
    grad_norm: jax.Array
    residual: jax.Array
    t_final: jax.Array
    status: jax.Array
    steps: jax.Array
    rejected: jax.Array
    non_unique_rows: jax.Array
    non_unique_t_first: jax.Array
    non_unique_t_last: jax.Array

    def __repr__(self) -> str:
        if any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(self)):
            return tuple.__repr__(self)
        shapes = jax.tree_util.tree_map(_Shape, self.params)
        rest = run_repr(_DEQFlowRest(*(v for f, v in zip(self._fields, self) if f != "params")), "DEQFlowTrajectory")
        return f"DEQFlowTrajectory(params={shapes!r}, " + rest[len("DEQFlowTrajectory(") :]


_DEQFlowRest = collections.namedtuple("_DEQFlowRest", [f for f in DEQFlowTrajectory._fields if f != "params"])


class _Shape:
    """Shows an array as its dtype and shape."""

    def __init__(self, value):
        self.text = f"<{np.asarray(value).dtype}{list(np.shape(value))}>"

    def __repr__(self) -> str:
        return self.text


def deq_empirical_objective(model: general.DEQ, x, y):
    r"""``objective(params) -> (R̂, (statuses, residual))`` for :func:`deq_gradient_flow`:
    R̂ = (1/n) Σᵢ ‖y_θ(xᵢ) − yᵢ‖² as :func:`sideq.general.empirical_risk`, the
    equilibria solved cold (from zero) by :func:`sideq.general.solve`, with their
    statuses (n,) and the worst residual ‖y − g(y)‖∞.  No checks.

    Args:
      model: a :class:`sideq.general.DEQ` with k outputs.
      x: inputs, shape ``(n, d)``.
      y: targets, shape ``(n, k)``.

    Returns:
      The function ``objective(params)``.
    """

    def objective(params):
        sol = general.solve(model, params, x, margin=False)
        return jnp.mean(jnp.sum((sol.y - y) ** 2, axis=-1)), (sol.status, jnp.max(sol.residual))

    return objective


def deq_population_objective(model: general.DEQ, xi, dist):
    r"""``objective(params) -> (R, (statuses, residual))`` for :func:`deq_gradient_flow`:
    R = E‖y_θ(X) − f(X)‖² by :func:`sideq.general_risk.population_objective`
    (closed form for multi_linear, Eq. (5) with k outputs; quadrature otherwise).
    The status is :meth:`sideq.general.DEQ.proof` (SINGULAR, NON_UNIQUE,
    UNVERIFIED or CONVERGED); a failed solve at a node makes R NaN (DIVERGED);
    the residual is NaN (the solves are inside R).

    Args:
      model: a :class:`sideq.general.DEQ` (multi_linear or multi_index).
      xi: Ξ, shape ``(k, d)``.
      dist: a law of X (:mod:`sideq.data`'s protocol).

    Returns:
      The function ``objective(params)``; the statuses have shape ``(1,)``.

    Raises:
      SideqInputError: as :func:`sideq.general_risk.population_objective`
        (a model without a population risk, a bad law, ``xi`` or route).
    """
    risk = general_risk.population_objective(model, xi, dist)

    def objective(params):
        loss = risk(params)
        return loss, (model.proof(params)[None], jnp.full((), jnp.nan, loss.dtype))

    return objective


def deq_gradient_flow(
    objective: Callable,
    params0,
    *,
    t1,
    saveat_ts=None,
    rtol=None,
    atol=None,
    gtol=0.0,
    max_steps: int = 4096,
    solver: diffrax.AbstractSolver | None = None,
    divergence=1e8,
) -> DEQFlowTrajectory:
    r"""Integrate θ'(t) = −∇R(θ(t)), θ(0) = ``params0``, for a DEQ whose θ is a
    pytree (Section 2; Section 5's multi-neuron DEQs).

    The same integration as :func:`gradient_flow` (Dopri8, steps clipped onto
    the saved times, the steady-state stop ‖∇R‖ ≤ ``gtol``, the divergence stop,
    the stall probe and the status rules) on the flat vector of the params
    (``jax.flatten_util.ravel_pytree``: ‖∇R‖ and max|θ| are over all leaves).

    Args:
      objective: ``objective(params) -> (risk, (statuses, residual))``, e.g.
        :func:`deq_empirical_objective` or :func:`deq_population_objective`;
        ``statuses`` are the equilibria's :class:`~sideq.status.Status` codes.
      params0: θ(0), a pytree of floating arrays.
      t1, saveat_ts, rtol, atol, gtol, max_steps, solver, divergence: as for
        :func:`gradient_flow`.

    A failed solve at a recorded row (SINGULAR, SOLVER_FAILURE, DIVERGED for
    a non-finite risk or gradient) ends the run with that status; nothing
    raises, so under ``jax.vmap`` over ``params0`` one failing run leaves the
    others alone.  Pure and jit/vmap-able; nothing is checked: use
    :func:`flow` for validated runs.

    Returns:
      A :class:`DEQFlowTrajectory`, its ``params`` leaves stacked over the
      K + 1 rows.
    """
    theta0, unravel = ravel_pytree(params0)

    def flat_objective(theta, y0):
        del y0  # (the equilibria start cold, inside the objective)
        return objective(unravel(theta))

    def cold_start(theta):
        return jnp.zeros((), theta.dtype)

    value_and_grad = jax.value_and_grad(_risk_fn(flat_objective, cold_start), has_aux=True)
    f = vector_field(flat_objective, cold_start)
    run = _integrate(
        f,
        theta0,
        t1=t1,
        saveat_ts=saveat_ts,
        rtol=rtol,
        atol=atol,
        gtol=gtol,
        max_steps=max_steps,
        solver=solver,
        divergence=divergence,
        hold_unsaved=True,
    )

    def diagnostics(th):
        (loss, (statuses, residual)), grad = value_and_grad(th)
        flags = status_flags(statuses)
        finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(grad))
        code = first_status(
            [
                (has_status(flags, Status.SINGULAR), Status.SINGULAR),
                (has_status(flags, Status.SOLVER_FAILURE, Status.MAX_STEPS), Status.SOLVER_FAILURE),
                (has_status(flags, Status.DIVERGED) | ~finite | ~jnp.all(jnp.isfinite(th)), Status.DIVERGED),
            ]
        )
        return (
            loss,
            jnp.linalg.norm(grad),
            residual,
            code,
            has_status(flags, Status.NON_UNIQUE),
            has_status(flags, Status.UNVERIFIED),
            grad,
        )

    loss, gnorm, resid, codes, non_unique, unverified, grads = jax.vmap(diagnostics)(run.theta)
    end = _flow_end(run, f, codes, non_unique, unverified, gnorm[-1], grads[-1])
    return DEQFlowTrajectory(run.ts, jax.vmap(unravel)(run.theta), loss, gnorm, resid, run.t_final, *end)


# ----------------------------------------------------------------------------
# Checked single runs.

_STATIC = ("model", "max_steps", "solver", "backend", "maxiter")


@xla.jit(static_argnames=_STATIC)  # sideq.xla: the CPU options of sideq's loops
def _flow_empirical(model, theta0, x, y, xi, t1, ts, rtol, atol, gtol, *, max_steps, solver, backend, maxiter):
    objective = empirical_objective(model, x, y, backend=backend, maxiter=maxiter)
    return gradient_flow(
        model,
        objective,
        theta0,
        xi,
        cold_start=lambda th: default_y0(model, th, x),
        t1=t1,
        saveat_ts=ts,
        rtol=rtol,
        atol=atol,
        gtol=gtol,
        max_steps=max_steps,
        solver=solver,
    )


@xla.jit(static_argnames=_STATIC)  # sideq.xla: the CPU options of sideq's loops
def _flow_population(model, theta0, dist, xi, t1, ts, rtol, atol, gtol, *, max_steps, solver, backend, maxiter):
    objective = population_objective(model, xi, dist, backend=backend, maxiter=maxiter)
    return gradient_flow(
        model,
        objective,
        theta0,
        xi,
        cold_start=lambda th: initial_nodes_y0(model, th, xi, dist),
        t1=t1,
        saveat_ts=ts,
        rtol=rtol,
        atol=atol,
        gtol=gtol,
        max_steps=max_steps,
        solver=solver,
    )


_DEQ_STATIC = ("model", "max_steps", "solver")


@xla.jit(static_argnames=_DEQ_STATIC)  # sideq.xla: the CPU options of sideq's loops
def _deq_flow_empirical(model, params0, x, y, t1, ts, rtol, atol, gtol, *, max_steps, solver):
    return deq_gradient_flow(
        deq_empirical_objective(model, x, y),
        params0,
        t1=t1,
        saveat_ts=ts,
        rtol=rtol,
        atol=atol,
        gtol=gtol,
        max_steps=max_steps,
        solver=solver,
    )


@xla.jit(static_argnames=_DEQ_STATIC)  # sideq.xla: the CPU options of sideq's loops
def _deq_flow_population(model, params0, dist, xi, t1, ts, rtol, atol, gtol, *, max_steps, solver):
    return deq_gradient_flow(
        deq_population_objective(model, xi, dist),
        params0,
        t1=t1,
        saveat_ts=ts,
        rtol=rtol,
        atol=atol,
        gtol=gtol,
        max_steps=max_steps,
        solver=solver,
    )


def _check_real(params0):
    """Every concrete leaf of θ(0) real numbers (a one-line error naming the leaf)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params0):
        if isinstance(leaf, jax.core.Tracer):
            continue
        try:
            dtype = np.asarray(leaf).dtype
        except Exception:  # (ragged lists and other non-arrays)
            dtype = np.dtype(object)
        if dtype.kind not in "biuf":
            raise SideqInputError(
                f"theta0{jax.tree_util.keystr(path)}: expected real numbers, got {type(leaf).__name__} of {dtype}"
            )


def _deq_params(model: general.DEQ, params0, dtype):
    """θ(0) of a DEQ (checked), every leaf cast to ``dtype`` (a leaf is a
    trained parameter); a concrete multi_linear start with I − W2 singular is
    refused."""
    params = jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype), params0)
    if not jax.tree_util.tree_leaves(params):
        raise SideqInputError("theta0: the params pytree has no arrays; pass the DEQ's parameters")
    if model.kind == "multi_linear" and not isinstance(params["W2"], jax.core.Tracer):
        if int(model.proof(params)) == Status.SINGULAR:
            raise SingularModelError(
                "theta0['W2']: I - W2 is singular, so the linear DEQ has no unique equilibrium "
                "(the flow cannot start); choose W2 without the eigenvalue 1"
            )
    return params


def _deq_flow(model, params0, *, xi, x, y, dist, t1, ts, rtol, atol, gtol, max_steps, solver):
    """:func:`flow` for a :class:`sideq.general.DEQ` (arguments already checked
    but for the problem and the params)."""
    if (x is None) == (dist is None):
        raise SideqInputError("x/dist: give exactly one: data x (empirical risk) or a law dist (population risk)")
    dtype = jnp.result_type(float)
    _check_real(params0)
    # The checks of sideq.general / sideq.general_risk at the boundary, traced
    # abstractly (no compile, nothing solved): one-line errors naming the argument.
    if dist is not None:
        if y is not None:
            raise SideqInputError(
                "y: targets are only used with data x; the population risk uses f(x) = Xi x (or sigma(Xi x))"
            )
        check = lambda: general_risk.population_risk(model, params0, xi, dist)
    else:
        check = lambda: general.empirical_risk(model, params0, x, y, xi=xi)
    try:
        jax.eval_shape(check)
    except SideqInputError as err:  # (the flow's argument is theta0; one line, without JAX's note)
        msg = str(err).split("\n")[0]
        raise type(err)("theta0" + msg[len("params") :] if msg.startswith("params") else msg) from None
    params0 = _deq_params(model, params0, dtype)
    static = dict(max_steps=int(max_steps), solver=solver)
    t1 = jnp.asarray(t1, dtype)
    ts = None if ts is None else jnp.asarray(ts, dtype)
    tols = [jnp.asarray(v, dtype) for v in (rtol, atol, gtol)]
    if dist is not None:
        return _deq_flow_population(model, params0, dist, jnp.asarray(xi, dtype), t1, ts, *tols, **static)
    x = jnp.asarray(x, dtype)
    if y is None:
        y = general.target(model, jnp.asarray(xi, dtype), x)
    y = jnp.reshape(jnp.asarray(y, dtype), (x.shape[0], model.dim))
    return _deq_flow_empirical(model, params0, x, y, t1, ts, *tols, **static)


def _positive(name, value, *, allow_zero=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SideqInputError(f"{name}: expected a number, got {value!r}") from None
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        want = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise SideqInputError(f"{name}: expected {want}, got {value!r}")
    return v


def _check_saveat(saveat_ts, t1):
    if saveat_ts is None:
        return None
    ts = np.asarray(saveat_ts, dtype=np.float64)
    if ts.ndim == 0:
        ts = ts[None]
    if ts.ndim != 1 or ts.size == 0:
        raise SideqInputError(f"saveat_ts: expected a non-empty 1-D array of times, got shape {ts.shape}")
    if not np.all(np.isfinite(ts)):
        raise SideqInputError("saveat_ts: contains NaN or inf; pass finite times in [0, t1]")
    if ts[0] < 0 or ts[-1] > t1:
        raise SideqInputError(
            f"saveat_ts: times must lie in [0, t1] = [0, {t1:g}], got [{ts.min():g}, {ts.max():g}]; "
            "raise t1 or drop those times"
        )
    if np.any(np.diff(ts) < 0):
        raise SideqInputError("saveat_ts: times must be non-decreasing; pass np.sort(saveat_ts)")
    return ts


def flow(
    model: Model | general.DEQ,
    theta0,
    *,
    xi=None,
    x=None,
    y=None,
    dist=None,
    t1: float = 10.0,
    saveat_ts=None,
    rtol: float | None = None,
    atol: float | None = None,
    gtol: float = 0.0,
    max_steps: int = 4096,
    solver: diffrax.AbstractSolver | None = None,
    backend: str = "jaxopt",
    maxiter: int = 100,
) -> FlowTrajectory | DEQFlowTrajectory:
    r"""Gradient flow θ'(t) = −∇R(θ(t)) from ``theta0`` up to ``t1`` (Section 2; for the
    linear DEQ, Eq. (4) with the gradient of ERRATA.md §1).

    The continuous-time counterpart of :func:`sideq.train.descent`: give data
    ``x`` (n, d) [and ``y`` (n,); default targets f(x) = σ(ξᵀx)] for the
    empirical risk, or a law ``dist`` for the population risk.  ``saveat_ts``
    (in [0, t1], non-decreasing) are the times to record; the last row of the
    result is always the stop time (a steady state ‖∇R‖ ≤ ``gtol``, or t1).
    See :func:`gradient_flow` for the other arguments and the status codes.

    A :class:`sideq.general.DEQ` (``sideq.deq``, ``multi_linear``,
    ``multi_index``; Section 5) flows its params pytree: ``theta0`` is the
    params dict, ``xi`` is Ξ of shape (k, d) (targets f(x) = Ξx or σ(Ξx)), ``y``
    (n, k) targets instead of ``xi`` (required for a general ``sideq.deq``),
    ``dist`` the law of X for the population risk of
    :mod:`sideq.general_risk` (multi_linear and multi_index only); the
    equilibria use the model's own solver and ``maxiter`` (``backend`` and
    ``maxiter`` here are for the scalar models).  It returns a
    :class:`DEQFlowTrajectory` (``traj.params["W1"]`` of shape (K+1, k, d))
    with the stop and status fields of :class:`FlowTrajectory`; see
    :func:`deq_gradient_flow`.  ``jax.vmap`` over ``theta0`` batches runs: a
    failed run (a singular I − W2, say) ends with its status and leaves the
    others alone.

    Compiled once per static configuration (model, solver, sizes,
    ``max_steps``, backend): other θ(0), t1, tolerances or data of the same
    shape reuse the compiled flow.

    Args:
      model: ``sideq.linear()``, ``sideq.single_index(activation)`` or a
        :class:`sideq.general.DEQ`.
      theta0: θ(0), shape ``(p,)`` (a DEQ's params pytree), finite.
      xi: the target ξ, shape ``(d,)`` (Ξ, ``(k, d)``, for a DEQ); required
        for the scalar models.
      x: data, shape ``(n, d)`` (or ``(n,)`` for d = 1), for the empirical
        risk R̂.
      y: targets, ``(n,)`` (``(n, k)`` for a DEQ); default f(x).  Only with
        ``x``.
      dist: a law of X for the population risk R (Eq. (3)), instead of ``x``.
      t1: the end time, a finite number > 0.
      saveat_ts: the times to record, in [0, t1] and non-decreasing; None:
        only t = 0.
      rtol: the controller's relative tolerance, > 0; default
        :func:`default_flow_tol` of the default float dtype.
      atol: the controller's absolute tolerance, > 0; default as ``rtol``.
      gtol: stop at the first accepted step with ‖∇R‖ ≤ gtol (≥ 0; 0 never
        stops early).
      max_steps: the integrator's step limit, an integer ≥ 1.
      solver: a ``diffrax.AbstractSolver``; default ``diffrax.Dopri8()``.
      backend: the scalar models' equilibrium solver, ``"jaxopt"`` or
        ``"optimistix"`` (left at ``"jaxopt"`` for a DEQ).
      maxiter: the scalar models' solver iteration limit, ≥ 1 (left at 100
        for a DEQ).

    Returns:
      A :class:`FlowTrajectory` (a :class:`DEQFlowTrajectory` for a DEQ) in
      the default float dtype; its status as for :func:`gradient_flow`.

    Raises:
      SideqInputError: bad input, in one line naming the argument: ``backend``,
        ``solver``, ``max_steps``, ``maxiter``, ``t1``, ``gtol``, ``rtol``,
        ``atol``, ``saveat_ts``, the problem (``xi``, ``x``, ``y``, ``dist``;
        :func:`sideq.train.check_problem`) or ``theta0``; ``backend`` or
        ``maxiter`` set for a DEQ.
      SingularModelError: a start on the singular set (θ2(0) = 1 for the
        linear DEQ, I − W2(0) singular for multi_linear).

    Example (Theorem 3.3: the linear flow lands on the solution line)::

        traj = sideq.flow(sideq.linear(), [0.5, 0.9], xi=[2.0],
                               dist=sideq.uniform(0, 1, 1), gtol=1e-10)
        traj.theta[-1]   # (2α, 1 − α), α = ‖(0.5, 0.9) − (0, 1)‖/√5 ≈ 0.228
        traj.status      # Status.CONVERGED; traj.t_final ≈ 0.4

    Example (two outputs; W1W1ᵀ + (I − W2)(I − W2)ᵀ stays constant)::

        model = sideq.multi_linear(2)
        params0 = {"W1": 0.5 * jnp.eye(2), "W2": 0.3 * jnp.ones((2, 2))}
        traj = sideq.flow(model, params0, xi=jnp.eye(2), dist=sideq.uniform(0, 1, 2), gtol=1e-10)
        traj.params["W1"].shape   # (2, 2, 2): θ(0) and θ(t_final)
    """
    if backend not in BACKENDS:
        raise SideqInputError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if solver is not None and not isinstance(solver, diffrax.AbstractSolver):
        raise SideqInputError(
            f"solver: expected a diffrax solver such as diffrax.Dopri8(), got {type(solver).__name__}"
        )
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise SideqInputError(f"max_steps: must be an integer >= 1, got {max_steps!r}")
    check_maxiter(maxiter)
    t1 = _positive("t1", t1)
    gtol = _positive("gtol", gtol, allow_zero=True)
    dtype = jnp.result_type(float)
    tol = default_flow_tol(dtype)
    rtol = _positive("rtol", tol if rtol is None else rtol)
    atol = _positive("atol", tol if atol is None else atol)
    ts = _check_saveat(saveat_ts, t1)
    if isinstance(model, general.DEQ):
        if backend != "jaxopt" or maxiter != 100:
            raise SideqInputError(
                "backend/maxiter: set a sideq.general DEQ's solver and maxiter where it is built "
                "(sideq.deq(g, k, solver=..., maxiter=...)); flow's backend and maxiter are for "
                "sideq.linear / sideq.single_index"
            )
        return _deq_flow(
            model,
            theta0,
            xi=xi,
            x=x,
            y=y,
            dist=dist,
            t1=t1,
            ts=ts,
            rtol=rtol,
            atol=atol,
            gtol=gtol,
            max_steps=max_steps,
            solver=solver,
        )
    if xi is None and isinstance(model, Model):
        raise SideqInputError(f"xi: the target direction is required for {model.name}; pass xi of shape (d,)")
    xi, d, x, y, dist = check_problem(model, xi, x, y, dist, dtype)
    theta0 = check_theta0(model, theta0, d)
    static = dict(max_steps=int(max_steps), solver=solver, backend=backend, maxiter=int(maxiter))
    # Everything but the static configuration is an array: no recompiles.
    t1 = jnp.asarray(t1, dtype)
    ts = None if ts is None else jnp.asarray(ts, dtype)
    tols = [jnp.asarray(v, dtype) for v in (rtol, atol, gtol)]
    if dist is not None:
        return _flow_population(model, theta0, dist, xi, t1, ts, *tols, **static)
    return _flow_empirical(model, theta0, x, y, xi, t1, ts, *tols, **static)


def reached_rows(ts) -> np.ndarray:
    """Mask of the rows of one flow's ``ts`` that it integrated to: the requested
    times before the stop time ``t_final`` (the last row), and that row.

    Args:
      ts: one flow's ``ts``, shape ``(K+1,)``.

    Returns:
      A numpy bool array of shape ``(K+1,)``, its last entry True.
    """
    ts = np.asarray(ts)
    return np.append(ts[:-1] < ts[-1], True)


def until_stop(traj: FlowTrajectory | DEQFlowTrajectory) -> FlowTrajectory | DEQFlowTrajectory:
    """The rows of one flow that it reached, in time order, as numpy arrays.

    A :class:`FlowTrajectory` (or :class:`DEQFlowTrajectory`) has fixed-size
    rows (so that it jits and vmaps): the requested times, including those
    after the stop, then the stop time ``t_final``, so its ``ts`` can end with
    a step back in time.  This keeps the requested times before ``t_final`` and
    the final row: ``ts`` increases and every row was integrated to
    (``sideq flow --save`` writes these rows).  Not for a batch of flows (their
    stop times differ); index one run first.

    Args:
      traj: one flow's :class:`FlowTrajectory` or :class:`DEQFlowTrajectory`.

    Returns:
      The same type with numpy fields: the reached rows of each per-row field
      (:func:`reached_rows`; every leaf of ``params``), the scalars as they are.

    Raises:
      SideqInputError: ``traj.ts`` is not 1-D (a batch of flows).
    """
    ts = np.asarray(traj.ts)
    if ts.ndim != 1:
        raise SideqInputError(f"traj: until_stop takes one flow, got ts of shape {ts.shape}; index a run first")
    keep = reached_rows(ts)
    if isinstance(traj, DEQFlowTrajectory):
        return DEQFlowTrajectory(
            *(
                jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[keep], v)
                if field == "params"
                else np.asarray(v)[keep]
                if np.ndim(v)
                else np.asarray(v)
                for field, v in zip(traj._fields, traj)
            )
        )
    return FlowTrajectory(*(np.asarray(v)[keep] if np.ndim(v) else np.asarray(v) for v in traj))


def multi_linear_invariant(params):
    r"""Q = W1 W1ᵀ + b bᵀ + (I − W2)(I − W2)ᵀ (k × k) of a
    :func:`sideq.general.multi_linear` params dict, stacked leaves allowed
    (leading axes are kept): constant along the gradient flow of any risk
    that depends on params only through A = (I − W2)⁻¹[W1 b].

    This is Theorem 3.1 for k outputs (for k = 1, Q = ‖θ1‖² + b² + (1 − θ2)²,
    the conserved w of Eq. (8)).  Proof: with B = I − W2 and G = ∂R/∂A, the
    flow is W̃1' = −B⁻ᵀG (W̃1 = [W1 b]) and B' = −W2' = B⁻ᵀG Aᵀ, so
    (W̃1W̃1ᵀ)' = −B⁻ᵀG W̃1ᵀ − W̃1 Gᵀ B⁻¹ and, as B A = W̃1,
    (BBᵀ)' = B⁻ᵀG W̃1ᵀ + W̃1 Gᵀ B⁻¹: the two cancel.  Both the empirical risk
    and the population risk of the multi-neuron linear DEQ are functions of A.

    Args:
      params: a multi_linear params dict: ``"W1"`` ``(..., k, d)``, ``"W2"``
        ``(..., k, k)`` and, with a bias, ``"b"`` ``(..., k)``.

    Returns:
      Q, a numpy array of shape ``(..., k, k)``.
    """
    W1 = np.asarray(params["W1"])
    B = np.eye(W1.shape[-2]) - np.asarray(params["W2"])
    Q = W1 @ np.swapaxes(W1, -1, -2) + B @ np.swapaxes(B, -1, -2)
    if "b" in params:
        b = np.asarray(params["b"])
        Q = Q + b[..., :, None] * b[..., None, :]
    return Q


def flow_summary(model: Model | general.DEQ, traj: FlowTrajectory | DEQFlowTrajectory) -> dict:
    """JSON-ready summary of a flow (cf. :func:`sideq.train.summary`).

    Adds ``t_final`` (the stop time), ``rejected`` steps and, for the linear DEQ,
    ``conservation_drift`` = max over the recorded rows of |w(t) − w(0)|, the
    integration error of the conservation law of Theorem 3.1 (for
    :func:`sideq.general.multi_linear`, the largest entry of |Q(t) − Q(0)| with
    Q from :func:`multi_linear_invariant`).  A DEQ flow has ``params_final``
    (its leaves as nested lists) in place of ``theta_final`` and no distance.

    Args:
      model: the flow's model (a scalar Model or a DEQ).
      traj: one flow's :class:`FlowTrajectory` or :class:`DEQFlowTrajectory`.

    Returns:
      A dict of Python numbers, strings and lists; a non-finite number is
      None.
    """

    def num(v):
        v = float(v)
        return v if math.isfinite(v) else None

    if isinstance(traj, DEQFlowTrajectory):
        return _deq_flow_summary(model, traj, num)
    out = {
        "model": model.name,
        "theta_final": [float(v) for v in np.asarray(traj.theta[-1])],
        "loss_final": num(traj.loss[-1]),
        "distance_final": num(traj.distance[-1]),
        "grad_norm_final": num(traj.grad_norm[-1]),
        "status": Status(int(traj.status)).name.lower(),
        "steps": int(traj.steps),
        "rejected": int(traj.rejected),
        "t_final": float(traj.t_final),
        "max_residual": num(np.nanmax(np.asarray(traj.residual))),
    }
    out.update(
        non_unique_rows=int(traj.non_unique_rows),
        non_unique_t_first=num(traj.non_unique_t_first),
        non_unique_t_last=num(traj.non_unique_t_last),
    )
    if model.is_linear:
        out["conservation_drift"] = num(np.max(np.asarray(traj.drift)))
    return out


def _deq_flow_summary(model: general.DEQ, traj: DEQFlowTrajectory, num) -> dict:
    residual = np.asarray(traj.residual)
    finite = residual[np.isfinite(residual)]
    out = {
        "model": model.name,
        "params_final": jax.tree_util.tree_map(lambda v: np.asarray(v[-1]).tolist(), traj.params),
        "loss_final": num(traj.loss[-1]),
        "grad_norm_final": num(traj.grad_norm[-1]),
        "status": Status(int(traj.status)).name.lower(),
        "steps": int(traj.steps),
        "rejected": int(traj.rejected),
        "t_final": float(traj.t_final),
        "max_residual": num(finite.max()) if finite.size else None,
        "non_unique_rows": int(traj.non_unique_rows),
        "non_unique_t_first": num(traj.non_unique_t_first),
        "non_unique_t_last": num(traj.non_unique_t_last),
    }
    if getattr(model, "kind", None) == "multi_linear":
        Q = multi_linear_invariant(traj.params)
        out["conservation_drift"] = num(np.max(np.abs(Q - Q[0])))
    return out
