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
failure under ``vmap`` stays in its own row.

Precision: nothing here changes ``jax_enable_x64``.  jaxopt's Anderson builds
its Gram matrix in the default float dtype, so with x64 on a float32 solve is
traced with x64 off locally (the float32 solve stays float32).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sideq.activations import Activation, get_activation
from sideq.errors import SideqInputError
from sideq.status import Status, first_status, is_success, run_repr

__all__ = [
    "DEQ", "DEQEquilibrium", "DEQTrajectory", "SOLVERS", "deq", "multi_linear", "multi_index",
    "solve", "equilibrium", "target", "empirical_risk", "descent", "default_tol", "from_scalar_api",
    "descent_from_scalar_api",
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
    (1.4e-14 in float64, 7.6e-6 in float32)."""
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
        """The success tolerance in ``dtype``."""
        return default_tol(dtype) if self.tol is None else float(self.tol)

    def target(self, xi, x):
        """f(x) = Ξx (:func:`multi_linear`) or σ(Ξx) (:func:`multi_index`), Ξ of
        shape (k, d); x of shape (d,) or (n, d).  Unchecked: see :func:`target`."""
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
        largest, the rank test of ``numpy.linalg.matrix_rank``)."""
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
            raise SideqInputError(
                f"{key}: not a setting of the {solver!r} solver (its settings: {valid})"
            )
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


def deq(g: Callable, dim: int, *, solver: str = "anderson", tol: float | None = None,
        maxiter: int = _DEFAULT_MAXITER, name: str | None = None, certify: Callable | None = None,
        **solver_options) -> DEQ:
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

    Example::

        from sideq.general import deq, equilibrium

        model = deq(lambda p, x, y: jnp.tanh(p["A"] @ x + p["B"] @ y), dim=4)
        y = equilibrium(model, {"A": A, "B": B}, x)  # (4,), differentiable in p and x
    """
    if not callable(g):
        raise SideqInputError(f"g: expected a callable g(params, x, y), got {type(g).__name__}")
    options = _check_settings(solver, dim, tol, maxiter, solver_options)
    label = name if name is not None else getattr(g, "__name__", "deq")
    return DEQ(g, int(dim), solver, None if tol is None else float(tol), int(maxiter), label, options,
               certify=certify)


def multi_linear(k: int, *, bias: bool = False, solver: str = "newton", tol: float | None = None,
                 maxiter: int = _DEFAULT_MAXITER, **solver_options) -> DEQ:
    r"""The multi-neuron linear DEQ y = W1 x + W2 y (+ b), y ∈ ℝ^k (Section 5's
    extension of Eq. (2)).

    Params: ``{"W1": (k, d), "W2": (k, k)}`` (+ ``"b": (k,)`` with ``bias``).
    The equilibrium is y = (I − W2)⁻¹(W1 x + b): unique wherever I − W2 is
    nonsingular (CONVERGED), SINGULAR (y = NaN) where it is not.  Newton (the
    default) solves it in one step at any spectral radius of W2; fixed-point
    iteration needs ρ(W2) < 1.  Target: f(x) = Ξx.
    """
    options = _check_settings(solver, k, tol, maxiter, solver_options)
    return DEQ(_MultiMap(None, bool(bias)), int(k), solver, None if tol is None else float(tol),
               int(maxiter), f"multi_linear(k={int(k)})", options, "multi_linear", None, bool(bias))


def multi_index(sigma, k: int, *, bias: bool = False, solver: str = "anderson",
                tol: float | None = None, maxiter: int = _DEFAULT_MAXITER, **solver_options) -> DEQ:
    r"""The multi-neuron single-index DEQ y = σ(W1 x + W2 y (+ b)), y ∈ ℝ^k
    (Section 5's extension of Eq. (10)).

    ``sigma``: a name or an :class:`~sideq.activations.Activation`.  Params as
    for :func:`multi_linear`.  y ↦ σ(W1x + W2y) is Lip(σ)·‖W2‖₂-Lipschitz, so
    where ‖W2‖₂·Lip(σ) < 1 the fixed point is unique (Banach) and a root is
    CONVERGED; elsewhere NON_UNIQUE (UNVERIFIED for an activation whose slope
    bounds were estimated).  Target: f(x) = σ(Ξx).
    """
    act = get_activation(sigma)
    options = _check_settings(solver, k, tol, maxiter, solver_options)
    return DEQ(_MultiMap(act, bool(bias)), int(k), solver, None if tol is None else float(tol),
               int(maxiter), f"multi_index({act.name}, k={int(k)})", options, "multi_index", act, bool(bias))


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
    import jax.tree_util as jtu
    import lineax as lx
    import optimistix as optx

    class FiniteLU(lx.AbstractLinearSolver):
        """:class:`lineax.LU` whose non-finite solutions come back as zeros.

        lineax raises on a non-finite solution of the implicit adjoint's solve,
        which under ``vmap`` would stop every row of a batch because one solve
        failed.  A failed solve's y is NaN with NaN derivatives anyway (its
        cotangent is poisoned after the solve, :func:`_poison`), so the zeros
        are never read."""

        def init(self, operator, options):
            return lx.LU().init(operator, options)

        def compute(self, state, vector, options):
            solution, result, stats = lx.LU().compute(state, vector, options)
            solution = jtu.tree_map(lambda v: jnp.where(jnp.isfinite(v), v, 0), solution)
            return solution, result, stats

        def transpose(self, state, options):
            return lx.LU().transpose(state, options)

        def conj(self, state, options):
            return lx.LU().conj(state, options)

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

    return optx, lx, FiniteLU, Broyden


def _run_jaxopt(model: DEQ, params, x, y0, tol):
    """(y, iterations) by jaxopt, y differentiable by Eq. (1) with
    the dense IFT solve."""
    jaxopt = _jaxopt()
    dtype = y0.dtype
    g = model.g

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
    with jax.enable_x64(jnp.finfo(dtype).bits >= 64 and jax.config.jax_enable_x64):
        solver = cls(fixed_point_fun, maxiter=model.maxiter, tol=tol, implicit_diff=True,
                     implicit_diff_solve=_dense_ift_solve, **opts)
        y, state = solver.run(y0, params, x)
    return y, jnp.asarray(state.iter_num).astype(jnp.int32)


def _run_optimistix(model: DEQ, params, x, y0, tol):
    """(y, iterations) by optimistix, y differentiable by
    :class:`optimistix.ImplicitAdjoint` with a dense LU solve."""
    optx, lx, FiniteLU, Broyden = _optx()
    g = model.g

    def residual(y, args):
        params, x = args
        return y - g(params, x, y)

    if model.solver == "newton":
        solver = optx.Newton(rtol=tol, atol=tol, linear_solver=lx.LU())
    else:
        solver = Broyden(rtol=tol, atol=tol)
    sol = optx.root_find(residual, solver, y0, args=(params, x), max_steps=model.maxiter,
                         adjoint=optx.ImplicitAdjoint(linear_solver=FiniteLU()), throw=False)
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
    failure = first_status([
        (proof == Status.SINGULAR, Status.SINGULAR), (~finite, Status.DIVERGED),
        (~met & (iterations >= model.maxiter), Status.MAX_STEPS), (~met, Status.SOLVER_FAILURE),
    ], default=Status.CONVERGED)
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
        extra = sorted(set(params) - set(expected))
        if extra:
            raise SideqInputError(f"{what}: unexpected key {extra[0]!r}; {model.name} takes {layout}")
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        leaf_c = _concrete(leaf)
        if leaf_c is not None and leaf_c.dtype.kind in "fc" and not np.all(np.isfinite(leaf_c)):
            raise SideqInputError(f"{what}{jax.tree_util.keystr(path)}: contains NaN or inf; pass finite numbers")
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
        return v.astype(dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v

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

    Works under ``jit`` and ``vmap`` (over x and over params: vmap the call).
    """
    params, x, y0 = _prepare(model, params, x, y0)
    return _solve_jit(model, params, x, y0, bool(margin))


def equilibrium(model: DEQ, params, x, *, y0=None):
    r"""The fixed point y_θ(x), (k,) for x of shape (d,) or (n, k) for (n, d),
    differentiable in params and x by Eq. (1); NaN where the solve failed.
    :func:`solve` gives the statuses."""
    return solve(model, params, x, y0=y0, margin=False).y


def _check_xi(model: DEQ, xi, d):
    xi_shape = np.shape(xi)
    if xi_shape != (model.dim, d):
        raise SideqInputError(
            f"xi: expected shape ({model.dim}, {d}) (k, d) for {model.name}, got {xi_shape}"
        )
    xc = _concrete(xi)
    if xc is not None and not np.all(np.isfinite(xc)):
        raise SideqInputError("xi: contains NaN or inf; pass finite numbers")


def target(model: DEQ, xi, x):
    """The target f(x) = Ξx (:func:`multi_linear`) or σ(Ξx) (:func:`multi_index`),
    Ξ = ``xi`` of shape (k, d); x of shape (d,) or (n, d); returns (k,) or (n, k)."""
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
    cast = (lambda a: None if a is None else jnp.asarray(a, dtype))  # noqa: E731
    return _cast(params, dtype), cast(x), cast(y), cast(xi)


def empirical_risk(model: DEQ, params, x, y=None, *, xi=None):
    r"""R̂(params) = (1/n) Σᵢ ‖y_θ(xᵢ) − yᵢ‖² (a sum over the k outputs; for k = 1
    the scalar library's R̂).

    Args:
      model: a :class:`DEQ`.
      params: its parameters.
      x: inputs (n, d).
      y: targets (n, k) ((n,) when k = 1); or None with ``xi`` (k, d), for the
        targets f(xᵢ) of :func:`target`.

    Returns:
      The risk (a scalar), differentiable in params by Eq. (1); NaN if any
      solve failed.
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
      residual: (T+1,) worst ‖y − g(y)‖∞ over the samples.
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
        return f"DEQTrajectory(params={shapes!r}, " + rest[len("DEQTrajectory("):]


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


def _step_failure(status, loss, grad):
    """Failure code of one epoch: the solves' worst failure (an iteration limit
    counts as SOLVER_FAILURE), DIVERGED for a non-finite risk or gradient."""
    leaves = jax.tree_util.tree_leaves(grad)
    finite = jnp.isfinite(loss) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in leaves]))
    return first_status([
        (jnp.any(status == Status.SINGULAR), Status.SINGULAR),
        (jnp.any((status == Status.SOLVER_FAILURE) | (status == Status.MAX_STEPS)), Status.SOLVER_FAILURE),
        (jnp.any(status == Status.DIVERGED) | ~finite, Status.DIVERGED),
    ])


def _tree_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(v)) for v in jax.tree_util.tree_leaves(tree)))


@functools.partial(jax.jit, static_argnames=("model", "epochs", "optimizer"))
def _descent_jit(model, params0, x, y, xi, eta, gtol, ltol, divergence, *, epochs, optimizer):
    if y is None:
        y = model.target(xi, x)
    opt = optax.sgd(eta) if optimizer is None else optimizer
    value_and_grad = jax.value_and_grad(
        lambda p, y0: _risk_and_solution(model, p, x, y, y0), has_aux=True)

    def measure(params, y_warm):
        (loss, sol), grad = value_and_grad(params, y_warm)
        return loss, grad, sol

    def reached(loss, gnorm):
        return ((gtol > 0) & (gnorm <= gtol)) | ((ltol > 0) & (loss <= ltol))

    def step(carry, t):
        params, opt_state, y_warm, fail_code, fail_step, hit, _ = carry
        loss, grad, sol = measure(params, y_warm)
        gnorm = _tree_norm(grad)
        hit = jnp.where((hit < 0) & (fail_step < 0) & reached(loss, gnorm), t, hit)
        code = _step_failure(sol.status, loss, grad)
        failed_now = (fail_step < 0) & (code != Status.CONVERGED)
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
        unproven = jnp.stack([jnp.any(sol.status == Status.NON_UNIQUE), jnp.any(sol.status == Status.UNVERIFIED)])
        # (warm start: this epoch's solutions; where one failed its NaN restarts it cold)
        carry = (new_params, new_opt_state, jax.lax.stop_gradient(sol.y), fail_code, fail_step, hit, unproven)
        return carry, (params, loss, gnorm, jnp.max(sol.residual))

    # T + 1 passes of one loop body, the last measuring θ(T) only: one copy of
    # the solve and its gradient in the compiled program, not two.
    y0 = jnp.zeros(x.shape[:-1] + (model.dim,), x.dtype)
    init = (params0, opt.init(params0), y0, jnp.int32(Status.CONVERGED), jnp.int32(-1), jnp.int32(-1),
            jnp.zeros(2, bool))
    (_, _, _, fail_code, fail_step, hit, unproven), (params_all, loss, gnorm, residual) = jax.lax.scan(
        step, init, jnp.arange(epochs + 1, dtype=jnp.int32))
    status = first_status([
        (fail_step >= 0, fail_code), (unproven[0], Status.NON_UNIQUE), (unproven[1], Status.UNVERIFIED),
        (hit >= 0, Status.CONVERGED),
    ], default=Status.MAX_STEPS)
    steps = jnp.where(hit >= 0, hit, epochs).astype(jnp.int32)
    return DEQTrajectory(params_all, loss, gnorm, residual, status.astype(jnp.int32),
                         fail_step.astype(jnp.int32), steps)


def descent(model: DEQ, params0, *, x, y=None, xi=None, eta=0.1, epochs: int,
            optimizer: optax.GradientTransformation | None = None, gtol: float = 0.0, ltol: float = 0.0,
            divergence: float = 1e8) -> DEQTrajectory:
    r"""Full-batch gradient descent θ(t+1) = θ(t) − η∇R̂(θ(t)) on
    :func:`empirical_risk` (Section 2), the gradient by Eq. (1).

    Compiled once as a ``lax.scan``; each epoch's solves start from the
    previous epoch's solutions (a warm start).  A failure freezes the run (its
    status and ``fail_step`` say which and when) without raising, so under
    ``jax.vmap`` over ``params0`` one diverging run leaves the others alone.

    Args:
      model: a :class:`DEQ`.
      params0: θ(0) (the model's params pytree).
      x: inputs (n, d).
      y: targets (n, k) ((n,) when k = 1), or None with ``xi`` (k, d) for
        f(x) = :func:`target`.
      eta: step size η of the default ``optax.sgd(eta)`` (traced: a new η does
        not recompile).
      epochs: T (static).
      optimizer: any optax transformation instead of sgd.
      gtol, ltol: a run meeting ‖∇R̂‖ ≤ gtol or R̂ ≤ ltol (0: off) ends CONVERGED.
      divergence: a parameter beyond this in absolute value (or not finite)
        counts as DIVERGED.

    Returns:
      A :class:`DEQTrajectory`: ``params`` stacked over the T + 1 epochs
      (``tr.params["W1"]`` of shape (T+1, k, d)), ``loss`` (T+1,), the run's
      ``status`` and ``fail_step``.
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
    return _descent_jit(model, params0, x, y, xi, jnp.asarray(eta, dtype), jnp.asarray(gtol, dtype),
                        jnp.asarray(ltol, dtype), jnp.asarray(divergence, dtype),
                        epochs=int(epochs), optimizer=optimizer)


# ----------------------------------------------------------------------------
# The top-level API: sideq.solve, sideq.equilibrium and sideq.descent given a DEQ.

#: ``maxiter`` of sideq.solve / sideq.descent for the scalar models (their default).
SCALAR_MAXITER = 100


def from_scalar_api(model: DEQ, *, entry: str, backend: str = "jaxopt", tol: float | None = None,
                    maxiter: int = SCALAR_MAXITER) -> DEQ:
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


def descent_from_scalar_api(model: DEQ, params0, *, xi, x=None, y=None, dist=None, eta=0.1, epochs: int = 100,
                            optimizer=None, backend: str = "jaxopt", gtol: float = 0.0, ltol: float = 0.0,
                            dtol: float = 0.0, maxiter: int = SCALAR_MAXITER, save_every=None) -> DEQTrajectory:
    r"""``sideq.descent`` (:func:`sideq.train.descent`) given a :class:`DEQ`:
    :func:`descent` on the empirical risk, the scalar keywords mapped.

    ``xi`` (k, d) gives the targets f(x) of :func:`target`, or is None with
    ``y`` (n, k); ``backend``, ``tol`` and ``maxiter`` as in
    :func:`from_scalar_api`.  ``dtol`` (a distance to the scalar model's
    target θ) has no counterpart and must be 0; ``save_every`` must be None or
    1 (a DEQ's descent records every epoch); ``dist`` (the population risk)
    is not available for a DEQ: pass data x.

    Returns:
      A :class:`DEQTrajectory`.
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
    if save_every is not None and not (isinstance(save_every, (int, np.integer)) and not isinstance(save_every, bool)
                                       and save_every == 1):
        raise SideqInputError(
            f"save_every: sideq.descent of a DEQ records every epoch (got {save_every!r}); leave it out"
        )
    model = from_scalar_api(model, entry="sideq.descent", backend=backend, maxiter=maxiter)
    return descent(model, params0, x=x, y=y, xi=xi, eta=eta, epochs=epochs, optimizer=optimizer, gtol=gtol,
                   ltol=ltol)
