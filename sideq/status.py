"""Per-run and per-solve status codes (int32 under jit/vmap; failure is data).

The numeric codes are stable: they are what sweeps store on disk.  The
helpers that combine statuses inside compiled code (:func:`worst`,
:func:`first_status`, :func:`status_flags`, ...) work on jax arrays, so this
module imports jax like the rest of the library.
"""

from __future__ import annotations

import enum
import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Status", "SUCCESS", "describe", "worst", "name", "names", "is_success", "run_repr"]


class Status(enum.IntEnum):
    """Outcome codes of a solve, a descent run, a flow or a sweep run (int32 in
    arrays, so they vmap); ``Status(code).message`` explains one.

    A status never claims more than is proven:

    * a solve is CONVERGED only when its root meets the tolerance *and* is
      unique by the activation's exact slope bounds (built in, or given as
      ``slope_bounds=``); with bounds estimated on a grid it is at best
      UNVERIFIED, and where the bounds allow several roots NON_UNIQUE.  These
      three are the *successes* (:data:`SUCCESS`): their y satisfies
      |y − g(y)| ≤ √tol·(1 + |y| + |θ1ᵀx + b|).  Every other status is a
      failure and its y is NaN.
    * a training run's status describes its final state: a failure at any
      epoch first (the run is frozen there), then NON_UNIQUE or UNVERIFIED
      at the final θ, then CONVERGED (a tolerance was met) or MAX_STEPS.  The
      epochs spent in the non-unique regime are counted beside the status
      (``non_unique_epochs``, ``non_unique_first``, ``non_unique_last``).

    Where several apply to one solve, the worst wins: SINGULAR, DIVERGED,
    SOLVER_FAILURE, MAX_STEPS, NON_UNIQUE, UNVERIFIED, CONVERGED (``severity``).
    """

    CONVERGED = 0
    MAX_STEPS = 1
    DIVERGED = 2
    SINGULAR = 3
    NON_UNIQUE = 4
    SOLVER_FAILURE = 5
    UNVERIFIED = 6

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.CONVERGED: "converged",
    Status.MAX_STEPS: "stopped at the iteration limit before meeting the tolerance",
    Status.DIVERGED: "diverged (a non-finite or exploding value)",
    Status.SINGULAR: "singular: theta2 = 1 for the linear DEQ (1 - dg/dy = 0; I - W2 singular for multi_linear)",
    Status.NON_UNIQUE: (
        "non-contractive: theta2 * sigma' can reach 1 (for multi_index, ||W2|| Lip(sigma) >= 1), so the "
        "fixed point may not be unique; the value returned is a root, not necessarily the one you want"
    ),
    Status.SOLVER_FAILURE: "the equilibrium solver failed (no root found in the bracket)",
    Status.UNVERIFIED: (
        "a root to tolerance, but its uniqueness is not proven: the activation's slope bounds "
        "were estimated on a grid (pass slope_bounds=(inf sigma', sup sigma') to prove it), or a "
        "general sideq.deq map has no proof of it"
    ),
}

#: The statuses of a solve that returns a root (its y is finite and meets the
#: tolerance); every other status is a failure, whose y is NaN.
SUCCESS = (Status.CONVERGED, Status.UNVERIFIED, Status.NON_UNIQUE)

# Order used to combine several statuses into one (the worst wins).
_SEVERITY = [
    Status.CONVERGED,
    Status.UNVERIFIED,
    Status.NON_UNIQUE,
    Status.MAX_STEPS,
    Status.SOLVER_FAILURE,
    Status.DIVERGED,
    Status.SINGULAR,
]
_RANK = np.zeros(len(Status), np.int32)
for _r, _s in enumerate(_SEVERITY):
    _RANK[_s] = _r


def severity(status):
    """Rank of a status code (array-friendly, works on jax arrays); higher is worse."""
    return jnp.asarray(_RANK)[status]


def worst(statuses):
    """The worst status among ``statuses`` (jax or numpy integer array).

    Args:
      statuses: status codes, any shape.

    Returns:
      The worst code (by the module's severity order), a scalar int32 jax
      array.
    """
    ranks = severity(jnp.ravel(jnp.asarray(statuses)))
    return jnp.asarray(np.array(_SEVERITY, np.int32))[jnp.max(ranks)]


def describe(code) -> str:
    """Human message for a status code.

    Args:
      code: one status code.

    Returns:
      ``Status(code).message``.
    """
    return Status(int(code)).message


def name(code) -> str:
    """The lower-case name of one status code (``"converged"``), as summaries
    and ``results.npz``'s readers print it.

    Args:
      code: one status code.

    Returns:
      The name.
    """
    return Status(int(code)).name.lower()


def names(codes):
    """The names of status codes: a string for one code, a nested list for an
    array (what the reprs of :class:`~sideq.scalar.Equilibrium` and the
    trajectories show).

    Args:
      codes: a status code or an array of them.

    Returns:
      A string, or nested lists of strings shaped like ``codes``.
    """
    codes = np.asarray(codes)
    if codes.ndim == 0:
        return name(codes)
    return [names(c) for c in codes]


def is_success(status):
    """Whether a solve's status returns a root (:data:`SUCCESS`), elementwise.

    Args:
      status: status codes, any shape.

    Returns:
      A bool jax array shaped like ``status``.
    """
    status = jnp.asarray(status)
    return functools.reduce(jnp.logical_or, [status == s for s in SUCCESS])


def first_status(cases, default=Status.CONVERGED):
    """The code of the first ``(condition, code)`` in ``cases`` that holds, else
    ``default``: ``jnp.select`` semantics, written as nested ``where``.

    ``jnp.select`` lowers to an argmax over the stacked conditions, a reduction
    XLA's CPU backend runs element by element; on a per-sample status that one
    fusion cost more than the σ evaluations of a whole solve.
    """
    out = jnp.int32(default)
    for condition, code in reversed(cases):
        out = jnp.where(condition, jnp.int32(code), out)
    return out


def status_bit(status):
    """1 << code, elementwise (int32): OR-ing these over equilibria gives the
    mask of :func:`status_flags`."""
    return jnp.left_shift(jnp.int32(1), jnp.asarray(status).astype(jnp.int32))


def status_flags(sol_status):
    """The set of statuses among the equilibria, as a bit mask (bit k: code k
    occurs), from a single reduction.

    Args:
      sol_status: status codes, any shape.

    Returns:
      The mask, a scalar int32.
    """
    return jax.lax.reduce(status_bit(jnp.ravel(sol_status)), jnp.int32(0), jax.lax.bitwise_or, (0,))


def has_status(flags, *codes):
    """Whether any of ``codes`` is in the mask from :func:`status_flags`.

    Args:
      flags: the mask.
      *codes: status codes.

    Returns:
      A bool (a jax scalar for a traced mask).
    """
    mask = sum(1 << int(c) for c in codes)
    return (flags & mask) != 0


def run_repr(run, kind: str) -> str:
    """The repr of a run (a trajectory, an equilibrium): statuses by name,
    scalars by value, arrays by dtype and shape (a trajectory's rows would
    flood a notebook).

    Args:
      run: a NamedTuple of arrays (its ``status`` field shown by name).
      kind: the class name to show.

    Returns:
      ``"kind(field=..., ...)"``; inside jit, the plain tuple's repr.
    """
    if any(isinstance(v, jax.core.Tracer) for v in run):  # (inside jit: the plain tuple's repr)
        return tuple.__repr__(run)
    parts = []
    for field, value in zip(run._fields, run):
        shape = np.shape(value)
        if field == "status":
            parts.append(f"status={names(value)!r}")
        elif value is None or len(shape) == 0:
            parts.append(f"{field}={np.asarray(value).item() if value is not None else None!r}")
        else:
            parts.append(f"{field}=<{np.asarray(value).dtype}{list(shape)}>")
    return f"{kind}({', '.join(parts)})"
