r"""DEQ models as pure functions of ``(theta, x, y)``.

* linear DEQ, Eq. (2):        g_θ(x, y) = θ1ᵀx (+ b) + θ2 y
* single-index DEQ, Eq. (10): g_θ(x, y) = σ(θ1ᵀx (+ b) + θ2 y)

``theta`` is one flat array: ``(θ1, θ2)`` of shape ``(d+1,)``, or with a bias
``(θ1, b, θ2)`` of shape ``(d+2,)``; θ2 is always the last entry.  A
:class:`Model` is a small static spec (activation, bias flag): hashable, so it is
a static argument of jitted functions, and holds no parameters.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from sideq.activations import ACTIVATIONS, Activation, get_activation

__all__ = ["Model", "linear", "single_index"]


@dataclasses.dataclass(frozen=True)
class Model:
    """Static description of a scalar DEQ y = g_θ(x, y).

    Build one with :func:`linear` or :func:`single_index`; a custom σ goes
    through :func:`sideq.activation`.  Subclassing is refused (``TypeError``):
    the solvers read the map from the activation's constants, not from
    overridden methods.

    ``activation`` is σ; the linear DEQ of Eq. (2) is ``σ = identity`` with
    ``kind == "linear"`` (its equilibrium is then y = (θ1ᵀx + b)/(1 − θ2)).
    """

    activation: Activation
    bias: bool = False
    kind: str = "single_index"

    def __init_subclass__(cls, **kwargs):
        # Every solver path reads the map from ``activation`` (its slope and
        # range bounds give the bracket, the uniqueness proof and the Taylor
        # certificate; ``residual_at`` and ``linearization_at`` are inlined in
        # the batched solvers), so an override of ``g`` would be solved as the
        # old map and reported converged.  Refused at class creation.
        raise TypeError(
            f"class {cls.__name__}: sideq.Model cannot be subclassed: its solvers derive the map, "
            "bracket and uniqueness proof from the activation, so an override of g or residual_at "
            "would be solved as the old map; for your own sigma use "
            "sideq.single_index(sideq.activation(fn, slope_bounds=(lo, hi))), and for any other map "
            "sideq.deq(g, dim=k) with g(params, x, y) a pure function"
        )

    @property
    def name(self) -> str:
        return "linear" if self.kind == "linear" else self.activation.name

    @property
    def is_linear(self) -> bool:
        """g is affine in (x, y): the equilibrium has a closed form."""
        return self.activation.affine

    def n_params(self, d: int) -> int:
        """Length p of ``theta`` for inputs of dimension d.

        Args:
          d: the input dimension.

        Returns:
          p = d + 1, plus 1 with a bias.
        """
        return d + 1 + int(self.bias)

    def input_dim(self, theta) -> int:
        """The input dimension d that ``theta`` fits (the inverse of :meth:`n_params`).

        Args:
          theta: θ, shape (..., p).

        Returns:
          d = p − 1, minus 1 more with a bias.
        """
        return jnp.shape(theta)[-1] - 1 - int(self.bias)

    @staticmethod
    def as_inputs(x, d: int):
        """x with its feature axis: for d = 1 a batch may come as shape (n,), as
        :func:`sideq.solve` takes it; that becomes (n, 1).  Other shapes are
        returned as they are (a point (d,), a batch (n, d), a scalar for d = 1).

        Args:
          x: inputs.
          d: the input dimension.

        Returns:
          A jax array: (n, 1) for a batch (n,) with d = 1 and n ≠ 1, else ``x``.
        """
        x = jnp.asarray(x)
        if d == 1 and x.ndim == 1 and x.shape[0] != 1:
            return x[:, None]
        return x

    def split(self, theta):
        """``theta -> (theta1 (d,), b (scalar, 0 without bias), theta2 (scalar))``.

        Args:
          theta: θ, shape (p,) (or (..., p): leading axes are kept).

        Returns:
          ``(theta1, b, theta2)``, in θ's dtype.
        """
        theta = jnp.asarray(theta)
        d = self.input_dim(theta)
        theta1 = theta[..., :d]
        b = theta[..., d] if self.bias else jnp.zeros((), theta.dtype)
        return theta1, b, theta[..., -1]

    def offset(self, theta, x):
        """a = θ1ᵀx + b: the part of the pre-activation that does not involve y.

        Args:
          theta: θ, shape (p,).
          x: a point (d,) or a batch (n, d).

        Returns:
          a, a scalar or (n,).
        """
        theta1, b, _ = self.split(theta)
        # A multiply-and-sum, not jnp.dot: under vmap a dot becomes a batched
        # matrix product (a library call plus a transpose on CPU), where this
        # fuses with the elementwise solve around it.
        return jnp.sum(theta1 * x, axis=-1) + b

    def g(self, theta, x, y):
        """g_θ(x, y): Eq. (2) for the linear DEQ, Eq. (10) for the single-index DEQ.

        Args:
          theta: θ, shape (p,).
          x: a point (d,) or a batch (n, d).
          y: y, a scalar or (n,).

        Returns:
          σ(θ1ᵀx + b + θ2 y), broadcast over the batch.
        """
        theta2 = theta[-1]
        return self.activation(self.offset(theta, x) + theta2 * y)

    def residual(self, theta, x, y):
        r"""F(y) = y − g_θ(x, y); the equilibrium y_θ(x) is its root.

        Args:
          theta: θ, shape (p,).
          x: a point (d,) or a batch (n, d).
          y: y, a scalar or (n,).

        Returns:
          F(y), as computed by :meth:`residual_at`.
        """
        return self.residual_at(self.offset(theta, x), theta[-1], y)

    def residual_at(self, a, theta2, y):
        r"""F(y) = y − σ(a + θ2 y) as a function of the offset a = θ1ᵀx + b.

        For an affine σ(z) = s z + σ(0) it is evaluated as (1 − s θ2) y − σ(a),
        the same number mathematically, but with rounding error eps·|a| instead
        of eps·|θ2 y| (|y| is huge near the singular line θ2 = 1).

        Args:
          a: the offset θ1ᵀx + b.
          theta2: θ2.
          y: y.

        Returns:
          F(y), broadcast over the arguments.
        """
        if self.is_linear:
            return (1 - self.activation.slope_max * theta2) * y - self.activation(a)
        return y - self.activation(a + theta2 * y)

    def residual_and_slope_at(self, a, theta2, y):
        """(F(y), F'(y)) with one evaluation of σ and σ' (a forward-mode JVP);
        F'(y) = 1 − θ2 σ'(a + θ2 y) is the IFT margin 1 − ∂g/∂y of Eq. (1).

        Args:
          a: the offset θ1ᵀx + b.
          theta2: θ2.
          y: y.

        Returns:
          ``(F(y), F'(y))``.
        """
        F, dF, _ = self.linearization_at(a, theta2, y)
        return F, dF

    def linearization_at(self, a, theta2, y):
        """(F(y), F'(y), σ'(ω)) at ω = a + θ2 y, from one evaluation of σ and σ'.

        For an affine σ, σ' is its slope and nothing is differentiated.

        Args:
          a: the offset θ1ᵀx + b.
          theta2: θ2.
          y: y.

        Returns:
          ``(F(y), F'(y), σ'(ω))``.
        """
        if self.is_linear:
            slope = self.activation.slope_max * jnp.ones_like(y)
            return self.residual_at(a, theta2, y), 1 - theta2 * slope, slope
        s, ds = jax.jvp(self.activation, (a + theta2 * y,), (jnp.ones_like(y),))
        return y - s, 1 - theta2 * ds, ds

    def dresidual_dy(self, theta, x, y):
        """F'(y) = 1 − θ2 σ'(ω): the IFT margin of Eq. (1).

        Args:
          theta: θ, shape (p,).
          x: a point (d,) or a batch (n, d).
          y: y, a scalar or (n,).

        Returns:
          F'(y), a scalar or (n,).
        """
        return self.residual_and_slope_at(self.offset(theta, x), theta[-1], y)[1]

    def target(self, xi, x):
        """The target f(x) = σ(ξᵀx) (Section 3.2); f(x) = ξᵀx for the linear DEQ (Section 3.1).

        Args:
          xi: ξ, shape (d,).
          x: a point (d,) or a batch (n, d).

        Returns:
          f(x), a scalar or (n,).
        """
        return self.activation(jnp.dot(x, xi))

    def theta_star(self, xi):
        """A global minimiser of the risk: (ξ, [0,] 0) for the single-index DEQ
        (Section 3.2) and the point α = 1 of the solution line (αξ, [0,] 1 − α)
        for the linear DEQ (Section 3.1).

        Args:
          xi: ξ, shape (d,).

        Returns:
          θ* = (ξ, [0,] 0), shape (p,), in ξ's dtype.
        """
        xi = jnp.asarray(xi)
        parts = [xi] + ([jnp.zeros((1,), xi.dtype)] if self.bias else [])
        last = jnp.zeros((1,), xi.dtype)
        return jnp.concatenate(parts + [last])


def linear(bias: bool = False) -> Model:
    """The linear DEQ g_θ(x, y) = θ1ᵀx + θ2 y of Eq. (2) (``bias=True`` adds b).

    Its equilibrium is y = (θ1ᵀx + b)/(1 − θ2), singular at θ2 = 1.

    Args:
      bias: add the offset b, so θ = (θ1, b, θ2).

    Returns:
      A :class:`Model` with σ = identity and ``kind == "linear"``.
    """
    return Model(ACTIVATIONS["identity"], bool(bias), "linear")


def single_index(activation="sigmoid", bias: bool = False) -> Model:
    """The single-index DEQ g_θ(x, y) = σ(θ1ᵀx + θ2 y) of Eq. (10).

    Args:
      activation: σ: a name (sigmoid, tanh, softplus, relu, leaky_relu, gelu,
        identity), an :class:`~sideq.activations.Activation`, or a callable
        (wrapped by :func:`sideq.activations.activation`, its slope bounds
        estimated with a warning).
      bias: add the offset b, so θ = (θ1, b, θ2).

    Returns:
      A :class:`Model` of kind ``"single_index"``.

    Raises:
      SideqInputError: an unknown name, or an ``activation`` of another type.
    """
    return Model(get_activation(activation), bool(bias), "single_index")
