r"""Training dynamics: gradient descent θ(t+1) = θ(t) − η∇R(θ(t)) (Section 2).

Gradient descent is driven by optax (``optax.sgd(eta)`` by default; any
``optax.GradientTransformation``) and compiled once as a ``lax.scan``.  Each
step warm-starts every equilibrium from a first-order prediction off the
previous step's solution (:func:`sideq.scalar.predict_start`), so the Newton
solve usually finishes after one certified evaluation.

The trajectory records the quantities the paper's results are about:
R(θ(t)); the distance to the target (ξ, 0) (single-index, Theorem 3.9) or to the
solution line {(αξ, 1 − α)} (linear, Theorem 3.3); w(t) = ‖θ(t) − (0,…,0,1)‖²
(Eq. (8)); |1 − θ2(t)| (Lemma 3.2); ‖∇R(θ(t))‖; the worst equilibrium residual.

A run never raises inside jit: a non-finite iterate freezes θ and the run
carries ``Status.DIVERGED`` and the step at which it happened, so under vmap one
diverging run does not poison the others.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sideq.model import Model
from sideq.risk import Evaluation
from sideq.scalar import continuation, warm_start
from sideq.status import Status, first_status, has_status, run_repr, status_flags  # (re-exported)

__all__ = [
    "Trajectory",
    "gradient_descent",
    "distance_to_target",
    "w_distance",
    "solve_failure",
    "status_flags",
    "has_status",
]


_UNROLL = 2  # epochs per iteration of the compiled loop (see the end of gradient_descent)


def solve_failure(sol_status, loss, grad, *, flags=None):
    """Failure code of one step: the equilibria's worst failure (an iteration limit
    of the solver counts as SOLVER_FAILURE), DIVERGED for a non-finite risk or
    gradient, else CONVERGED (NON_UNIQUE is not a failure; it is tracked apart).
    ``flags`` (from :func:`status_flags`) saves the reduction when already known.

    Args:
      sol_status: the equilibria's status codes (any shape).
      loss: the risk R.
      grad: ∇R (an array or a pytree).
      flags: the bit mask of ``sol_status``, or None to compute it.

    Returns:
      An int32 :class:`~sideq.status.Status` code: SINGULAR, SOLVER_FAILURE,
      DIVERGED (in that priority) or CONVERGED.
    """
    flags = status_flags(sol_status) if flags is None else flags
    singular = has_status(flags, Status.SINGULAR)
    solver = has_status(flags, Status.SOLVER_FAILURE, Status.MAX_STEPS)
    bad = ~(jnp.isfinite(loss) & _all_finite(grad))
    return first_status(
        [
            (singular, Status.SINGULAR),
            (solver, Status.SOLVER_FAILURE),
            (bad, Status.DIVERGED),
        ]
    )


def _all_finite(v):
    """``jnp.all(jnp.isfinite(v))`` for a parameter vector (static, small size),
    unrolled: a reduction is a kernel launch of its own on CPU, an unrolled
    test fuses with what uses it."""
    v = jnp.ravel(v)
    return functools.reduce(jnp.logical_and, [jnp.isfinite(v[i]) for i in range(v.shape[0])])


def _max_abs(v):
    """``jnp.max(jnp.abs(v))`` for a parameter vector, unrolled (see :func:`_all_finite`)."""
    v = jnp.ravel(v)
    return functools.reduce(jnp.maximum, [jnp.abs(v[i]) for i in range(v.shape[0])])


class Trajectory(NamedTuple):
    r"""A run of gradient descent θ(t+1) = θ(t) − η∇R(θ(t)) (Section 2).

    Rows are the epochs ``t`` they record: every epoch t = 0..T (T + 1
    rows), or every m-th and the last (``save_every=m``: t = 0, m, 2m, …, T,
    so memory does not grow with T), or θ(0) and θ(T) alone (no history).
    The run's end and its online quantities (``loss_min``, ``first_met``,
    ``steps``, the non-unique counts) cover every epoch whichever rows are
    kept.  Under vmap every field gains a leading run axis.

    Attributes:
      theta: (T+1, p) θ(t).
      loss: (T+1,) R(θ(t)).
      grad_norm: (T+1,) ‖∇R(θ(t))‖.
      distance: (T+1,) distance to the target set (:func:`distance_to_target`).
      w: (T+1,) ‖θ(t) − (0,…,0,1)‖², Eq. (8).
      gap: (T+1,) |1 − θ2(t)| (Lemma 3.2).
      residual: (T+1,) worst |y − g(y)| over the samples or nodes (sigmoid,
        tanh: a bound on it from the Newton steps,
        :func:`sideq.scalar._newton_residual`).
      status: () :class:`~sideq.status.Status` code of the run's *end*: the
        failure that froze the run (DIVERGED, SINGULAR, SOLVER_FAILURE) if
        any; else NON_UNIQUE or UNVERIFIED if an equilibrium at the final θ is
        possibly non-unique or its uniqueness unproven; else CONVERGED if a
        tolerance was met, MAX_STEPS if not.  ``sideq.status.names`` or the
        repr gives the names.
      fail_step: () first epoch with a failure, −1 if none.
      steps: () first epoch meeting gtol/ltol/dtol, T if never.
      non_unique_epochs: () number of epochs t (of 0..T, up to a failure)
        whose equilibria were possibly non-unique (some NON_UNIQUE solve):
        the run's history in that regime, kept apart from its final status.
      non_unique_first, non_unique_last: () the first and last such epoch,
        −1 if none.
      t: (rows,) the epoch of each row.
      loss_min: () the smallest R(θ(t)) over t = 0..T (up to a failure).
      first_met: (3,) the first epoch with ‖∇R‖ ≤ gtol, R ≤ ltol and
        distance ≤ dtol, each −1 if never (or if off); ``steps`` is the
        smallest of them that is met, T if none.
    """

    theta: jax.Array
    loss: jax.Array
    grad_norm: jax.Array
    distance: jax.Array
    w: jax.Array
    gap: jax.Array
    residual: jax.Array
    status: jax.Array
    fail_step: jax.Array
    steps: jax.Array
    non_unique_epochs: jax.Array = 0
    non_unique_first: jax.Array = -1
    non_unique_last: jax.Array = -1
    t: jax.Array | None = None
    loss_min: jax.Array | None = None
    first_met: jax.Array | None = None

    def __repr__(self) -> str:
        return run_repr(self, "Trajectory")


def distance_to_target(model: Model, theta, xi):
    """‖θ − (ξ, [0,] 0)‖ for the single-index DEQ (Theorems 3.8, 3.9); for the
    linear DEQ the distance to the solution line {(αξ, [0,] 1 − α) : α ∈ ℝ}
    (Section 3.1), whose closest point is found in closed form.

    Args:
      model: a scalar :class:`~sideq.model.Model`.
      theta: θ, shape (p,).
      xi: ξ, shape (d,).

    Returns:
      The distance, a scalar in θ's dtype.
    """
    xi = jnp.asarray(xi, jnp.result_type(theta))
    if not model.is_linear:
        return jnp.linalg.norm(theta - model.theta_star(xi))
    # Line: c + α v with c = (0, [0,] 1), v = (ξ, [0,] −1).
    zeros = jnp.zeros((1,), theta.dtype)
    bias = [zeros] if model.bias else []
    c = jnp.concatenate([jnp.zeros_like(xi)] + bias + [jnp.ones((1,), theta.dtype)])
    v = jnp.concatenate([xi] + bias + [-jnp.ones((1,), theta.dtype)])
    alpha = (theta - c) @ v / (v @ v)
    return jnp.linalg.norm(theta - c - alpha * v)


def w_distance(theta):
    """w = ‖θ − (0,…,0,1)‖² (Lemma 3.7, Eq. (8)); conserved by the linear DEQ's flow (Theorem 3.1).

    Args:
      theta: θ, shape (p,).

    Returns:
      w, a scalar in θ's dtype.
    """
    e = jnp.zeros_like(theta).at[-1].set(1)
    return jnp.sum((theta - e) ** 2)


def gradient_descent(
    model: Model,
    objective: Callable,
    theta0,
    y0,
    xi,
    *,
    epochs: int,
    eta=None,
    optimizer: optax.GradientTransformation | None = None,
    gtol: float = 0.0,
    ltol: float = 0.0,
    dtol: float = 0.0,
    divergence: float = 1e8,
    history: bool = True,
    save_every: int = 1,
) -> Trajectory:
    r"""Run ``epochs`` steps of full-batch gradient descent on ``objective``.

    Args:
      model: the DEQ (for the diagnostics).
      objective: ``objective(theta, y0) -> (risk, Equilibrium)``, e.g. from
        :func:`sideq.risk.empirical_objective` or :func:`sideq.risk.population_objective`.
        Those carry ``descent_terms`` (with the default solver): the step's
        :class:`~sideq.risk.Evaluation` (risk, gradient in closed form from
        Eq. (1), statuses, worst residual) from one pass over the samples; that
        is used when present, then a ``value_and_grad`` attribute; otherwise
        the gradient is ``jax.value_and_grad`` through the equilibria.
      theta0: initial θ(0), shape (p,).
      y0: warm start for the equilibria at θ(0) (one per sample / node).
      xi: target ξ (for the distance diagnostics).
      epochs: number of steps T (static).
      eta: step size η (an array is fine: it is traced, so a sweep over η does
        not recompile); ignored when ``optimizer`` is given.
      optimizer: any optax transformation; default ``optax.sgd(eta)``, i.e.
        θ(t+1) = θ(t) − η∇R(θ(t)).
      gtol, ltol, dtol: ``steps`` is the first epoch with ‖∇R‖ ≤ gtol, R ≤ ltol
        or distance to the target ≤ dtol (``epochs`` if never); reaching one
        makes the run's status CONVERGED.  A tolerance of 0 is off.
      divergence: |θ| beyond this (or a non-finite value) counts as diverged.
      history: record every ``save_every``-th epoch and the last (rows t =
        0, m, 2m, …, T; every epoch by default).  ``False`` keeps two rows,
        θ(0) and θ(T) (for sweeps).  Either way memory does not grow with
        ``epochs`` beyond the rows kept.
      save_every: m ≥ 1, the stride of the recorded epochs (static).

    Pure and jit/vmap-able (``epochs`` static).  Not checked: call it from
    :mod:`sideq.train` or the CLI for validated single runs.

    Returns:
      A :class:`Trajectory` with the recorded rows (or θ(0) and θ(T) without
      history), the run's status (the end: a failure that froze it, else
      NON_UNIQUE or UNVERIFIED at θ(T), else CONVERGED if a tolerance was met,
      MAX_STEPS if not), ``steps``, ``fail_step`` and the online quantities
      over every epoch.

    Raises:
      ValueError: ``save_every`` < 1 with ``history``.
    """
    theta0 = jnp.asarray(theta0)
    dtype = theta0.dtype
    if optimizer is None:
        optimizer = optax.sgd(eta)
    measure, start = _measure_and_start(objective, theta0, y0, dtype)
    tols = (gtol, ltol, dtol)
    # With history, an epoch records one packed row (θ, ∇R, R, worst residual):
    # one write per epoch instead of seven, and the rest of its diagnostics
    # follow from those rows after the loop (each write is a kernel launch of
    # its own, which on CPU costs as much as a pass over a thousand samples).
    p = theta0.shape[-1]
    step = functools.partial(_descent_step, model, xi, measure, optimizer, tols, divergence, history, dtype)

    init = (
        theta0,
        optimizer.init(theta0),
        start,
        jnp.asarray([Status.CONVERGED, -1, 0, -1, -1, -1, -1, -1], jnp.int32),
        jnp.asarray(jnp.inf, dtype),
    )
    first = None
    if not history:
        ev_0 = measure(theta0, init[2])
        first = _diagnostics(model, xi, theta0, ev_0.loss, ev_0.grad, ev_0.residual)
    every = int(save_every) if history else 1
    if every < 1:
        raise ValueError(f"save_every: must be an integer >= 1, got {save_every!r}")
    carry, hist, blocks = _scan_epochs(step, init, epochs, every)
    return _trajectory(model, xi, measure, carry, hist, first, epochs, every, blocks, tols, dtype, p)


def _descent_step(model, xi, measure, optimizer, tols, divergence, history, dtype, carry, t, keep_row=True):
    """One epoch t of gradient descent, the body of the compiled loop:
    measure θ(t) (R, ∇R, the equilibria's statuses, the worst residual),
    update the online quantities and the failure marks, and take the step
    θ(t+1) = θ(t) − η∇R (through ``optimizer``), frozen at the first failure.
    Returns the next carry and the epoch's packed row (:func:`_record`; None
    without history or where ``keep_row`` is off)."""
    # ``marks`` packs the run's eight integers (failure code and step, the
    # count, first and last epoch in the non-unique regime, the first
    # epoch each tolerance was met): updated as one array they are one
    # kernel per epoch, not eight.
    theta, opt_state, y_warm, marks, loss_min = carry
    fail_code, fail_step, nu_count, nu_first, nu_last, *hits = (marks[i] for i in range(8))
    ev = measure(theta, y_warm)
    row = _diagnostics(model, xi, theta, ev.loss, ev.grad, ev.residual)
    hits = _first_hits(hits, _reached(row, tols), t)
    loss_min = jnp.where(fail_step < 0, jnp.fmin(loss_min, ev.loss), loss_min)
    flags, grad = ev.flags, ev.grad
    nu_count, nu_first, nu_last = _count_non_unique(flags, t, fail_step, nu_count, nu_first, nu_last)
    code = solve_failure(None, ev.loss, grad, flags=flags)
    failed_now = (fail_step < 0) & (code != Status.CONVERGED)
    fail_code = jnp.where(failed_now, code, fail_code)
    fail_step = jnp.where(failed_now, t, fail_step)
    updates, new_opt_state = optimizer.update(grad, opt_state, theta)
    new_theta = optax.apply_updates(theta, updates)
    blown = ~_all_finite(new_theta) | (_max_abs(new_theta) > divergence)
    blown_now = (fail_step < 0) & blown
    fail_code = jnp.where(blown_now, Status.DIVERGED, fail_code)
    fail_step = jnp.where(blown_now, t + 1, fail_step)
    frozen = fail_step >= 0
    keep = lambda old, new: jnp.where(frozen, old, new)  # noqa: E731
    new_theta = keep(theta, new_theta)
    # Next warm start: this step's solutions (the solver predicts from them
    # to first order, sideq.scalar.predict_start; where a solve failed, the
    # NaN it left makes the next solve start cold).
    new_y = ev.warm
    new_opt_state = jax.tree_util.tree_map(keep, opt_state, new_opt_state)
    marks = jnp.stack([fail_code, fail_step, nu_count, nu_first, nu_last, *hits]).astype(jnp.int32)
    carry = (new_theta, new_opt_state, new_y, marks, loss_min)
    return carry, (_record(theta, ev, dtype) if history and keep_row else None)


def _measure_and_start(objective, theta0, y0, dtype):
    """``(measure, start)``: a step's evaluation ``measure(theta, warm) ->
    Evaluation`` and the warm start at θ(0) that it carries from step to step.

    The objectives of sideq.risk give a step's terms, the gradient in closed
    form (Eq. (1)), from one pass over the samples (``descent_terms``, which
    takes and gives a Continuation: the solutions, their sensitivity and θ);
    any other objective is differentiated implicitly through its equilibria,
    and carries the WarmStart of its Equilibrium."""
    measure = getattr(objective, "descent_terms", None)
    y0 = jnp.asarray(y0, dtype)
    if measure is not None:
        # (with the sensitivity array, or None where the objective's σ gives it
        # from the solutions: the structure its descent_terms carries)
        return measure, continuation(y0, theta0, sensitivity=getattr(measure, "carries_sensitivity", True))
    start = warm_start(y0)
    value_and_grad = getattr(objective, "value_and_grad", None) or jax.value_and_grad(objective, has_aux=True)

    def measure(theta, y_warm):
        (loss, sol), grad = value_and_grad(theta, y_warm)
        return Evaluation(loss, grad, warm_start(sol), status_flags(sol.status), jnp.max(sol.residual))

    return measure, start


def _diagnostics(model, xi, theta, loss, grad, residual):
    """One row of a trajectory: (θ, R, ‖∇R‖, distance, w, |1 − θ2|, residual)."""
    return (
        theta,
        loss,
        jnp.linalg.norm(grad),
        distance_to_target(model, theta, xi),
        w_distance(theta),
        jnp.abs(1 - theta[-1]),
        residual,
    )


def _record(theta, ev: Evaluation, dtype):
    """The packed row an epoch writes: (θ, ∇R, R, worst residual)."""
    return jnp.concatenate([theta, ev.grad.astype(dtype), jnp.stack([ev.loss, ev.residual]).astype(dtype)])


def _unpack(model, xi, rows, p):
    """The rows of :func:`_diagnostics` from the packed rows of :func:`_record`."""
    diagnostics = functools.partial(_diagnostics, model, xi)
    return jax.vmap(diagnostics)(rows[:, :p], rows[:, 2 * p], rows[:, p : 2 * p], rows[:, 2 * p + 1])


def _reached(row, tols):
    """Which tolerance a row of :func:`_diagnostics` meets, (gtol, ltol, dtol).
    A tolerance of 0 is off (an exact 0.0 risk must not count as reached in
    one evaluation order and not in another)."""
    gtol, ltol, dtol = tols
    _, loss, gnorm, dist = row[:4]
    return ((gtol > 0) & (gnorm <= gtol), (ltol > 0) & (loss <= ltol), (dtol > 0) & (dist <= dtol))


def _first_hits(hits, met, t, ok=True):
    """The first epoch each tolerance was met (−1: not yet), with epoch ``t``."""
    return [jnp.where((h < 0) & m & ok, t, h) for h, m in zip(hits, met)]


def _count_non_unique(flags, t, fail_step, nu_count, nu_first, nu_last):
    """The count, first and last epoch in the non-unique regime, with epoch
    ``t``; an epoch counts while the run is not frozen by a failure."""
    now = has_status(flags, Status.NON_UNIQUE) & (fail_step < 0)
    return (nu_count + now.astype(jnp.int32), jnp.where(now & (nu_first < 0), t, nu_first), jnp.where(now, t, nu_last))


def _scan_epochs(step, init, epochs, every):
    """The compiled loop over the epochs 0..T−1: ``(carry, hist, blocks)``,
    hist a row at the first epoch of each block of ``every`` epochs (every
    epoch when ``every`` is 1), blocks the number of rows.

    Two epochs per iteration of the compiled loop: the loop's state lives in
    fixed buffers, so XLA copies the values that are read after their
    successor is written (θ into the warm start's θ', the epoch counter, the
    packed integers), one kernel launch each per iteration; unrolled by two,
    the first epoch's outputs go to fresh buffers and half of those copies go
    (the flags of sideq.scalar.solve_warm are returned in its step's slot)."""
    blocks = epochs // every  # whole blocks of m epochs, a row at the first of each
    if every == 1:
        carry, hist = jax.lax.scan(step, init, jnp.arange(epochs, dtype=jnp.int32), unroll=_UNROLL)
        return carry, hist, blocks

    def unrecorded(carry, t):
        return step(carry, t, keep_row=False)

    # A row at the first epoch of each block of m, the block's other
    # epochs unrecorded, then the epochs past the last whole block.
    def block(carry, t0):
        carry, row = step(carry, t0)
        carry, _ = jax.lax.scan(unrecorded, carry, t0 + 1 + jnp.arange(every - 1, dtype=jnp.int32), unroll=_UNROLL)
        return carry, row

    carry, hist = jax.lax.scan(block, init, every * jnp.arange(blocks, dtype=jnp.int32))
    if epochs > blocks * every:  # a last, shorter block
        carry, row = step(carry, jnp.int32(blocks * every))
        hist = jnp.concatenate([hist, row[None]])
        carry, _ = jax.lax.scan(
            unrecorded, carry, jnp.arange(blocks * every + 1, epochs, dtype=jnp.int32), unroll=_UNROLL
        )
        blocks += 1
    return carry, hist, blocks


def _trajectory(model, xi, measure, carry, hist, first, epochs, every, blocks, tols, dtype, p) -> Trajectory:
    """The :class:`Trajectory` from the loop's final carry and rows: θ(T)
    measured once more, its row, the online quantities and the status of
    the run's end.  ``hist`` None (no history): the rows are θ(0)'s
    (``first``) and θ(T)'s."""
    theta_T, _, y_T, marks, loss_min = carry
    fail_code, fail_step, nu_count, nu_first, nu_last, *hits = (marks[i] for i in range(8))
    ev_T = measure(theta_T, y_T)
    last = _diagnostics(model, xi, theta_T, ev_T.loss, ev_T.grad, ev_T.residual)
    hits = _first_hits(hits, _reached(last, tols), epochs, fail_step < 0)
    loss_min = jnp.where(fail_step < 0, jnp.fmin(loss_min, ev_T.loss), loss_min)
    nu_count, nu_first, nu_last = _count_non_unique(ev_T.flags, epochs, fail_step, nu_count, nu_first, nu_last)
    if first is None:
        rows = _unpack(model, xi, jnp.concatenate([hist, _record(theta_T, ev_T, dtype)[None]]), p)
        t_rows = jnp.append(every * jnp.arange(blocks, dtype=jnp.int32), jnp.int32(epochs))
    else:
        rows = (jnp.stack([f, lst]) for f, lst in zip(first, last))
        t_rows = jnp.asarray([0, epochs], jnp.int32)
    theta, loss, gnorm, dist, w, gap, resid = rows
    first_met = jnp.stack(hits).astype(jnp.int32)
    hit = jnp.min(jnp.where(first_met >= 0, first_met, epochs + 1))
    hit = jnp.where(hit <= epochs, hit, -1)
    steps = jnp.where(hit >= 0, hit, epochs).astype(jnp.int32)
    # The status of the run's end: its equilibria at θ(T) (a failure at any
    # epoch froze the run, so θ(T) is the state it failed in).
    status = first_status(
        [
            (fail_step >= 0, fail_code),
            (has_status(ev_T.flags, Status.NON_UNIQUE), Status.NON_UNIQUE),
            (has_status(ev_T.flags, Status.UNVERIFIED), Status.UNVERIFIED),
            (hit >= 0, Status.CONVERGED),
        ],
        default=Status.MAX_STEPS,
    )
    return Trajectory(
        theta,
        loss,
        gnorm,
        dist,
        w,
        gap,
        resid,
        status,
        fail_step,
        steps,
        nu_count,
        nu_first,
        nu_last,
        t_rows,
        loss_min,
        first_met,
    )
