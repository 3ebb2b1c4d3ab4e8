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
chord iteration keeps failing at these tolerances) and ≈ 40× the time; it is
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
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from sideq import xla
from sideq.dynamics import distance_to_target, solve_failure, w_distance
from sideq.errors import SideqInputError
from sideq.model import Model
from sideq.risk import (
    _default_y0,
    empirical_objective,
    initial_nodes_y0,
    population_objective,
)
from sideq.scalar import BACKENDS
from sideq.status import Status, has_status, run_repr, status_flags
from sideq.train import check_maxiter, check_problem, check_theta0

__all__ = [
    "FlowTrajectory", "gradient_flow", "vector_field", "default_flow_tol", "flow", "flow_summary",
    "until_stop", "reached_rows", "PROBE",
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
    """

    ts: jax.Array  # (K+1,)   requested times, then t_final
    theta: jax.Array  # (K+1, p) θ(t)
    loss: jax.Array  # (K+1,)   R(θ(t))
    grad_norm: jax.Array  # (K+1,)   ‖∇R(θ(t))‖
    distance: jax.Array  # (K+1,)   distance to the target set (sideq.dynamics.distance_to_target)
    w: jax.Array  # (K+1,)   ‖θ(t) − (0,…,0,1)‖²
    drift: jax.Array  # (K+1,)   |w(t) − w(0)|; ≡ 0 for the exact linear-DEQ flow (Theorem 3.1)
    gap: jax.Array  # (K+1,)   |1 − θ2(t)|
    residual: jax.Array  # (K+1,)   worst |y − g(y)| over samples / nodes
    t_final: jax.Array  # ()       stop time: the steady-state time, or t1
    status: jax.Array  # ()       sideq.Status code of the flow's end (see gradient_flow)
    steps: jax.Array  # ()       accepted integrator steps
    rejected: jax.Array  # ()       rejected integrator steps
    non_unique_rows: jax.Array  # ()  reached rows whose equilibria were possibly non-unique
    non_unique_t_first: jax.Array  # ()  the first such row's time, NaN if none
    non_unique_t_last: jax.Array  # ()  the last such row's time, NaN if none

    def __repr__(self) -> str:
        return run_repr(self, "FlowTrajectory")


def default_flow_tol(dtype) -> float:
    """Default ``rtol = atol``: 1e-12 in float64, 100 machine epsilons in lower precision."""
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
        evaluation, e.g. ``lambda th: sideq.risk._default_y0(model, th, x)`` or
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

    Returns a :class:`FlowTrajectory`.  Status (of the flow's end): CONVERGED
    when the steady state was reached, MAX_STEPS when t1 or ``max_steps`` came
    first, NON_UNIQUE (UNVERIFIED) when an equilibrium at θ(t_final) may not be
    unique (its uniqueness rests on estimated slope bounds); the recorded rows
    in the non-unique regime are counted in ``non_unique_rows``, with the
    first and last such time beside them; DIVERGED on non-finite values
    or |θ| > ``divergence``, SINGULAR / SOLVER_FAILURE when an equilibrium solve
    or the integrator failed.  diffrax rejects steps into regions where ∇R is
    not finite, so such a flow stalls at the edge until ``max_steps``; it is
    reported DIVERGED when ∇R is non-finite a small probe step (relative length
    :data:`PROBE`) further along the flow.

    Pure and jit/vmap-able (``model``, ``objective``, ``cold_start``,
    ``max_steps``, ``solver`` and the presence of ``saveat_ts`` are static);
    nothing is checked: use :func:`flow` for validated single runs.
    """
    theta0 = jnp.asarray(theta0)
    dtype = theta0.dtype
    tol = default_flow_tol(dtype)
    rtol = jnp.asarray(tol if rtol is None else rtol, dtype)
    atol = jnp.asarray(tol if atol is None else atol, dtype)
    gtol = jnp.asarray(gtol, dtype)
    divergence = jnp.asarray(divergence, dtype)
    t1 = jnp.asarray(t1, dtype)
    t0 = jnp.zeros((), dtype)
    solver = diffrax.Dopri8() if solver is None else solver

    value_and_grad = jax.value_and_grad(_risk_fn(objective, cold_start), has_aux=True)
    f = vector_field(objective, cold_start)

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
        diffrax.ODETerm(f), solver, t0, t1, None, theta0,
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
    rows = jnp.where(reached[:, None], ys, theta_final[None, :])
    theta = jnp.concatenate([rows, theta_final[None]])
    ts_out = jnp.concatenate([ts, t_final[None]])

    def diagnostics(th):
        (loss, eq), grad = value_and_grad(th)
        flags = status_flags(eq.status)
        code = solve_failure(eq.status, loss, grad, flags=flags)
        code = jnp.where(jnp.all(jnp.isfinite(th)), code, Status.DIVERGED)
        return (loss, jnp.linalg.norm(grad), distance_to_target(model, th, xi), w_distance(th),
                jnp.abs(1 - th[-1]), jnp.max(eq.residual), code,
                has_status(flags, Status.NON_UNIQUE), has_status(flags, Status.UNVERIFIED), grad)

    loss, gnorm, dist, w, gap, resid, codes, non_unique, unverified, grads = jax.vmap(diagnostics)(theta)
    drift = jnp.abs(w - w_distance(theta0))

    failed = codes != Status.CONVERGED
    fail_code = codes[jnp.argmax(failed)]
    result = sol.result
    steady_hit, blown_hit = sol.event_mask
    event = result == diffrax.RESULTS.event_occurred
    limit = (result == diffrax.RESULTS.successful) | (result == diffrax.RESULTS.max_steps_reached)
    # A stall at the edge of a non-finite region ends at max_steps: probe ahead.
    f_final = -grads[-1]
    step = PROBE * (1 + jnp.linalg.norm(theta_final)) / jnp.maximum(
        gnorm[-1], jnp.finfo(dtype).tiny)
    probe_ok = jnp.all(jnp.isfinite(f(t_final, theta_final + step * f_final, None)))
    stalled = (result == diffrax.RESULTS.max_steps_reached) & ~probe_ok
    # The status of the flow's end: a failure at any recorded row, else the
    # equilibria at θ(t_final) (the last row), then how the integration ended.
    status = jnp.select(
        [jnp.any(failed), event & blown_hit, stalled, ~(event | limit), non_unique[-1], unverified[-1],
         event & steady_hit],
        [fail_code, Status.DIVERGED, Status.DIVERGED, Status.SOLVER_FAILURE, Status.NON_UNIQUE,
         Status.UNVERIFIED, Status.CONVERGED],
        Status.MAX_STEPS,
    ).astype(jnp.int32)
    # The history in the non-unique regime, over the rows the flow reached
    # (the requested times up to t_final, and t_final).
    seen = non_unique & jnp.concatenate([reached, jnp.ones((1,), bool)])
    anyseen = jnp.any(seen)
    stats = sol.stats
    return FlowTrajectory(
        ts_out, theta, loss, gnorm, dist, w, drift, gap, resid, t_final, status,
        jnp.asarray(stats["num_accepted_steps"], jnp.int32),
        jnp.asarray(stats["num_rejected_steps"], jnp.int32),
        jnp.sum(seen).astype(jnp.int32),
        jnp.where(anyseen, jnp.min(jnp.where(seen, ts_out, jnp.inf)), jnp.nan),
        jnp.where(anyseen, jnp.max(jnp.where(seen, ts_out, -jnp.inf)), jnp.nan),
    )


# ----------------------------------------------------------------------------
# Checked single runs.

_STATIC = ("model", "max_steps", "solver", "backend", "maxiter")


@xla.jit(static_argnames=_STATIC)  # sideq.xla: the CPU options of sideq's loops
def _flow_empirical(model, theta0, x, y, xi, t1, ts, rtol, atol, gtol, *, max_steps, solver,
                    backend, maxiter):
    objective = empirical_objective(model, x, y, backend=backend, maxiter=maxiter)
    return gradient_flow(
        model, objective, theta0, xi, cold_start=lambda th: _default_y0(model, th, x),
        t1=t1, saveat_ts=ts, rtol=rtol, atol=atol, gtol=gtol, max_steps=max_steps, solver=solver,
    )


@xla.jit(static_argnames=_STATIC)  # sideq.xla: the CPU options of sideq's loops
def _flow_population(model, theta0, dist, xi, t1, ts, rtol, atol, gtol, *, max_steps, solver,
                     backend, maxiter):
    objective = population_objective(model, xi, dist, backend=backend, maxiter=maxiter)
    return gradient_flow(
        model, objective, theta0, xi, cold_start=lambda th: initial_nodes_y0(model, th, xi, dist),
        t1=t1, saveat_ts=ts, rtol=rtol, atol=atol, gtol=gtol, max_steps=max_steps, solver=solver,
    )


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
    model: Model,
    theta0,
    *,
    xi,
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
) -> FlowTrajectory:
    r"""Gradient flow θ'(t) = −∇R(θ(t)) from ``theta0`` up to ``t1`` (Section 2; for the
    linear DEQ, Eq. (4) with the gradient of ERRATA.md §1).

    The continuous-time counterpart of :func:`sideq.train.descent`: give data
    ``x`` (n, d) [and ``y`` (n,); default targets f(x) = σ(ξᵀx)] for the
    empirical risk, or a law ``dist`` for the population risk.  ``saveat_ts``
    (in [0, t1], non-decreasing) are the times to record; the last row of the
    result is always the stop time (a steady state ‖∇R‖ ≤ ``gtol``, or t1).
    See :func:`gradient_flow` for the other arguments and the status codes.

    Compiled once per static configuration (model, solver, sizes,
    ``max_steps``, backend): other θ(0), t1, tolerances or data of the same
    shape reuse the compiled flow.

    Example (Theorem 3.3: the linear flow lands on the solution line)::

        traj = sideq.flow(sideq.linear(), [0.5, 0.9], xi=[2.0],
                               dist=sideq.uniform(0, 1, 1), gtol=1e-10)
        traj.theta[-1]   # (2α, 1 − α), α = ‖(0.5, 0.9) − (0, 1)‖/√5 ≈ 0.228
        traj.status      # Status.CONVERGED; traj.t_final ≈ 0.4
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
    times before the stop time ``t_final`` (the last row), and that row."""
    ts = np.asarray(ts)
    return np.append(ts[:-1] < ts[-1], True)


def until_stop(traj: FlowTrajectory) -> FlowTrajectory:
    """The rows of one flow that it reached, in time order, as numpy arrays.

    A :class:`FlowTrajectory` has fixed-size rows (so that it jits and vmaps):
    the requested times, including those after the stop, then the stop time
    ``t_final``, so its ``ts`` can end with a step back in time.  This keeps the
    requested times before ``t_final`` and the final row: ``ts`` increases and
    every row was integrated to (``sideq flow --save`` writes these rows).
    Not for a batch of flows (their stop times differ); index one run first.
    """
    ts = np.asarray(traj.ts)
    if ts.ndim != 1:
        raise SideqInputError(f"traj: until_stop takes one flow, got ts of shape {ts.shape}; index a run first")
    keep = reached_rows(ts)
    return FlowTrajectory(*(np.asarray(v)[keep] if np.ndim(v) else np.asarray(v) for v in traj))


def flow_summary(model: Model, traj: FlowTrajectory) -> dict:
    """JSON-ready summary of a flow (cf. :func:`sideq.train.summary`).

    Adds ``t_final`` (the stop time), ``rejected`` steps and, for the linear DEQ,
    ``conservation_drift`` = max over the recorded rows of |w(t) − w(0)|, the
    integration error of the conservation law of Theorem 3.1.
    """

    def num(v):
        v = float(v)
        return v if math.isfinite(v) else None

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
    out.update(non_unique_rows=int(traj.non_unique_rows), non_unique_t_first=num(traj.non_unique_t_first),
               non_unique_t_last=num(traj.non_unique_t_last))
    if model.is_linear:
        out["conservation_drift"] = num(np.max(np.asarray(traj.drift)))
    return out
