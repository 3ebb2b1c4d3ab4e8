r"""Laws of the input X, their quadrature rules, and data sets.

* :func:`uniform` -- X ~ Unif([low, high]^d) (the paper's experiments: d = 1, [0, 1]).
* :func:`gaussian` -- X ~ N(μ, Σ) in any d.
* :func:`sample` draws from a law; :func:`second_moment` is E[XXᵀ] (Eq. (5));
  :func:`load_data` reads ``.npy``, ``.npz`` and ``.csv`` files.
* :func:`gauss_legendre_rule`, :func:`normal_rule` and :func:`product_rule`:
  the 1-D rules and their tensor product, shared by the laws, the risks and
  :mod:`sideq.paper.theory`.

The law protocol
----------------

A law of X is one class here.  The risks (:mod:`sideq.risk`,
:mod:`sideq.general_risk`) and everything built on them (descent, flow,
sweeps) use only these members, never the class:

* ``d``: the dimension of X (an int).
* ``moments(dtype=None)``: ``(E[X] (d,), L)`` with L Lᵀ = Cov(X), L of shape
  (d,) (a diagonal L, given by its diagonal) or (d, d): the closed forms
  (Eq. (5) for the linear DEQs).
* ``sample(key, n, dtype)``: n independent draws, shape (n, d), in ``dtype``.
* ``tensor_rule()``: ``(x (N, d), w (N,))`` with Σ wᵢ h(xᵢ) ≈ E[h(X)] for
  smooth h, or None where the law has no rule (then the risks take a
  fixed-sample Monte Carlo: :func:`sideq.general_risk.population_risk_estimate`
  reports its standard error).

``dtype=None`` means numpy float64 from the law's (concrete) arrays; a dtype
means jax arrays in that dtype, traceable, for a law passed into ``jit``.
Writing the methods with :func:`as_array` and arithmetic operators gives both.
Optional members:

* ``nodes``: nodes per axis of the law's rule, 0 for its default (static).
* ``second_moment()``: E[XXᵀ], numpy float64 (otherwise m mᵀ + L Lᵀ from
  ``moments()``).
* Location–scale form (:func:`is_location_scale`), X = shift + scale·T with T
  a standard variable whose law does not depend on the law's arrays:
  ``affine(dtype=None)`` -> (shift (d,), scale (d,) for a diagonal scale or
  (d, d)); ``standard_rule()`` -> the rule for T (or None);
  ``standard_sample(key, n, dtype)`` -> draws of T.  The risks then build the
  nodes or draws of T once and map them inside the compiled program, so a
  law passed into ``jit`` (a sweep's chunk) keeps its arrays traced, and laws
  of one class share compiled programs.
* Projection (:func:`has_projection`), for laws whose pair
  (θ1ᵀX + b, ξᵀX) has a 2-D rule exact in any d (:class:`Gaussian`):
  ``projected_rule()`` -> the 1-D rule (z, w) of each axis, and
  ``project(theta1, b, xi, z, dtype)`` -> its nodes (u (n, n), v (n,)).  The
  scalar models' risk then needs one equilibrium per node of a 2-D rule
  whatever d is.

Laws are frozen dataclasses registered as pytrees (arrays are leaves, the
quadrature sizes are static), so they can be passed to jitted functions; a
new law should be one too (``jax.tree_util.register_dataclass``), with what
its standard rule and draws depend on in static fields.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from sideq import xla
from sideq.errors import SideqInputError

__all__ = [
    "Uniform",
    "Gaussian",
    "uniform",
    "gaussian",
    "sample",
    "seed_keys",
    "seeded_normal",
    "second_moment",
    "load_data",
    "check_law",
    "is_location_scale",
    "has_projection",
    "as_array",
    "describe",
    "gauss_legendre_rule",
    "normal_rule",
    "product_rule",
    "UNIFORM_NODES",
    "GAUSS_NODES",
    "GAUSS_TENSOR_NODES",
    "PANEL_NODES",
    "NORMAL_HALF_WIDTH",
]

# Gauss–Legendre nodes per axis of the uniform law's tensor rule, by d.  For
# d = 1 the 128 nodes integrate the paper's risks to rounding error.
UNIFORM_NODES = {1: 128, 2: 64, 3: 24, 4: 12, 5: 8}
# The composite rule for N(0, 1) (:func:`normal_rule`): panels of 12
# Gauss–Legendre nodes on [−9, 9] (P(|Z| > 9) = 2e-19); 144 nodes per axis of
# the Gaussian law's 2-D projected rule.
PANEL_NODES = 12
NORMAL_HALF_WIDTH = 9.0
GAUSS_NODES = 144
# The Gaussian law's d-dimensional tensor rule, by d: nodes per axis and the
# interval [−L, L].  In d = 3 the 48 nodes go to [−6, 6] (P(|Z| > 6) = 2e-9),
# whose narrower panels resolve a steep σ better: relative errors 7e-10 and
# 7.5e-7 against 1.4e-6 and 1.3e-5 on [−9, 9], for two tanh models with k = 2
# (rows of W1 of norm up to 0.9 and 2.4), measured against 120 nodes per axis
# on [−7, 7].
GAUSS_TENSOR_NODES = {1: 144, 2: 144, 3: 48}
_GAUSS_TENSOR_HALF_WIDTH = {1: 9.0, 2: 9.0, 3: 6.0}  # 6.0 beyond

_REQUIRED = ("d", "moments", "sample", "tensor_rule")


# ----------------------------------------------------------------------------
# Quadrature rules (numpy float64).


def gauss_legendre_rule(n: int):
    """The n-node Gauss–Legendre rule on [0, 1]: Σ w h(t) ≈ ∫₀¹ h.

    Args:
      n: the number of nodes.

    Returns:
      ``(t (n,), w (n,))``, numpy float64.
    """
    z, w = np.polynomial.legendre.leggauss(int(n))
    return (z + 1) / 2, w / 2


def normal_rule(n: int, lo: float = -NORMAL_HALF_WIDTH, hi: float = NORMAL_HALF_WIDTH):
    """Nodes and weights for E[h(Z)], Z ~ N(0, 1): composite Gauss–Legendre with
    ``ceil(n/12)`` panels of 12 nodes on [lo, hi] (default [−9, 9]), weights
    times the density.  With ``lo``, ``hi`` it integrates E[h(Z) 1{lo ≤ Z ≤ hi}].

    Composite rather than Gauss–Hermite: a steep σ(ξᵀx) (large ‖ξ‖ or ‖θ1‖) has
    complex singularities close to the real axis, where Gauss–Hermite converges
    slowly (64 nodes: 2e-2 relative error for ξ = 6) while short panels converge
    geometrically.  The default rule is symmetric about 0.

    Args:
      n: nodes wanted; rounded up to whole panels of 12.
      lo, hi: the interval of the panels.

    Returns:
      ``(z, w)``, numpy float64, shape (12·ceil(n/12),).
    """
    panels = max(1, math.ceil(n / PANEL_NODES))
    t, wt = np.polynomial.legendre.leggauss(PANEL_NODES)
    edges = np.linspace(lo, hi, panels + 1)
    half = (edges[1:] - edges[:-1]) / 2
    mid = (edges[1:] + edges[:-1]) / 2
    z = (mid[:, None] + half[:, None] * t[None, :]).ravel()
    w = (half[:, None] * wt[None, :]).ravel() * np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
    return z, w


def product_rule(t, w, d: int):
    """The tensor product of the 1-D rule ``(t, w)`` in ``d`` dimensions.

    Args:
      t: the 1-D nodes, shape (n,).
      w: the 1-D weights, shape (n,).
      d: the dimension.

    Returns:
      ``(nodes (n^d, d), weights (n^d,))``, numpy float64; the last axis varies
      fastest.
    """
    grids = np.meshgrid(*([t] * d), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)
    weights = np.ones(1)
    for _ in range(d):
        weights = np.multiply.outer(weights, w).ravel()
    return nodes, weights


def as_array(a, dtype=None):
    """``a`` as numpy float64 (``dtype`` None) or as a jax array in ``dtype``
    (traceable): how a law's methods read its arrays.

    Args:
      a: an array-like.
      dtype: None, or the jax dtype wanted.

    Returns:
      A numpy float64 array, or a jax array in ``dtype``.
    """
    return np.asarray(a, np.float64) if dtype is None else jnp.asarray(a, dtype)


# ----------------------------------------------------------------------------
# The two built-in laws.


@dataclasses.dataclass(frozen=True)
class Uniform:
    """X ~ Unif(∏ᵢ [lowᵢ, highᵢ]); ``nodes`` Gauss–Legendre nodes per axis.

    Location–scale with T ~ Unif([0, 1]^d): X = low + (high − low) T.
    """

    low: np.ndarray  # (d,)
    high: np.ndarray  # (d,)
    nodes: int = 0  # 0: automatic, UNIFORM_NODES

    @property
    def d(self) -> int:
        return int(np.shape(self.low)[0])

    def moments(self, dtype=None):
        """``(E[X], L)``: the box's centre and L = diag((high − low)/√12), as its diagonal (d,).

        Args:
          dtype: None for numpy float64, else a jax dtype.

        Returns:
          ``(mean (d,), L diagonal (d,))``.
        """
        lo, hi = as_array(self.low, dtype), as_array(self.high, dtype)
        return (lo + hi) / 2, (hi - lo) / math.sqrt(12.0)

    def second_moment(self) -> np.ndarray:
        """E[XXᵀ] = m mᵀ + diag((high − low)²/12) (Eq. (5)).

        Returns:
          A numpy float64 array of shape (d, d).
        """
        m = (self.low + self.high) / 2
        var = (self.high - self.low) ** 2 / 12
        return np.outer(m, m) + np.diag(var)

    def sample(self, key, n: int, dtype):
        """n independent draws from the box.

        Args:
          key: a ``jax.random`` key.
          n: the number of draws.
          dtype: the float dtype of the draws.

        Returns:
          A jax array of shape (n, d).
        """
        return _uniform_draw(key, self.low, self.high, n=int(n), dtype=np.dtype(dtype))

    def affine(self, dtype=None):
        """``(low, high − low)``: X = low + (high − low) T (a diagonal scale).

        Args:
          dtype: None for numpy float64, else a jax dtype.

        Returns:
          ``(shift (d,), scale diagonal (d,))``.
        """
        lo, hi = as_array(self.low, dtype), as_array(self.high, dtype)
        return lo, hi - lo

    def standard_rule(self):
        """Gauss–Legendre per axis on [0, 1]^d (``nodes`` or UNIFORM_NODES[d]
        per axis); None for d > 5 without ``nodes``.

        Returns:
          ``(t (N, d), w (N,))``, numpy float64, or None.
        """
        n = self.nodes or UNIFORM_NODES.get(self.d)
        return None if n is None else product_rule(*gauss_legendre_rule(n), self.d)

    def standard_sample(self, key, n: int, dtype):
        """n draws of T ~ Unif([0, 1]^d).

        Args:
          key: a ``jax.random`` key.
          n: the number of draws.
          dtype: the float dtype of the draws.

        Returns:
          A jax array of shape (n, d).
        """
        return jax.random.uniform(key, (int(n), self.d), dtype)

    def tensor_rule(self):
        """The standard rule mapped onto the box (None where it has none).

        Returns:
          ``(x (N, d), w (N,))``, numpy float64, or None.
        """
        rule = self.standard_rule()
        if rule is None:
            return None
        t, w = rule
        return self.low + t * (self.high - self.low), w


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """X ~ N(mean, cov); ``nodes`` quadrature nodes per axis of its rules (0: the defaults).

    Location–scale with T ~ N(0, I): X = mean + S T, S Sᵀ = cov.  With
    projection: (θ1ᵀX + b, ξᵀX) is a bivariate normal, integrated by a 2-D
    rule whatever d is (:meth:`project`).
    """

    mean: np.ndarray  # (d,)
    cov: np.ndarray  # (d, d)
    cov_sqrt: np.ndarray  # (d, d), S with S Sᵀ = cov
    nodes: int = 0

    @property
    def d(self) -> int:
        return int(np.shape(self.mean)[0])

    def moments(self, dtype=None):
        """``(μ, S)`` with S Sᵀ = Σ (``cov_sqrt``).

        Args:
          dtype: None for numpy float64, else a jax dtype.

        Returns:
          ``(mean (d,), S (d, d))``.
        """
        return as_array(self.mean, dtype), as_array(self.cov_sqrt, dtype)

    def second_moment(self) -> np.ndarray:
        """E[XXᵀ] = Σ + μμᵀ (Eq. (5)).

        Returns:
          A numpy float64 array of shape (d, d).
        """
        return np.asarray(self.cov) + np.outer(self.mean, self.mean)

    def sample(self, key, n: int, dtype):
        """n independent draws μ + S z, z ~ N(0, I).

        Args:
          key: a ``jax.random`` key.
          n: the number of draws.
          dtype: the float dtype of the draws.

        Returns:
          A jax array of shape (n, d).
        """
        z = jax.random.normal(key, (int(n), self.d), dtype)
        return jnp.asarray(self.mean, dtype) + z @ jnp.asarray(self.cov_sqrt, dtype).T

    def affine(self, dtype=None):
        """``(μ, S)``: X = μ + S T.

        Args:
          dtype: None for numpy float64, else a jax dtype.

        Returns:
          ``(shift (d,), scale (d, d))``.
        """
        return as_array(self.mean, dtype), as_array(self.cov_sqrt, dtype)

    def standard_rule(self):
        """The tensor grid of :func:`normal_rule` (``nodes`` or
        GAUSS_TENSOR_NODES[d] per axis, on [−9, 9] for d ≤ 2 and [−6, 6]
        beyond, dropping the mass 2e-9 there); None for d > 3 without ``nodes``.

        Returns:
          ``(t (N, d), w (N,))``, numpy float64, or None.
        """
        n = self.nodes or GAUSS_TENSOR_NODES.get(self.d)
        if n is None:
            return None
        half_width = _GAUSS_TENSOR_HALF_WIDTH.get(self.d, 6.0)
        return product_rule(*normal_rule(n, -half_width, half_width), self.d)

    def standard_sample(self, key, n: int, dtype):
        """n draws of T ~ N(0, I).

        Args:
          key: a ``jax.random`` key.
          n: the number of draws.
          dtype: the float dtype of the draws.

        Returns:
          A jax array of shape (n, d).
        """
        return jax.random.normal(key, (int(n), self.d), dtype)

    def tensor_rule(self):
        """The standard rule mapped by X = μ + S T (None where it has none).

        Returns:
          ``(x (N, d), w (N,))``, numpy float64, or None.
        """
        rule = self.standard_rule()
        if rule is None:
            return None
        t, w = rule
        return self.mean + t @ self.cov_sqrt.T, w

    def projected_rule(self):
        """The 1-D rule ``(z, w)`` for N(0, 1) on each axis of the 2-D rule
        (:func:`normal_rule` with ``nodes`` or GAUSS_NODES nodes).

        Returns:
          ``(z (n,), w (n,))``, numpy float64.
        """
        return normal_rule(self.nodes or GAUSS_NODES)

    def project(self, theta1, b, xi, z, dtype):
        r"""Nodes (u_jk (n, n), v_j (n,)) of the 2-D rule for (u, v) = (θ1ᵀX + b, ξᵀX).

        With S Sᵀ = Σ, p = Sᵀθ1, q = Sᵀξ, e = q/‖q‖:
        v = ξᵀμ + ‖q‖ z1, u = θ1ᵀμ + b + (pᵀe) z1 + ‖p − (pᵀe)e‖ z2 with
        z ~ N(0, I₂), both axes on the nodes ``z`` of :meth:`projected_rule`
        (weights wⱼwₖ).  Where θ1 ∥ ξ the law of (u, v) is degenerate; the
        rule is even in c2 = ‖p⊥‖, and c2 = sqrt(‖p⊥‖² + ε²) with
        ε = 4·eps·‖q‖ keeps its derivative finite at p⊥ = 0 while changing the
        integral by O(ε²).  Needs ‖q‖ > 0 (ξᵀΣξ > 0).

        Args:
          theta1: θ1, shape (d,).
          b: the bias b (0 without one).
          xi: ξ, shape (d,).
          z: the 1-D nodes of :meth:`projected_rule`, shape (n,).
          dtype: the float dtype of the nodes.

        Returns:
          ``(u (n, n), v (n,))``, jax arrays in ``dtype``.
        """
        S = jnp.asarray(self.cov_sqrt, dtype)
        mu = jnp.asarray(self.mean, dtype)
        xi = jnp.asarray(xi, dtype)
        p, q = S.T @ theta1, S.T @ xi
        qn = jnp.sqrt(q @ q)
        e = q / qn
        c1 = p @ e
        p_perp = p - c1 * e
        eps = 4 * jnp.finfo(dtype).eps * qn
        c2 = jnp.sqrt(p_perp @ p_perp + eps**2)
        z = jnp.asarray(z, dtype)
        u = theta1 @ mu + b + c1 * z[:, None] + c2 * z[None, :]
        v = xi @ mu + qn * z
        return u, v


jax.tree_util.register_dataclass(Uniform, data_fields=["low", "high"], meta_fields=["nodes"])
jax.tree_util.register_dataclass(Gaussian, data_fields=["mean", "cov", "cov_sqrt"], meta_fields=["nodes"])


# ----------------------------------------------------------------------------
# The protocol, for callers.


def check_law(dist, name: str = "dist"):
    """``dist`` if it is a law of X (the protocol of the module docstring).

    Only the required members (``d``, ``moments``, ``sample``,
    ``tensor_rule``) are looked for, not called.

    Args:
      dist: the object to check.
      name: the argument's name, for the message.

    Returns:
      ``dist`` itself.

    Raises:
      SideqInputError: a required member is missing.
    """
    missing = [m for m in _REQUIRED if not hasattr(dist, m)]
    if missing:
        raise SideqInputError(
            f"{name}: expected a law of X such as sideq.uniform(...) or sideq.gaussian(...) (an object with "
            f"{', '.join(_REQUIRED)}; see sideq.data), got {type(dist).__name__}"
        )
    return dist


def is_location_scale(dist) -> bool:
    """Whether ``dist`` has the location–scale form (``affine``, ``standard_rule``,
    ``standard_sample``).

    Args:
      dist: a law of X.

    Returns:
      True when it has all three members.
    """
    return all(hasattr(dist, m) for m in ("affine", "standard_rule", "standard_sample"))


def has_projection(dist) -> bool:
    """Whether ``dist`` has the projected 2-D rule (``projected_rule``, ``project``).

    Args:
      dist: a law of X.

    Returns:
      True when it has both members.
    """
    return hasattr(dist, "projected_rule") and hasattr(dist, "project")


def describe(dist) -> dict:
    """A JSON-ready description of a law: ``{"law", "nodes", "law_params"}``
    (the class name in lower case, its ``nodes``, and its parameters: low and
    high, or mean and cov, or a new law's array fields, its pytree leaves).

    Args:
      dist: a law of X.

    Returns:
      The dict, its arrays as nested lists.

    Raises:
      SideqInputError: ``dist`` is not a law.
    """
    check_law(dist)
    if isinstance(dist, (Uniform, Gaussian)):
        fields = ("low", "high") if isinstance(dist, Uniform) else ("mean", "cov")
        params = {f: np.asarray(getattr(dist, f)).tolist() for f in fields}
    else:  # the pytree's named leaves
        leaves = jax.tree_util.tree_flatten_with_path(dist)[0]
        params = {
            getattr(path[0], "name", str(path[0])): np.asarray(leaf).tolist() for path, leaf in leaves if len(path) == 1
        }
    return {"law": type(dist).__name__.lower(), "nodes": int(getattr(dist, "nodes", 0)), "law_params": params}


def _as_vector(name, value, d):
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full((d,), float(arr))
    if arr.ndim != 1 or arr.shape[0] != d:
        raise SideqInputError(f"{name}: expected a scalar or shape ({d},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SideqInputError(f"{name}: contains non-finite values {arr.tolist()}")
    return arr


def _check_nodes(nodes):
    if isinstance(nodes, bool) or not isinstance(nodes, (int, np.integer)) or nodes < 0:
        raise SideqInputError(f"nodes: expected an integer >= 1 (or 0 for the default), got {nodes!r}")
    return int(nodes)


def uniform(low=0.0, high=1.0, d: int | None = None, *, nodes: int = 0) -> Uniform:
    """X ~ Unif([low, high]^d); ``low``/``high`` scalars or shape (d,).

    Args:
      low: the lower corner, a scalar or shape (d,), finite.
      high: the upper corner, a scalar or shape (d,), above ``low`` in every
        coordinate.
      d: the dimension; default the larger size of ``low`` and ``high``.
      nodes: Gauss–Legendre nodes per axis for the population risk (0: 128,
        64, 24, 12, 8 for d = 1..5; none beyond, where the risks take Monte
        Carlo).

    Returns:
      A :class:`Uniform` holding float64 ``low`` and ``high`` of shape (d,).

    Raises:
      SideqInputError: ``nodes`` not an integer ≥ 0, d < 1, ``low`` or
        ``high`` of the wrong shape or non-finite, or ``high`` ≤ ``low``
        somewhere.
    """
    nodes = _check_nodes(nodes)
    if d is None:
        d = max(np.size(low), np.size(high))
    if int(d) < 1:
        raise SideqInputError(f"d: must be >= 1, got {d}")
    d = int(d)
    lo, hi = _as_vector("low", low, d), _as_vector("high", high, d)
    if not np.all(hi > lo):
        raise SideqInputError(f"high: must exceed low in every coordinate, got low={lo.tolist()} high={hi.tolist()}")
    return Uniform(lo, hi, int(nodes))


def gaussian(mean=0.0, cov=1.0, d: int | None = None, *, nodes: int = 0) -> Gaussian:
    """X ~ N(mean, cov) in any dimension; ``cov`` a scalar (isotropic), shape (d,)
    (diagonal) or (d, d) (symmetric positive semidefinite).

    Args:
      mean: μ, a scalar or shape (d,), finite.
      cov: Σ: a scalar (isotropic), shape (d,) (diagonal) or (d, d)
        (symmetric positive semidefinite), finite.
      d: the dimension; default from the sizes of ``mean`` and ``cov``.
      nodes: nodes per axis of the population risk's rules (0: 144 for the 2-D
        projected rule, and GAUSS_TENSOR_NODES for the tensor rule; raise it
        for steep targets, see :mod:`sideq.risk`).

    Returns:
      A :class:`Gaussian` with float64 ``mean`` (d,), ``cov`` (d, d) and
      ``cov_sqrt`` S = V Λ^{1/2} (S Sᵀ = Σ, from the eigendecomposition).

    Raises:
      SideqInputError: ``nodes`` not an integer ≥ 0, d < 1, a ``mean`` or
        ``cov`` of the wrong shape or non-finite, or ``cov`` not symmetric or
        not positive semidefinite.
    """
    nodes = _check_nodes(nodes)
    cov_arr = np.asarray(cov, dtype=np.float64)
    if d is None:
        d = max(np.size(mean), cov_arr.shape[0] if cov_arr.ndim >= 1 else 1)
    d = int(d)
    if d < 1:
        raise SideqInputError(f"d: must be >= 1, got {d}")
    mu = _as_vector("mean", mean, d)
    if cov_arr.ndim == 0:
        cov_arr = float(cov_arr) * np.eye(d)
    elif cov_arr.ndim == 1:
        cov_arr = np.diag(_as_vector("cov", cov_arr, d))
    if cov_arr.shape != (d, d):
        raise SideqInputError(f"cov: expected a scalar, shape ({d},) or ({d}, {d}), got {cov_arr.shape}")
    if not np.all(np.isfinite(cov_arr)):
        raise SideqInputError("cov: contains non-finite values")
    if not np.allclose(cov_arr, cov_arr.T, rtol=1e-12, atol=1e-14 * np.abs(cov_arr).max()):
        raise SideqInputError("cov: must be symmetric; pass (C + C.T) / 2")
    lam, vec = np.linalg.eigh(cov_arr)
    if lam.min() < -1e-12 * max(lam.max(), 1e-300):
        raise SideqInputError(f"cov: must be positive semidefinite, smallest eigenvalue is {lam.min():.3g}")
    sqrt = vec * np.sqrt(np.clip(lam, 0, None))  # S = V Λ^{1/2}, S Sᵀ = cov
    return Gaussian(mu, cov_arr, sqrt, int(nodes))


def sample(dist, key, n: int):
    """Draw ``n`` inputs from ``dist`` (the law's ``sample``).

    Args:
      dist: a law of X.
      key: a ``jax.random`` key.
      n: the number of inputs, ≥ 1.

    Returns:
      A jax array of shape (n, d) in the default float dtype.

    Raises:
      SideqInputError: ``dist`` is not a law, or n < 1.
    """
    check_law(dist)
    if int(n) < 1:
        raise SideqInputError(f"n: must be >= 1, got {n}")
    return dist.sample(key, int(n), jnp.result_type(float))


def seed_keys(seed: int):
    """(key_data, key_init): the two PRNG keys of one seeded run.

    The convention that ``sideq reproduce`` (a figure's run with ``--seed S``)
    and ``sideq descent``/``flow``/``sweep --seed S`` share: the data are
    ``sample(dist, key_data, n)`` and a ``normal:MEAN,STD`` start is
    :func:`seeded_normal`, so the same seed gives the same data and θ(0) in
    every entry point.

    Args:
      seed: an integer ≥ 0.

    Returns:
      ``(key_data, key_init)``, the split of ``jax.random.PRNGKey(seed)``.

    Raises:
      SideqInputError: ``seed`` is not an integer ≥ 0.
    """
    return _seed_keys(_seed_array(seed))


@functools.partial(xla.jit, plain=True, static_argnames=("n", "dtype"))  # (the draws of eager JAX, bit for bit)
def _uniform_draw(key, low, high, *, n, dtype):
    lo, hi = jnp.asarray(low, dtype), jnp.asarray(high, dtype)
    return jax.random.uniform(key, (n, lo.shape[0]), dtype, minval=lo, maxval=hi)


def _seed_array(seed) -> np.int64:
    """The checked seed as ``jax.random.PRNGKey`` converts a Python int (through
    int64, so that a seed ≥ 2³¹ is not an overflow under float32), to pass it
    traced (numpy's: converting it in JAX would be a program of its own)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SideqInputError(f"seed: expected an integer >= 0, got {seed!r}")
    return np.int64(int(seed))


@functools.partial(xla.jit, plain=True)  # (XLA's defaults: the keys of eager JAX)
def _seed_keys(seed):
    # PRNGKey, split and the unpacking in one program (one cache read where a
    # command starts, not four); the keys are those of the eager calls.
    keys = jax.random.split(jax.random.PRNGKey(seed))
    return keys[0], keys[1]


@functools.partial(xla.jit, plain=True, static_argnames=("p", "dtype"))
def _seeded_z(seed, *, p, dtype):
    return jax.random.normal(_seed_keys(seed)[1], (p,), dtype)


def seeded_normal(seed: int, mean, std, p: int) -> np.ndarray:
    """θ(0) = MEAN + STD·z, z = ``jax.random.normal(key_init, (p,))`` with the
    init key of :func:`seed_keys` (in the default float dtype): the ``normal:``
    start of ``sideq reproduce --seed`` and ``sideq descent --seed``.

    Args:
      seed: an integer ≥ 0.
      mean: MEAN, a scalar or shape (p,).
      std: STD, a scalar.
      p: the number of parameters.

    Returns:
      A numpy array of shape (p,).

    Raises:
      SideqInputError: ``seed`` is not an integer ≥ 0.
    """
    z = _seeded_z(_seed_array(seed), p=int(p), dtype=jnp.result_type(float))
    return np.asarray(mean) + std * np.asarray(z)


def second_moment(dist) -> np.ndarray:
    """E[XXᵀ] (the matrix of Eq. (5) and Theorems 3.4, 3.6), float64 numpy: the
    law's ``second_moment()``, or m mᵀ + L Lᵀ from its ``moments()``.

    Args:
      dist: a law of X.

    Returns:
      A numpy float64 array of shape (d, d).

    Raises:
      SideqInputError: ``dist`` is not a law.
    """
    check_law(dist)
    if hasattr(dist, "second_moment"):
        return np.asarray(dist.second_moment(), np.float64)
    m, L = (np.asarray(a, np.float64) for a in dist.moments())
    L = np.diag(L) if L.ndim == 1 else L
    return np.outer(m, m) + L @ L.T


def _read_csv(path):
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and not all(c.strip() == "" for c in r)]
    if not rows:
        return None, np.zeros((0, 0))
    header = None
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    width = len(header or rows[0])
    k = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if k is not None:
        raise SideqInputError(
            f"data: {path} has rows of different lengths (data row {k + 1} has {len(rows[k])} "
            f"columns, expected {width}); fix the file"
        )
    try:
        data = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError as err:
        raise SideqInputError(f"data: {path} has a non-numeric entry ({err}); fix the file") from None
    if data.size == 0:
        data = np.zeros((0, len(header) if header else 0))
    return header, data


def as_real(a, what):
    """``a`` as float64; complex numbers are refused (casting would drop the imaginary part).

    Args:
      a: an array-like.
      what: the start of the message (``"x"``, ``"data: x in FILE"``).

    Returns:
      A numpy float64 array.

    Raises:
      SideqInputError: complex numbers, or values that are not numbers.
    """
    a = np.asarray(a)
    if np.iscomplexobj(a):
        raise SideqInputError(f"{what} holds complex numbers; give real numbers")
    try:
        return a.astype(np.float64)
    except (TypeError, ValueError):
        raise SideqInputError(f"{what} holds values that are not numbers; give real numbers") from None


def load_data(path, *, d: int | None = None):
    """Read a data set; returns ``(x, y)`` with x of shape (n, d) and y (n,) or None.

    * ``.npz``: arrays ``x`` ((n,) or (n, d)) and optionally ``y`` (n,).
    * ``.npy``: one array (n,) or (n, k).
    * ``.csv``: numbers, comma separated; with a header row a column named ``y``
      is the target and the others are x.
    Without named columns (npy, csv without header): all columns are x, unless
    ``d`` is given and the file has d + 1 columns, in which case the last is y.
    When y is absent the caller builds targets f(x) = σ(ξᵀx) (see
    :func:`sideq.risk.targets`).

    Args:
      path: the file (a str or path-like).
      d: the expected input dimension (the length of ξ), or None.

    Returns:
      ``(x, y)``: numpy float64 ``x`` of shape (n, d), n ≥ 1, and ``y`` of
      shape (n,) or None; both finite.

    Raises:
      SideqInputError: a missing, unreadable or malformed file (an unknown
        extension, an ``.npz`` without ``x``, ragged or non-numeric CSV rows,
        pickled objects), no samples, x of dimension ≠ ``d``, a ``y`` of
        another length, or NaN or inf.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SideqInputError(f"data: file {path!r} does not exist; check the path")
    ext = os.path.splitext(path)[1].lower()
    y = None
    named = False  # columns named by the file (npz arrays, csv header): no d + 1 rule
    try:
        if ext == ".npz":
            named = True
            with np.load(path) as f:
                if "x" not in f:
                    raise SideqInputError(
                        f"data: {path} has arrays {sorted(f.files)}; expected one named 'x' (and optionally 'y')"
                    )
                x = as_real(f["x"], f"data: x in {path}")
                y = as_real(f["y"], f"data: y in {path}") if "y" in f else None
        elif ext == ".npy":
            with open(path, "rb") as fh:
                if fh.read(6) != b"\x93NUMPY":
                    raise SideqInputError(
                        f"data: {path} is not a .npy file (no NumPy header); write it with numpy.save"
                    )
            try:
                x = as_real(np.load(path), f"data: x in {path}")
            except ValueError as err:
                if "pickle" not in str(err):
                    raise
                raise SideqInputError(f"data: {path} holds Python objects, not numbers; save a float array") from None
        elif ext == ".csv":
            header, x = _read_csv(path)
            named = header is not None
            if header is not None and "y" in header:
                j = header.index("y")
                y, x = x[:, j], np.delete(x, j, axis=1)
        else:
            raise SideqInputError(f"data: unsupported file type {ext!r} for {path}; use .npy, .npz or .csv")
    except SideqInputError:
        raise
    except (OSError, EOFError, ValueError, TypeError) as err:
        raise SideqInputError(
            f"data: cannot read {path} as {ext} ({type(err).__name__}: {err}); check the file"
        ) from None
    except Exception as err:  # zipfile.BadZipFile and friends from np.load
        raise SideqInputError(f"data: cannot read {path} as {ext} ({type(err).__name__}); check the file") from None
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise SideqInputError(f"data: x in {path} must have shape (n,) or (n, d), got {x.shape}")
    if y is None and not named and d is not None and x.shape[1] == int(d) + 1:
        x, y = x[:, :-1], x[:, -1]
    if x.shape[0] == 0:
        raise SideqInputError(f"data: {path} holds no samples; give a file with at least one row")
    if d is not None and x.shape[1] != int(d):
        raise SideqInputError(f"data: {path} has x of dimension {x.shape[1]} but xi has length {d}; make them agree")
    if not np.all(np.isfinite(x)):
        raise SideqInputError(f"data: x in {path} contains NaN or inf; remove those rows")
    if y is not None:
        y = np.ravel(y)
        if y.shape[0] != x.shape[0]:
            raise SideqInputError(f"data: y in {path} has {y.shape[0]} entries but x has {x.shape[0]} rows")
        if not np.all(np.isfinite(y)):
            raise SideqInputError(f"data: y in {path} contains NaN or inf; remove those rows")
    return x, y
