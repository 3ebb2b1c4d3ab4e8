r"""Activation functions σ for the single-index DEQ g_θ(x, y) = σ(θ1ᵀx + θ2 y), Eq. (10).

Each :class:`Activation` carries what the rest of the library needs to decide,
without evaluating anything, whether a theorem of the paper applies and whether
the equilibrium is unique:

* ``slope_min``, ``slope_max`` -- bounds ``inf σ'`` and ``sup σ'`` over ℝ.  The
  Lipschitz constant is ``L = max(|slope_min|, |slope_max|)`` (Section 1.3).
  For ``F(y) = y − σ(ω)``, ``F'(y) = 1 − θ2 σ'(ω)`` lies between
  ``1 − θ2·slope_min`` and ``1 − θ2·slope_max``; the root is unique whenever both
  have the same sign (see :func:`sideq.scalar.uniqueness_margin`).
* ``range_min``, ``range_max`` -- the closure of σ(ℝ) (``±inf`` when unbounded);
  every fixed point lies in it, which gives a bracket when nothing else does.
* ``curvature_max`` -- ``sup |σ''|`` (``inf`` when σ' jumps, e.g. relu).  With
  the slope bounds it bounds the error left by one Newton step,
  ``|e1| ≤ θ2² sup|σ''| F(y0)² / (2 |F'(y0)| m²)``, which lets the solver stop
  after one evaluation from a good warm start (see :mod:`sideq.solve`).
* ``slope_of_value`` -- σ' as a function of σ's value, where σ is invertible
  and σ' = h(σ) (sigmoid: σ' = σ(1 − σ); tanh: σ' = 1 − σ²), else None.  At an
  equilibrium y = σ(ω), so σ'(ω) = h(y): gradient descent's solver
  then needs no evaluation of σ at its answer (see
  :func:`sideq.scalar.solve_warm`).
* ``differentiable``, ``monotone`` -- the assumptions 2(i) of Theorem 3.8.
* ``affine`` -- σ is affine (the single-index DEQ is then a linear DEQ and the
  nonlinearity assumption 3 of Theorem 3.8 fails).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sideq.errors import EstimatedBoundsWarning, SideqInputError

__all__ = ["Activation", "activation", "get_activation", "ACTIVATIONS", "LEAKY_RELU_SLOPE"]

LEAKY_RELU_SLOPE = 0.01
_GRID_POINTS = 200_001  # where slope bounds are estimated (see activation)

# Exact GELU σ(z) = z Φ(z): σ'(z) = Φ(z) + z φ(z), extremal at z = ±√2.
_SQRT2 = math.sqrt(2.0)
_PHI_SQRT2 = math.exp(-1.0) / math.sqrt(2.0 * math.pi)
_GELU_SLOPE_MAX = 0.5 * (1.0 + math.erf(1.0)) + _SQRT2 * _PHI_SQRT2
_GELU_SLOPE_MIN = 0.5 * (1.0 - math.erf(1.0)) - _SQRT2 * _PHI_SQRT2
_GELU_RANGE_MIN = -0.1699712074799037  # min_z z Φ(z), attained at z ≈ −0.7518

# sup |σ''| over ℝ.  sigmoid: σ'' = σ'(1 − 2σ), extremal at σ = 1/2 ± 1/(2√3):
# 1/(6√3).  tanh: σ'' = −2 tanh·sech², extremal at tanh² = 1/3: 4/(3√3).
# softplus: σ'' = sigmoid' ≤ 1/4.  GELU: σ'' = φ(z)(2 − z²), largest at z = 0: 2φ(0).
_SIGMOID_CURVATURE = 1.0 / (6.0 * math.sqrt(3.0))
_TANH_CURVATURE = 4.0 / (3.0 * math.sqrt(3.0))
_GELU_CURVATURE = 2.0 / math.sqrt(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False)
class Activation:
    """An activation σ with the constants the paper's results depend on.

    Instances are hashable by identity so they can be static arguments of jitted
    functions; the built-in ones are module-level singletons.

    Attributes:
      name: its name (``--model`` on the command line, the settings of runs).
      fn: σ itself, elementwise on arrays.
      slope_min, slope_max: inf σ' and sup σ' over ℝ (Lip(σ) is the larger
        in absolute value, :attr:`lipschitz`).
      range_min, range_max: the interval σ(ℝ) lies in (±inf when unbounded).
      curvature_max: sup |σ''|; inf when unknown or σ' jumps.
      differentiable: σ is differentiable everywhere.
      affine: σ is affine (the linear DEQ's identity).
      estimated: the slope bounds were estimated on a grid (a user callable
        without ``slope_bounds``): they prove nothing, and a solve reports
        UNVERIFIED, never CONVERGED (:func:`activation`).
      slope_of_value: h with σ' = h(σ) (sigmoid, tanh), or None.
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]
    slope_min: float
    slope_max: float
    range_min: float = -math.inf
    range_max: float = math.inf
    curvature_max: float = math.inf
    differentiable: bool = True
    affine: bool = False
    estimated: bool = False
    slope_of_value: Callable[[jax.Array], jax.Array] | None = None

    def __call__(self, z):
        return self.fn(z)

    @property
    def lipschitz(self) -> float:
        """L = ‖σ‖_Lip = sup |σ'| (Section 1.3)."""
        return max(abs(self.slope_min), abs(self.slope_max))

    @property
    def monotone(self) -> bool:
        """σ is nondecreasing (σ' ≥ 0 everywhere)."""
        return self.slope_min >= 0.0

    @property
    def bounded(self) -> bool:
        """σ(ℝ) lies in a bounded interval (finite ``range_min`` and ``range_max``)."""
        return math.isfinite(self.range_min) and math.isfinite(self.range_max)

    @property
    def meets_corollary_3_1(self) -> bool:
        """The hypotheses of Corollary 3.1 on σ, as far as the spec records them:
        differentiable, monotonically increasing (inf σ' ≥ 0 and sup σ' > 0), a
        finite Lipschitz constant, and not affine.  The corollary asks for more
        than the spec can say: σ' continuous, σ strictly increasing, and σ not
        linear in any neighbourhood of zero (not just not affine); sigmoid, tanh
        and softplus have all of it.  Theorem 3.8 asks for more again: its
        assumption 3 involves the law of X, and with Θ as printed tanh fails it
        (ρ = 0, ERRATA.md §6) although it meets the corollary."""
        return (
            self.differentiable
            and self.monotone
            and math.isfinite(self.lipschitz)
            and not self.affine
            and self.slope_max > 0.0
        )

    def __repr__(self) -> str:
        return f"Activation({self.name!r}, L={self.lipschitz:.6g})"


def _leaky_relu(z):
    return jnp.where(z >= 0, z, LEAKY_RELU_SLOPE * z)


def _gelu(z):
    return jax.nn.gelu(z, approximate=False)


def _identity(z):
    return z


def _sigmoid_slope(y):
    return y * (1 - y)


def _tanh_slope(y):
    return 1 - y * y


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("sigmoid", jax.nn.sigmoid, 0.0, 0.25, 0.0, 1.0, _SIGMOID_CURVATURE, slope_of_value=_sigmoid_slope),
        Activation("tanh", jnp.tanh, 0.0, 1.0, -1.0, 1.0, _TANH_CURVATURE, slope_of_value=_tanh_slope),
        Activation("softplus", jax.nn.softplus, 0.0, 1.0, 0.0, math.inf, 0.25),
        Activation("relu", jax.nn.relu, 0.0, 1.0, 0.0, math.inf, differentiable=False),
        Activation(
            "leaky_relu",
            _leaky_relu,
            LEAKY_RELU_SLOPE,
            1.0,
            -math.inf,
            math.inf,
            differentiable=False,
        ),
        Activation(
            "gelu",
            _gelu,
            _GELU_SLOPE_MIN,
            _GELU_SLOPE_MAX,
            _GELU_RANGE_MIN,
            math.inf,
            _GELU_CURVATURE,
        ),
        Activation("identity", _identity, 1.0, 1.0, curvature_max=0.0, affine=True),
    ]
}


def activation(
    fn: Callable,
    *,
    name: str | None = None,
    slope_bounds: tuple[float, float] | None = None,
    range_bounds: tuple[float, float] | None = None,
    differentiable: bool = True,
    curvature_bound: float | None = None,
    slope_of_value: Callable | None = None,
    search_radius: float = 20.0,
) -> Activation:
    """Wrap a user callable ``fn: ℝ → ℝ`` (JAX-traceable, elementwise) as an Activation.

    ``slope_bounds = (inf σ', sup σ')`` should be given when known: they prove
    that the equilibrium is unique where |θ2|·sup|σ'| < 1 or, for monotone σ,
    θ2·sup σ' < 1 (:func:`sideq.scalar.uniqueness_margin`).  If omitted they
    are *estimated* on a grid of 200,001 points in ``[-search_radius,
    search_radius]``, with an :class:`~sideq.errors.EstimatedBoundsWarning`:
    a grid sees neither slopes outside that interval nor a kink or a steep
    part between two of its points, so an estimate is not a proof.  With
    estimated bounds (``estimated=True``) the solver uses them only to search
    for a root: a solve that finds one reports ``Status.UNVERIFIED``, never
    CONVERGED; the bounds certify no one-step stop and no residual, and equal
    estimated bounds do not make σ affine.
    ``range_bounds`` defaults to unbounded, which only costs a bracket in the
    non-unique regime.  ``curvature_bound`` (≥ sup |σ''|) is never estimated:
    it certifies the solver's one-evaluation stop, so a guess could return a
    wrong root.  Without it the solver confirms convergence with one more
    evaluation (correct, a little slower); an affine σ has curvature 0.
    ``slope_of_value`` is h with σ' = h(σ) (for tanh(2z): ``lambda y: 2 * (1 - y * y)``);
    with ``curvature_bound`` it lets gradient descent skip the evaluation of σ
    at each solution (:func:`sideq.scalar.solve_warm`).  Since a wrong h would
    bias every gradient, it is checked against σ' on 2,001 points of
    ``[-search_radius, search_radius]`` (to 1e-9 relative) and refused if it
    differs.

    Args:
      fn: σ, a JAX-traceable elementwise callable ℝ → ℝ.
      name: label shown in reprs and messages (default ``fn.__name__``, else
        ``"custom"``).
      slope_bounds: ``(inf σ', sup σ')`` over ℝ; default estimated on the grid
        (``estimated=True``, with an EstimatedBoundsWarning).
      range_bounds: the closure ``(inf σ, sup σ)`` of σ(ℝ); default
        ``(-inf, inf)``.
      differentiable: whether σ is differentiable (assumption 2(i) of
        Theorem 3.8).
      curvature_bound: a bound ≥ sup |σ''|; default 0 for an affine σ (equal,
        given slope bounds) and ``inf`` otherwise.
      slope_of_value: h with σ' = h(σ), checked on the grid; default None.
      search_radius: half-width of the grid ``[-search_radius,
        search_radius]`` on which slope bounds are estimated and
        ``slope_of_value`` is checked.

    Returns:
      An :class:`Activation` (frozen; float bounds), ``affine`` when the given
      slope bounds are equal.

    Raises:
      SideqInputError: ``fn`` or ``slope_of_value`` is not callable, the
        estimated derivative is not finite on the grid, ``slope_bounds`` has
        min > max, ``curvature_bound`` is not a number ≥ 0, or
        ``slope_of_value`` differs from σ' on the grid.
    """
    if not callable(fn):
        raise SideqInputError(f"activation: expected a callable or one of {sorted(ACTIVATIONS)}, got {fn!r}")
    estimated = slope_bounds is None
    label = name or getattr(fn, "__name__", "custom")
    if estimated:
        _, _, d = _on_grid(fn, search_radius, _GRID_POINTS)
        if not np.all(np.isfinite(d)):
            raise SideqInputError(
                "activation: the derivative of the given callable is not finite on "
                f"[-{search_radius}, {search_radius}]; pass slope_bounds=(min, max) explicitly"
            )
        slope_bounds = (float(d.min()), float(d.max()))
        warnings.warn(
            f"activation {label!r}: slope bounds estimated on a grid of [-{search_radius:g}, "
            f"{search_radius:g}] as [{slope_bounds[0]:.6g}, {slope_bounds[1]:.6g}]; a grid cannot see "
            "slopes outside that interval or between its points (kinks, steep narrow parts), so "
            "uniqueness of the equilibrium is not claimed (Status.UNVERIFIED); pass "
            "slope_bounds=(inf sigma', sup sigma') to prove it",
            EstimatedBoundsWarning,
            stacklevel=_caller_level(),
        )
    lo, hi = map(float, slope_bounds)
    if not lo <= hi:
        raise SideqInputError(f"activation: slope_bounds must satisfy min <= max, got {slope_bounds}")
    rlo, rhi = range_bounds if range_bounds is not None else (-math.inf, math.inf)
    # Equal estimated bounds do not make σ affine: a grid sees no step that
    # lies between two of its points (treated as affine, the residual would be
    # computed from a linear model of σ and could not flag a wrong root).
    affine = lo == hi and not estimated
    if curvature_bound is None:
        curvature = 0.0 if affine else math.inf
    else:
        curvature = float(curvature_bound)
        if not curvature >= 0.0:
            raise SideqInputError(
                f"activation: curvature_bound must be a number >= 0 (sup |sigma''|), got {curvature_bound!r}"
            )
    if slope_of_value is not None:
        _check_slope_of_value(fn, slope_of_value, search_radius)
    return Activation(
        label,
        fn,
        lo,
        hi,
        float(rlo),
        float(rhi),
        curvature,
        differentiable=differentiable,
        affine=affine,
        estimated=estimated,
        slope_of_value=slope_of_value,
    )


def _caller_level() -> int:
    """The ``stacklevel`` of a warning that points at the first frame outside
    sideq (the user's line that built the activation or the model)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("sideq."):
        frame, level = frame.f_back, level + 1
    return level


def _on_grid(fn, radius, points):
    """(z, σ(z), σ'(z)) as float64 numpy arrays on ``points`` equally spaced z
    in [−radius, radius], by jax.value_and_grad."""
    z = np.linspace(-radius, radius, points)
    with jax.enable_x64(True):  # scoped: the caller's global flag is untouched
        scalar = lambda t: jnp.asarray(fn(t)).reshape(())  # noqa: E731
        values, slopes = jax.vmap(jax.value_and_grad(scalar))(jnp.asarray(z, jnp.float64))
    return z, np.asarray(values), np.asarray(slopes)


def _check_slope_of_value(fn, h, radius):
    """Refuse an h with h(σ(z)) ≠ σ'(z) somewhere on a float64 grid (1e-9 relative)."""
    if not callable(h):
        raise SideqInputError(f"activation: slope_of_value must be a callable h with sigma' = h(sigma), got {h!r}")
    z, values, slopes = _on_grid(fn, radius, 2001)
    with jax.enable_x64(True):  # (h in float64 too)
        claimed = np.asarray(jnp.broadcast_to(jnp.asarray(h(jnp.asarray(values)), jnp.float64), values.shape))
    off = ~(np.abs(claimed - slopes) <= 1e-9 * (1 + np.abs(slopes)))
    if off.any():
        i = int(np.argmax(off))
        raise SideqInputError(
            f"activation: slope_of_value(sigma(z)) = {claimed[i]:.6g} but sigma'(z) = {slopes[i]:.6g} "
            f"at z = {z[i]:.6g}; pass the h with sigma' = h(sigma), or leave slope_of_value out"
        )


def get_activation(spec: str | Activation | Callable) -> Activation:
    """Resolve a name, an :class:`Activation`, or a callable to an Activation.

    Args:
      spec: a key of :data:`ACTIVATIONS` (``"identity"``, ``"tanh"``, ...), an
        :class:`Activation` (returned as is), or a callable (wrapped by
        :func:`activation`, its slope bounds estimated with a warning).

    Returns:
      The :class:`Activation`.

    Raises:
      SideqInputError: an unknown name, or a ``spec`` of another type.
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        try:
            return ACTIVATIONS[spec]
        except KeyError:
            raise SideqInputError(
                f"activation: unknown name {spec!r}; valid names are "
                f"{', '.join(sorted(ACTIVATIONS))} (or pass a callable)"
            ) from None
    if callable(spec):
        return activation(spec)
    raise SideqInputError(
        f"activation: expected a name ({', '.join(sorted(ACTIVATIONS))}), an Activation "
        f"or a callable, got {type(spec).__name__}"
    )
