r"""General deep equilibrium models y = g(params, x, y) with y ∈ ℝ^k and params any pytree.

The model's output is the fixed point y_θ(x) = g_θ(x, y_θ(x)) (Section 2 of the
paper, with ℝ^k in place of ℝ).  Where I − ∂g/∂y is invertible at the fixed
point, the implicit function theorem gives Eq. (1) generalised to k outputs,

.. math::

    \frac{\partial y_θ}{\partial θ} = \Big(I_k - \frac{\partial g_θ}{\partial y}\Big)^{-1}
    \frac{\partial g_θ}{\partial θ}, \qquad
    \frac{\partial y_θ}{\partial x} = \Big(I_k - \frac{\partial g_θ}{\partial y}\Big)^{-1}
    \frac{\partial g_θ}{\partial x},

all evaluated at (x, y_θ(x)).  The scalar family of :mod:`sideq.model` is the
case k = 1.

Solvers (one per model, :func:`deq`'s ``solver``)
--------------------------------------------------
* ``"anderson"`` (default): :class:`jaxopt.AndersonAcceleration` on y = g(y).
* ``"fixed_point"``: :class:`jaxopt.FixedPointIteration`, y ← g(y); it converges
  where y ↦ g(params, x, y) is a contraction (Banach) and diverges where, e.g.,
  the linear map y ↦ W2 y has spectral radius ≥ 1.
* ``"newton"``: :class:`optimistix.Newton` on F(y) = y − g(params, x, y), each
  step a dense LU solve with the Jacobian I − ∂g/∂y; it needs no contraction.
* ``"broyden"``: Broyden's ("good") method on F, as an optimistix root finder
  (optimistix 0.1 ships none): a dense estimate H of (∂F/∂y)⁻¹, started at
  the exact inverse Jacobian at y0 and updated by rank one,
  H ← H + (s − HΔF) sᵀH / (sᵀHΔF) with s the step and ΔF the change of F.

Exact gradients
---------------
The system of Eq. (1) is k×k per sample.  The jaxopt solvers differentiate
with :func:`jaxopt.implicit_diff.custom_root`, whose default linear solve is
conjugate gradient on the normal equations (``solve_normal_cg``: relative
residual 1e-5, on AᵀA, whose condition number is that of A squared).  Against
an unrolled solve differentiated by autodiff its gradients are off by 7e-6 to
1.1e-5 relative at k = 32 and 64 (float64, σ = tanh, ‖W2‖₂ = 0.5 and 0.9);
at k ≤ 4 CG reaches the exact answer (to ~1e-15) before its stopping test
bites.  Here the system is instead built densely (the k×k matrix
from ``jax.jacfwd`` of jaxopt's matrix–vector product) and solved by LU
(``jnp.linalg.solve``); under optimistix the same dense LU is
:class:`optimistix.ImplicitAdjoint` with a :class:`lineax.LU` solve.  The
gradients agree with an unrolled solve differentiated by autodiff to about
1e-15 relative (1e-14 for k = 1 with the fixed-point solvers), and with a
central difference to its own accuracy (``tests/test_deq.py`` asks 1e-10 of
both, at k = 1, 4 and 32).  The cost is O(k³) per sample: meant for k up to a few hundred.
jaxopt's rule is a ``custom_vjp`` (reverse mode only); optimistix's a
``custom_jvp`` (``jax.jacfwd`` and ``jax.jacrev`` both work).

Gradient descent's solver
-------------------------
:func:`descent` does not call the model's solver each epoch: it runs Newton's
method on F(y) = y − g(y) for all samples at once, warm-started from the
previous epoch's roots, and falls back (sample by sample, in loops that run
only when some sample needs them) to more Newton steps and then to the
model's solver (:func:`descent_route`).  For :func:`multi_index` with σ' a
function of σ's value (tanh, sigmoid) three steps end with a bound on the
residual from Taylor's theorem instead of an evaluation of σ, and the
Jacobian of Eq. (1) at a root comes from its value (σ(z) = y there); for
k ≤ 4 each step is adj(J)F/det J, multilinear in σ' with coefficients from
W2 alone.  For :func:`multi_index` with k > 8 and ρ = Lip(σ)‖W2‖₂ ≤ 0.9 it
iterates y ← g(y) and the adjoint of Eq. (1) instead, over the whole batch
(the samples as rows of matrix products), as torchdeq does.  A root passes the same test as in :func:`solve`; the gradients
agree with ``jax.grad`` of :func:`empirical_risk` to rounding
(``tests/test_deq.py``).  Within a run the samples lie along the last axis,
one array per output, in tiles of 128: XLA:CPU then fuses each step into
loops that vectorize, over intermediates that stay in cache.

Status (:class:`sideq.status.Status`, int32, per solve)
-------------------------------------------------------
A solve succeeds when the measured residual at its answer satisfies

    ‖y − g(params, x, y)‖∞ ≤ tol · (1 + ‖y‖∞),

``tol`` defaulting to 64 machine epsilons of the dtype (:func:`default_tol`).
A success is CONVERGED only where the model *proves* the fixed point unique:
:func:`multi_linear` where I − W2 is nonsingular, :func:`multi_index` where
‖W2‖₂·Lip(σ) < 1 (a contraction), a :func:`deq` whose ``certify`` says so.
Elsewhere it is NON_UNIQUE (:func:`multi_index` with a built-in σ outside the
contraction bound: several fixed points are possible) or UNVERIFIED (no proof:
the default for a general g).  Failures: SINGULAR (I − W2 numerically singular
for :func:`multi_linear`), DIVERGED (a non-finite iterate or residual),
MAX_STEPS (the iteration limit, residual above tolerance), SOLVER_FAILURE (the
solver stopped early above tolerance).  A failed solve returns y = NaN, with
NaN derivatives: never a finite non-root, and never an exception, so one
failure under ``vmap`` stays in its own row.  (Input checks are another
matter: the public functions given concrete :func:`multi_linear` params with
I − W2 singular raise :class:`~sideq.errors.SingularModelError` before
solving; under ``jit`` the same params give SINGULAR and NaN.)

Precision: nothing here changes ``jax_enable_x64``.  jaxopt's Anderson builds
its Gram matrix in the default float dtype, so with x64 on a float32 solve is
traced with x64 off locally (the float32 solve stays float32).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sideq import xla
from sideq.activations import Activation, get_activation
from sideq.errors import SideqInputError, SingularModelError
from sideq.status import Status, first_status, is_success, run_repr

__all__ = [
    "DEQ",
    "DEQEquilibrium",
    "DEQTrajectory",
    "SOLVERS",
    "deq",
    "multi_linear",
    "multi_index",
    "solve",
    "equilibrium",
    "target",
    "empirical_risk",
    "descent",
    "default_tol",
    "from_scalar_api",
    "descent_from_scalar_api",
    "descent_route",
]

SOLVERS = ("anderson", "fixed_point", "newton", "broyden")
_OPTIONS = {
    "anderson": ("history_size", "mixing_frequency", "beta", "ridge"),
    "fixed_point": (),
    "newton": (),
    "broyden": (),
}
_DEFAULT_MAXITER = 256


def default_tol(dtype) -> float:
    """The default solve tolerance: 64 machine epsilons of ``dtype``
    (1.4e-14 in float64, 7.6e-6 in float32).

    Args:
      dtype: a float dtype.

    Returns:
      ``64 * finfo(dtype).eps`` as a Python float.
    """
    return 64.0 * float(jnp.finfo(dtype).eps)


def _default_ridge(dtype) -> float:
    # jaxopt adds the ridge to the Gram matrix of the residuals, unscaled: its
    # default 1e-5 dominates once the residuals are below ~3e-3 and turns the
    # extrapolation into an average of the history (more iterations than plain
    # fixed-point iteration); too small a ridge leaves the bordered system
    # numerically singular (NaN).  On random tanh DEQs (k = 1 to 64, ‖W2‖₂ up
    # to 0.999, float64 and float32) these gave no NaN and took fewer
    # iterations than 1e-5.
    return 1e-20 if jnp.finfo(dtype).bits >= 64 else 1e-10


# ----------------------------------------------------------------------------
# The model spec.


@dataclasses.dataclass(frozen=True)
class _MultiMap:
    """g for the built-in families: y ↦ W1 x + W2 y (+ b), or σ of that."""

    activation: Activation | None  # None: the linear family
    bias: bool

    def __call__(self, params, x, y):
        z = params["W1"] @ x + params["W2"] @ y
        if self.bias:
            z = z + params["b"]
        return z if self.activation is None else self.activation(z)


@dataclasses.dataclass(frozen=True)
class DEQ:
    r"""Static description of a DEQ y = g(params, x, y), y ∈ ℝ^``dim``: the map,
    the solver and its settings, no parameters.

    Frozen and hashable (by its fields; ``g`` by identity, the built-in maps by
    value), so it is a static argument of ``jax.jit``.  Build one with
    :func:`deq`, :func:`multi_linear` or :func:`multi_index`.

    Attributes:
      g: ``g(params, x, y) -> y_next`` with x of shape (d,), y and y_next (dim,).
      dim: k, the number of outputs.
      solver: one of :data:`SOLVERS`.
      tol: success tolerance of the residual (None: :func:`default_tol` of the dtype).
      maxiter: iteration limit of the solver.
      name: a label.
      options: the solver's extra settings, as sorted ``(name, value)`` pairs.
      kind: ``"general"``, ``"multi_linear"`` or ``"multi_index"``.
      activation: σ of :func:`multi_index` (else None).
      bias: whether the built-in families carry ``"b"``.
      certify: for :func:`deq`, ``certify(params) -> bool`` proving the fixed
        point unique for every x (else None).
    """

    g: Callable
    dim: int
    solver: str = "anderson"
    tol: float | None = None
    maxiter: int = _DEFAULT_MAXITER
    name: str | None = None
    options: tuple = ()
    kind: str = "general"
    activation: Activation | None = None
    bias: bool = False
    certify: Callable | None = None

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options)
        return f"DEQ({self.name!r}, dim={self.dim}, solver={self.solver!r}{opts})"

    def tol_for(self, dtype) -> float:
        """The success tolerance in ``dtype``.

        Args:
          dtype: a float dtype.

        Returns:
          The model's ``tol`` as a float, or :func:`default_tol` of ``dtype``
          when it is None.
        """
        return default_tol(dtype) if self.tol is None else float(self.tol)

    def target(self, xi, x):
        """f(x) = Ξx (:func:`multi_linear`) or σ(Ξx) (:func:`multi_index`).

        Unchecked: see :func:`target`.

        Args:
          xi: Ξ, shape (k, d).
          x: one input (d,) or a batch (n, d).

        Returns:
          f(x), shape (k,) or (n, k).

        Raises:
          SideqInputError: a general :func:`deq`, which has no target.
        """
        if self.kind == "general":
            raise SideqInputError(
                f"target: model {self.name!r} is a general DEQ with no target f; pass targets y instead of xi"
            )
        z = jnp.asarray(x) @ jnp.asarray(xi).T
        return z if self.activation is None else self.activation(z)

    def proof(self, params):
        """The status of a root to tolerance at ``params`` (int32): CONVERGED
        where the fixed point is proven unique for every x, NON_UNIQUE or
        UNVERIFIED where it is not, SINGULAR for :func:`multi_linear` with
        I − W2 numerically singular (smallest singular value ≤ k·eps times the
        largest, the rank test of ``numpy.linalg.matrix_rank``).

        :func:`multi_index`: CONVERGED where ‖W2‖₂·Lip(σ) < 1, else
        NON_UNIQUE; UNVERIFIED for estimated slope bounds.  :func:`deq`:
        CONVERGED where ``certify(params)`` is true, else UNVERIFIED.

        Args:
          params: the model's params (traceable).

        Returns:
          A scalar int32 :class:`~sideq.status.Status` code.
        """
        if self.kind == "multi_linear":
            W2 = params["W2"]
            s = jnp.linalg.svd(jnp.eye(self.dim, dtype=W2.dtype) - W2, compute_uv=False)
            eps = float(jnp.finfo(W2.dtype).eps)
            singular = ~(s[-1] > self.dim * eps * s[0])
            return jnp.where(singular, jnp.int32(Status.SINGULAR), jnp.int32(Status.CONVERGED))
        if self.kind == "multi_index":
            act = self.activation
            if act.estimated:  # (a Lipschitz constant found on a grid proves nothing)
                return jnp.int32(Status.UNVERIFIED)
            norm2 = jnp.linalg.svd(params["W2"], compute_uv=False)[0]
            contraction = norm2 * act.lipschitz < 1
            return jnp.where(contraction, jnp.int32(Status.CONVERGED), jnp.int32(Status.NON_UNIQUE))
        if self.certify is None:
            return jnp.int32(Status.UNVERIFIED)
        proven = jnp.asarray(self.certify(params), bool)
        return jnp.where(proven, jnp.int32(Status.CONVERGED), jnp.int32(Status.UNVERIFIED))


def _check_settings(solver, dim, tol, maxiter, options):
    if solver not in SOLVERS:
        raise SideqInputError(f"solver: expected one of {SOLVERS}, got {solver!r}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise SideqInputError(f"dim: expected a positive integer k (the number of outputs), got {dim!r}")
    if tol is not None and not (isinstance(tol, numbers.Real) and math.isfinite(tol) and tol > 0):
        raise SideqInputError(f"tol: expected a number > 0 (or None for 64 eps of the dtype), got {tol!r}")
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise SideqInputError(f"maxiter: expected an integer >= 1, got {maxiter!r}")
    allowed = _OPTIONS[solver]
    for key, value in options.items():
        if key not in allowed:
            valid = ", ".join(allowed) if allowed else "none"
            raise SideqInputError(f"{key}: not a setting of the {solver!r} solver (its settings: {valid})")
        try:
            hash(value)
        except TypeError:
            raise SideqInputError(
                f"{key}: a solver setting must be a plain Python value (it is part of the static "
                f"model), got {type(value).__name__}"
            ) from None
    if solver == "anderson" and "history_size" in options and int(options["history_size"]) < 2:
        raise SideqInputError(f"history_size: expected an integer >= 2, got {options['history_size']!r}")
    return tuple(sorted(options.items()))


def deq(
    g: Callable,
    dim: int,
    *,
    solver: str = "anderson",
    tol: float | None = None,
    maxiter: int = _DEFAULT_MAXITER,
    name: str | None = None,
    certify: Callable | None = None,
    **solver_options,
) -> DEQ:
    r"""A DEQ y = g(params, x, y), y ∈ ℝ^k with k = ``dim``, params any pytree.

    Args:
      g: a pure, JAX-traceable ``g(params, x, y) -> y_next``, x of shape (d,),
        y and y_next of shape (dim,).
      dim: k.
      solver: ``"anderson"`` (default), ``"fixed_point"``, ``"newton"`` or
        ``"broyden"`` (see the module docstring).  Anderson and fixed-point
        iteration need y ↦ g(y) to be contractive near the fixed point; Newton
        and Broyden do not.
      tol: success tolerance: ‖y − g(y)‖∞ ≤ tol·(1 + ‖y‖∞) (default: 64 eps of
        the dtype, :func:`default_tol`).
      maxiter: iteration limit.
      name: a label (default: g's name).
      certify: optional ``certify(params) -> bool`` that *proves* the fixed
        point unique for every x (e.g. a contraction bound); a root then
        carries CONVERGED, else UNVERIFIED.
      **solver_options: Anderson's ``history_size`` (default min(5, k), at
        least 2), ``mixing_frequency``, ``beta``, ``ridge`` (default 1e-20 in
        float64, 1e-10 in float32: jaxopt's 1e-5 slows convergence).

    Returns:
      A :class:`DEQ`.

    Raises:
      SideqInputError: ``g`` not callable, an unknown ``solver``, ``dim`` not
        a positive integer, ``tol`` not a finite number > 0, ``maxiter`` < 1,
        or a solver option the solver does not take (or not hashable, or
        ``history_size`` < 2).

    Example::

        from sideq.general import deq, equilibrium

        model = deq(lambda p, x, y: jnp.tanh(p["A"] @ x + p["B"] @ y), dim=4)
        y = equilibrium(model, {"A": A, "B": B}, x)  # (4,), differentiable in p and x
    """
    if not callable(g):
        raise SideqInputError(f"g: expected a callable g(params, x, y), got {type(g).__name__}")
    options = _check_settings(solver, dim, tol, maxiter, solver_options)
    label = name if name is not None else getattr(g, "__name__", "deq")
    return DEQ(g, int(dim), solver, None if tol is None else float(tol), int(maxiter), label, options, certify=certify)


def multi_linear(
    k: int,
    *,
    bias: bool = False,
    solver: str = "newton",
    tol: float | None = None,
    maxiter: int = _DEFAULT_MAXITER,
    **solver_options,
) -> DEQ:
    r"""The multi-neuron linear DEQ y = W1 x + W2 y (+ b), y ∈ ℝ^k (Section 5's
    extension of Eq. (2)).

    Params: ``{"W1": (k, d), "W2": (k, k)}`` (+ ``"b": (k,)`` with ``bias``).
    The equilibrium is y = (I − W2)⁻¹(W1 x + b): unique wherever I − W2 is
    nonsingular (CONVERGED), SINGULAR (y = NaN) where it is not (under
    ``jit``; concrete params with I − W2 singular are refused by
    :class:`~sideq.errors.SingularModelError` at the public functions).
    Newton (the default) solves it in one step at any spectral radius of W2;
    fixed-point iteration needs ρ(W2) < 1.  Target: f(x) = Ξx.

    Args:
      k: the number of outputs.
      bias: carry ``"b"`` (k,).
      solver: one of :data:`SOLVERS` (default ``"newton"``).
      tol: success tolerance, as for :func:`deq`.
      maxiter: iteration limit.
      **solver_options: as for :func:`deq`.

    Returns:
      A :class:`DEQ` of kind ``"multi_linear"``.

    Raises:
      SideqInputError: bad settings, as for :func:`deq`.
    """
    options = _check_settings(solver, k, tol, maxiter, solver_options)
    return DEQ(
        _MultiMap(None, bool(bias)),
        int(k),
        solver,
        None if tol is None else float(tol),
        int(maxiter),
        f"multi_linear(k={int(k)})",
        options,
        "multi_linear",
        None,
        bool(bias),
    )


def multi_index(
    sigma,
    k: int,
    *,
    bias: bool = False,
    solver: str = "anderson",
    tol: float | None = None,
    maxiter: int = _DEFAULT_MAXITER,
    **solver_options,
) -> DEQ:
    r"""The multi-neuron single-index DEQ y = σ(W1 x + W2 y (+ b)), y ∈ ℝ^k
    (Section 5's extension of Eq. (10)).

    Params as for :func:`multi_linear`.  y ↦ σ(W1x + W2y) is
    Lip(σ)·‖W2‖₂-Lipschitz, so where ‖W2‖₂·Lip(σ) < 1 the fixed point is
    unique (Banach) and a root is CONVERGED; elsewhere NON_UNIQUE (UNVERIFIED
    for an activation whose slope bounds were estimated).  Target:
    f(x) = σ(Ξx).

    Args:
      sigma: σ, a name, an :class:`~sideq.activations.Activation`, or a
        callable (:func:`sideq.activations.get_activation`: its slope bounds
        are then estimated, with a warning).
      k: the number of outputs.
      bias: carry ``"b"`` (k,).
      solver: one of :data:`SOLVERS` (default ``"anderson"``).
      tol: success tolerance, as for :func:`deq`.
      maxiter: iteration limit.
      **solver_options: as for :func:`deq`.

    Returns:
      A :class:`DEQ` of kind ``"multi_index"``.

    Raises:
      SideqInputError: an unknown ``sigma``, or bad settings as for
        :func:`deq`.
    """
    act = get_activation(sigma)
    options = _check_settings(solver, k, tol, maxiter, solver_options)
    return DEQ(
        _MultiMap(act, bool(bias)),
        int(k),
        solver,
        None if tol is None else float(tol),
        int(maxiter),
        f"multi_index({act.name}, k={int(k)})",
        options,
        "multi_index",
        act,
        bool(bias),
    )


# ----------------------------------------------------------------------------
# Solvers.


@functools.cache
def _jaxopt():
    with warnings.catch_warnings():  # jaxopt warns at import that it is unmaintained
        warnings.simplefilter("ignore", DeprecationWarning)
        import jaxopt
    return jaxopt


def _dense_ift_solve(matvec, b):
    """jaxopt's ``solve(matvec, b)`` for the IFT system: ``matvec(u) = Aᵀu``
    with A = ∂(g(y) − y)/∂y (k×k); Aᵀ is materialised by ``jax.jacfwd`` (the
    map is linear) and the system solved by LU."""
    At = jax.jacfwd(matvec)(b)
    return jnp.linalg.solve(At, b)


@functools.cache
def _optx():
    """optimistix, lineax, and the two classes built on them (imported on
    first use)."""
    import equinox as eqx
    import equinox.internal as eqxi
    import lineax as lx
    import optimistix as optx

    class DenseLU(lx.AbstractLinearSolver):
        """LU of the k×k matrix for a system in y ∈ ℝ^k (one array), written
        on the array itself: :class:`lineax.LU` compares the vector's
        abstract type with the operator's, and that test fails inside
        ``shard_map`` and ``pmap``, whose arrays carry their mesh axes (lineax
        issue #185), where the sweeps run.

        ``finite``: a non-finite solution comes back as zeros.  lineax raises
        on a non-finite solution of the implicit adjoint's solve, which under
        ``vmap`` would stop every row of a batch because one solve failed.  A
        failed solve's y is NaN with NaN derivatives anyway (its cotangent is
        poisoned after the solve, :func:`_poison`), so the zeros are never
        read."""

        finite: bool = eqx.field(static=True, default=False)

        def init(self, operator, options):
            return jax.scipy.linalg.lu_factor(operator.as_matrix()), eqxi.Static(False)

        def compute(self, state, vector, options):
            lu_piv, transposed = state
            solution = jax.scipy.linalg.lu_solve(lu_piv, vector.reshape(-1), trans=int(transposed.value))
            solution = solution.reshape(vector.shape)
            if self.finite:
                solution = jnp.where(jnp.isfinite(solution), solution, 0)
            return solution, lx.RESULTS.successful, {}

        def transpose(self, state, options):
            return (state[0], eqxi.Static(not state[1].value)), {}

        def conj(self, state, options):
            (lu, piv), transposed = state
            return ((lu.conj(), piv), transposed), {}

        def assume_full_rank(self):
            return True

    class BroydenState(eqx.Module):
        inverse: jax.Array  # H ≈ (∂F/∂y)⁻¹, k×k
        y_prev: jax.Array
        f_prev: jax.Array
        diff: jax.Array  # the last step H F
        f: jax.Array  # F at the last step's start
        step: jax.Array

    class Broyden(optx.AbstractRootFinder):
        """Broyden's good method with a dense inverse Jacobian estimate,
        started at the exact (∂F/∂y)⁻¹ at y0 (so a linear F is solved in one
        step); stops as :class:`optimistix.Newton` does (a step below
        atol + rtol·|y| and |F| below atol)."""

        rtol: float
        atol: float
        norm: Callable = optx.max_norm

        def init(self, fn, y, args, options, f_struct, aux_struct, tags):
            jac = jax.jacfwd(lambda z: fn(z, args)[0])(y)
            inverse = jnp.linalg.inv(jac)
            full = jnp.full_like(y, jnp.inf)
            return BroydenState(inverse, y, full, full, full, jnp.array(0))

        def step(self, fn, y, args, options, state, tags):
            f, aux = fn(y, args)
            s, df = y - state.y_prev, f - state.f_prev
            h_df = state.inverse @ df
            denom = s @ h_df
            update = (state.step > 0) & jnp.isfinite(denom) & (denom != 0)
            change = jnp.outer(s - h_df, s @ state.inverse) / jnp.where(update, denom, 1)
            inverse = jnp.where(update, state.inverse + change, state.inverse)
            diff = inverse @ f
            return y - diff, BroydenState(inverse, y, f, diff, f, state.step + 1), aux

        def terminate(self, fn, y, args, options, state, tags):
            small = optx.max_norm(jnp.abs(state.diff) / (self.atol + self.rtol * jnp.abs(y))) < 1
            root = optx.max_norm(jnp.abs(state.f)) < self.atol
            broken = ~(jnp.all(jnp.isfinite(y)) & jnp.all(jnp.isfinite(state.inverse)))
            result = optx.RESULTS.where(broken, optx.RESULTS.nonlinear_divergence, optx.RESULTS.successful)
            return (small & root) | broken, result

        def postprocess(self, fn, y, aux, args, options, state, tags, result):
            return y, aux, {}

    return optx, DenseLU, Broyden


def _run_jaxopt(model: DEQ, params, x, y0, tol):
    """(y, iterations) by jaxopt, y differentiable by Eq. (1) with
    the dense IFT solve (jaxopt's ``custom_fixed_point``)."""
    jaxopt = _jaxopt()
    dtype = y0.dtype
    g = model.g
    x64 = jnp.finfo(dtype).bits >= 64 and jax.config.jax_enable_x64

    def fixed_point_fun(y, params, x):
        return g(params, x, y)

    opts = dict(model.options)
    if model.solver == "anderson":
        # (at most k residuals in the history: more are linearly dependent, and
        # the bordered least-squares system of the mixing step turned singular
        # in float32 with k = 4, five of them and a ridge of 1e-10)
        opts.setdefault("history_size", max(2, min(5, model.dim)))
        opts.setdefault("ridge", _default_ridge(dtype))
        cls = jaxopt.AndersonAcceleration
    else:
        cls = jaxopt.FixedPointIteration

    @jaxopt.implicit_diff.custom_fixed_point(fixed_point_fun, has_aux=True, solve=_dense_ift_solve)
    def run(y0, params, x):
        # jaxopt makes some constants at the default float width (jnp.zeros in
        # Anderson's mixing step), so its solver is traced with x64 matching
        # the dtype.  The scope sits inside the differentiated function: under
        # jax.grad JAX traces it again later, outside the caller's scope.
        with jax.enable_x64(x64):
            # (unroll=False: jaxopt's loop is then a while loop that stops when
            # the iterate converges; with implicit_diff off its default is a
            # scan of maxiter steps for autodiff, which under vmap runs every
            # step for every sample.  The gradient is custom_fixed_point's.)
            solver = cls(fixed_point_fun, maxiter=model.maxiter, tol=tol, implicit_diff=False, unroll=False, **opts)
            y, state = solver.run(y0, params, x)
        return y, jnp.asarray(state.iter_num).astype(jnp.int32)

    return run(y0, params, x)


def _run_optimistix(model: DEQ, params, x, y0, tol):
    """(y, iterations) by optimistix, y differentiable by
    :class:`optimistix.ImplicitAdjoint` with a dense LU solve."""
    optx, DenseLU, Broyden = _optx()
    g = model.g

    def residual(y, args):
        params, x = args
        return y - g(params, x, y)

    if model.solver == "newton":
        solver = optx.Newton(rtol=tol, atol=tol, linear_solver=DenseLU())
    else:
        solver = Broyden(rtol=tol, atol=tol)
    sol = optx.root_find(
        residual,
        solver,
        y0,
        args=(params, x),
        max_steps=model.maxiter,
        adjoint=optx.ImplicitAdjoint(linear_solver=DenseLU(finite=True)),
        throw=False,
    )
    # (sol.result is not read: the status comes from the residual measured at
    # the answer, _point, whatever the solver's own test said)
    return sol.value, jnp.asarray(sol.stats["num_steps"]).astype(jnp.int32)


class DEQEquilibrium(NamedTuple):
    """Solution of y = g(params, x, y) with diagnostics (batched: a leading n axis).

    Attributes:
      y: (k,) the fixed point; NaN where the solve failed.
      residual: () ‖y − g(params, x, y)‖∞ at the solver's answer.
      iterations: () solver iterations (int32).
      margin: () smallest singular value of I − ∂g/∂y at y, the distance of the
        IFT system of Eq. (1) from singularity; NaN where not computed or where
        the solve failed.
      status: () :class:`~sideq.status.Status` code (int32).
    """

    y: jax.Array
    residual: jax.Array
    iterations: jax.Array
    margin: jax.Array
    status: jax.Array

    def __repr__(self) -> str:
        return run_repr(self, "DEQEquilibrium")


def _zero_with_unit_derivative(tree):
    """0, with derivative 1 with respect to every finite entry of ``tree``."""
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        leaf = jnp.asarray(leaf)
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            total = total + jnp.sum(jnp.where(jnp.isfinite(leaf), leaf - jax.lax.stop_gradient(leaf), 0))
    return total


def _poison(y, bad, params, x):
    """NaN where ``bad``, in the value and in the derivatives with respect to
    params and x (a select alone would give a zero derivative there)."""
    nan_or_zero = jnp.where(bad, jnp.nan, 0).astype(y.dtype)
    return jnp.where(bad, jnp.nan, y) + nan_or_zero * _zero_with_unit_derivative((params, x))


def _point(model: DEQ, params, x, y0, proof, with_margin: bool) -> DEQEquilibrium:
    """One equilibrium, x of shape (d,), y0 (k,); ``proof`` from :meth:`DEQ.proof`."""
    dtype = y0.dtype
    tol = model.tol_for(dtype)
    y0 = jax.lax.stop_gradient(jnp.where(jnp.isfinite(y0), y0, 0))  # (a failed warm start: cold)
    run = _run_jaxopt if model.solver in ("anderson", "fixed_point") else _run_optimistix
    y, iterations = run(model, params, x, y0, tol)
    y_c = jax.lax.stop_gradient(y)
    params_c, x_c = jax.lax.stop_gradient((params, x))
    residual = jnp.max(jnp.abs(y_c - model.g(params_c, x_c, y_c)))
    finite = jnp.isfinite(residual) & jnp.all(jnp.isfinite(y_c))
    met = residual <= tol * (1 + jnp.max(jnp.abs(y_c)))  # (False for NaN)
    failure = first_status(
        [
            (proof == Status.SINGULAR, Status.SINGULAR),
            (~finite, Status.DIVERGED),
            (~met & (iterations >= model.maxiter), Status.MAX_STEPS),
            (~met, Status.SOLVER_FAILURE),
        ],
        default=Status.CONVERGED,
    )
    status = jnp.where(failure == Status.CONVERGED, proof, failure).astype(jnp.int32)
    success = is_success(status)
    if with_margin:
        jac = jax.jacfwd(model.g, argnums=2)(params_c, x_c, y_c)
        s = jnp.linalg.svd(jnp.eye(model.dim, dtype=dtype) - jac, compute_uv=False)
        margin = jnp.where(success, s[-1], jnp.nan)
    else:
        margin = jnp.full((), jnp.nan, dtype)
    y = _poison(y, ~success, params, x)
    return DEQEquilibrium(y, residual, iterations, margin, status)


def _solve_impl(model: DEQ, params, x, y0, with_margin: bool) -> DEQEquilibrium:
    proof = model.proof(params)
    if x.ndim == 1:
        return _point(model, params, x, y0, proof, with_margin)
    return jax.vmap(lambda xi, yi: _point(model, params, xi, yi, proof, with_margin))(x, y0)


_solve_jit = jax.jit(_solve_impl, static_argnames=("model", "with_margin"))


# ----------------------------------------------------------------------------
# Checks at the Python boundary.


def _concrete(a):
    """``a`` as numpy where it is concrete (not traced), else None."""
    if isinstance(a, jax.core.Tracer):
        return None
    return np.asarray(a)


def _check_model(model):
    if not isinstance(model, DEQ):
        raise SideqInputError(
            f"model: expected a sideq.general.DEQ (from deq, multi_linear or multi_index), got {type(model).__name__}"
        )


def _float_dtype(*trees):
    """The floating dtype the leaves promote to (integer leaves do not count;
    the default float where none is floating)."""
    dtypes = [jnp.result_type(v) for t in trees for v in jax.tree_util.tree_leaves(t)]
    floats = [t for t in dtypes if jnp.issubdtype(t, jnp.floating)]
    return jnp.result_type(*floats) if floats else jnp.result_type(float)


def _check_x(x, what="x"):
    if not isinstance(x, jax.core.Tracer):
        if isinstance(x, (dict, str)):
            raise SideqInputError(f"{what}: expected an array of shape (d,) or (n, d), got {type(x).__name__}")
        x = np.asarray(x)
        if np.iscomplexobj(x):
            raise SideqInputError(f"{what}: holds complex numbers; give real numbers")
        if not np.issubdtype(x.dtype, np.number):
            raise SideqInputError(f"{what}: expected numbers, got an array of {x.dtype}")
    if x.ndim not in (1, 2) or x.shape[-1] == 0 or (x.ndim == 2 and x.shape[0] == 0):
        raise SideqInputError(
            f"{what}: expected one input of shape (d,) or a batch (n, d) with n, d >= 1, got shape {x.shape}"
        )
    xc = _concrete(x)
    if xc is not None and not np.all(np.isfinite(xc)):
        raise SideqInputError(f"{what}: contains NaN or inf; remove or impute those inputs")
    return x


def _check_params(model: DEQ, params, d: int, what="params"):
    """Shapes of the built-in families' params; for a general g, that g maps y
    (k,) to (k,).  Raises a one-line SideqInputError naming the key."""
    k = model.dim
    if model.kind != "general":
        expected = {"W1": (k, d), "W2": (k, k)}
        if model.bias:
            expected["b"] = (k,)
        layout = "{" + ", ".join(f"{key!r}: {shape}" for key, shape in expected.items()) + "}"
        if not isinstance(params, Mapping):
            raise SideqInputError(
                f"{what}: expected a dict {layout} for {model.name} with d = {d}, got {type(params).__name__}"
            )
        for key, shape in expected.items():
            if key not in params:
                raise SideqInputError(f"{what}: missing key {key!r} of shape {shape}; {model.name} takes {layout}")
            got = np.shape(params[key])
            if got != shape:
                raise SideqInputError(
                    f"{what}[{key!r}]: expected shape {shape} for {model.name} with d = {d}, got {got}"
                    + ("; use jax.vmap to batch over params" if got[1:] == shape else "")
                )
            dtype = getattr(params[key], "dtype", None)
            if dtype is None:  # (a nested list is a pytree of numbers, not one array)
                raise SideqInputError(
                    f"{what}[{key!r}]: expected an array of shape {shape}, got {type(params[key]).__name__}; "
                    "pass np.asarray(...) of it"
                )
            if not jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.complexfloating):
                raise SideqInputError(f"{what}[{key!r}]: expected real numbers, got dtype {dtype}; pass a float array")
        extra = sorted(set(params) - set(expected), key=repr)
        if extra:
            raise SideqInputError(f"{what}: unexpected key {extra[0]!r}; {model.name} takes {layout}")
        W2 = _concrete(params["W2"])
        if model.kind == "multi_linear" and W2 is not None and np.all(np.isfinite(W2)):
            # (the rank test of DEQ.proof, in the dtype given)
            s = np.linalg.svd(np.eye(k) - W2.astype(np.float64), compute_uv=False)
            eps = float(np.finfo(np.result_type(W2.dtype, np.float32)).eps)
            if not s[-1] > k * eps * s[0]:
                raise SingularModelError(
                    f"{what}['W2']: I - W2 is singular (smallest singular value {s[-1]:.3g}), so {model.name} has "
                    f"no unique equilibrium; pass a W2 of shape {(k, k)} without the eigenvalue 1"
                )
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        leaf_c = _concrete(leaf)
        if leaf_c is not None and leaf_c.dtype.kind in "fc" and not np.all(np.isfinite(leaf_c)):
            raise SideqInputError(f"{what}{jax.tree_util.keystr(path)}: contains NaN or inf; pass finite numbers")
    if model.kind != "general":
        return  # (a built-in g, its params' shapes and dtypes checked above: nothing to trace)
    dtype = _float_dtype(params)
    y_struct = jax.ShapeDtypeStruct((k,), dtype)
    x_struct = jax.ShapeDtypeStruct((d,), dtype)
    try:
        out = jax.eval_shape(model.g, params, x_struct, y_struct)
    except Exception as err:  # (the user's g: any error, reported in one line)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SideqInputError(
            f"g: g(params, x, y) failed for x of shape ({d},) and y of shape ({k},) ({type(err).__name__}: "
            f"{first}); check the params' shapes against g"
        ) from None
    shape = getattr(out, "shape", None)
    if shape != (k,):
        raise SideqInputError(
            f"g: g(params, x, y) returned {shape if shape is not None else type(out).__name__} for y of shape "
            f"({k},); it must return shape ({k},) (dim = {k})"
        )


def _cast(tree, dtype):
    """Floating leaves and Python numbers in ``dtype``; integer and boolean
    arrays (indices, masks a g may hold) as they are."""

    def one(v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return jnp.asarray(v, dtype)
        v = jnp.asarray(v)
        return v.astype(dtype) if jnp.issubdtype(v.dtype, jnp.floating) and v.dtype != dtype else v

    return jax.tree_util.tree_map(one, tree)


def _prepare(model, params, x, y0):
    _check_model(model)
    x = _check_x(x)
    d = x.shape[-1]
    _check_params(model, params, d)
    dtype = _float_dtype(params, x)
    params, x = _cast(params, dtype), jnp.asarray(x, dtype)  # (x: integers become floats too)
    lead = x.shape[:-1]
    if y0 is None:
        y0 = jnp.zeros(lead + (model.dim,), dtype)
    else:
        if isinstance(y0, DEQEquilibrium):
            y0 = y0.y
        y0 = jnp.asarray(y0, dtype)
        try:
            y0 = jnp.broadcast_to(y0, lead + (model.dim,))
        except ValueError:
            raise SideqInputError(
                f"y0: shape {y0.shape} does not broadcast to {lead + (model.dim,)} (one start per input)"
            ) from None
    return params, x, y0


# ----------------------------------------------------------------------------
# Public entry points.


def solve(model: DEQ, params, x, *, y0=None, margin: bool = True) -> DEQEquilibrium:
    r"""Solve y = g(params, x, y) and return the fixed point with diagnostics.

    Args:
      model: a :class:`DEQ`.
      params: the parameters (any pytree; a dict of named arrays for the
        built-in families, checked here with a one-line error naming the key).
      x: one input (d,), or a batch (n, d) (solved under ``vmap``).
      y0: start point, (k,) or (n, k) (a previous :class:`DEQEquilibrium` too);
        default zeros.  Entries that are not finite start from zero.
      margin: compute the smallest singular value of I − ∂g/∂y at y (O(k³)).

    Returns:
      A :class:`DEQEquilibrium` ``(y, residual, iterations, margin, status)``;
      ``y`` is differentiable in params and x by Eq. (1), and NaN (with NaN
      derivatives) where the solve failed.  The statuses CONVERGED,
      UNVERIFIED and NON_UNIQUE guarantee ‖y − g(y)‖∞ ≤ tol·(1 + ‖y‖∞).
      ``y``, ``residual`` and ``margin`` are in the float dtype the params
      and x promote to.

    Raises:
      SideqInputError: ``model`` not a DEQ; ``x`` not real, finite numbers of
        shape (d,) or (n, d); params of the wrong keys or shapes, or
        non-finite; a ``g`` that fails on (d,), (k,) inputs or does not return
        (k,); a ``y0`` that does not broadcast.
      SingularModelError: concrete :func:`multi_linear` params with I − W2
        singular (under ``jit``: SINGULAR and NaN instead).

    Works under ``jit`` and ``vmap`` (over x and over params: vmap the call).
    """
    params, x, y0 = _prepare(model, params, x, y0)
    return _solve_jit(model, params, x, y0, bool(margin))


def equilibrium(model: DEQ, params, x, *, y0=None):
    r"""The fixed point y_θ(x), differentiable in params and x by Eq. (1).

    :func:`solve` (without the margin) gives the statuses.

    Args:
      model: a :class:`DEQ`.
      params: its parameters.
      x: one input (d,) or a batch (n, d).
      y0: start point, as for :func:`solve`.

    Returns:
      y, (k,) for x of shape (d,) or (n, k) for (n, d); NaN where the solve
      failed.

    Raises:
      SideqInputError: as for :func:`solve`.
      SingularModelError: as for :func:`solve`.
    """
    return solve(model, params, x, y0=y0, margin=False).y


def _check_xi(model: DEQ, xi, d):
    xi_shape = np.shape(xi)
    if xi_shape != (model.dim, d):
        raise SideqInputError(f"xi: expected shape ({model.dim}, {d}) (k, d) for {model.name}, got {xi_shape}")
    xc = _concrete(xi)
    if xc is not None and not np.all(np.isfinite(xc)):
        raise SideqInputError("xi: contains NaN or inf; pass finite numbers")


def target(model: DEQ, xi, x):
    """The target f(x) = Ξx (:func:`multi_linear`) or σ(Ξx) (:func:`multi_index`).

    Args:
      model: a :class:`DEQ` built by :func:`multi_linear` or :func:`multi_index`.
      xi: Ξ, shape (k, d), finite.
      x: one input (d,) or a batch (n, d), finite.

    Returns:
      f(x), shape (k,) or (n, k), in the float dtype ``xi`` and ``x`` promote to.

    Raises:
      SideqInputError: ``model`` not a DEQ or a general :func:`deq` (no
        target), a bad ``x``, or ``xi`` of the wrong shape or non-finite.
    """
    _check_model(model)
    x = _check_x(x)
    if model.kind == "general":
        return model.target(xi, x)  # (raises: no target)
    _check_xi(model, xi, x.shape[-1])
    dtype = _float_dtype(xi, x)
    return model.target(jnp.asarray(xi, dtype), jnp.asarray(x, dtype))


def _targets(model, x, y, xi):
    """Targets (n, k) for data x (n, d): y as given, or f(x) from xi."""
    n, d = x.shape
    if y is None:
        if xi is None:
            raise SideqInputError("y: no targets given; pass y of shape (n, k) or xi of shape (k, d)")
        if model.kind == "general":
            model.target(xi, x)  # (raises: a general DEQ has no target)
        _check_xi(model, xi, d)
        return None, jnp.asarray(xi)
    if xi is not None:
        raise SideqInputError("y/xi: give one of targets y or xi, not both")
    shape = np.shape(y)
    if model.dim == 1 and shape == (n,):
        y = jnp.reshape(jnp.asarray(y), (n, 1))
    elif shape != (n, model.dim):
        raise SideqInputError(
            f"y: expected shape ({n}, {model.dim}) to match x{' (or (n,) for k = 1)' if model.dim == 1 else ''}, "
            f"got {shape}"
        )
    yc = _concrete(y)
    if yc is not None and not np.all(np.isfinite(yc)):
        raise SideqInputError("y: contains NaN or inf; remove those samples")
    return jnp.asarray(y), None


def _risk_and_solution(model: DEQ, params, x, y, y0):
    sol = _solve_impl(model, params, x, y0, False)
    return jnp.mean(jnp.sum((sol.y - y) ** 2, axis=-1)), sol


@functools.partial(jax.jit, static_argnames=("model",))
def _risk_jit(model, params, x, y, xi):
    if y is None:
        y = model.target(xi, x)
    y0 = jnp.zeros(x.shape[:-1] + (model.dim,), x.dtype)
    return _risk_and_solution(model, params, x, y, y0)[0]


def _check_data(model, params, x, y, xi):
    _check_model(model)
    x = _check_x(x)
    if x.ndim != 2:
        raise SideqInputError(f"x: expected a batch of shape (n, d), got {x.shape}")
    _check_params(model, params, x.shape[1])
    y, xi = _targets(model, x, y, xi)
    dtype = _float_dtype(params, x, y, xi)
    cast = lambda a: None if a is None else jnp.asarray(a, dtype)  # noqa: E731
    return _cast(params, dtype), cast(x), cast(y), cast(xi)


def empirical_risk(model: DEQ, params, x, y=None, *, xi=None):
    r"""R̂(params) = (1/n) Σᵢ ‖y_θ(xᵢ) − yᵢ‖² (a sum over the k outputs; for k = 1
    the scalar library's R̂).

    Args:
      model: a :class:`DEQ`.
      params: its parameters.
      x: inputs (n, d).
      y: targets (n, k) ((n,) when k = 1); or None with ``xi``.
      xi: Ξ (k, d), for the targets f(xᵢ) of :func:`target`; only without ``y``.

    Returns:
      The risk (a scalar in the float dtype the inputs promote to),
      differentiable in params by Eq. (1); NaN if any solve failed.

    Raises:
      SideqInputError: as for :func:`solve`, and ``x`` not a batch (n, d),
        neither or both of ``y`` and ``xi``, ``y`` of the wrong shape or
        non-finite, a bad ``xi``, or ``xi`` for a general :func:`deq`.
      SingularModelError: as for :func:`solve`.
    """
    params, x, y, xi = _check_data(model, params, x, y, xi)
    return _risk_jit(model, params, x, y, xi)


class DEQTrajectory(NamedTuple):
    r"""A run of gradient descent on :func:`empirical_risk` (rows t = 0..T; under
    vmap every field gains a leading run axis).

    Attributes:
      params: the parameters θ(t), a pytree with leaves (T+1, ...).
      loss: (T+1,) R̂(θ(t)).
      grad_norm: (T+1,) ‖∇R̂(θ(t))‖ over all leaves.
      residual: (T+1,) worst ‖y − g(y)‖∞ over the samples: measured, or on
        the ``"certified"`` route of :func:`descent_route` a bound on it
        (never below the measured value).
      status: () :class:`~sideq.status.Status` of the run's end: the failure that
        froze it (SINGULAR, SOLVER_FAILURE, DIVERGED) if any; else NON_UNIQUE or
        UNVERIFIED if some fixed point at θ(T) is not proven unique; else
        CONVERGED if ``gtol`` or ``ltol`` was met, MAX_STEPS if not.
      fail_step: () first epoch with a failure, −1 if none.
      steps: () first epoch meeting gtol/ltol, T if never.
    """

    params: Any
    loss: jax.Array
    grad_norm: jax.Array
    residual: jax.Array
    status: jax.Array
    fail_step: jax.Array
    steps: jax.Array

    def __repr__(self) -> str:
        if any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(self)):
            return tuple.__repr__(self)
        shapes = jax.tree_util.tree_map(_Shape, self.params)
        rest = run_repr(_TrajectoryRest(*self[1:]), "DEQTrajectory")
        return f"DEQTrajectory(params={shapes!r}, " + rest[len("DEQTrajectory(") :]


class _Shape:
    """Shows an array as its dtype and shape (a trajectory's rows would flood a notebook)."""

    def __init__(self, value):
        self.text = f"<{np.asarray(value).dtype}{list(np.shape(value))}>"

    def __repr__(self) -> str:
        return self.text


class _TrajectoryRest(NamedTuple):
    loss: Any
    grad_norm: Any
    residual: Any
    status: Any
    fail_step: Any
    steps: Any


# ----------------------------------------------------------------------------
# Gradient descent's solver: warm-started Newton on the whole batch.
#
# Within a run a vector over the samples is a tuple of k arrays of shape (n,),
# one per output, and a k×k matrix per sample a tuple of k such tuples: every
# operation is elementwise on arrays of one shape (under vmap, (runs, n)), which
# XLA:CPU fuses into loops that vectorize.  (Stacked as (k, n) and (k, k, n),
# the same steps split into about fifty fusions per pass, each intermediate a
# trip through memory.)  XLA:CPU fuses no sibling outputs, so each output of a
# pass recomputes what it needs; Cramer's rule keeps that short for k ≤ 4.

_MULTILINEAR_K = 4  # k up to this: Newton steps by adj/det, multilinear in σ' (2^k terms)
_UNROLL_K = 8  # k up to this: elimination written out entry by entry; beyond, LAPACK
_UNROLL_KM = 64  # matrix-vector products written out up to this many entries
_CERTIFIED_STEPS = 3  # Newton steps before the bound ("certified" route); more in the fallback
_TILE = 128  # samples per tile: an epoch loops over tiles, whose intermediates stay in cache
_EXTRA_STEPS = 8  # measured Newton steps of the fallback before the model's solver
_CONTRACTION_MAX = 0.9  # Lip(σ)‖W2‖₂ up to this: fixed-point iteration ("contraction" route)
_UNPROVEN_ITERS = 32  # beyond it, the forward iteration's cap before Newton's steps take over


def descent_route(model: DEQ) -> str:
    r"""How :func:`descent` solves for ``model`` each epoch (every route starts
    from the previous epoch's roots and falls back, for the samples it leaves
    unsolved, to measured Newton steps and then to the model's own solver):

    * ``"contraction"``: :func:`multi_index` with k > 8 and a proven Lip(σ),
      where ρ = Lip(σ)‖W2‖₂ ≤ 0.9 (y ↦ g(y) is then a contraction): fixed-point
      iteration over the whole batch, one matrix product per iteration, until
      every sample's measured residual meets the tolerance; the backward
      solves Eq. (1)'s adjoint system (I − diag(σ')W2)ᵀu = y − f for the
      v = σ' ⊙ u that the gradient reads, by the same kind of iteration,
      which contracts with the same ρ, to a relative error below
      max(tol, 4k·eps) (bounded by ρ/(1 − ρ) times the last change).
      Both start from the previous epoch's iterates.  At an epoch where
      ρ > 0.9 (no proof of a contraction), at most 32 iterations forward,
      which may still converge, each sample on its measured residual; Newton
      steps for the samples they leave; the dense solve backward.
    * ``"certified"``: :func:`multi_index` with σ' a function of σ's value
      (``Activation.slope_of_value``: tanh, sigmoid) and sup|σ''| finite: a
      first-order prediction from the previous roots (Eq. (1)), two Newton
      steps, and a bound on the residual from Taylor's theorem (no evaluation
      of σ at the answer); the backward pass takes σ' at a root from its value.
    * ``"linear"``: :func:`multi_linear`: one Newton step (exact for a linear
      g) and the measured residual.
    * ``"index"``: :func:`multi_index` with another σ: one Newton step and the
      measured residual.
    * ``"general"``: :func:`deq`: the same, the Jacobian by forward mode.

    Args:
      model: a :class:`DEQ`.

    Returns:
      ``"contraction"``, ``"certified"``, ``"linear"``, ``"index"`` or
      ``"general"`` (decided from the model alone; ρ is checked per epoch).
    """
    if model.kind == "general":
        return "general"
    if model.kind == "multi_linear":
        return "linear"
    act = model.activation
    if model.dim > _UNROLL_K and not act.estimated and math.isfinite(act.lipschitz):
        return "contraction"
    if act.slope_of_value is not None and not act.estimated and math.isfinite(act.curvature_max):
        return "certified"
    return "index"


def _rows(a):
    """The rows of a (m, ...) array as a tuple."""
    return tuple(a[i] for i in range(a.shape[0]))


def _mv(w, v):
    """w (k, m) times the vector v (a tuple of m arrays): a tuple of k arrays."""
    k, m = w.shape
    if k * m > _UNROLL_KM:
        return _rows(jnp.tensordot(w, jnp.stack(v), axes=1))
    return tuple(sum(w[i, j] * v[j] for j in range(m)) for i in range(k))


def _vmax(v):
    """The largest component, elementwise over the samples (NaN wins)."""
    return functools.reduce(jnp.maximum, v)


def _jacobian(slope, W2):
    """I − diag(slope) W2 for every sample: a tuple of tuples (k ≤ _UNROLL_K),
    else an array (k, k, n)."""
    k = len(slope)
    if k > _UNROLL_K:
        return jnp.eye(k, dtype=slope[0].dtype)[:, :, None] - jnp.stack(slope)[:, None, :] * W2[:, :, None]
    return tuple(tuple((1.0 if i == j else 0.0) - slope[i] * W2[i, j] for j in range(k)) for i in range(k))


def _transpose(J):
    return jnp.swapaxes(J, 0, 1) if isinstance(J, jax.Array) else tuple(zip(*J))


# 1/a from multiplications: (integer type of the same width, magic constant,
# Newton iterations).  The constant's guess is within 5.1% of 1/a over the
# normal range; r ← r(2 − a r) squares the relative error, to 0.83 ulp after
# 5 iterations in float64 and 4 in float32.
_RECIPROCAL = {
    "float64": (jnp.int64, 0x7FDE623822FC16E6, 5),
    "float32": (jnp.int32, 0x7EF311C7, 4),
}


def _reciprocal(a):
    """1/a to an ulp, from multiplications only: XLA:CPU counts a division as
    expensive and will not fuse one whose result several outputs read, so a
    division inside the passes above would cut them into pieces.  Exact for
    ±0 (±inf), ±inf (±0) and NaN; a subnormal a gives ±inf, |a| ≥ 2^(emax−1)
    gives 0 (never the case for the pivots here)."""
    name = jnp.dtype(a.dtype).name
    if name not in _RECIPROCAL:
        return 1 / a
    itype, magic, iterations = _RECIPROCAL[name]
    info = jnp.finfo(a.dtype)
    b = jnp.abs(a)
    r = jax.lax.bitcast_convert_type(itype(magic) - jax.lax.bitcast_convert_type(b, itype), a.dtype)
    for _ in range(iterations):
        r = r * (2 - b * r)
    r = jnp.where(b < info.smallest_normal, jnp.inf, jnp.where(b >= float(info.max) / 2, 0, r))
    return jnp.where(b == b, jnp.where(jnp.signbit(a), -r, r), a)


def _det(entry, rows, cols, memo):
    """The determinant of the submatrix (rows, cols) of ``entry(r, c)`` by
    Laplace expansion along its first row, memoized in ``memo``.  Entries
    that are the Python numbers 0.0 and 1.0 are skipped and not multiplied,
    so a matrix with unit rows costs what its nontrivial part costs."""
    if not rows:
        return 1.0
    if (rows, cols) not in memo:
        total = 0.0
        for idx, c in enumerate(cols):
            e = entry(rows[0], c)
            sub = _det(entry, rows[1:], cols[:idx] + cols[idx + 1 :], memo)
            if (isinstance(e, float) and e == 0.0) or (isinstance(sub, float) and sub == 0.0):
                continue
            term = sub if isinstance(e, float) and e == 1.0 else e if isinstance(sub, float) and sub == 1.0 else e * sub
            total = total + term if idx % 2 == 0 else total - term
        memo[rows, cols] = total
    return memo[rows, cols]


def _multilinear_coefficients(W2):
    r"""M(s) = I − diag(s) W2 has rows eᵣ − sᵣ W2[r], so its determinant and
    each cofactor are multilinear in s: det M(s) = Σ_S c_S Π_{r∈S} sᵣ, and
    adj M(s)ᵢⱼ = Σ_S a_{ijS} Π_{r∈S} sᵣ, the coefficient of S the same
    determinant with row r replaced by −W2[r] for r ∈ S and by eᵣ otherwise
    (minors of W2, per run: no sample enters).  adj M(s)ᵢⱼ, the cofactor of
    (j, i), does not involve sⱼ, and for i ≠ j every term carries sᵢ (row i
    without column i is −sᵢ W2[i]).  Returns ({S: c_S}, {(i, j, S): a_ijS})."""
    k = W2.shape[0]
    full = tuple(range(k))
    det_coef, adj_coef = {}, {}
    for size in range(k + 1):
        for S in itertools.combinations(full, size):

            def entry(r, c, S=S):
                return -W2[r, c] if r in S else (1.0 if r == c else 0.0)

            memo = {}
            det_coef[S] = _det(entry, full, full, memo)
            for i in full:
                for j in full:
                    if j in S or (i != j and i not in S):
                        continue
                    minor = _det(entry, full[:j] + full[j + 1 :], full[:i] + full[i + 1 :], memo)
                    adj_coef[i, j, S] = minor if (i + j) % 2 == 0 else -minor
    return det_coef, adj_coef


def _multilinear_solve(coefficients, slope, b):
    r"""u with (I − diag(slope) W2) u = b for every sample, u = adj M b / det M
    from :func:`_multilinear_coefficients` (W2's): per output a few dozen
    multiply–adds, against a full elimination.  No pivoting, so for the Newton
    steps only, whose result is checked (:func:`_certified_residual`)."""
    det_coef, adj_coef = coefficients
    monomials = {(): 1.0}

    def monomial(S):
        if S not in monomials:
            monomials[S] = monomial(S[:-1]) * slope[S[-1]]
        return monomials[S]

    def poly(terms):
        total = 0.0
        for coef, S in terms:
            if isinstance(coef, float) and coef == 0.0:
                continue
            m = monomial(S)
            total = total + (coef if isinstance(m, float) else coef * m)
        return total

    # (a division, which XLA:CPU computes once in a fusion of its own and
    # the k outputs read: with _reciprocal each output would recompute det)
    inv = 1 / poly((c, S) for S, c in det_coef.items())
    k = len(b)
    u = []
    for i in range(k):
        num = sum(b[j] * poly((c, S) for (ii, jj, S), c in adj_coef.items() if ii == i and jj == j) for j in range(k))
        u.append(num * inv)
    return tuple(u)


def _eliminate(J, b):
    """u with J u = b: Gaussian elimination with partial pivoting written out
    entry by entry (row swaps as selects)."""
    k = len(b)
    m = [list(row) for row in J]
    r = list(b)
    inv = [None] * k
    for c in range(k):
        for i in range(c + 1, k):  # (the largest |m[i][c]|, i ≥ c, ends in row c)
            swap = jnp.abs(m[i][c]) > jnp.abs(m[c][c])
            for j in range(c, k):
                m[c][j], m[i][j] = jnp.where(swap, m[i][j], m[c][j]), jnp.where(swap, m[c][j], m[i][j])
            r[c], r[i] = jnp.where(swap, r[i], r[c]), jnp.where(swap, r[c], r[i])
        inv[c] = _reciprocal(m[c][c])
        for i in range(c + 1, k):
            f = m[i][c] * inv[c]
            for j in range(c + 1, k):
                m[i][j] = m[i][j] - f * m[c][j]
            r[i] = r[i] - f * r[c]
    u = [None] * k
    for i in reversed(range(k)):
        acc = r[i]
        for j in range(i + 1, k):
            acc = acc - m[i][j] * u[j]
        u[i] = acc * inv[i]
    return tuple(u)


def _solve(J, b):
    """u with J u = b for every sample (a singular J gives inf or NaN, never an
    error): LAPACK's LU for an array J, else pivoted elimination."""
    if isinstance(J, jax.Array):
        u = jnp.linalg.solve(jnp.moveaxis(J, -1, 0), jnp.stack(b, axis=-1)[..., None])[..., 0]
        return _rows(jnp.moveaxis(u, -1, 0))
    return _eliminate(J, b)


def _vmap_samples(f, params, x, y):
    """f(params, x, y) over the samples, x and y tuples; out (k, n)."""
    return jax.vmap(f, in_axes=(None, 1, 1), out_axes=-1)(params, jnp.stack(x), jnp.stack(y))


def _pre_activation(model, params, x, y):
    """W1 x + W2 y (+ b), a tuple of k arrays."""
    z = tuple(a + c for a, c in zip(_mv(params["W1"], x), _mv(params["W2"], y)))
    return tuple(zi + params["b"][i] for i, zi in enumerate(z)) if model.bias else z


def _g_vec(model, params, x, y):
    """g(params, x, y) for every sample, a tuple of k arrays."""
    if model.kind == "general":
        return _rows(_vmap_samples(model.g, params, x, y))
    z = _pre_activation(model, params, x, y)
    return z if model.activation is None else tuple(model.activation(zi) for zi in z)


def _evaluate(model, params, x, y, route):
    """F = y − g(y), the Jacobian I − ∂g/∂y and, for the built-in families,
    σ' at W1x + W2y (+ b) (ones for the linear one), at every sample."""
    k = model.dim
    if route == "general":
        eye = jnp.eye(k, dtype=y[0].dtype)

        def one(params, x, y):
            def F(y):
                return y - model.g(params, x, y)

            return jax.vmap(lambda v: jax.jvp(F, (y,), (v,)), out_axes=(None, 1))(eye)

        F, J = jax.vmap(one, in_axes=(None, 1, 1), out_axes=(-1, -1))(params, jnp.stack(x), jnp.stack(y))
        return _rows(F), (J if k > _UNROLL_K else tuple(_rows(row) for row in _rows(J))), None
    z = _pre_activation(model, params, x, y)
    act = model.activation
    if act is None:
        t, slope = z, tuple(jnp.ones_like(zi) for zi in z)
    elif route == "certified":
        t = tuple(act(zi) for zi in z)
        slope = tuple(act.slope_of_value(ti) for ti in t)
    else:
        t, slope = zip(*(jax.jvp(act.fn, (zi,), (jnp.ones_like(zi),)) for zi in z))
    return tuple(a - c for a, c in zip(y, t)), _jacobian(slope, params["W2"]), slope


def _certified_residual(model, params, x, y_start, F, slope, step, y):
    r"""A bound on ‖y − g(y)‖∞ per sample after the Newton step y = y_start −
    ``step`` of the ``"certified"`` route, without evaluating σ at y.

    With F the residual and J = I − diag(σ') W2 the Jacobian at y_start
    (σ' = ``slope``), Taylor's theorem gives F(y)ᵢ = ρᵢ − ½ σ''(ξᵢ) Δᵢ²,
    ρ = F − J·step, Δ = W2 (y − y_start): so |F(y)ᵢ| ≤ |ρᵢ| + ½ sup|σ''|
    (|W2| |step|)ᵢ², ρ computed here (the step itself may come from any
    solve).  Rounding adds, in units of eps: (d + k + 2)·σ'ᵢ·(|W1||x| +
    |W2||y_start| + |b|)ᵢ for W1x + W2y + b summed in floating point (through
    σ', at y_start and again in a measurement at y), 4(1 + |yᵢ|) for σ, the
    subtraction and σ' from σ's value, (k + 2)(|Fᵢ| + ‖J‖∞‖step‖∞) for ρ, and
    ‖J‖∞(‖y‖∞ + ‖step‖∞) for the rounding of y; ‖J‖∞ ≤ 1 + Lip(σ)‖W2‖∞.  The
    residual a measurement at y reports and the exact one both stay below
    the bound (``tests/test_deq.py`` checks it on random steps)."""
    act = model.activation
    W1, W2 = params["W1"], params["W2"]
    k, d = W1.shape
    eps = float(jnp.finfo(y[0].dtype).eps)
    aW2 = jnp.abs(W2)
    a_step = tuple(jnp.abs(v) for v in step)
    delta = _mv(aW2, a_step)
    size = tuple(
        a + c
        for a, c in zip(_mv(jnp.abs(W1), tuple(jnp.abs(v) for v in x)), _mv(aW2, tuple(jnp.abs(v) for v in y_start)))
    )
    if model.bias:
        size = tuple(v + jnp.abs(params["b"][i]) for i, v in enumerate(size))
    w2_step = _mv(W2, step)
    norm_j = 1 + act.lipschitz * jnp.max(jnp.sum(aW2, axis=1))
    spread = norm_j * (_vmax(tuple(jnp.abs(v) for v in y)) + (k + 3) * _vmax(a_step))
    bound = tuple(
        jnp.abs(F[i] - (step[i] - slope[i] * w2_step[i]))
        + 0.5 * act.curvature_max * delta[i] ** 2
        + eps * ((d + k + 2) * jnp.abs(slope[i]) * size[i] + 4 * (1 + jnp.abs(y[i])) + (k + 2) * jnp.abs(F[i]) + spread)
        for i in range(k)
    )
    return _vmax(bound)


def _met(residual, y, tol):
    """The success test ‖y − g(y)‖∞ ≤ tol·(1 + ‖y‖∞) per sample (False for
    NaN or a non-finite y)."""
    y_max = _vmax(tuple(jnp.abs(v) for v in y))
    return (residual <= tol * (1 + y_max)) & jnp.isfinite(y_max)


def _at_most_once(pending, body, state):
    """``body(state, pin)`` if ``pending(state)``, in a loop of at most one
    iteration: under vmap a ``cond`` becomes a select and runs always, this
    runs only when some element of the batch is pending.  XLA hoists out of
    a loop whatever it computes from loop-invariant values alone, and would
    then run it always: ``body`` passes the arrays it reads from outside
    ``state`` through ``pin`` (a select on the loop's flag, which XLA cannot
    prove a no-op)."""

    def cond(carry):
        return ~carry[0] & pending(carry[1])

    def run(carry):
        live = ~carry[0]
        return jnp.bool_(True), body(
            carry[1], lambda tree: jax.tree_util.tree_map(lambda v: jnp.where(live, v, jnp.zeros_like(v)), tree)
        )

    return jax.lax.while_loop(cond, run, (jnp.bool_(False), state))[1]


def _model_solver(model, params, x, start, tol):
    """The model's own solver (:func:`deq`'s ``solver``) for every sample."""
    run = _run_jaxopt if model.solver in ("anderson", "fixed_point") else _run_optimistix
    y, _ = jax.vmap(lambda x, y0: run(model, params, x, y0, tol), in_axes=(1, 1), out_axes=(-1, 0))(
        jnp.stack(x), jnp.stack(start)
    )
    return _rows(y)


def _start(model, y_prev, route):
    """Where an epoch's solves start: the previous roots, a cold 0 where one is
    not a number (a failed warm start), clipped to σ's range on the
    ``"certified"`` route (every root lies in it)."""
    start = tuple(jnp.where(jnp.isfinite(v), v, 0) for v in y_prev)
    if route in ("certified", "contraction"):
        act = model.activation
        start = tuple(jnp.clip(v, act.range_min, act.range_max) for v in start)
    return start


def _fallback(model, params, x, y_prev, state, route, tol, pin):
    """For the samples not yet solved (``pending``): Newton steps with the
    residual measured before each, and on the ``"certified"`` route bounded
    after each (at most ``_EXTRA_STEPS``), then the model's solver from the
    previous roots for those still pending.  A sample whose measured residual
    grows from one step to the next leaves Newton's iteration for the solver
    (where F is bounded, e.g. an arctan, a diverging iteration would
    otherwise reach a y so large that ‖F‖ ≤ tol·(1 + ‖y‖∞)).  Samples
    already solved keep their values.  ``pin``: see :func:`_at_most_once`.
    Returns (y, residual, pending)."""
    params, x, y_prev = pin((params, x, y_prev))

    def newton_active(st):
        return jnp.any(st[2] & ~st[3]) & (st[4] < _EXTRA_STEPS)

    def newton(st):
        y, residual, pending, stalled, it = st
        F, J, slope = _evaluate(model, params, x, y, route)
        r = _vmax(tuple(jnp.abs(v) for v in F))
        stalled = stalled | (pending & ~(r <= residual))  # (``residual``: at the previous iterate)
        stepping = pending & ~stalled
        met = stepping & _met(r, y, tol)  # (y measured: a root)
        pending, stepping = pending & ~met, stepping & ~met
        y_new = tuple(a - c for a, c in zip(y, _solve(J, F)))
        if route == "certified":  # (or the step's end certified: a root too)
            bound = _certified_residual(model, params, x, y, F, slope, tuple(a - c for a, c in zip(y, y_new)), y_new)
            certified = stepping & _met(bound, y_new, tol)
            residual = jnp.where(certified, bound, jnp.where(met | stepping, r, residual))
            pending = pending & ~certified
        else:
            residual = jnp.where(met | stepping, r, residual)
        y = tuple(jnp.where(stepping, a, c) for a, c in zip(y_new, y))
        return y, residual, pending, stalled, it + 1

    y, residual, pending, _, _ = jax.lax.while_loop(
        newton_active, newton, (*state, jnp.zeros_like(state[2]), jnp.int32(0))
    )

    def solver(st, pin):
        y, residual, pending = st
        p, xs = pin((params, x))
        start = _start(model, tuple(jnp.where(pending, a, c) for a, c in zip(y_prev, y)), route)
        y_s = _model_solver(model, p, xs, start, tol)
        r = _vmax(tuple(jnp.abs(a - c) for a, c in zip(y_s, _g_vec(model, p, xs, y_s))))
        y = tuple(jnp.where(pending, a, c) for a, c in zip(y_s, y))
        residual = jnp.where(pending, r, residual)
        return y, residual, pending & ~_met(r, y_s, tol)

    return _at_most_once(lambda st: jnp.any(st[2]), solver, (y, residual, pending))


def _epoch_solve(model, params, x, y_prev, active, tol):
    r"""The roots at ``params`` from the previous epoch's roots y_prev (tuples
    of k arrays (n,)), for gradient descent.  Returns (y, residual, failed,
    code): the roots (not numbers, or not roots, where ``failed``), the
    residual per sample (a bound on the ``"certified"`` route, else
    measured), and the failure code (CONVERGED if none).  An inactive run
    (``active`` False: frozen by a failure) never enters the fallback."""
    route = descent_route(model)
    start = _start(model, y_prev, route)
    if route == "certified":
        act = model.activation

        W2 = params["W2"]
        multilinear = _multilinear_coefficients(W2) if model.dim <= _MULTILINEAR_K else None

        def newton(_, carry):
            y_start = carry[1]
            t = tuple(act(v) for v in _pre_activation(model, params, x, y_start))
            F = tuple(a - c for a, c in zip(y_start, t))
            slope = tuple(act.slope_of_value(v) for v in t)
            step = (
                _multilinear_solve(multilinear, slope, F)
                if multilinear is not None
                else _solve(_jacobian(slope, W2), F)
            )
            return y_start, tuple(a - c for a, c in zip(y_start, step)), t

        # (a loop, not straight-line code: its state is materialized, else
        # every output of the pass, which XLA:CPU fuses separately, would
        # recompute all the steps before it)
        y_start, y, t = jax.lax.fori_loop(0, _CERTIFIED_STEPS, newton, (start, start, start))
        F = tuple(a - c for a, c in zip(y_start, t))
        slope = tuple(act.slope_of_value(v) for v in t)
        # (the step as taken, y_start − y: the bound then reads the iterates, not the solve)
        step = tuple(a - c for a, c in zip(y_start, y))
        residual = _certified_residual(model, params, x, y_start, F, slope, step, y)
        solved = _met(residual, y, tol)
    else:
        F, J, _ = _evaluate(model, params, x, start, route)
        y = tuple(a - c for a, c in zip(start, _solve(J, F)))
        residual = _vmax(tuple(jnp.abs(a - c) for a, c in zip(y, _g_vec(model, params, x, y))))
        # (a root whose residual is not above the start's: see _fallback for bounded F)
        r0 = _vmax(tuple(jnp.abs(v) for v in F))
        floor = tol * (1 + _vmax(tuple(jnp.abs(v) for v in start)))
        solved = _met(residual, y, tol) & (residual <= jnp.maximum(r0, floor))
        residual = jnp.where(solved, residual, jnp.maximum(residual, r0))
    singular = (model.proof(params) == Status.SINGULAR) if model.kind == "multi_linear" else jnp.bool_(False)
    pending = active & ~singular & ~solved
    y, residual, pending = _at_most_once(
        lambda st: jnp.any(st[2]),
        lambda st, pin: _fallback(model, params, x, y_prev, st, route, tol, pin),
        (y, residual, pending),
    )
    failed = singular | pending
    return y, residual, failed, _failure_code(singular, failed, jnp.isfinite(_vmax(y)) & jnp.isfinite(residual))


def _failure_code(singular, failed, finite):
    """An epoch's failure code from its samples: SINGULAR, else
    SOLVER_FAILURE where a failed sample is a finite non-root, else DIVERGED
    where one is not a number, else CONVERGED."""
    return first_status(
        [
            (singular, Status.SINGULAR),
            (jnp.any(failed & finite), Status.SOLVER_FAILURE),
            (jnp.any(failed), Status.DIVERGED),
        ]
    )


def _contraction_factor(model, W2):
    """ρ = Lip(σ)·‖W2‖₂, the Lipschitz constant of y ↦ σ(W1x + W2y + b) in
    the 2-norm, rounded up (LAPACK's largest singular value is within a few
    k·eps of the exact one)."""
    eps = float(jnp.finfo(W2.dtype).eps)
    return model.activation.lipschitz * jnp.linalg.svd(W2, compute_uv=False)[0] * (1 + 4 * model.dim * eps)


def _predict(history):
    r"""The next epoch's iterate from the last three epochs' (newest first),
    by the polynomial through them: 3a − 3b + c, or 2a − b where only two
    are numbers, or a.  θ moves by one gradient step η∇R̂ per epoch, so a
    root (or an adjoint) that is smooth in θ is predicted to O(η³) where the
    previous root alone is O(η) off.  Where θ alternates between two
    points from epoch to epoch, the prediction is 4 times as far off as the
    previous root (an iteration or two more of a contraction)."""
    a, b, c = history
    linear = jnp.where(jnp.isfinite(b), 2 * a - b, a)
    return jnp.where(jnp.isfinite(c) & jnp.isfinite(b), 3 * a - 3 * b + c, linear)


def _ring_push(H, newest, value):
    """H with ``value`` in the slot after ``newest`` (the oldest epoch's), in
    place; the new newest slot is (newest + 1) mod 3."""
    return jax.lax.dynamic_update_index_in_dim(H, value, (newest + 1) % 3, 0)


def _ring(H, newest):
    """The three epochs of a history H (3, ...) kept as a ring, newest first
    (``newest``: its slot).  A ring, not a tuple shifted each epoch: in the
    loop's state a shifted tuple moves every buffer, which XLA copies."""
    return tuple(jax.lax.dynamic_index_in_dim(H, (newest + i) % 3, 0, keepdims=False) for i in (0, 2, 1))


def _epoch_rows(model, params, X, Fy, warm, active, tol):
    r"""One epoch's measurement on the ``"contraction"`` route (the samples
    as rows: X (n, d), targets Fy (n, k); ``warm``: (HY, HV, newest), the
    last iterates of the two iterations below at the three previous epochs,
    each a :func:`_ring` (3, n, k), NaN where none, and its newest slot).

    Forward: the iteration y ← g(y) = σ(W1x + W2y + b) over the whole batch
    (one matrix product per iteration) from the predicted roots until every
    sample's measured residual ‖y − g(y)‖∞ meets :func:`_met`'s test, at
    most ``model.maxiter`` iterations where ρ = Lip(σ)‖W2‖₂ ≤
    ``_CONTRACTION_MAX`` and ``_UNPROVEN_ITERS`` elsewhere (where it may
    still converge); the samples it leaves go to :func:`_fallback` (Newton
    steps, then the model's solver).  Backward (Eq. (1)): ∇R̂ needs u with
    (I − diag(σ')W2)ᵀu = y − f only through v = σ' ⊙ u, the solution of
    v = σ' ⊙ (y − f + W2ᵀv); the iteration v ← σ' ⊙ (y − f + W2ᵀv)
    contracts with the same ρ (|σ'| ≤ Lip(σ)); a sample stops where
    ρ/(1 − ρ)‖Δv‖₂ ≤ max(tol, 4k·eps)‖v‖₂ (a bound on its relative error),
    and the samples left (ρ too large, or ``model.maxiter`` iterations) get
    the dense solve for u.  Both iterations start from :func:`_predict` of
    the previous epochs' iterates (θ moves by one gradient step per epoch,
    so the roots and the adjoints move smoothly), where not a number from a
    cold 0 (the adjoint: from σ' ⊙ (y − f)).
    The start decides the iteration count only: every sample stops on its
    own measured test.  σ' at a root is h(y) where σ' = h(σ) (tanh, sigmoid), else
    σ' at W1x + W2y + b.

    Returns (warm, R̂, ∇R̂ (2/n times Σ(∂g/∂θ)ᵀu), worst residual, failure
    code), as :func:`_epoch` does; a failed sample makes R̂ and ∇R̂ NaN."""
    HY, HV, newest = warm
    Y_hist, V_hist = _ring(HY, newest), _ring(HV, newest)
    Y_prev = Y_hist[0]
    act = model.activation
    k = model.dim
    W1, W2 = params["W1"], params["W2"]
    dtype = X.dtype
    inj = X @ W1.T
    if model.bias:
        inj = inj + params["b"]
    rho = _contraction_factor(model, W2)
    contracts = rho <= _CONTRACTION_MAX
    # (beyond the proof the iteration may still converge: each sample stops on
    # its measured residual, and a few iterations cost less than Newton's steps)
    limit = jnp.where(contracts, model.maxiter, min(model.maxiter, _UNPROVEN_ITERS))

    def image(Y):
        Y1 = act(inj + Y @ W2.T)
        r, y_max = _sample_sums((), (jnp.abs(Y1 - Y), jnp.abs(Y)))  # (one pass over the rows)
        return Y1, r, (r <= tol * (1 + y_max)) & jnp.isfinite(y_max)

    guess = _predict(Y_hist)
    start = jnp.clip(jnp.where(jnp.isfinite(guess), guess, 0), act.range_min, act.range_max)
    # (every evaluation of g in the loop's body, the first too: one set of fusions)
    unsolved = jnp.zeros(X.shape[:1], bool)
    Y, Y1, residual, solved, _ = jax.lax.while_loop(
        lambda st: active & jnp.any(~st[3]) & (st[4] < limit),
        lambda st: (st[1], *image(st[1]), st[4] + 1),
        (start, start, jnp.full(X.shape[:1], jnp.inf, dtype), unsolved, jnp.int32(0)),
    )
    solved = solved & active
    pending = active & ~solved

    def fallback(st, pin):
        Yc, res, pend = st
        # (no residual to beat at the first Newton step: the iteration's was
        # measured through a matrix product, and the step's rounding differs)
        res = jnp.where(pend, jnp.inf, res)
        y, res, pend = _fallback(
            model, params, _rows(X.T), _rows(Y_prev.T), (_rows(Yc.T), res, pend), "contraction", tol, pin
        )
        return jnp.stack(y, axis=-1), res, pend

    Y, residual, failed = _at_most_once(lambda st: jnp.any(st[2]), fallback, (Y, residual, pending))
    # (the residual, measured or bounded from y, is finite only where y is)
    finite = jnp.isfinite(residual)
    code = _failure_code(jnp.bool_(False), failed, finite)

    # backward: σ' at the roots, then the adjoint iteration
    if act.slope_of_value is not None:
        S = act.slope_of_value(Y)
    else:
        S = jax.jvp(act.fn, (inj + Y @ W2.T,), (jnp.ones_like(Y),))[1]
    R = jnp.where(failed[:, None], 0, Y - Fy)
    SR = S * R
    V_guess = _predict(V_hist)
    V0 = jnp.where(jnp.isfinite(V_guess), V_guess, SR)
    scale = rho / (1 - rho)
    rel = max(float(tol), 4 * k * float(jnp.finfo(dtype).eps))

    def adjoint(st):
        V = st[0]
        V1 = SR + S * (V @ W2)
        dv2, v2 = _sample_sums(((V1 - V) ** 2, V1 * V1))  # (one pass over the rows)
        return V1, scale * jnp.sqrt(dv2) <= rel * jnp.sqrt(v2), st[2] + 1

    V, done, _ = jax.lax.while_loop(
        lambda st: active & contracts & jnp.any(~st[1]) & (st[2] < model.maxiter),
        adjoint,
        (V0, jnp.zeros(R.shape[:1], bool), jnp.int32(0)),
    )
    # (a run frozen by a failure needs no gradient: never the dense solve,
    # whose loop would otherwise run for the whole vmapped chunk every epoch)
    done = (done & contracts) | ~active

    def dense(V, pin):
        s, w, r = pin((S, W2, R))
        u = _solve(_transpose(_jacobian(_rows(s.T), w)), _rows(r.T))
        return jnp.where(done[:, None], V, s * jnp.stack(u, axis=-1))

    V = _at_most_once(lambda V: jnp.any(~done), dense, V)
    n = X.shape[0]
    # (a failed sample, R = 0 there, makes every sum NaN: one test, not a pass
    # over the batch)
    nan_if_failed = lambda v: jnp.where(jnp.any(failed), jnp.nan, v)  # noqa: E731
    loss = nan_if_failed(jnp.sum(R * R) / n)
    parts = {"W1": V.T @ X, "W2": V.T @ Y, "b": jnp.sum(V, axis=0)}
    grad = jax.tree_util.tree_map_with_path(lambda path, _: nan_if_failed((2 / n) * parts[path[0].key]), params)
    # (the next epoch starts from the iterate after a root where the iteration solved it)
    Y_next = jnp.where((solved & ~failed)[:, None], Y1, Y)
    warm = (_ring_push(HY, newest, Y_next), _ring_push(HV, newest, V), (newest + 1) % 3)
    return warm, loss, grad, jnp.max(residual), code


def _sample_sums(sums, maxes=()):
    """Σ over the samples (the last axis) of each array in ``sums`` and the
    max of each in ``maxes``, as one variadic reduction (one fusion)."""
    ops = (*sums, *maxes)
    inits = tuple(jnp.zeros((), a.dtype) for a in sums) + tuple(jnp.full((), -jnp.inf, a.dtype) for a in maxes)

    def combine(a, b):
        return tuple(u + v for u, v in zip(a[: len(sums)], b[: len(sums)])) + tuple(
            jnp.maximum(u, v) for u, v in zip(a[len(sums) :], b[len(sums) :])
        )

    return jax.lax.reduce(ops, inits, combine, (ops[0].ndim - 1,))


def _tile_sums(model, params, x, f, y, residual, failed, valid, route):
    r"""Over the samples of a tile (tuples of arrays (c,); ``valid`` False
    for padding): Σ ‖yᵢ − fᵢ‖², Σ (∂g/∂θ)ᵀ uᵢ with uᵢ = (I − ∂g/∂y)⁻ᵀ(yᵢ − fᵢ)
    (Eq. (1); ∇R̂ is 2/n times it), and the worst residual.  On the
    ``"certified"`` route σ' at a root is h(y) (σ(z) = y there): the Jacobian
    with no evaluation of σ.  A ``failed`` sample makes both sums NaN."""
    k = model.dim
    r = tuple(jnp.where(valid, jnp.where(failed, jnp.nan, a - c), 0) for a, c in zip(y, f))
    if route == "certified":
        slope = tuple(model.activation.slope_of_value(v) for v in y)
        J = _jacobian(slope, params["W2"])
    else:
        _, J, slope = _evaluate(model, params, x, y, route)
    u = tuple(jnp.where(valid, v, 0) for v in _solve(_transpose(J), r))
    sq = sum(v * v for v in r)
    residual = jnp.where(valid, residual, 0)
    if route == "general":
        sq_sum, worst = _sample_sums((sq,), (residual,))
        _, pullback = jax.vjp(lambda p: _vmap_samples(model.g, p, x, y), params)
        return sq_sum, pullback(jnp.stack(u))[0], worst
    w = tuple(a * c for a, c in zip(slope, u))
    d = len(x)
    if k * (d + k + 1) > _UNROLL_KM:
        sq_sum, worst = _sample_sums((sq,), (residual,))
        ws = jnp.stack(w)
        parts = {"W1": ws @ jnp.stack(x).T, "W2": ws @ jnp.stack(y).T, "b": jnp.sum(ws, axis=-1)}
    else:
        outer = [w[i] * v for i in range(k) for v in (*x, *y)]
        sums = _sample_sums((sq, *outer, *(w if model.bias else ())), (residual,))
        sq_sum, worst = sums[0], sums[-1]
        grid = jnp.reshape(jnp.stack(sums[1 : 1 + len(outer)], axis=-1), sq_sum.shape + (k, d + k))
        parts = {"W1": grid[..., :d], "W2": grid[..., d:]}
        if model.bias:
            parts["b"] = jnp.stack(sums[1 + len(outer) : -1], axis=-1)
    return sq_sum, jax.tree_util.tree_map_with_path(lambda path, _: parts[path[0].key], params), worst


def _tiles(n: int) -> tuple[int, int]:
    """(tiles, samples per tile) for n samples: about ``_TILE`` per tile,
    balanced (the padding is under one sample per tile)."""
    T = max(1, -(-n // _TILE))
    return T, -(-n // T)


def _epoch(model, params, x_tiles, f_tiles, valid, y_prev, active, tol, n):
    r"""One epoch's measurement at ``params``: the roots, tile by tile (a loop
    over T tiles of c samples, which bounds the memory of the intermediates),
    warm-started from y_prev (tuples of k arrays (T, c), or (c,) for T = 1),
    then R̂, ∇R̂ (Eq. (1)), the worst residual and the failure code.
    Returns (y, loss, grad, residual, code)."""
    route = descent_route(model)

    single = valid.shape[0] == 1  # (one tile: y_prev holds arrays (n,), no loop, whose state XLA would copy)

    def tile(i, acc):
        y_all, sq, grad, worst, flags = acc
        x, f = (tuple(v[i] for v in a) for a in (x_tiles, f_tiles))
        y0 = y_all if single else tuple(v[i] for v in y_all)
        y, residual, failed, code = _epoch_solve(model, params, x, y0, active, tol)
        sq_t, grad_t, worst_t = _tile_sums(model, params, x, f, y, residual, failed, valid[i], route)
        y_all = y if single else tuple(a.at[i].set(b) for a, b in zip(y_all, y))
        flags = flags | (code == jnp.array([Status.SINGULAR, Status.SOLVER_FAILURE, Status.DIVERGED]))
        return (y_all, sq + sq_t, jax.tree_util.tree_map(jnp.add, grad, grad_t), jnp.maximum(worst, worst_t), flags)

    dtype = y_prev[0].dtype
    zero = jnp.zeros((), dtype)
    init = (y_prev, zero, jax.tree_util.tree_map(jnp.zeros_like, params), zero, jnp.zeros(3, bool))
    if single:
        y, sq, grad, worst, flags = tile(0, init)
    else:
        y, sq, grad, worst, flags = jax.lax.fori_loop(0, valid.shape[0], tile, init)
    code = first_status([(flags[0], Status.SINGULAR), (flags[1], Status.SOLVER_FAILURE), (flags[2], Status.DIVERGED)])
    grad = jax.tree_util.tree_map(lambda v: (2 / n) * v, grad)
    return y, sq / n, grad, worst, code


def _tree_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(v)) for v in jax.tree_util.tree_leaves(tree)))


@xla.jit(static_argnames=("model", "epochs", "optimizer"))  # sideq.xla: the CPU options of sideq's loops
def _descent_jit(model, params0, x, y, xi, eta, gtol, ltol, divergence, *, epochs, optimizer):
    if y is None:
        y = model.target(xi, x)
    n = x.shape[0]
    tol = model.tol_for(x.dtype)
    if descent_route(model) == "contraction":  # (the samples as rows of matrix products)

        def measure(params, y_prev, active):
            return _epoch_rows(model, params, x, y, y_prev, active, tol)

        none = jnp.full((3, n, model.dim), jnp.nan, x.dtype)  # (no iterates yet: cold starts)
        y0 = (none, none, jnp.int32(0))
    else:
        T, c = _tiles(n)

        def tiled(a):  # (n,) -> (T, c), padded with copies of the last sample
            return jnp.concatenate([a, jnp.broadcast_to(a[-1:], (T * c - n,))]).reshape(T, c)

        # (vectors over the samples, tile by tile: see _evaluate and _epoch)
        x_tiles, f_tiles = tuple(tiled(v) for v in x.T), tuple(tiled(v) for v in y.T)
        valid = (jnp.arange(T * c) < n).reshape(T, c)

        def measure(params, y_prev, active):
            return _epoch(model, params, x_tiles, f_tiles, valid, y_prev, active, tol, n)

        y0 = tuple(jnp.zeros((T, c) if T > 1 else (c,), x.dtype) for _ in range(model.dim))
    opt = optax.sgd(eta) if optimizer is None else optimizer

    def reached(loss, gnorm):
        return ((gtol > 0) & (gnorm <= gtol)) | ((ltol > 0) & (loss <= ltol))

    def step(carry, t):
        params, opt_state, y_prev, fail_code, fail_step, hit, frozen_row = carry
        active = fail_step < 0
        y_now, loss, grad, residual, code = measure(params, y_prev, active)
        gnorm = _tree_norm(grad)
        # (a frozen run repeats the row of the epoch that froze it)
        loss, gnorm, residual = (jnp.where(active, new, old) for new, old in zip((loss, gnorm, residual), frozen_row))
        hit = jnp.where((hit < 0) & active & reached(loss, gnorm), t, hit)
        finite = jnp.isfinite(loss) & jnp.isfinite(gnorm)
        code = jnp.where((code == Status.CONVERGED) & ~finite, jnp.int32(Status.DIVERGED), code)
        failed_now = active & (code != Status.CONVERGED)
        fail_code = jnp.where(failed_now, code, fail_code)
        fail_step = jnp.where(failed_now, t, fail_step)
        # (the pass at t = T measures θ(T) and takes no step)
        last = t == epochs
        updates, new_opt_state = opt.update(grad, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        leaves = jax.tree_util.tree_leaves(new_params)
        blown = ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(v) & (jnp.abs(v) <= divergence)) for v in leaves]))
        blown_now = (fail_step < 0) & blown & ~last
        fail_code = jnp.where(blown_now, Status.DIVERGED, fail_code)
        fail_step = jnp.where(blown_now, t + 1, fail_step)
        frozen = (fail_step >= 0) | last
        keep = lambda old, new: jnp.where(frozen, old, new)  # noqa: E731
        new_params = jax.tree_util.tree_map(keep, params, new_params)
        new_opt_state = jax.tree_util.tree_map(keep, opt_state, new_opt_state)
        carry = (new_params, new_opt_state, y_now, fail_code, fail_step, hit, (loss, gnorm, residual))
        return carry, (params, loss, gnorm, residual)

    # T + 1 passes of one loop body, the last measuring θ(T) only: one copy of
    # the solve and its gradient in the compiled program, not two.
    nan = jnp.full((), jnp.nan, x.dtype)
    init = (params0, opt.init(params0), y0, jnp.int32(Status.CONVERGED), jnp.int32(-1), jnp.int32(-1), (nan, nan, nan))
    (_, _, _, fail_code, fail_step, hit, _), (params_all, loss, gnorm, residual) = jax.lax.scan(
        step, init, jnp.arange(epochs + 1, dtype=jnp.int32)
    )
    # uniqueness at θ(T), the run's end (a failure takes priority)
    proof = model.proof(jax.tree_util.tree_map(lambda a: a[-1], params_all))
    status = first_status(
        [
            (fail_step >= 0, fail_code),
            (proof == Status.NON_UNIQUE, Status.NON_UNIQUE),
            (proof == Status.UNVERIFIED, Status.UNVERIFIED),
            (hit >= 0, Status.CONVERGED),
        ],
        default=Status.MAX_STEPS,
    )
    steps = jnp.where(hit >= 0, hit, epochs).astype(jnp.int32)
    return DEQTrajectory(
        params_all, loss, gnorm, residual, status.astype(jnp.int32), fail_step.astype(jnp.int32), steps
    )


def descent(
    model: DEQ,
    params0,
    *,
    x,
    y=None,
    xi=None,
    eta=0.1,
    epochs: int,
    optimizer: optax.GradientTransformation | None = None,
    gtol: float = 0.0,
    ltol: float = 0.0,
    divergence: float = 1e8,
) -> DEQTrajectory:
    r"""Full-batch gradient descent θ(t+1) = θ(t) − η∇R̂(θ(t)) on
    :func:`empirical_risk` (Section 2), the gradient by Eq. (1).

    Compiled once as a ``lax.scan``.  Each epoch solves every sample at once
    by Newton's method on F(y) = y − g(y), warm-started from the previous
    epoch's roots, whatever the model's ``solver`` (:func:`descent_route`);
    the samples that leaves unsolved get more Newton steps and then the
    model's own solver.  A success is a root to the tolerance of
    :func:`solve` (a measured residual, or on the ``"certified"`` route a
    bound on it from Taylor's theorem), with the status :func:`solve` would
    give; the gradient is Eq. (1) at the roots (k×k systems by elimination
    with partial pivoting, LAPACK for k > 8), the same numbers as
    ``jax.grad`` of :func:`empirical_risk` to rounding.  A failure freezes
    the run (its status and ``fail_step`` say which and when; later rows
    repeat the row that froze it) without raising, so under ``jax.vmap`` over
    ``params0`` one diverging run leaves the others alone.

    Args:
      model: a :class:`DEQ`.
      params0: θ(0) (the model's params pytree).
      x: inputs (n, d).
      y: targets (n, k) ((n,) when k = 1), or None with ``xi``.
      xi: Ξ (k, d) for the targets f(x) = :func:`target`; only without ``y``.
      eta: step size η > 0 of the default ``optax.sgd(eta)`` (traced: a new η
        does not recompile).
      epochs: T, an integer ≥ 0 (static).
      optimizer: any optax transformation instead of sgd.
      gtol, ltol: a run meeting ‖∇R̂‖ ≤ gtol or R̂ ≤ ltol (0: off) ends CONVERGED.
      divergence: a parameter beyond this in absolute value (or not finite)
        counts as DIVERGED.

    Returns:
      A :class:`DEQTrajectory`: ``params`` stacked over the T + 1 epochs
      (``tr.params["W1"]`` of shape (T+1, k, d)), ``loss`` (T+1,), the run's
      ``status`` and ``fail_step``.

    Raises:
      SideqInputError: ``epochs`` not an integer ≥ 0, ``optimizer`` not an
        optax transformation, a concrete ``eta`` not a scalar > 0 (without
        ``optimizer``), or bad data or params as for :func:`empirical_risk`.
      SingularModelError: as for :func:`solve`.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise SideqInputError(f"epochs: expected an integer >= 0, got {epochs!r}")
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise SideqInputError(
            "optimizer: expected an optax.GradientTransformation (e.g. optax.adam(1e-2)), "
            f"got {type(optimizer).__name__}"
        )
    params0, x, y, xi = _check_data(model, params0, x, y, xi)
    eta_c = _concrete(eta)
    if optimizer is None and eta_c is not None and not (np.ndim(eta_c) == 0 and np.isfinite(eta_c) and eta_c > 0):
        raise SideqInputError(f"eta: expected a step size > 0, got {eta!r}")
    dtype = x.dtype
    return _descent_jit(
        model,
        params0,
        x,
        y,
        xi,
        jnp.asarray(eta, dtype),
        jnp.asarray(gtol, dtype),
        jnp.asarray(ltol, dtype),
        jnp.asarray(divergence, dtype),
        epochs=int(epochs),
        optimizer=optimizer,
    )


# ----------------------------------------------------------------------------
# The top-level API: sideq.solve, sideq.equilibrium and sideq.descent given a DEQ.

#: ``maxiter`` of sideq.solve / sideq.descent for the scalar models (their default).
SCALAR_MAXITER = 100


def from_scalar_api(
    model: DEQ, *, entry: str, backend: str = "jaxopt", tol: float | None = None, maxiter: int = SCALAR_MAXITER
) -> DEQ:
    r"""``model`` with the keywords of the scalar models' ``sideq.solve`` /
    ``sideq.equilibrium`` / ``sideq.descent`` applied, for those functions
    given a :class:`DEQ`.

    ``tol`` (not None) becomes the DEQ's residual tolerance; ``maxiter``, where
    it is not the scalar default (100), the DEQ's iteration limit (the DEQ's
    own, 256 unless set, stays otherwise); ``backend`` has no counterpart (a
    DEQ's solver is chosen when it is built) and must be left at
    ``"jaxopt"``.

    Args:
      model: a :class:`DEQ`.
      entry: the public name called (for the error message).
      backend, tol, maxiter: as given to that function.

    Returns:
      A :class:`DEQ` (``model`` itself when nothing changes).

    Raises:
      SideqInputError: a keyword with no meaning for a DEQ, or a bad value.
    """
    _check_model(model)
    if backend != "jaxopt":
        raise SideqInputError(
            f"backend: {entry} of a DEQ takes no backend (got {backend!r}); a DEQ's solver is chosen when it "
            f"is built, e.g. sideq.deq(g, k, solver=...) with one of {', '.join(SOLVERS)}"
        )
    changes = {}
    if tol is not None:
        if isinstance(tol, bool) or not (isinstance(tol, numbers.Real) and math.isfinite(tol) and tol > 0):
            raise SideqInputError(f"tol: expected a number > 0 (the residual tolerance of the DEQ), got {tol!r}")
        changes["tol"] = float(tol)
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise SideqInputError(f"maxiter: expected an integer >= 1 (the DEQ solver's limit), got {maxiter!r}")
    if int(maxiter) != SCALAR_MAXITER:
        changes["maxiter"] = int(maxiter)
    return dataclasses.replace(model, **changes) if changes else model


def descent_from_scalar_api(
    model: DEQ,
    params0,
    *,
    xi,
    x=None,
    y=None,
    dist=None,
    eta=0.1,
    epochs: int = 100,
    optimizer=None,
    backend: str = "jaxopt",
    gtol: float = 0.0,
    ltol: float = 0.0,
    dtol: float = 0.0,
    maxiter: int = SCALAR_MAXITER,
    save_every=None,
) -> DEQTrajectory:
    r"""``sideq.descent`` (:func:`sideq.train.descent`) given a :class:`DEQ`:
    :func:`descent` on the empirical risk, the scalar keywords mapped.

    ``dtol`` (a distance to the scalar model's target θ) has no counterpart
    and must be 0; ``save_every`` must be None or 1 (a DEQ's descent records
    every epoch); ``dist`` (the population risk) is not available for a DEQ:
    pass data x.

    Args:
      model: a :class:`DEQ`.
      params0: θ(0), the model's params pytree.
      xi: Ξ (k, d) for the targets f(x) of :func:`target`, or None with ``y``.
      x: inputs (n, d); required.
      y: targets (n, k), or None with ``xi``.
      dist: must be None.
      eta: step size η, as for :func:`descent`.
      epochs: T, as for :func:`descent`.
      optimizer: an optax transformation instead of sgd.
      backend: must be ``"jaxopt"`` (:func:`from_scalar_api`).
      gtol: as for :func:`descent`.
      ltol: as for :func:`descent`.
      dtol: must be 0.
      maxiter: the DEQ's iteration limit where not 100 (:func:`from_scalar_api`).
      save_every: None or 1.

    Returns:
      A :class:`DEQTrajectory`.

    Raises:
      SideqInputError: ``dist`` given, no ``x``, ``dtol`` ≠ 0, ``save_every``
        other than None or 1, a ``backend`` or ``maxiter`` refused by
        :func:`from_scalar_api`, or a bad argument of :func:`descent`.
      SingularModelError: as for :func:`solve`.
    """
    _check_model(model)
    if dist is not None:
        raise SideqInputError(
            "dist: sideq.descent of a DEQ runs on data only; pass x (n, d) with y (n, k) or xi (k, d), "
            "e.g. x = sideq.sample(dist, n)"
        )
    if x is None:
        raise SideqInputError("x: no data given; sideq.descent of a DEQ needs inputs x of shape (n, d)")
    try:
        dtol_value = float(dtol)
    except (TypeError, ValueError):
        dtol_value = math.nan
    if dtol_value != 0:
        raise SideqInputError(
            f"dtol: a DEQ has no target parameters to measure a distance to (got {dtol!r}); "
            "leave dtol at 0 and use gtol or ltol"
        )
    if save_every is not None and not (
        isinstance(save_every, (int, np.integer)) and not isinstance(save_every, bool) and save_every == 1
    ):
        raise SideqInputError(
            f"save_every: sideq.descent of a DEQ records every epoch (got {save_every!r}); leave it out"
        )
    model = from_scalar_api(model, entry="sideq.descent", backend=backend, maxiter=maxiter)
    return descent(model, params0, x=x, y=y, xi=xi, eta=eta, epochs=epochs, optimizer=optimizer, gtol=gtol, ltol=ltol)
