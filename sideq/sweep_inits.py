r"""Initializations θ(0) of a sweep (:func:`make_inits`): many starts drawn
from a spec (``normal:``, ``ball:``, ``grid:``, the CLI's ``--init-dist``),
as flat θ ∈ ℝᵖ for the paper's scalar models or as the params pytree of a
:class:`~sideq.general.DEQ` with a leading run axis on every leaf.

:func:`check_layout` is the check of a built-in DEQ family's params layout
that :func:`sideq.sweep.run_sweep` applies to its ``inits`` too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import numpy as np

from sideq.errors import SideqInputError
from sideq.general import DEQ
from sideq.model import Model

__all__ = ["make_inits", "normal_spec", "check_layout"]


def _numbers(spec, text, what, count=None, flag="--init-dist"):
    try:
        vals = np.array([float(v) for v in text.split("/")], np.float64)
    except ValueError:
        raise SideqInputError(
            f"spec ({flag}): {what} in {spec!r} must be a number or numbers joined by '/', got {text!r}"
        ) from None
    if not np.all(np.isfinite(vals)):
        raise SideqInputError(f"spec ({flag}): {what} in {spec!r} must be finite, got {text!r}")
    if count is not None and vals.size not in (1, count):
        raise SideqInputError(
            f"spec ({flag}): {what} in {spec!r} has {vals.size} values but theta has p = {count}; "
            f"give 1 or {count} values joined by '/'"
        )
    return vals


def _number(spec, text, what, flag="--init-dist"):
    try:
        v = float(text)
    except ValueError:
        raise SideqInputError(f"spec ({flag}): {what} in {spec!r} must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise SideqInputError(f"spec ({flag}): {what} in {spec!r} must be finite, got {text!r}")
    return v


def normal_spec(spec: str, p: int, *, flag: str = "--init-dist") -> tuple[np.ndarray, float]:
    """(MEAN, STD) of a ``normal:MEAN,STD`` spec (see :func:`make_inits`); MEAN has 1 or p values.

    Args:
      spec: the spec, ``normal:MEAN,STD`` with MEAN's values joined by '/'.
      p: the number of parameters.
      flag: the option named in error messages.

    Returns:
      ``(mean, std)``: a float64 numpy array of 1 or p values, and a float ≥ 0.

    Raises:
      SideqInputError: not a ``normal:`` spec of two parts, MEAN or STD not
        numbers (or MEAN of another length), or STD < 0.
    """
    kind, _, body = spec.partition(":")
    parts = body.split(",")
    if kind != "normal" or len(parts) != 2:
        raise SideqInputError(f"spec ({flag}): expected normal:MEAN,STD, got {spec!r}")
    mean = _numbers(spec, parts[0], "MEAN", p, flag)
    std = _number(spec, parts[1], "STD", flag)
    if std < 0:
        raise SideqInputError(f"spec ({flag}): STD in {spec!r} must be >= 0, got {std}")
    return mean, std


def make_inits(
    spec: str,
    K: int,
    p: int | None = None,
    seed: int = 0,
    *,
    model=None,
    d: int | None = None,
    around=None,
    flag: str = "--init-dist",
):
    r"""K initializations θ(0): flat θ ∈ ℝᵖ as a float64 array of shape (K, p), or
    the params pytree of a DEQ (:mod:`sideq.general`) with every leaf stacked
    on a leading K axis.

    ``spec`` (the CLI's ``--init-dist``) is one of

    * ``normal:MEAN,STD`` — θ(0) ~ N(MEAN, STD² I); MEAN a number or p numbers
      joined by '/' (``normal:0/1,0.1`` is N((0, 1), 0.1² I), Figure 3);
    * ``ball:CENTER,RADIUS`` — uniform in the Euclidean ball
      {θ : ‖θ − CENTER‖ ≤ RADIUS}: θ = CENTER + RADIUS·U^{1/p}·Z/‖Z‖ with
      Z ~ N(0, I), U ~ Unif[0, 1];
    * ``grid:LO1/HI1,LO2/HI2`` (p = 2) — the √K × √K grid of
      ``linspace(LO1, HI1, √K) × linspace(LO2, HI2, √K)``, θ1 slowest
      (row i·√K + j is (θ1ᵢ, θ2ⱼ)); K must be a perfect square.

    Which θ:

    * ``make_inits(spec, K, p, seed)``: flat θ ∈ ℝᵖ, (K, p), for the paper's
      scalar models (``p = model.n_params(d)``; or ``model=`` a scalar model
      with ``d=``).
    * ``make_inits(spec, K, model=deq, d=d)``: the params of
      :func:`~sideq.general.multi_linear` / :func:`~sideq.general.multi_index`
      with d inputs, ``{"W1": (K, k, d), "W2": (K, k, k)}`` (+ ``"b": (K, k)``).
    * ``make_inits(spec, K, around=params)``: ``params`` (any pytree of
      arrays; a :class:`~sideq.general.DEQ` may be given as ``model=`` too, to
      check its layout) plus the draw: ``normal:0,0.1`` is params + 0.1·N(0, I)
      entry by entry.

    For a pytree the draw is that of flat θ ∈ ℝᵖ, p the number of entries of
    all leaves, in the leaves' order (:func:`jax.tree_util.tree_leaves`: a
    dict's keys sorted), each leaf in C order, added to the centre (zeros, or
    ``around``); so for ``multi_linear(1)`` with d = 1 the rows (W1, W2) are
    exactly the flat draw ``make_inits(spec, K, 2, seed)``.

    Deterministic in ``seed`` (numpy's PCG64); O(K·p) memory (16 MB for
    K = 10⁶, p = 2).

    Args:
      spec: ``normal:...``, ``ball:...`` or ``grid:...`` (above).
      K: the number of initializations, an integer ≥ 1 (a perfect square for
        ``grid:``).
      p: the length of flat θ; only without ``model`` and ``around``.
      seed: an integer ≥ 0.
      model: a scalar model (with ``d``: flat θ of ``model.n_params(d)``
        entries) or a :class:`~sideq.general.DEQ` (params).
      d: the number of inputs, an integer ≥ 1, with ``model``.
      around: the centre of the draws: flat θ (p,) for a scalar model, or a
        params pytree of finite real arrays.
      flag: the option named in error messages (``sideq descent --init``
        parses ``normal:`` specs with this function too).

    Returns:
      A float64 numpy array (K, p), or a pytree of float64 numpy arrays
      (K, ...) shaped like the params.

    Raises:
      SideqInputError: a bad ``spec``, ``K``, ``p``, ``seed`` or ``d``; ``p``
        given with ``model`` or ``around``; a ``model`` of another type; a
        general DEQ without ``around``; an ``around`` of the wrong layout or
        not finite.

    >>> make_inits("grid:-1/1,0/2", K=9, p=2)[:3]
    array([[-1.,  0.],
           [-1.,  1.],
           [-1.,  2.]])
    """
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise SideqInputError(f"K (--inits): the number of initializations must be an integer >= 1, got {K!r}")
    if model is None and around is None:
        return _draw(spec, K, p, seed, flag)
    if p is not None:
        raise SideqInputError(f"p: give p for flat theta, or model=/around= for params, not both (got p = {p!r})")
    if isinstance(model, Model):
        d = _positive(d, "d", "the number of inputs")
        p = model.n_params(d)
        if around is None:
            return _draw(spec, K, p, seed, flag)
        center = np.asarray(around, np.float64)
        if center.shape != (p,):
            raise SideqInputError(
                f"around: expected shape ({p},) (flat theta of {model.name} with d = {d}), got {center.shape}"
            )
        return _finite_tree(center, "around") + _draw(spec, K, p, seed, flag)
    template = _init_template(model, d, around)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    sizes = [leaf.size for leaf in leaves]
    flat = _draw(spec, K, int(sum(sizes)), seed, flag)
    flat = flat + np.concatenate([leaf.ravel() for leaf in leaves])
    cuts = np.cumsum(sizes)[:-1]
    rows = [block.reshape((K,) + leaf.shape) for block, leaf in zip(np.split(flat, cuts, axis=1), leaves)]
    return jax.tree_util.tree_unflatten(treedef, rows)


def _positive(v, name, what):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise SideqInputError(f"{name}: {what} must be an integer >= 1, got {v!r}")
    return int(v)


def _finite_tree(tree, what):
    """``tree`` with float64 numpy leaves, or a one-line error naming the leaf."""

    def one(path, leaf):
        arr = np.asarray(leaf)
        if arr.dtype.kind not in "biuf":
            raise SideqInputError(f"{what}{jax.tree_util.keystr(path)}: expected real numbers, got {arr.dtype}")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise SideqInputError(f"{what}{jax.tree_util.keystr(path)}: contains NaN or inf; pass finite numbers")
        return arr

    return jax.tree_util.tree_map_with_path(one, tree)


def _builtin_layout(model: DEQ, d: int) -> dict:
    """Per-run shapes of a built-in family's params."""
    k = model.dim
    layout = {"W1": (k, d), "W2": (k, k)}
    if model.bias:
        layout["b"] = (k,)
    return layout


def _layout_text(layout, lead=""):
    return (
        "{"
        + ", ".join(
            f"{key!r}: {(lead,) + shape if lead else shape}".replace("'K'", "K") for key, shape in layout.items()
        )
        + "}"
    )


def _init_template(model, d, around):
    """The centre of make_inits' draws for a DEQ: zeros of the model's layout, or ``around``."""
    if model is not None and not isinstance(model, DEQ):
        raise SideqInputError(
            f"model: expected a sideq.general.DEQ or a scalar model (sideq.linear(), sideq.single_index(...)), "
            f"got {type(model).__name__}"
        )
    if around is None:
        if model.kind == "general":
            raise SideqInputError(
                f"around: {model.name} is a general DEQ, whose params have no fixed layout; "
                "pass around=params (a pytree), the centre of the draws"
            )
        d = _positive(d, "d", "the number of inputs")
        return {key: np.zeros(shape) for key, shape in _builtin_layout(model, d).items()}
    if not jax.tree_util.tree_leaves(around):
        raise SideqInputError(f"around: expected params (a pytree of arrays), got {type(around).__name__}")
    if model is not None and model.kind != "general":
        if not isinstance(around, Mapping) or "W1" not in around or np.ndim(around["W1"]) != 2:
            raise SideqInputError(
                f"around: expected a dict {_layout_text(_builtin_layout(model, d or 1))} for {model.name} "
                "(W1 of shape (k, d))"
            )
        d_around = int(np.shape(around["W1"])[1])
        if d is not None and _positive(d, "d", "the number of inputs") != d_around:
            raise SideqInputError(f"d: {d} but around['W1'] has d = {d_around} columns; give one or the other")
        check_layout(model, around, d_around, "around", lead=False)
    return _finite_tree(around, "around")


def check_layout(model, tree, d, what, lead=True):
    """Check the keys and shapes of a built-in family's params
    (:func:`~sideq.general.multi_linear`, :func:`~sideq.general.multi_index`):
    a one-line error naming the key and the expected shape, else nothing.

    Args:
      model: the built-in DEQ.
      tree: its params, ``{"W1": (k, d), "W2": (k, k)}`` (+ ``"b": (k,)``).
      d: the number of inputs.
      what: the argument named in error messages.
      lead: whether each leaf has a leading run axis K (a sweep's inits).

    Raises:
      SideqInputError: ``tree`` is not a dict, misses a key, has an
        unexpected key, or a leaf of the wrong shape.
    """
    layout = _builtin_layout(model, d)
    shown = _layout_text(layout, "K" if lead else "")
    where = f"{model.name} with d = {d}"
    if not isinstance(tree, Mapping):
        raise SideqInputError(
            f"{what}: expected a dict {shown} for {where}"
            + (" (one row per run; see make_inits)" if lead else "")
            + f", got {type(tree).__name__}"
        )
    for key, shape in layout.items():
        full = ("K",) + shape if lead else shape
        full_text = "(" + ", ".join(map(str, full)) + (",)" if len(full) == 1 else ")")
        if key not in tree:
            raise SideqInputError(f"{what}: missing key {key!r} of shape {full_text}; {where} takes {shown}")
        got = tuple(np.shape(tree[key]))
        if (got[1:] if lead else got) != shape or (lead and len(got) != len(shape) + 1):
            hint = "; add the leading K axis (one row per run)" if lead and got == shape else ""
            raise SideqInputError(f"{what}[{key!r}]: expected shape {full_text} for {where}, got {got}{hint}")
    extra = sorted(set(tree) - set(layout), key=str)
    if extra:
        raise SideqInputError(f"{what}: unexpected key {extra[0]!r}; {where} takes {shown}")


def _draw(spec, K, p, seed, flag):
    """make_inits for flat θ ∈ ℝᵖ: (K, p)."""
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
        raise SideqInputError(f"p: the number of parameters must be an integer >= 1, got {p!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SideqInputError(f"seed: expected an integer >= 0, got {seed!r}")
    K, p = int(K), int(p)
    forms = "normal:MEAN,STD, ball:CENTER,RADIUS or grid:LO1/HI1,LO2/HI2"
    if not isinstance(spec, str) or ":" not in spec:
        raise SideqInputError(f"spec ({flag}): expected {forms}, got {spec!r}")
    kind, _, body = spec.partition(":")
    parts = body.split(",")
    rng = np.random.default_rng(int(seed))
    if kind == "normal":
        mean, std = normal_spec(spec, p, flag=flag)
        return mean + std * rng.standard_normal((K, p))
    if kind == "ball":
        if len(parts) != 2:
            raise SideqInputError(f"spec ({flag}): expected ball:CENTER,RADIUS, got {spec!r}")
        center = _numbers(spec, parts[0], "CENTER", p, flag)
        radius = _number(spec, parts[1], "RADIUS", flag)
        if radius < 0:
            raise SideqInputError(f"spec ({flag}): RADIUS in {spec!r} must be >= 0, got {radius}")
        z = rng.standard_normal((K, p))
        norm = np.linalg.norm(z, axis=1, keepdims=True)
        norm[norm == 0] = 1.0  # probability zero; keeps the point at the centre
        r = radius * rng.random((K, 1)) ** (1.0 / p)
        return center + r * z / norm
    if kind == "grid":
        if p != 2:
            raise SideqInputError(
                f"spec ({flag}): grid:LO1/HI1,LO2/HI2 is for p = 2 (theta1, theta2), but theta has p = {p}; "
                "use normal: or ball: for other p"
            )
        if len(parts) != 2:
            raise SideqInputError(f"spec ({flag}): expected grid:LO1/HI1,LO2/HI2, got {spec!r}")
        axes = []
        for i, part in enumerate(parts, 1):
            lohi = _numbers(spec, part, f"LO{i}/HI{i}", flag=flag)
            if lohi.size != 2:
                raise SideqInputError(
                    f"spec ({flag}): LO{i}/HI{i} in {spec!r} must be two numbers joined by '/', got {part!r}"
                )
            axes.append(lohi)
        m = math.isqrt(K)
        if m * m != K:
            raise SideqInputError(
                f"K (--inits): grid: needs a perfect square number of runs (sqrt(K) points per axis), got K = {K}; "
                f"use K = {m * m} or {(m + 1) ** 2}"
            )
        g1 = np.linspace(axes[0][0], axes[0][1], m)
        g2 = np.linspace(axes[1][0], axes[1][1], m)
        t1, t2 = np.meshgrid(g1, g2, indexing="ij")
        return np.stack([t1.ravel(), t2.ravel()], axis=1)
    raise SideqInputError(f"spec ({flag}): unknown kind {kind!r} in {spec!r}; expected {forms}")
