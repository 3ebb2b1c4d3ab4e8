r"""Checked single runs of gradient descent: the entry point for scripts and the CLI.

:func:`descent` validates its arguments (one-line :class:`~sideq.errors.SideqInputError`
naming the argument), builds the empirical or population objective, and runs
:func:`sideq.dynamics.gradient_descent` under one ``jax.jit`` (:func:`sideq.xla.jit`) whose cache is
shared by every call with the same static configuration (model, epochs,
optimizer, sizes): a second run with another θ(0), η or data set of the same
shape does not recompile.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import optax

from sideq import xla
from sideq.data import as_real, check_law
from sideq.dynamics import Trajectory, gradient_descent
from sideq.errors import SideqInputError, SingularModelError
from sideq.general import DEQ, descent_from_scalar_api
from sideq.model import Model
from sideq.risk import (
    _check_xi,
    default_y0,
    empirical_objective,
    initial_nodes_y0,
    population_objective,
    targets,
)
from sideq.scalar import BACKENDS, concrete
from sideq.status import Status

__all__ = [
    "descent",
    "descent_empirical",
    "check_theta0",
    "check_step_size",
    "check_problem",
    "history_stride",
    "HISTORY_BYTES",
]


def check_problem(model: Model, xi, x, y, dist, dtype, *, targets_now: bool = True):
    """Validate the training problem shared by descent, flow and sweeps.

    Exactly one of data ``x`` (empirical risk; ``y`` defaults to f(x) = σ(ξᵀx))
    or a law ``dist`` (population risk).

    Args:
      model: a scalar :class:`~sideq.model.Model`.
      xi: the target ξ, shape ``(d,)`` (a scalar when d = 1).
      x: data, shape ``(n, d)`` or ``(n,)`` (read as d = 1), finite; or None
        with ``dist``.
      y: targets, shape ``(n,)`` and finite; None for f(x) = σ(ξᵀx).  Only
        with ``x``.
      dist: a law (:func:`sideq.data.uniform`, :func:`sideq.data.gaussian`),
        or None with ``x``.
      dtype: the float dtype of the returned arrays.
      targets_now: compute the default targets f(x) here (True), or leave ``y``
        None and ``x`` a numpy array (False), for a caller that computes f(x)
        inside its compiled run (no dispatch of its own).

    Returns:
      ``(xi, d, x, y, dist)``: ``xi`` a ``dtype`` array of shape ``(d,)``, the
      input dimension d, and ``x`` ``(n, d)``, ``y`` ``(n,)`` as ``dtype``
      arrays with ``dist`` None; or ``x``, ``y`` None and ``dist`` as given for
      a law.

    Raises:
      SideqInputError: ``model`` is not a :class:`~sideq.model.Model`, ``xi``
        is missing or of the wrong shape, not exactly one of ``x`` and
        ``dist``, ``y`` given with a law, a bad law, an empty, misshapen or
        non-finite ``x`` or ``y``, or non-finite targets f(x).
    """
    if not isinstance(model, Model):
        raise SideqInputError(f"model: expected sideq.linear() or sideq.single_index(...), got {type(model).__name__}")
    if xi is None:
        raise SideqInputError("xi: the target f(x) = σ(ξᵀx) needs ξ, shape (d,); pass xi=...")
    if (x is None) == (dist is None):
        raise SideqInputError("x/dist: give exactly one: data x (empirical risk) or a law dist (population risk)")
    if dist is not None:
        check_law(dist)
        if y is not None:
            raise SideqInputError("y: targets are only used with data x; the population risk uses f(x) = sigma(xi'x)")
        return _check_xi(xi, dist.d).astype(dtype), dist.d, None, None, dist
    x = as_real(x, "x")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise SideqInputError(f"x: expected a non-empty array of shape (n, d) or (n,), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SideqInputError("x: contains NaN or inf; remove those samples")
    d = x.shape[1]
    xi = _check_xi(xi, d).astype(dtype)
    if y is not None:
        y = as_real(y, "y")
        if y.shape != (x.shape[0],):
            raise SideqInputError(f"y: expected shape ({x.shape[0]},) to match x, got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise SideqInputError("y: contains NaN or inf; remove those samples")
        y = jnp.asarray(y, dtype)
    x = jnp.asarray(x, dtype) if targets_now else x.astype(dtype)
    if y is None and targets_now:
        y = targets(model, xi, x)
        if not bool(jnp.all(jnp.isfinite(y))):
            raise SideqInputError("y: the targets f(x) = sigma(xi'x) contain NaN or inf; check xi and x")
    return xi, d, x, y, None


def check_theta0(model: Model, theta0, d: int):
    """θ(0) as a float array of shape (p,), or a one-line error naming ``theta0``.

    Args:
      model: a scalar :class:`~sideq.model.Model`.
      theta0: θ(0) = ``(θ1, [b,] θ2)``, p = :meth:`~sideq.model.Model.n_params`
        values.
      d: the input dimension.

    Returns:
      A numpy array of shape ``(p,)`` in the default float dtype
      (``jnp.result_type(float)``: float32 unless x64 is on).

    Raises:
      SideqInputError: ``theta0`` is not of shape ``(p,)`` or not finite.
      SingularModelError: θ2(0) = 1 for the linear DEQ (Lemma 3.2 needs
        θ2(0) ≠ 1).
    """
    p = model.n_params(d)
    arr = np.asarray(theta0, dtype=np.float64)
    if arr.shape != (p,):
        names = "theta1 (d values), b, theta2" if model.bias else "theta1 (d values), theta2"
        raise SideqInputError(f"theta0: expected {p} values ({names}) for d = {d}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SideqInputError(f"theta0: contains non-finite values {arr.tolist()}; pass finite numbers")
    if model.is_linear and model.activation.slope_max * arr[-1] == 1.0:
        raise SingularModelError(
            "theta0: theta2(0) = 1 is the singular hyperplane of the linear DEQ "
            "(Lemma 3.2 needs theta2(0) != 1); start elsewhere"
        )
    return arr.astype(jnp.result_type(float))


def check_tolerances(**tols) -> list[float]:
    """The stopping tolerances (gtol, ltol, dtol, ...) as floats, each a number
    >= 0, or a one-line error naming the first bad one."""
    out = []
    for name, t in tols.items():
        try:
            v = float(t)
        except (TypeError, ValueError):
            v = math.nan
        if not v >= 0:
            raise SideqInputError(f"{name}: a tolerance must be a number >= 0 (0 turns it off), got {t!r}")
        out.append(v)
    return out


def check_maxiter(maxiter):
    """The equilibrium solver's iteration limit: an integer >= 1."""
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise SideqInputError(f"maxiter: the equilibrium solver's limit must be an integer >= 1, got {maxiter!r}")


def check_step_size(eta):
    """Refuse a step size η that is not finite and > 0 (every entry, for an
    array of them); a traced η is not checked.

    Args:
      eta: the step size η, a number or an array.

    Raises:
      SideqInputError: an entry of a concrete ``eta`` is not finite or ≤ 0.
    """
    eta_c = concrete(eta)  # (numpy: no eager jax dispatch)
    if eta_c is not None and not (np.all(np.isfinite(eta_c)) and np.all(eta_c > 0)):
        raise SideqInputError(f"eta: the step size must be a positive number, got {eta_c.tolist()}")


@xla.jit(static_argnames=("model", "epochs", "optimizer", "backend", "maxiter", "history", "save_every"))
def _descent_empirical(
    model, theta0, x, y, xi, eta, tols, *, epochs, optimizer, backend, maxiter, history=True, save_every=1
):
    """Gradient descent on the empirical risk R̂ (Section 2), compiled: the
    unchecked core of :func:`descent` (published as :data:`descent_empirical`;
    its programs are named ``jit__descent_empirical``, which is what the
    persistent compilation cache files them under)."""
    if y is None:  # the default targets f(x) = σ(ξᵀx)
        y = targets(model, xi, x)
    objective = empirical_objective(model, x, y, backend=backend, maxiter=maxiter)
    opt = optax.sgd(eta) if optimizer is None else optimizer
    return gradient_descent(
        model,
        objective,
        theta0,
        default_y0(model, theta0, x),
        xi,
        epochs=epochs,
        optimizer=opt,
        gtol=tols[0],
        ltol=tols[1],
        dtol=tols[2],
        history=history,
        save_every=save_every,
    )


@xla.jit(static_argnames=("model", "epochs", "optimizer", "backend", "maxiter", "save_every"))
def _descent_population(model, theta0, dist, xi, eta, tols, *, epochs, optimizer, backend, maxiter, save_every=1):
    objective = population_objective(model, xi, dist, backend=backend, maxiter=maxiter)
    opt = optax.sgd(eta) if optimizer is None else optimizer
    return gradient_descent(
        model,
        objective,
        theta0,
        initial_nodes_y0(model, theta0, xi, dist),
        xi,
        epochs=epochs,
        optimizer=opt,
        gtol=tols[0],
        ltol=tols[1],
        dtol=tols[2],
        save_every=save_every,
    )


#: :func:`descent` on data without its checks, compiled once per static
#: configuration and vmap-able over runs: ``descent_empirical(model, theta0,
#: x, y, xi, eta, tols, *, epochs, optimizer, backend, maxiter, history=True,
#: save_every=1)`` with ``y`` None for the targets f(x) = σ(ξᵀx) and ``tols``
#: the array (gtol, ltol, dtol); returns a :class:`~sideq.dynamics.Trajectory`
#: (``sideq.paper.reproduce`` runs its seeds with it).
descent_empirical = _descent_empirical

#: The memory a descent's history may take unless told otherwise (bytes).
HISTORY_BYTES = 256 * 2**20


def history_stride(epochs: int, p: int, itemsize: int = 8, budget: int | None = None) -> int:
    """The smallest m with the rows t = 0, m, 2m, …, T of a descent's history
    within ``budget`` bytes (default :data:`HISTORY_BYTES`).  A row costs
    (6p + 16) numbers: the packed row the loop writes (θ, ∇R, R, residual),
    its copy with the last row appended, and the diagnostics unpacked from it
    (XLA's memory analysis of the compiled run counts about 12 + 6p).

    Args:
      epochs: the run's number of epochs T.
      p: the number of parameters.
      itemsize: bytes per number (8 for float64).
      budget: the byte budget; default :data:`HISTORY_BYTES`.

    Returns:
      The stride m, an int ≥ 1 (1 when every epoch fits).
    """
    row = (6 * int(p) + 16) * int(itemsize)
    rows = max(2, int(HISTORY_BYTES if budget is None else budget) // row)
    return max(1, -(-int(epochs) // (rows - 1)))


def check_save_every(save_every, epochs: int) -> int:
    """``save_every``: an integer >= 1 (not above ``epochs``), or a one-line error."""
    if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)) or save_every < 1:
        raise SideqInputError(
            f"save_every: must be an integer >= 1 (leave it out for the automatic stride), got {save_every!r}"
        )
    return int(min(save_every, epochs))


def descent(
    model: Model,
    theta0,
    *,
    xi=None,
    x=None,
    y=None,
    dist=None,
    eta=0.1,
    epochs: int = 100,
    optimizer: optax.GradientTransformation | None = None,
    backend: str = "jaxopt",
    gtol: float = 0.0,
    ltol: float = 0.0,
    dtol: float = 0.0,
    maxiter: int = 100,
    save_every: int | None = None,
) -> Trajectory:
    r"""Gradient descent θ(t+1) = θ(t) − η∇R(θ(t)) from ``theta0`` (Section 2).

    Give data ``x`` (n, d) [and ``y`` (n,); default targets f(x) = σ(ξᵀx)] for the
    empirical risk, or a law ``dist`` (``sideq.uniform``/``sideq.gaussian``) for
    the population risk.  ``optimizer`` replaces ``optax.sgd(eta)``.  The run's
    ``steps`` is the first epoch with ‖∇R‖ ≤ gtol, R ≤ ltol or distance to the
    target ≤ dtol (status CONVERGED); without a tolerance met the status is
    MAX_STEPS.  A failure (DIVERGED, SINGULAR, SOLVER_FAILURE), or NON_UNIQUE
    or UNVERIFIED at the final θ, takes priority over both (the status is the
    run's end; ``non_unique_epochs`` counts the epochs in the non-unique
    regime), so the test for "met a tolerance" is ``steps < epochs``
    (or, for a run that meets one only at θ(T), ``steps == epochs``, its final values).

    The history is thinned by ``save_every``, so memory does not grow with
    ``epochs``; the online quantities cover every epoch whatever the stride:
    ``loss_min``, ``first_met`` (per tolerance), ``steps``, the status and the
    non-unique counts.  The run is compiled once per static configuration
    (model, epochs, optimizer, backend, maxiter, stride, shapes).

    A :class:`sideq.general.DEQ` as ``model`` (``theta0`` its params pytree,
    ``xi`` its (k, d) target or None with ``y`` (n, k)) runs
    :func:`sideq.general.descent` and returns its
    :class:`~sideq.general.DEQTrajectory` (the keywords mapped by
    :func:`sideq.general.descent_from_scalar_api`).

    Args:
      model: ``sideq.linear()`` or ``sideq.single_index(activation)`` (or a
        :class:`sideq.general.DEQ`, above).
      theta0: θ(0) = ``(θ1, [b,] θ2)``, shape ``(p,)``, finite.
      xi: the target ξ, shape ``(d,)``; required.
      x: data of shape ``(n, d)`` (or ``(n,)`` for d = 1), for the empirical
        risk R̂ (Section 2).
      y: targets of shape ``(n,)``; default f(x) = σ(ξᵀx).  Only with ``x``.
      dist: a law (:func:`sideq.data.uniform`, :func:`sideq.data.gaussian`)
        for the population risk R (Eq. (3)), instead of ``x``.
      eta: the step size η > 0 (a number or an array), for ``optax.sgd``.
      epochs: the number of epochs T, an integer ≥ 1.
      optimizer: an ``optax.GradientTransformation`` that replaces
        ``optax.sgd(eta)`` (``eta`` is then unused).
      backend: the equilibrium solver, ``"jaxopt"`` or ``"optimistix"``.
      gtol: stop when ‖∇R‖ ≤ gtol (0, the default, turns it off).
      ltol: stop when R ≤ ltol (0 turns it off).
      dtol: stop when the distance to the target (:func:`sideq.dynamics.distance_to_target`)
        is ≤ dtol (0 turns it off).
      maxiter: the equilibrium solver's iteration limit, an integer ≥ 1.
      save_every: m, to record the epochs t = 0, m, 2m, … and the last
        (``traj.t``); None records every epoch when that fits in
        :data:`HISTORY_BYTES` and the smallest stride that does otherwise
        (:func:`history_stride`).

    Returns:
      A :class:`~sideq.dynamics.Trajectory` in the default float dtype.

    Raises:
      SideqInputError: a bad argument, named in the message: ``epochs``,
        ``backend``, ``maxiter``, ``eta`` (without ``optimizer``),
        ``optimizer``, the problem (:func:`check_problem`), ``theta0``
        (:func:`check_theta0`), a tolerance < 0, or ``save_every``.
      SingularModelError: θ2(0) = 1 for the linear DEQ.
    """
    if isinstance(model, DEQ):
        return descent_from_scalar_api(
            model,
            theta0,
            xi=xi,
            x=x,
            y=y,
            dist=dist,
            eta=eta,
            epochs=epochs,
            optimizer=optimizer,
            backend=backend,
            gtol=gtol,
            ltol=ltol,
            dtol=dtol,
            maxiter=maxiter,
            save_every=save_every,
        )
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise SideqInputError(f"epochs: must be an integer >= 1, got {epochs!r}")
    if backend not in BACKENDS:
        raise SideqInputError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    check_maxiter(maxiter)
    if optimizer is None:
        check_step_size(eta)
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise SideqInputError(f"optimizer: expected an optax.GradientTransformation, got {type(optimizer).__name__}")
    dtype = jnp.result_type(float)
    xi, d, x, y, dist = check_problem(model, xi, x, y, dist, dtype, targets_now=False)
    theta0 = check_theta0(model, theta0, d)
    # (numpy, not jax, arrays: each eager jax call is a dispatch of its own)
    eta = np.asarray(eta if optimizer is None else 0.0, dtype)
    tols = np.asarray(check_tolerances(gtol=gtol, ltol=ltol, dtol=dtol), dtype)
    p = model.n_params(d)
    save_every = (
        history_stride(epochs, p, np.dtype(dtype).itemsize)
        if save_every is None
        else check_save_every(save_every, epochs)
    )
    static = dict(epochs=int(epochs), optimizer=optimizer, backend=backend, maxiter=int(maxiter), save_every=save_every)
    if dist is not None:
        return _descent_population(model, theta0, dist, xi, eta, tols, **static)
    return _descent_empirical(model, theta0, x, y, xi, eta, tols, **static)


def summary(model: Model, traj: Trajectory) -> dict:
    """JSON-ready summary of a trajectory (final θ, loss, status by name, steps,
    and the epochs in the non-unique regime: their count, first and last, −1
    if none).

    ``max_residual`` is the worst |y − g_θ(x, y)| over the run; for the sigmoid
    and tanh, whose descent evaluates nothing at its solutions, it is the
    bound of :func:`sideq.scalar._newton_residual` (a few eps), not a
    measurement."""
    status = int(traj.status)
    out = {
        "model": model.name,
        "theta_final": [float(v) for v in np.asarray(traj.theta[-1])],
        "loss_final": float(traj.loss[-1]),
        "distance_final": float(traj.distance[-1]),
        "grad_norm_final": float(traj.grad_norm[-1]),
        "status": Status(status).name.lower(),
        "steps": int(traj.steps),
        "epochs": int(traj.theta.shape[0] - 1),
        "max_residual": float(np.nanmax(np.asarray(traj.residual))),
    }
    if int(traj.fail_step) >= 0:
        out["fail_step"] = int(traj.fail_step)
    out.update(
        non_unique_epochs=int(traj.non_unique_epochs),
        non_unique_first=int(traj.non_unique_first),
        non_unique_last=int(traj.non_unique_last),
    )
    if traj.loss_min is not None:  # (the online quantities, over every epoch)
        loss_min = float(traj.loss_min)
        out["loss_min"] = loss_min if math.isfinite(loss_min) else None
        out["first_met"] = dict(zip(("gtol", "ltol", "dtol"), (int(v) for v in np.asarray(traj.first_met))))
        t = np.asarray(traj.t)
        out["save_every"] = int(t[1] - t[0]) if t.size > 2 else int(t[-1])
    if not math.isfinite(out["loss_final"]):
        out["loss_final"] = None
    return out
