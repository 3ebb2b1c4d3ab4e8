r"""Population risk of the multi-neuron DEQs (Section 5's extension of Section 2).

For a :class:`~sideq.general.DEQ` built by :func:`~sideq.general.multi_linear`
or :func:`~sideq.general.multi_index`, with k outputs, inputs X ∈ ℝ^d and
target f(x) = Ξx (or σ(Ξx)), Ξ = ``xi`` of shape (k, d),

    R(params) = E[ ‖y_params(X) − f(X)‖² ],

the squared error summed over the k outputs and averaged over the law of X:
the population version of :func:`sideq.general.empirical_risk`, which is
(1/n) Σᵢ ‖y(xᵢ) − f(xᵢ)‖² with the same sum over outputs (for k = 1 both are
the scalar library's risks, Section 2).

Three routes (:data:`ROUTES`), chosen by :func:`population_risk` unless asked:

The law of X enters through :mod:`sideq.data`'s protocol only (its members,
never its class), so a new law in :mod:`sideq.data` works here unchanged.

* ``"closed_form"`` (:func:`~sideq.general.multi_linear`, any law, any d,
  from the law's ``moments()``): the equilibrium y = (I − W2)⁻¹(W1 x + b) is affine in x, so
  with A = (I − W2)⁻¹W1, β = (I − W2)⁻¹b (β = 0 without a bias), M = E[XXᵀ]
  and μ = E[X] (Eq. (5) with k outputs)

      R = tr((A − Ξ) M (A − Ξ)ᵀ) + 2 βᵀ(A − Ξ)μ + ‖β‖²,

  evaluated as ‖(A − Ξ)L‖_F² + ‖(A − Ξ)μ + β‖² with L Lᵀ = Cov(X) (the same
  number as a sum of squares).  No equilibrium is solved.  Where I − W2 is
  singular (the rank test of :meth:`sideq.general.DEQ.proof`) the risk and
  its derivatives are NaN; with concrete params the public functions raise
  :class:`~sideq.errors.SingularModelError` instead, as
  :func:`sideq.risk.population_risk` does for θ2 = 1.
* ``"quadrature"`` (d ≤ 3 or the law's ``nodes`` given, at most
  :data:`MAX_NODES` nodes): the law's tensor rule in x, one equilibrium
  solved at every node (:func:`sideq.general.solve` under ``vmap``,
  differentiable by Eq. (1)).  A location–scale law's rule is its standard
  rule mapped by x = shift + scale·t inside the compiled program.
  Unif(∏[lᵢ, hᵢ]): Gauss–Legendre per axis, 128, 64, 24 nodes per axis for
  d = 1, 2, 3 (the scalar library's rule).  N(μ, Σ): x = μ + S z with
  S Sᵀ = Σ and z on a tensor grid of the composite Gauss–Legendre rule for
  N(0, 1) (:func:`sideq.data.normal_rule`: 12-node panels on [−9, 9]; on
  [−6, 6] in d = 3, dropping the mass 2e-9 beyond), 144, 144, 48 nodes per
  axis for d = 1, 2, 3 (rounded up to whole panels).  Composite rather than Gauss–Hermite: for
  E[(tanh(aZ + c) − tanh(bZ))²] with a = 2, b = 1.5 Gauss–Hermite with 96
  nodes is off by 4e-6, the composite rule with 96 by 1e-8 and with 144 by
  6e-11.  The error grows with the steepness of σ(W1 x): in d = 3 the
  default Gaussian rule was off by 7.5e-7 (relative) for tanh with rows of
  W1 of norm 2.1 and 2.4; ``nodes=`` on the law sets the nodes per axis.
  The nodes do not depend on params, so ∇R is the weighted sum of the
  equilibria's gradients.
* ``"monte_carlo"`` (larger d, a law with no tensor rule, or ``samples=``
  given): the mean of ‖y(xᵢ) − f(xᵢ)‖² over ``samples`` inputs, the law's
  ``sample(PRNGKey(key), samples, dtype)`` in the params' dtype (for a
  location–scale law its ``standard_sample`` mapped by the affine map:
  xᵢ = low + (high − low)·uᵢ with u = ``jax.random.uniform(PRNGKey(key),
  (samples, d))``, or xᵢ = μ + S zᵢ with z = ``jax.random.normal(...)``),
  and its standard error s/√n
  (:func:`population_risk_estimate`).  The same samples at every params: a
  smooth, deterministic function of params (common random numbers).

A solve that fails at any node or sample makes the risk NaN (with NaN
derivatives): a public risk is never a finite number computed from a non-root.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sideq import general
from sideq.data import check_law, is_location_scale
from sideq.errors import SideqInputError, SingularModelError
from sideq.status import Status, is_success

__all__ = [
    "ROUTES",
    "MAX_NODES",
    "DEFAULT_SAMPLES",
    "RiskEstimate",
    "population_risk",
    "population_risk_estimate",
    "population_objective",
    "route_for",
    "n_nodes",
]

ROUTES = ("closed_form", "quadrature", "monte_carlo")
MAX_NODES = 2**18  # the most equilibria a quadrature rule may ask for
DEFAULT_SAMPLES = 2**15  # Monte Carlo inputs where no quadrature rule applies
QUADRATURE_DIMS = 3  # by default the tensor rule up to this d (the laws' rules: sideq.data)


class RiskEstimate(NamedTuple):
    """The population risk with how it was computed.

    Attributes:
      value: R(params), a scalar array.
      stderr: its Monte Carlo standard error s/√n; 0 for the closed form and
        quadrature (whose error is that of the rule, not a sampling error).
      n_nodes: the number of equilibria solved (0 for the closed form).
      route: ``"closed_form"``, ``"quadrature"`` or ``"monte_carlo"``.
    """

    value: jax.Array
    stderr: jax.Array
    n_nodes: int
    route: str


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The static part of a risk evaluation: the route and its size."""

    route: str
    nodes: int = 0  # quadrature nodes
    samples: int = 0  # Monte Carlo inputs
    key: int = 0  # Monte Carlo seed

    @property
    def n_nodes(self) -> int:
        return {"quadrature": self.nodes, "monte_carlo": self.samples}.get(self.route, 0)


# ----------------------------------------------------------------------------
# The law's points.


class _Static:
    """A location–scale law keyed by what its standard rule and draws depend on
    (its class and static fields: the pytree structure, d and nodes), for the
    caches below; the arrays do not enter."""

    def __init__(self, dist):
        leaves, treedef = jax.tree_util.tree_flatten(dist)
        self.key = (type(dist), treedef, dist.d, getattr(dist, "nodes", 0))
        if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
            # (a law traced by jit: kept with zeros for its arrays, which the
            # standard rule and draws do not read, so that no tracer is cached)
            dist = treedef.unflatten([np.zeros(np.shape(leaf), leaf.dtype) for leaf in leaves])
        self.dist = dist

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _Static) and self.key == other.key


@functools.lru_cache(maxsize=16)
def _standard_rule(law: _Static):
    return law.dist.standard_rule()


def _tensor_rule(dist):
    """The rule the quadrature route uses, or None: a location–scale law's
    standard rule (cached), else its tensor rule in x."""
    return _standard_rule(_Static(dist)) if is_location_scale(dist) else dist.tensor_rule()


def _affine_map(dist, dtype):
    """(shift (d,), scale (d, d)) with x = shift + scale·t for the standard
    point t (traceable): the law's ``affine`` (a diagonal scale as a matrix),
    or (0, I) for a law without the location–scale form, whose points are in
    x already.  Every law reaches the compiled programs as these two arrays,
    so they share them."""
    if not is_location_scale(dist):
        return jnp.zeros((dist.d,), dtype), jnp.eye(dist.d, dtype=dtype)
    shift, scale = dist.affine(dtype)
    return shift, jnp.diag(scale) if jnp.ndim(scale) == 1 else scale


def _law_moments(dist, dtype):
    """(E[X], L) with L Lᵀ = Cov(X), L (d, d) (a diagonal L as a matrix)."""
    mean, chol = dist.moments(dtype)
    return mean, jnp.diag(chol) if jnp.ndim(chol) == 1 else chol


# ----------------------------------------------------------------------------
# The three routes (traceable, unchecked).


def _leaf_sum(tree):
    return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(tree))


def _closed_form(model, params, xi, mean, chol):
    """(R, 0) for multi_linear by Eq. (5) with k outputs (module docstring)."""
    W1 = params["W1"]
    dtype = W1.dtype
    eye = jnp.eye(model.dim, dtype=dtype)
    singular = model.proof(params) == Status.SINGULAR
    system = jnp.where(singular, eye, eye - params["W2"])
    error = jnp.linalg.solve(system, W1) - xi  # A − Ξ, (k, d)
    spread = error @ chol  # (A − Ξ) L
    mean_error = error @ mean  # E[y(X) − f(X)]
    if model.bias:
        mean_error = mean_error + jnp.linalg.solve(system, params["b"])
    risk = jnp.sum(spread * spread) + jnp.sum(mean_error * mean_error)
    # NaN, with NaN derivatives, where I − W2 is singular (a zero term elsewhere)
    nan_or_zero = jnp.where(singular, jnp.nan, 0).astype(dtype)
    risk = jnp.where(singular, jnp.zeros((), dtype), risk) + nan_or_zero * _leaf_sum(params)
    return risk, jnp.zeros((), dtype)


def _squared_errors(model, params, xi, x):
    """‖y(xᵢ) − f(xᵢ)‖² (N,), NaN throughout if any solve failed."""
    # (start: one step y = g(x, 0) from zero; it also keeps the start a traced
    # value, which XLA does not constant-fold over a large batch)
    y0 = jax.vmap(lambda xi_: model.g(params, xi_, jnp.zeros(model.dim, x.dtype)))(x)
    sol = general.solve(model, params, x, y0=jax.lax.stop_gradient(y0), margin=False)
    r = jnp.sum((sol.y - model.target(xi, x)) ** 2, axis=-1)
    return r * jnp.where(jnp.all(is_success(sol.status)), 1, jnp.nan).astype(r.dtype)


def _weighted(model, params, xi, shift, scale, standard, weights, sampled):
    """(Σ wᵢ ‖y(xᵢ) − f(xᵢ)‖², standard error) at x = the standard nodes or
    draws mapped onto ``dist``.  The quadrature (``sampled`` = 0, stderr 0) and
    Monte Carlo (``sampled`` = 1, wᵢ = 1/n, stderr s/√n) share this program,
    so equal N compiles once."""
    r = _squared_errors(model, params, xi, shift + standard @ scale.T)
    value = weights @ r
    n = r.shape[0]
    spread = weights @ (r - jax.lax.stop_gradient(value)) ** 2 / max(n - 1, 1)  # s²/n for wᵢ = 1/n
    positive = sampled * spread > 0
    stderr = jnp.where(positive, jnp.sqrt(jnp.where(positive, sampled * spread, 1)), 0)
    return value, stderr


_closed_form_jit = jax.jit(_closed_form, static_argnames=("model",))
_weighted_jit = jax.jit(_weighted, static_argnames=("model",))


def _points(plan: _Plan, dist, dtype):
    """(nodes or draws (N, d), weights (N,), sampled) for ``plan``: the rule's
    nodes or the law's draws (standard ones for a location–scale law), in
    ``dtype``, passed to the compiled program as arguments (a constant inside
    it would be folded by XLA at every compile)."""
    with jax.ensure_compile_time_eval():
        if plan.route == "quadrature":
            nodes, w = _tensor_rule(dist)
            return jnp.asarray(nodes, dtype), jnp.asarray(w, dtype), jnp.zeros((), dtype)
        key = jax.random.PRNGKey(plan.key)
        n = plan.samples
        draw = dist.standard_sample if is_location_scale(dist) else dist.sample
        return draw(key, n, dtype), jnp.full((n,), 1.0 / n, dtype), jnp.ones((), dtype)


@functools.lru_cache(maxsize=16)
def _standard_points(plan: _Plan, law: _Static, dtype_name: str):
    """:func:`_points` of a location–scale law, made once per plan and law
    class: they depend on neither the law's arrays nor params, so they are
    concrete even when called under a trace, and can be cached."""
    return _points(plan, law.dist, jnp.dtype(dtype_name))


def _evaluate(model, plan, params, xi, dist):
    """(value, stderr) by ``plan`` (traceable: dist, params and xi may be traced)."""
    dtype = jnp.result_type(params["W1"])
    if plan.route == "closed_form":
        return _closed_form_jit(model, params, xi, *_law_moments(dist, dtype))
    if is_location_scale(dist):
        points = _standard_points(plan, _Static(dist), jnp.dtype(dtype).name)
    else:
        points = _points(plan, dist, dtype)
    return _weighted_jit(model, params, xi, *_affine_map(dist, dtype), *points)


# ----------------------------------------------------------------------------
# Checks at the boundary.


def _concrete(a):
    return None if isinstance(a, jax.core.Tracer) else np.asarray(a)


def _check_model_dist(model, dist):
    if not isinstance(model, general.DEQ):
        raise SideqInputError(
            f"model: expected a sideq.general.DEQ (multi_linear or multi_index), got {type(model).__name__}"
        )
    if model.kind == "general":
        raise SideqInputError(
            f"model: {model.name!r} is a general DEQ with no target f(x); the population risk needs "
            "sideq.general.multi_linear(k) or multi_index(sigma, k)"
        )
    check_law(dist)


def _check_xi(model, xi, d):
    shape = np.shape(xi)
    if shape != (model.dim, d):
        raise SideqInputError(
            f"xi: expected shape (k, d) = ({model.dim}, {d}) for {model.name} and a law in d = {d}, got {shape}"
        )
    if not isinstance(xi, jax.core.Tracer):
        arr = np.asarray(xi)
        if arr.dtype.kind not in "biuf":
            raise SideqInputError(f"xi: expected real numbers, got an array of {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise SideqInputError("xi: contains NaN or inf; pass finite numbers")


def _check_params(model, params, dist):
    """The built-in families' layout; d from the law (one-line errors naming the key)."""
    k, d = model.dim, dist.d
    expected = {"W1": (k, d), "W2": (k, k)}
    if model.bias:
        expected["b"] = (k,)
    layout = "{" + ", ".join(f"{key!r}: {shape}" for key, shape in expected.items()) + "}"
    if not isinstance(params, Mapping):
        raise SideqInputError(f"params: expected a dict {layout} for {model.name}, got {type(params).__name__}")
    for key, shape in expected.items():
        if key not in params:
            raise SideqInputError(f"params: missing key {key!r} of shape {shape}; {model.name} takes {layout}")
    w1 = np.shape(params["W1"])
    if len(w1) == 2 and w1[0] == k and w1[1] != d:
        raise SideqInputError(
            f"dist: expected a law in d = {w1[1]} dimensions to match params['W1'] of shape {w1}, "
            f"got one in d = {d}; pass e.g. sideq.uniform(low, high, {w1[1]})"
        )
    for key, shape in expected.items():
        got = np.shape(params[key])
        if got != shape:
            raise SideqInputError(f"params[{key!r}]: expected shape {shape} for {model.name} with d = {d}, got {got}")
    extra = sorted(set(params) - set(expected))
    if extra:
        raise SideqInputError(f"params: unexpected key {extra[0]!r}; {model.name} takes {layout}")
    for key in expected:
        leaf = _concrete(params[key])
        if leaf is not None:
            if leaf.dtype.kind not in "biuf":
                raise SideqInputError(f"params[{key!r}]: expected real numbers, got an array of {leaf.dtype}")
            if not np.all(np.isfinite(leaf)):
                raise SideqInputError(f"params[{key!r}]: contains NaN or inf; pass finite numbers")


def _check_singular(model, params):
    """SingularModelError for multi_linear with concrete, singular I − W2."""
    if model.kind != "multi_linear":
        return
    W2 = _concrete(params["W2"])
    if W2 is None:
        return
    s = np.linalg.svd(np.eye(model.dim) - W2.astype(np.float64), compute_uv=False)
    eps = float(np.finfo(np.result_type(W2.dtype, np.float32)).eps)
    if not s[-1] > model.dim * eps * s[0]:
        raise SingularModelError(
            f"params['W2']: I - W2 is singular (smallest singular value {s[-1]:.3g}), so the linear DEQ "
            "has no unique equilibrium; choose W2 without the eigenvalue 1"
        )


def _float_dtype(params, xi):
    dtypes = [jnp.result_type(v) for v in (*[params[k] for k in sorted(params)], xi)]
    floats = [t for t in dtypes if jnp.issubdtype(t, jnp.floating)]
    return jnp.result_type(*floats) if floats else jnp.result_type(float)


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SideqInputError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _plan(model, dist, route, samples, key) -> _Plan:
    """Which route, with how many nodes or samples (the rules of the module docstring)."""
    key = _check_int("key", key, 0)
    if samples is not None:
        samples = _check_int("samples", samples, 2)
        if route not in (None, "monte_carlo"):
            raise SideqInputError(f"samples: given with route={route!r}; samples is for route='monte_carlo'")
        return _Plan("monte_carlo", samples=samples, key=key)
    if route is not None and route not in ROUTES:
        raise SideqInputError(f"route: expected one of {ROUTES} (or None to choose), got {route!r}")
    asked = getattr(dist, "nodes", 0)  # nodes per axis given to the law (0: its default)
    if route is None:
        if model.kind == "multi_linear":
            return _Plan("closed_form")
        route = "quadrature" if asked or dist.d <= QUADRATURE_DIMS else "monte_carlo"
        if route == "quadrature" and asked**dist.d <= MAX_NODES and _tensor_rule(dist) is None:
            route = "monte_carlo"  # (a law with no rule)
    if route == "closed_form":
        if model.kind != "multi_linear":
            raise SideqInputError(
                f"route: 'closed_form' is for sideq.general.multi_linear; {model.name} needs 'quadrature' "
                "or 'monte_carlo'"
            )
        return _Plan("closed_form")
    if route == "monte_carlo":
        return _Plan("monte_carlo", samples=DEFAULT_SAMPLES, key=key)
    # (the nodes asked for are checked before the rule is built: n**d nodes)
    rule = None if asked**dist.d > MAX_NODES else _tensor_rule(dist)
    if rule is None and asked**dist.d <= MAX_NODES:
        raise SideqInputError(
            f"dist: {type(dist).__name__} has no tensor rule in d = {dist.d} (no default nodes per axis there); "
            f"pass a law with nodes=n (n**d <= {MAX_NODES}) or samples=N for Monte Carlo"
        )
    count = MAX_NODES + 1 if rule is None else len(rule[1])
    if count > MAX_NODES:
        raise SideqInputError(
            f"dist: a tensor rule in d = {dist.d} with {asked or 'the default'} nodes per axis exceeds "
            f"{MAX_NODES} equilibria; pass a law with nodes=n (n**d <= {MAX_NODES}) or samples=N for Monte Carlo"
        )
    return _Plan("quadrature", nodes=count)


def _checked(model, params, xi, dist, route, samples, key):
    _check_model_dist(model, dist)
    _check_params(model, params, dist)
    _check_xi(model, xi, dist.d)
    _check_singular(model, params)
    plan = _plan(model, dist, route, samples, key)
    dtype = _float_dtype(params, xi)
    params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    return plan, params, jnp.asarray(xi, dtype)


# ----------------------------------------------------------------------------
# Public entry points.


def route_for(model, dist, *, samples: int | None = None, route: str | None = None) -> str:
    """The route :func:`population_risk` takes for ``model`` and ``dist``:
    ``"closed_form"``, ``"quadrature"`` or ``"monte_carlo"``.

    Args:
      model: :func:`sideq.general.multi_linear` or :func:`sideq.general.multi_index`.
      dist: a law of X (:mod:`sideq.data`'s protocol).
      samples: a Monte Carlo sample size (≥ 2), as for :func:`population_risk`.
      route: a route to force, or None to choose (module docstring).

    Returns:
      The route's name.

    Raises:
      SideqInputError: a model without a population risk, a bad law, a
        ``samples`` or ``route`` that does not apply, or a quadrature the law
        cannot give (no rule, or more than :data:`MAX_NODES` nodes).
    """
    _check_model_dist(model, dist)
    return _plan(model, dist, route, samples, 0).route


def n_nodes(model, dist, *, samples: int | None = None, route: str | None = None) -> int:
    """The number of equilibria one evaluation solves (0 for the closed form).

    Args:
      model: :func:`sideq.general.multi_linear` or :func:`sideq.general.multi_index`.
      dist: a law of X (:mod:`sideq.data`'s protocol).
      samples: a Monte Carlo sample size (≥ 2), as for :func:`population_risk`.
      route: a route to force, or None to choose.

    Returns:
      The quadrature's node count, the Monte Carlo sample size, or 0.

    Raises:
      SideqInputError: as for :func:`route_for`.
    """
    _check_model_dist(model, dist)
    return _plan(model, dist, route, samples, 0).n_nodes


def population_risk_estimate(
    model, params, xi, dist, *, samples: int | None = None, key: int = 0, route: str | None = None
) -> RiskEstimate:
    r"""R(params) = E[‖y_params(X) − f(X)‖²] with its standard error and route.

    Args:
      model: :func:`sideq.general.multi_linear` or :func:`sideq.general.multi_index`.
      params: ``{"W1": (k, d), "W2": (k, k)}`` (+ ``"b": (k,)`` with a bias).
      xi: Ξ, shape (k, d): the target f(x) = Ξx or σ(Ξx).
      dist: a law of X: ``sideq.uniform(low, high, d)``,
        ``sideq.gaussian(mean, cov)`` or any object with :mod:`sideq.data`'s
        protocol.
      samples: Monte Carlo with this many inputs (≥ 2) instead of the
        closed form or the quadrature.
      key: the Monte Carlo seed (an integer; the same samples at every params).
      route: ``"closed_form"``, ``"quadrature"`` or ``"monte_carlo"`` to force
        a route (None: the closed form for multi_linear, the quadrature for
        d ≤ 3 or a law given ``nodes``, else, or for a law with no tensor
        rule, Monte Carlo with :data:`DEFAULT_SAMPLES` inputs).

    Returns:
      A :class:`RiskEstimate` ``(value, stderr, n_nodes, route)``; ``stderr``
      is 0 for the closed form and the quadrature.  ``value`` is NaN if a
      solve failed (or I − W2 is singular under jit).

    Raises:
      SideqInputError: a one-line message naming the bad argument: ``model``
        (not multi_linear or multi_index), ``dist``, ``params`` (keys, shapes,
        non-real or non-finite leaves), ``xi``, ``samples``, ``key`` or
        ``route``.
      SingularModelError: I − W2 singular for multi_linear with concrete
        params.
    """
    plan, params, xi = _checked(model, params, xi, dist, route, samples, key)
    value, stderr = _evaluate(model, plan, params, xi, dist)
    return RiskEstimate(value, stderr, plan.n_nodes, plan.route)


def population_risk(model, params, xi, dist, *, samples: int | None = None, key: int = 0, route: str | None = None):
    r"""R(params) = E[‖y_params(X) − f(X)‖²], summed over the k outputs (the
    population version of :func:`sideq.general.empirical_risk`; Section 2,
    Eq. (5) for :func:`~sideq.general.multi_linear`).

    Routes as for :func:`population_risk_estimate`.

    Args:
      model: :func:`sideq.general.multi_linear` or :func:`sideq.general.multi_index`.
      params: ``{"W1": (k, d), "W2": (k, k)}`` (+ ``"b": (k,)`` with a bias).
      xi: Ξ, shape (k, d): the target f(x) = Ξx or σ(Ξx).
      dist: a law of X (:mod:`sideq.data`'s protocol).
      samples: Monte Carlo with this many inputs (≥ 2).
      key: the Monte Carlo seed, an integer ≥ 0.
      route: a route to force, or None to choose.

    Returns:
      A scalar in the float dtype of ``params`` and ``xi``, differentiable in
      params (Eq. (1) through every solve) and jit-able with ``model`` static;
      NaN if a solve failed (or I − W2 is singular under jit).

    Raises:
      SideqInputError: as for :func:`population_risk_estimate`.
      SingularModelError: I − W2 singular for multi_linear with concrete
        params.
    """
    plan, params, xi = _checked(model, params, xi, dist, route, samples, key)
    return _evaluate(model, plan, params, xi, dist)[0]


def population_objective(model, xi, dist, *, samples: int | None = None, key: int = 0, route: str | None = None):
    """``objective(params) -> R(params)`` for jit, grad and ODE solvers (checked
    once here, not at each call).

    ``xi``, ``dist`` and the route are fixed; ``objective.route`` and
    ``objective.n_nodes`` say which route and how many equilibria per call,
    ``objective.estimate(params)`` gives ``(value, stderr)``.  The params are
    not checked at each call (a singular I − W2 gives NaN).

    Args:
      model: :func:`sideq.general.multi_linear` or :func:`sideq.general.multi_index`.
      xi: Ξ, shape (k, d).
      dist: a law of X (:mod:`sideq.data`'s protocol).
      samples: Monte Carlo with this many inputs (≥ 2).
      key: the Monte Carlo seed, an integer ≥ 0.
      route: a route to force, or None to choose.

    Returns:
      The function ``objective(params)``, with the attributes ``estimate``,
      ``route`` and ``n_nodes``.

    Raises:
      SideqInputError: a bad ``model``, ``dist``, ``xi``, ``samples``, ``key``
        or ``route``.
    """
    _check_model_dist(model, dist)
    _check_xi(model, xi, dist.d)
    plan = _plan(model, dist, route, samples, key)
    xi_arr = jnp.asarray(xi)

    def estimate(params):
        dtype = _float_dtype(params, xi_arr)
        params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
        return _evaluate(model, plan, params, xi_arr.astype(dtype), dist)

    def objective(params):
        return estimate(params)[0]

    objective.estimate = estimate
    objective.route = plan.route
    objective.n_nodes = plan.n_nodes
    return objective
