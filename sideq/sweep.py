r"""Sweeps of gradient descent over many initializations θ(0) (and step sizes η).

This is the only module that knows about chunks, devices, progress and files on
disk.  One run is :func:`sideq.dynamics.gradient_descent` with ``history=False``
(θ(t+1) = θ(t) − η∇R(θ(t)), Section 2); a sweep is that run ``jax.vmap``-ed over
the runs of a *chunk*, ``jax.jit``-ed once, and called chunk after chunk on
arrays of the same shape (the last chunk is padded and the padding dropped), so
memory does not grow with the number of runs K and nothing recompiles.

* DEQs: ``run_sweep`` also takes a :class:`sideq.general.DEQ` (any
  y = g(params, x, y), y ∈ ℝ^k, params a pytree); each run is then
  :func:`sideq.general.descent` on the empirical risk (with ``dist``, for
  multi_linear and multi_index, the same descent on
  :func:`sideq.general_risk.population_objective`), vmapped over the
  leading K axis of the params' leaves, with the same chunks, devices, files,
  resume, statuses, progress and summary.  results.npz keeps each params leaf
  under its path: ``theta0/W1``, ``theta_final/W1`` (:func:`params_from_results`).
* Runs: ``inits`` θ(0) of shape (K, p) times the step sizes: a scalar η, a
  vector of E step sizes (the product: K·E runs, run r = i·E + j has θ(0) =
  inits[i] and η = eta[j]), or with ``pair_eta=True`` one η per init (K runs).
* Failure is data: a run that diverges or meets a singular / failed equilibrium
  carries its :class:`~sideq.status.Status` and ``fail_step``; the others in its
  chunk are unaffected (each run is frozen at its first failure).
* Files (``out_dir``): every finished chunk is written atomically (a temporary
  file, fsync, ``os.replace``) to ``out_dir/chunks/``; ``manifest.json`` holds the
  settings.  At the end the chunks are streamed into ``results.npz`` (one
  array at a time, one chunk at a time) and ``summary.json`` is written; the
  chunk files are then removed.  ``resume=True`` continues a sweep killed at any
  moment (also SIGKILL in the middle of a write): finished chunks are kept, the
  others recomputed, and ``results.npz`` is byte-for-byte the file an
  uninterrupted run writes.  Resuming with other settings is refused.
* Devices: the run axis of each chunk is split over ``jax.devices()`` with
  :func:`jax.shard_map` on a 1-D :class:`~jax.sharding.Mesh` (axis ``"runs"``);
  each device runs its share with no communication until the chunk's results
  are gathered.  Results agree with a one-device run to rounding (bit for bit
  while every device holds at least two runs of a chunk; for a DEQ, whose
  chunk is split by XLA's partitioner instead of shard_map, to rounding
  only: within 4.4e-16 in a check on 4 CPU devices).  On a multi-core
  CPU, JAX can present one CPU device per core if asked before anything else
  touches JAX: ``jax.config.update("jax_num_cpu_devices", N)`` or
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N``; each device's share
  of a chunk then runs on its own thread.
* Several hosts: pass ``distributed=True`` (or call
  :func:`jax.distributed.initialize` yourself) on every host, with the same
  arguments, before any other JAX call (:func:`initialize_distributed`: under
  SLURM or Open MPI JAX finds the cluster itself; elsewhere set
  JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID).  Every
  process then computes its devices' share of each chunk; process 0 gathers
  the results and alone writes files and the progress line, so ``out_dir``
  needs to be visible to it only.  ``tests/test_multihost.py`` runs two
  processes on one machine: bit-identical to one process, and a kill of one
  process followed by a resume of both loses nothing.

Example (float64 chosen by the caller, here scoped to the block)::

    import jax
    import sideq
    from sideq.sweep import make_inits, run_sweep, load_results

    with jax.enable_x64(True):
        model = sideq.single_index("sigmoid")
        x = sideq.sample(sideq.uniform(0, 1, 1), jax.random.PRNGKey(0), 1000)
        inits = make_inits("normal:0,0.1", K=1000, p=2, seed=0)
        res = run_sweep(model, xi=[2.0], x=x, inits=inits, eta=0.1, epochs=4000,
                        out_dir="sweep_out")
    res.summary["status_counts"], load_results("sweep_out")["theta_final"].shape

A DEQ (here k = 2 outputs of d = 3 inputs)::

    from sideq.general import multi_linear
    from sideq.sweep import params_from_results

    with jax.enable_x64(True):
        model = multi_linear(2)
        inits = make_inits("normal:0,0.1", K=100, model=model, d=3)  # {"W1": (100, 2, 3), "W2": (100, 2, 2)}
        res = run_sweep(model, xi=xi, x=x, inits=inits, eta=0.1, epochs=500)  # xi (2, 3), x (n, 3)
    params_from_results(res.arrays)["W1"].shape  # (100, 2, 3)
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
import warnings
import zipfile
from collections.abc import Mapping
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sideq.data import Gaussian, Uniform
from sideq.dynamics import gradient_descent
from sideq.errors import SideqInputError
from sideq.general import DEQ
from sideq.general import descent as deq_descent
from sideq.general_risk import n_nodes as deq_n_nodes
from sideq.general_risk import population_objective as deq_population_objective
from sideq.general_risk import route_for as deq_route_for
from sideq.model import Model
from sideq.progress import make as make_bar
from sideq.risk import (
    _default_y0,
    empirical_objective,
    initial_nodes_y0,
    n_nodes,
    population_objective,
)
from sideq.scalar import BACKENDS
from sideq.status import Status
from sideq.train import check_problem, check_tolerances
from sideq.xla import compiler_options

__all__ = [
    "make_inits", "run_sweep", "load_results", "params_from_results", "SweepResult", "default_chunk",
    "initialize_distributed", "FIELDS", "DEQ_FIELDS",
]

FORMAT = "sideq-sweep-2"  # (2: the non-unique history fields; a run's status is its end)

# Per-run arrays of results.npz, in this order; (N,) or (N, p) with N runs.
FIELDS = (
    "theta0", "eta", "theta_final", "loss_final", "grad_norm_final", "distance_final",
    "status", "fail_step", "steps", "non_unique_epochs", "non_unique_first", "non_unique_last",
)
# Per-run arrays of a DEQ sweep (sideq.general): each params leaf is stored
# twice, as "theta0/NAME" before "eta" and "theta_final/NAME" after it (NAME:
# the leaf's path, see params_from_results), then these, each (N,); a
# population-risk sweep has no residual_final (its risk solves no equilibrium,
# or many).
DEQ_FIELDS = ("loss_final", "grad_norm_final", "residual_final", "status", "fail_step", "steps")
_DEQ_POPULATION_FIELDS = tuple(f for f in DEQ_FIELDS if f != "residual_final")
_DEQ_DIVERGENCE = 1e8  # a parameter beyond this counts as DIVERGED (sideq.general.descent's default)
_INT_FIELDS = ("status", "fail_step", "steps", "non_unique_epochs", "non_unique_first", "non_unique_last")
_QUANTILES = {"min": 0.0, "q05": 0.05, "median": 0.5, "q95": 0.95, "max": 1.0}
_FAILED = (Status.DIVERGED, Status.SINGULAR, Status.SOLVER_FAILURE)


# ----------------------------------------------------------------------------
# Initializations


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
    """(MEAN, STD) of a ``normal:MEAN,STD`` spec (see :func:`make_inits`); MEAN has 1 or p values."""
    kind, _, body = spec.partition(":")
    parts = body.split(",")
    if kind != "normal" or len(parts) != 2:
        raise SideqInputError(f"spec ({flag}): expected normal:MEAN,STD, got {spec!r}")
    mean = _numbers(spec, parts[0], "MEAN", p, flag)
    std = _number(spec, parts[1], "STD", flag)
    if std < 0:
        raise SideqInputError(f"spec ({flag}): STD in {spec!r} must be >= 0, got {std}")
    return mean, std


def make_inits(spec: str, K: int, p: int | None = None, seed: int = 0, *, model=None, d: int | None = None,
               around=None, flag: str = "--init-dist"):
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

    ``flag`` names the option in error messages (``sideq descent --init`` parses
    ``normal:`` specs with this function too).  Deterministic in ``seed`` (numpy's PCG64); O(K·p) memory (16 MB for
    K = 10⁶, p = 2).  Bad specs raise :class:`~sideq.errors.SideqInputError`.

    Returns:
      A float64 numpy array (K, p), or a pytree of float64 numpy arrays
      (K, ...) shaped like the params.

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
        raise SideqInputError(
            f"p: give p for flat theta, or model=/around= for params, not both (got p = {p!r})")
    if isinstance(model, Model):
        d = _positive(d, "d", "the number of inputs")
        p = model.n_params(d)
        if around is None:
            return _draw(spec, K, p, seed, flag)
        center = np.asarray(around, np.float64)
        if center.shape != (p,):
            raise SideqInputError(f"around: expected shape ({p},) (flat theta of {model.name} with d = {d}), "
                                  f"got {center.shape}")
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
    return "{" + ", ".join(f"{key!r}: {(lead,) + shape if lead else shape}".replace("'K'", "K")
                           for key, shape in layout.items()) + "}"


def _init_template(model, d, around):
    """The centre of make_inits' draws for a DEQ: zeros of the model's layout, or ``around``."""
    if model is not None and not isinstance(model, DEQ):
        raise SideqInputError(
            f"model: expected a sideq.general.DEQ or a scalar model (sideq.linear(), sideq.single_index(...)), "
            f"got {type(model).__name__}")
    if around is None:
        if model.kind == "general":
            raise SideqInputError(
                f"around: {model.name} is a general DEQ, whose params have no fixed layout; "
                "pass around=params (a pytree), the centre of the draws")
        d = _positive(d, "d", "the number of inputs")
        return {key: np.zeros(shape) for key, shape in _builtin_layout(model, d).items()}
    if not jax.tree_util.tree_leaves(around):
        raise SideqInputError(f"around: expected params (a pytree of arrays), got {type(around).__name__}")
    if model is not None and model.kind != "general":
        if not isinstance(around, Mapping) or "W1" not in around or np.ndim(around["W1"]) != 2:
            raise SideqInputError(
                f"around: expected a dict {_layout_text(_builtin_layout(model, d or 1))} for {model.name} "
                "(W1 of shape (k, d))")
        d_around = int(np.shape(around["W1"])[1])
        if d is not None and _positive(d, "d", "the number of inputs") != d_around:
            raise SideqInputError(f"d: {d} but around['W1'] has d = {d_around} columns; give one or the other")
        _check_layout(model, around, d_around, "around", lead=False)
    return _finite_tree(around, "around")


def _check_layout(model, tree, d, what, lead=True):
    """Keys and shapes of a built-in family's params (with a leading run axis
    when ``lead``), or a one-line error naming the key and the expected shape."""
    layout = _builtin_layout(model, d)
    shown = _layout_text(layout, "K" if lead else "")
    where = f"{model.name} with d = {d}"
    if not isinstance(tree, Mapping):
        raise SideqInputError(
            f"{what}: expected a dict {shown} for {where}" + (" (one row per run; see make_inits)" if lead else "")
            + f", got {type(tree).__name__}")
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


# ----------------------------------------------------------------------------
# Names of params leaves in results.npz


def _leaf_names(tree, what="inits") -> list[str]:
    """The name of each leaf of a params pytree, in its leaves' order: the keys
    on its path joined by '/' (dict keys, sequence indices, attribute names),
    "" for a bare array.  A key holding '/' or two leaves of one name are
    refused (the names must give the pytree back unambiguously)."""
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = []
        for key in path:
            part = (key.key if isinstance(key, (jax.tree_util.DictKey, jax.tree_util.FlattenedIndexKey))
                    else key.idx if isinstance(key, jax.tree_util.SequenceKey)
                    else key.name if isinstance(key, jax.tree_util.GetAttrKey) else key)
            part = str(part)
            if not part or "/" in part:
                raise SideqInputError(
                    f"{what}{jax.tree_util.keystr(path)}: the key {part!r} cannot name a leaf in results.npz "
                    "(empty or holding '/'); rename it")
            parts.append(part)
        names.append("/".join(parts))
    seen = set()
    for name in names:
        if name in seen:
            raise SideqInputError(f"{what}: two leaves are both named {name!r} (keys equal as text); rename one")
        seen.add(name)
    return names


def _field(prefix, name):
    return f"{prefix}/{name}" if name else prefix


def params_from_results(arrays: Mapping, which: str = "theta_final", like=None):
    r"""The params of a DEQ sweep (:func:`run_sweep` with a
    :class:`~sideq.general.DEQ`) back as a pytree whose leaves have a leading
    run axis N.

    results.npz (and ``SweepResult.arrays``, :func:`load_results`) stores the
    leaf at path (k₁, k₂, …) of θ(0) as ``"theta0/k₁/k₂/…"`` and of θ(T) as
    ``"theta_final/k₁/k₂/…"``: dict keys, sequence indices and attribute names
    as text, joined by '/' (``"theta_final/W1"`` for
    :func:`~sideq.general.multi_linear`, (N, k, d)); a params that is one bare
    array is ``"theta0"`` / ``"theta_final"`` itself.

    Args:
      arrays: a sweep's per-run arrays (``SweepResult.arrays`` or :func:`load_results`).
      which: ``"theta_final"`` or ``"theta0"``.
      like: params of the model (one run's, or stacked): the pytree is built
        with its structure (lists, tuples, custom nodes).  Without it, nested
        dicts keyed by the names' parts (the structure of a dict of dicts).

    Returns:
      The pytree, e.g. ``{"W1": (N, k, d), "W2": (N, k, k)}``.
    """
    if which not in ("theta0", "theta_final"):
        raise SideqInputError(f"which: expected 'theta0' or 'theta_final', got {which!r}")
    keys = [key for key in arrays.keys() if key == which or key.startswith(which + "/")]
    if not keys:
        raise SideqInputError(f"arrays: no {which!r} fields; expected the arrays of a DEQ sweep")
    if like is not None:
        names = _leaf_names(like, "like")
        missing = [n for n in names if _field(which, n) not in keys]
        if missing or len(names) != len(keys):
            raise SideqInputError(
                f"like: its leaves {names} do not match the sweep's {[k[len(which) + 1:] for k in keys]}")
        treedef = jax.tree_util.tree_structure(like)
        return jax.tree_util.tree_unflatten(treedef, [np.asarray(arrays[_field(which, n)]) for n in names])
    if keys == [which]:
        return np.asarray(arrays[which])
    out = {}
    for key in keys:
        node, parts = out, key.split("/")[1:]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = np.asarray(arrays[key])
    return out


# ----------------------------------------------------------------------------
# One chunk: vmap over runs, shard_map over devices, jit once.


def _shard_map(f, mesh, in_specs, out_specs):
    if hasattr(jax, "shard_map"):
        return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map  # jax < 0.7

    return shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


def _one_run(model, risk, epochs, backend, maxiter, theta0, eta, data, xi, tols):
    """Summary of one run of gradient descent (no history; Section 2)."""
    if risk == "empirical":
        x, y = data
        objective = empirical_objective(model, x, y, backend=backend, maxiter=maxiter)
        y0 = _default_y0(model, theta0, x)
    else:
        objective = population_objective(model, xi, data, backend=backend, maxiter=maxiter)
        y0 = initial_nodes_y0(model, theta0, xi, data)
    traj = gradient_descent(
        model, objective, theta0, y0, xi, epochs=epochs, optimizer=optax.sgd(eta),
        gtol=tols[0], ltol=tols[1], dtol=tols[2], history=False,
    )
    return dict(
        theta_final=traj.theta[-1], loss_final=traj.loss[-1], grad_norm_final=traj.grad_norm[-1],
        distance_final=traj.distance[-1], status=traj.status, fail_step=traj.fail_step,
        steps=traj.steps, non_unique_epochs=traj.non_unique_epochs, non_unique_first=traj.non_unique_first,
        non_unique_last=traj.non_unique_last,
    )


def _chunk_fn(model, risk, epochs, backend, maxiter, mesh):
    """The jitted chunk: (theta0 (C, p), eta (C,), data, xi, tols) -> per-run dict,
    compiled with :func:`sideq.xla.compiler_options` for the mesh's platform."""
    options = compiler_options(mesh.devices.flat[0].platform)
    return _chunk_fn_cached(model, risk, epochs, backend, maxiter, mesh,
                            tuple(sorted((options or {}).items())))


@functools.lru_cache(maxsize=32)
def _chunk_fn_cached(model, risk, epochs, backend, maxiter, mesh, options):
    from jax.sharding import PartitionSpec as P

    def local(theta0, eta, data, xi, tols):
        one = functools.partial(_one_run, model, risk, epochs, backend, maxiter)
        return jax.vmap(one, in_axes=(0, 0, None, None, None))(theta0, eta, data, xi, tols)

    runs = P("runs")
    sharded = _shard_map(local, mesh, (runs, runs, P(), P(), P()), runs)
    return jax.jit(sharded, compiler_options=dict(options) or None)


def _one_deq_run(model, epochs, params0, eta, data, tols):
    """Summary of one run of :func:`sideq.general.descent` (Section 2, the
    gradient by Eq. (1)): its last row."""
    x, y, xi = data
    traj = deq_descent(model, params0, x=x, y=y, xi=xi, eta=eta, epochs=epochs, gtol=tols[0], ltol=tols[1])
    return dict(
        theta_final=jax.tree_util.tree_map(lambda a: a[-1], traj.params), loss_final=traj.loss[-1],
        grad_norm_final=traj.grad_norm[-1], residual_final=traj.residual[-1], status=traj.status,
        fail_step=traj.fail_step, steps=traj.steps,
    )


def _deq_chunk_fn(model, epochs, mesh):
    """The jitted chunk of a DEQ sweep: (params0 pytree of (C, ...), eta (C,),
    (x, y, xi), tols) -> per-run dict, the run axis sharded over the mesh."""
    options = compiler_options(mesh.devices.flat[0].platform)
    return _deq_chunk_fn_cached(model, epochs, mesh, tuple(sorted((options or {}).items())))


@functools.lru_cache(maxsize=32)
def _deq_chunk_fn_cached(model, epochs, mesh, options):
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    # Not shard_map, as for the scalar models: the Newton solver's step solves
    # with lineax's linear_solve, which refuses the varying-axis types inside
    # shard_map (lineax issue #185: "pytree does not match out_structure").
    # jit with the run axis sharded lets XLA split the runs over the devices
    # instead, for every solver: the same values to rounding, but the devices
    # iterate each solve in step (the solver loop's test is reduced over all
    # the devices' runs, one all-reduce per iteration).
    one = jax.vmap(functools.partial(_one_deq_run, model, epochs), in_axes=(0, 0, None, None))
    runs, replicated = NamedSharding(mesh, P("runs")), NamedSharding(mesh, P())
    return jax.jit(one, in_shardings=(runs, runs, replicated, replicated), out_shardings=runs,
                   compiler_options=dict(options) or None)


def _one_deq_population_run(model, epochs, params0, eta, xi, dist, tols):
    r"""Summary of one run of θ(t+1) = θ(t) − η∇R(θ(t)) on the population risk
    R(θ) = E‖y_θ(X) − f(X)‖² of :func:`sideq.general_risk.population_objective`
    (Section 2; Eq. (5) for multi_linear), run as :func:`sideq.general.descent`
    runs (a failure freezes the run; the status is the run's end).

    The risk is one number: a failed solve at one node makes it NaN, which
    cannot be told from an overflow.  A failure is SINGULAR where
    :meth:`~sideq.general.DEQ.proof` says so, else for a non-finite R or ∇R
    DIVERGED (multi_linear: the closed form solves nothing) or SOLVER_FAILURE
    (multi_index: a solve at a node failed), and DIVERGED for params past 1e8."""
    objective = deq_population_objective(model, xi, dist)
    value_and_grad = jax.value_and_grad(objective)
    opt = optax.sgd(eta)
    gtol, ltol = tols[0], tols[1]
    no_root = jnp.int32(Status.DIVERGED if model.kind == "multi_linear" else Status.SOLVER_FAILURE)
    ok = jnp.int32(Status.CONVERGED)

    def step(carry, t):
        params, opt_state, fail_code, fail_step, hit, _ = carry
        loss, grad = value_and_grad(params)
        gnorm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grad)))
        proof = model.proof(params)
        reached = ((gtol > 0) & (gnorm <= gtol)) | ((ltol > 0) & (loss <= ltol))
        hit = jnp.where((hit < 0) & (fail_step < 0) & reached, t, hit)
        code = jnp.where(proof == Status.SINGULAR, jnp.int32(Status.SINGULAR),
                         jnp.where(jnp.isfinite(loss) & jnp.isfinite(gnorm), ok, no_root))
        failed_now = (fail_step < 0) & (code != ok)
        fail_code = jnp.where(failed_now, code, fail_code)
        fail_step = jnp.where(failed_now, t, fail_step)
        last = t == epochs  # (the pass at t = T measures θ(T) and takes no step)
        updates, new_state = opt.update(grad, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        blown = ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(v) & (jnp.abs(v) <= _DEQ_DIVERGENCE))
                                    for v in jax.tree_util.tree_leaves(new_params)]))
        blown_now = (fail_step < 0) & blown & ~last
        fail_code = jnp.where(blown_now, jnp.int32(Status.DIVERGED), fail_code)
        fail_step = jnp.where(blown_now, t + 1, fail_step)
        frozen = (fail_step >= 0) | last
        keep = lambda old, new: jnp.where(frozen, old, new)  # noqa: E731
        new_params = jax.tree_util.tree_map(keep, params, new_params)
        new_state = jax.tree_util.tree_map(keep, opt_state, new_state)
        unproven = jnp.stack([proof == Status.NON_UNIQUE, proof == Status.UNVERIFIED])
        return (new_params, new_state, fail_code, fail_step, hit, unproven), (loss, gnorm)

    init = (params0, opt.init(params0), ok, jnp.int32(-1), jnp.int32(-1), jnp.zeros(2, bool))
    (params, _, fail_code, fail_step, hit, unproven), (loss, gnorm) = jax.lax.scan(
        step, init, jnp.arange(epochs + 1, dtype=jnp.int32))
    status = jnp.where(fail_step >= 0, fail_code,
                       jnp.where(unproven[0], jnp.int32(Status.NON_UNIQUE),
                                 jnp.where(unproven[1], jnp.int32(Status.UNVERIFIED),
                                           jnp.where(hit >= 0, ok, jnp.int32(Status.MAX_STEPS)))))
    return dict(theta_final=params, loss_final=loss[-1], grad_norm_final=gnorm[-1], status=status,
                fail_step=fail_step, steps=jnp.where(hit >= 0, hit, epochs).astype(jnp.int32))


def _deq_population_chunk_fn(model, epochs, mesh):
    """The jitted chunk of a DEQ sweep on the population risk: (params0, eta,
    xi, dist, tols) -> per-run dict, the run axis sharded over the mesh (as
    :func:`_deq_chunk_fn`)."""
    options = compiler_options(mesh.devices.flat[0].platform)
    return _deq_population_chunk_fn_cached(model, epochs, mesh, tuple(sorted((options or {}).items())))


@functools.lru_cache(maxsize=32)
def _deq_population_chunk_fn_cached(model, epochs, mesh, options):
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    one = jax.vmap(functools.partial(_one_deq_population_run, model, epochs), in_axes=(0, 0, None, None, None))
    runs, replicated = NamedSharding(mesh, P("runs")), NamedSharding(mesh, P())
    return jax.jit(one, in_shardings=(runs, runs, replicated, replicated, replicated), out_shardings=runs,
                   compiler_options=dict(options) or None)


# ----------------------------------------------------------------------------
# Settings, manifest and files.


def default_chunk(n_eq: int, n_devices: int = 1, platform: str = "cpu") -> int:
    """Runs per chunk: about 2¹⁶ equilibria per device on CPU, at least 8 and
    at most 4096 runs per device; on accelerators about 2²⁵, at most 32768 runs
    per device; times the number of devices.

    ``n_eq`` is the number of equilibria per risk evaluation (samples n, or
    quadrature nodes).  On CPU the time per run is flat from ~16 to ~256 runs
    per chunk (measured for the Section 4.2 problem, n = 1000); the chunk is
    also the unit of progress and of resume, so it is kept modest there.  On an
    H200, float32, the same problem ran at 4.3e10 sample-steps/s with 4096
    runs per chunk, 6.3e10 with 16384, 6.9e10 with 32768 and 65536
    (BENCHMARKS.md): each epoch has a fixed cost (kernel launches, the test
    of the solver's loop) that a larger chunk spreads.
    """
    if platform == "cpu":
        budget, most = 2**16, 4096
    else:
        budget, most = 2**25, 32768
    per_device = int(min(most, max(8, budget // max(int(n_eq), 1))))
    return per_device * int(n_devices)


def _sha(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(memoryview(a).cast("B"))  # no copy
    return h.hexdigest()[:16]


def _atomic_write(path, write):
    """``write(fh)`` to a temporary file beside ``path``, fsync, then os.replace."""
    d, name = os.path.split(path)
    tmp = os.path.join(d, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_json(path, obj):
    _atomic_write(path, lambda fh: fh.write((json.dumps(obj, indent=2) + "\n").encode()))


def _chunk_path(out_dir, i):
    return os.path.join(out_dir, "chunks", f"chunk_{i:06d}.npz")


def _read_chunk(path, fingerprint, fields=FIELDS, required=FIELDS):
    """``fields`` of a finished chunk file (all ``required`` present: True if
    ``fields`` is empty), or None if the file is absent, unreadable or not this
    sweep's."""
    try:
        with np.load(path) as f:
            if str(f["fingerprint"]) != fingerprint or not set(required) <= set(f.files):
                return None
            return {k: f[k] for k in fields} if fields else True
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def _remove_chunks(out_dir, n_chunks):
    for i in range(n_chunks):
        path = _chunk_path(out_dir, i)
        if os.path.exists(path):
            os.remove(path)
    try:
        os.rmdir(os.path.join(out_dir, "chunks"))
    except OSError:
        pass


def _zip_info(name):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: same bytes every time
    info.compress_type = zipfile.ZIP_STORED
    return info


def _write_results(path, n_runs, layout, n_chunks, chunk, read_chunk):
    """Stream the chunks into ``path`` (an .npz that np.load reads), one array and
    one chunk at a time: memory O(chunk), not O(K).  ``layout``: (name, shape of
    one run's value, dtype) of each field, in the file's order."""

    def write(fh):
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, shape, dtype in layout:
                with zf.open(_zip_info(name + ".npy"), "w", force_zip64=True) as f:
                    header = {"descr": np.lib.format.dtype_to_descr(dtype),
                              "fortran_order": False, "shape": (n_runs,) + tuple(shape)}
                    np.lib.format.write_array_header_1_0(f, header)
                    for i in range(n_chunks):
                        arr = read_chunk(i, name)
                        keep = min(chunk, n_runs - i * chunk)
                        f.write(np.ascontiguousarray(arr[:keep], dtype).tobytes())

    _atomic_write(path, write)


def _scalar_layout(p, dtype):
    return [(k, (p,) if k in ("theta0", "theta_final") else (),
             np.dtype(np.int32) if k in _INT_FIELDS else np.dtype(dtype)) for k in FIELDS]


def _deq_layout(names, shapes, dtype, fields=DEQ_FIELDS):
    """results.npz of a DEQ sweep: theta0/NAME..., eta, theta_final/NAME..., ``fields``."""
    theta = lambda prefix: [(_field(prefix, n), s, np.dtype(dtype)) for n, s in zip(names, shapes)]  # noqa: E731
    return (theta("theta0") + [("eta", (), np.dtype(dtype))] + theta("theta_final")
            + [(k, (), np.dtype(np.int32) if k in _INT_FIELDS else np.dtype(dtype)) for k in fields])


def _quantiles(values):
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {k: None for k in _QUANTILES}
    return {k: float(np.quantile(v, q)) for k, q in _QUANTILES.items()}


def _summarize(arrays, settings, wall_s, runs_computed, n_devices):
    status = np.asarray(arrays["status"])
    ok = ~np.isin(status, np.array(_FAILED, np.int32))
    counts = {s.name.lower(): int(np.sum(status == s)) for s in Status}
    summary = {
        "format": FORMAT,
        "runs": int(status.shape[0]),
        "K": settings["K"],
        "n_eta": settings["n_eta"],
        "status_counts": counts,
        "failed": int(np.sum(~ok)),
    }
    if "non_unique_epochs" in arrays:  # (the scalar models'; a DEQ's descent keeps no such history)
        nu_epochs = np.asarray(arrays["non_unique_epochs"])
        visited = nu_epochs > 0
        # The runs' history in the non-unique regime, apart from their final
        # statuses: how many runs passed through it, and how those ended.
        summary["non_unique_history"] = {
            "runs": int(np.sum(visited)),
            "final_status_counts": {s.name.lower(): int(np.sum(visited & (status == s))) for s in Status},
            "epochs": _quantiles(nu_epochs[visited]),
        }
    summary["loss_final"] = _quantiles(np.asarray(arrays["loss_final"])[ok])
    if "distance_final" in arrays:  # (the scalar models' distance to the target set)
        summary["distance_final"] = _quantiles(np.asarray(arrays["distance_final"])[ok])
    summary.update({
        "steps": _quantiles(np.asarray(arrays["steps"])[ok]),
        "wall_s": wall_s,
        "runs_computed": int(runs_computed),
        "runs_per_s": (runs_computed / wall_s) if wall_s > 0 and runs_computed else None,
        "devices": n_devices,
        "settings": settings,
    })
    return summary


class SweepResult(NamedTuple):
    """What :func:`run_sweep` returns.

    ``summary`` is the dict also written to ``summary.json``; ``arrays`` maps each
    name of :data:`FIELDS` (a DEQ sweep: ``theta0/NAME``, ``eta``,
    ``theta_final/NAME`` and :data:`DEQ_FIELDS`, see :func:`params_from_results`)
    to its per-run array (read lazily from ``results.npz`` when the sweep has
    an ``out_dir``).
    """

    summary: dict
    arrays: Mapping


class _LazyNpz(Mapping):
    """Read-only view of an .npz: each access loads one array."""

    def __init__(self, path):
        self.path = path
        with np.load(path) as f:
            self._keys = list(f.files)

    def __getitem__(self, key):
        with np.load(self.path) as f:
            return f[key]

    def __contains__(self, key):  # (without loading the array)
        return key in self._keys

    def __iter__(self):
        return iter(self._keys)

    def __len__(self):
        return len(self._keys)


def load_results(out_dir) -> dict:
    """The arrays of a finished sweep's ``out_dir/results.npz`` as a dict of numpy
    arrays (N runs): ``theta0`` (N, p), ``eta`` (N,), ``theta_final`` (N, p),
    ``loss_final``, ``grad_norm_final``, ``distance_final`` (N,), and int32
    ``status`` (:class:`~sideq.status.Status` codes of each run's end),
    ``fail_step`` (−1 if none), ``steps``, ``non_unique_epochs``,
    ``non_unique_first`` and ``non_unique_last`` (−1 if none) (N,).  ``summary.json`` beside it holds the summary and settings.

    A DEQ sweep's file holds ``theta0/NAME`` (N, ...) for each params leaf,
    ``eta``, ``theta_final/NAME``, then ``loss_final``, ``grad_norm_final``,
    ``residual_final`` (N,) and int32 ``status``, ``fail_step``, ``steps``
    (N,): :func:`params_from_results` gives the params back as a pytree."""
    path = os.path.join(os.fspath(out_dir), "results.npz")
    if not os.path.exists(path):
        hint = (" (the sweep has not finished; run it again with resume=True / --resume)"
                if os.path.exists(os.path.join(os.fspath(out_dir), "manifest.json")) else "")
        raise SideqInputError(f"out_dir: no results.npz in {os.fspath(out_dir)!r}{hint}")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# ----------------------------------------------------------------------------
# Progress.


class _Progress:
    """A sweep's progress after each chunk: to ``progress`` when it is a
    callable (a dict: done, total, runs_per_s, eta_s, elapsed_s), else as a
    tqdm bar on stderr when stderr is a terminal (:mod:`sideq.progress`),
    and nothing otherwise (a pipe or a log receives the results alone)."""

    def __init__(self, progress, total, already=0):
        self.fn = progress if callable(progress) else None
        self.total = total
        self.t0 = time.perf_counter()
        self.bar = None if self.fn is not None else make_bar(total, "sweep", "run", already, bool(progress))

    def __call__(self, done, computed, final=False):
        if self.fn is not None:
            elapsed = time.perf_counter() - self.t0
            rate = computed / elapsed if elapsed > 0 else 0.0
            left = self.total - done
            remaining = 0.0 if left <= 0 else (left / rate if rate > 0 else math.inf)
            self.fn(dict(done=done, total=self.total, runs_per_s=rate, eta_s=remaining, elapsed_s=elapsed))
        elif self.bar is not None:
            self.bar.update(done - self.bar.n)
            if final:
                self.bar.close()


# ----------------------------------------------------------------------------
# Checks.


def _check_problem(model, xi, x, y, dist, dtype):
    """(risk, data, xi, d, n_eq, description) for the jitted chunk, or a one-line error."""
    xi, d, xj, yj, dist = check_problem(model, xi, x, y, dist, dtype)
    if dist is not None:
        desc = {
            "risk": "population", "law": type(dist).__name__.lower(), "nodes": int(dist.nodes),
            "law_params": {f: np.asarray(getattr(dist, f)).tolist()
                           for f in (("low", "high") if isinstance(dist, Uniform) else ("mean", "cov"))},
        }
        return "population", dist, xi, d, n_nodes(dist, model), desc
    desc = {"risk": "empirical", "n": int(xj.shape[0]), "data_sha": _sha(np.asarray(xj), np.asarray(yj))}
    return "empirical", (xj, yj), xi, d, int(xj.shape[0]), desc


def _check_runs(inits, eta, pair_eta, p, dtype):
    inits = np.asarray(inits, dtype=np.float64)
    if inits.ndim == 1 and inits.shape[0] == p:
        inits = inits[None]
    if inits.ndim != 2 or inits.shape[1] != p or inits.shape[0] == 0:
        raise SideqInputError(
            f"inits: expected an array of shape (K, {p}) (one theta(0) per row), got {inits.shape}; "
            "see sideq.sweep.make_inits"
        )
    if not np.all(np.isfinite(inits)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(inits), axis=1))[0])
        raise SideqInputError(f"inits: row {bad} is not finite ({inits[bad].tolist()}); pass finite numbers")
    etas = _check_etas(eta, pair_eta, inits.shape[0])
    # Cast once to the run dtype, so the stored theta0/eta are what the runs saw.
    return inits.astype(dtype, copy=False), etas.astype(dtype, copy=False)


def _check_etas(eta, pair_eta, K):
    etas = np.atleast_1d(np.asarray(eta, dtype=np.float64))
    if etas.ndim != 1 or etas.size == 0:
        raise SideqInputError(f"eta: expected a number or a 1-D array of step sizes, got shape {np.shape(eta)}")
    if not (np.all(np.isfinite(etas)) and np.all(etas > 0)):
        raise SideqInputError(f"eta: step sizes must be positive numbers, got {etas[:8].tolist()}")
    if pair_eta and etas.size not in (1, K):
        raise SideqInputError(f"eta: pair_eta=True needs one step size per init ({K}), got {etas.size}")
    return etas


def _real(a, what):
    if isinstance(a, (dict, str)):
        raise SideqInputError(f"{what}: expected an array of numbers, got {type(a).__name__}")
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise SideqInputError(f"{what}: expected real numbers, got an array of {arr.dtype}")
    return arr.astype(np.float64)


def _check_deq_problem(model: DEQ, xi, x, y, dist, dtype):
    """(x (n, d), y (n, k) or None, xi (k, d) or None, d, description) of a DEQ
    sweep's empirical risk (x and y None for the population risk of ``dist``),
    or a one-line error naming the argument."""
    if (x is None) == (dist is None):
        raise SideqInputError(
            "x/dist: give exactly one: data x (n, d) (empirical risk) or a law dist (population risk)")
    if dist is not None:
        if model.kind == "general":
            raise SideqInputError(
                f"dist: {model.name} is a general DEQ with no target f; the population risk needs "
                "sideq.general.multi_linear(k) or multi_index(sigma, k) (or pass data x and targets y)")
        if not isinstance(dist, (Uniform, Gaussian)):
            raise SideqInputError(f"dist: expected sideq.uniform(...) or sideq.gaussian(...), got {type(dist).__name__}")
        if y is not None:
            raise SideqInputError("y: targets are only used with data x; the population risk uses f(x) from xi")
        d, k = dist.d, model.dim
        if xi is None:
            raise SideqInputError(f"xi: the population risk needs the target xi of shape ({k}, {d}) (k, d)")
        xi = _real(xi, "xi")
        if k == 1 and xi.shape == (d,):
            xi = xi[None]
        if xi.shape != (k, d):
            raise SideqInputError(f"xi: expected shape ({k}, {d}) (k, d) for {model.name} and a law in d = {d}, "
                                  f"got {xi.shape}")
        if not np.all(np.isfinite(xi)):
            raise SideqInputError("xi: contains NaN or inf; pass finite numbers")
        desc = {
            "risk": "population", "law": type(dist).__name__.lower(), "nodes": int(dist.nodes),
            "law_params": {f: np.asarray(getattr(dist, f)).tolist()
                           for f in (("low", "high") if isinstance(dist, Uniform) else ("mean", "cov"))},
            "route": deq_route_for(model, dist), "n_nodes": deq_n_nodes(model, dist),
        }
        return None, None, xi.astype(dtype), d, desc
        raise SideqInputError("x: a DEQ sweep needs data x of shape (n, d), with targets y (n, k) or xi (k, d)")
    x = _real(x, "x")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or 0 in x.shape:
        raise SideqInputError(f"x: expected a non-empty array of shape (n, d) (or (n,) for d = 1), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SideqInputError("x: contains NaN or inf; remove those samples")
    (n, d), k = x.shape, model.dim
    if (y is None) == (xi is None):
        raise SideqInputError(
            "y/xi: give exactly one: targets y of shape (n, k), or xi of shape (k, d) for f(x) = xi x "
            "(multi_linear) or sigma(xi x) (multi_index)")
    if xi is not None:
        if model.kind == "general":
            raise SideqInputError(f"xi: {model.name} is a general DEQ with no target f; pass targets y (n, k)")
        xi = _real(xi, "xi")
        if k == 1 and xi.shape == (d,):
            xi = xi[None]
        if xi.shape != (k, d):
            raise SideqInputError(f"xi: expected shape ({k}, {d}) (k, d) for {model.name}, got {xi.shape}")
        if not np.all(np.isfinite(xi)):
            raise SideqInputError("xi: contains NaN or inf; pass finite numbers")
        desc = {"risk": "empirical", "n": n, "data_sha": _sha(x.astype(dtype))}
        return x.astype(dtype), None, xi.astype(dtype), d, desc
    y = _real(y, "y")
    if k == 1 and y.shape == (n,):
        y = y[:, None]
    if y.shape != (n, k):
        raise SideqInputError(
            f"y: expected shape ({n}, {k}) to match x{' (or (n,) for k = 1)' if k == 1 else ''}, got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise SideqInputError("y: contains NaN or inf; remove those samples")
    desc = {"risk": "empirical", "n": n, "data_sha": _sha(x.astype(dtype), y.astype(dtype))}
    return x.astype(dtype), y.astype(dtype), None, d, desc


def _check_deq_inits(model: DEQ, inits, d, dtype):
    """(params0 pytree of (K, ...) ``dtype`` numpy arrays, leaf names, K), or a
    one-line error naming the key and the expected shape."""
    if model.kind != "general":
        _check_layout(model, inits, d, "inits")
    leaves, treedef = jax.tree_util.tree_flatten_with_path(inits)
    if not leaves:
        raise SideqInputError(
            "inits: expected the params of K runs, a pytree whose leaves have a leading K axis "
            f"(see sideq.sweep.make_inits(spec, K, around=params)), got {type(inits).__name__}")
    names = _leaf_names(inits)
    arrays, first = [], None
    for path, leaf in leaves:
        where = f"inits{jax.tree_util.keystr(path)}"
        arr = _real(leaf, where)
        if arr.ndim == 0:
            raise SideqInputError(f"{where}: a number, expected a leading K axis (one row per run)")
        if first is None:
            first = (where, arr.shape[0])
        elif arr.shape[0] != first[1]:
            raise SideqInputError(
                f"{where}: has {arr.shape[0]} runs on its leading axis but {first[0]} has {first[1]}; "
                "every leaf needs the same K")
        bad = ~np.all(np.isfinite(arr.reshape(arr.shape[0], -1)), axis=1)
        if np.any(bad):
            raise SideqInputError(f"{where}: run {int(np.flatnonzero(bad)[0])} is not finite; pass finite numbers")
        arrays.append(arr.astype(dtype))
    K = first[1]
    if K == 0:
        raise SideqInputError(f"inits: {first[0]} has no runs (K = 0); give at least one")
    params0 = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(inits), arrays)
    if model.kind == "general":  # (the built-in families' layout was checked above)
        k = model.dim
        one = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), params0)
        try:
            out = jax.eval_shape(model.g, one, jax.ShapeDtypeStruct((d,), dtype), jax.ShapeDtypeStruct((k,), dtype))
        except Exception as err:  # (the user's g: any error, reported in one line)
            text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SideqInputError(
                f"inits: g(params, x, y) failed for one run's params (each leaf without its leading K axis), "
                f"x of shape ({d},) and y of shape ({k},) ({type(err).__name__}: {text})") from None
        if getattr(out, "shape", None) != (k,):
            raise SideqInputError(
                f"inits: g(params, x, y) returned {getattr(out, 'shape', type(out).__name__)} for one run's "
                f"params; it must return shape ({k},) (dim = {k})")
    return params0, names, K


def _deq_settings(model: DEQ, d, names, shapes):
    """The model's part of a DEQ sweep's settings (JSON: compared on resume)."""
    def plain(v):
        return v if isinstance(v, (bool, int, float, str)) or v is None else repr(v)

    return {
        "model": model.name, "kind": model.kind, "dim": model.dim, "d": d, "solver": model.solver,
        "tol": model.tol, "maxiter": model.maxiter, "options": {k: plain(v) for k, v in model.options},
        "activation": None if model.activation is None else model.activation.name, "bias": model.bias,
        "params": {name: list(shape) for name, shape in zip(names, shapes)},
        "p": int(sum(math.prod(s) for s in shapes)),
    }


def initialize_distributed():
    """``jax.distributed.initialize`` once, before any other JAX call, from the
    environment: on SLURM, Open MPI or Cloud TPU JAX detects the cluster by
    itself; elsewhere set ``JAX_COORDINATOR_ADDRESS`` (host:port of process
    0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` on every process (JAX
    reads the first itself; the other two are passed on here).  A one-line
    :class:`~sideq.errors.SideqInputError` if the cluster is not described
    or JAX is already in use."""
    if jax.distributed.is_initialized():
        return
    kwargs = {}
    for var, key in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if os.environ.get(var):
            try:
                kwargs[key] = int(os.environ[var])
            except ValueError:
                raise SideqInputError(f"distributed: {var}={os.environ[var]!r} is not an integer") from None
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as err:
        if "only be called once" in str(err):
            return
        raise SideqInputError(
            "distributed: jax.distributed.initialize() must run before any other JAX call; "
            "call it at the top of the script (or pass distributed=True before making arrays)"
        ) from None
    except ValueError as err:
        raise SideqInputError(
            f"distributed: {err} (outside SLURM / Open MPI, set JAX_COORDINATOR_ADDRESS=host:port, "
            "JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process)"
        ) from None


def _from_process_0(values):
    """Process 0's ``values`` on every process (itself when there is one)."""
    values = np.asarray(values, np.int64)
    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.broadcast_one_to_all(values))


def _flag(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise SideqInputError(f"{name}: expected an integer, got {v!r}")
    return int(v)


# ----------------------------------------------------------------------------
# The sweep.


def run_sweep(
    model: Model | DEQ,
    *,
    xi=None,
    inits,
    eta=0.1,
    epochs: int = 100,
    x=None,
    y=None,
    dist=None,
    pair_eta: bool = False,
    chunk: int | None = None,
    out_dir=None,
    resume: bool = False,
    gtol: float = 0.0,
    ltol: float = 0.0,
    dtol: float = 0.0,
    backend: str | None = None,
    maxiter: int | None = None,
    progress: bool | Callable[[dict], None] = True,
    distributed: bool = False,
) -> SweepResult:
    r"""Gradient descent θ(t+1) = θ(t) − η∇R(θ(t)) (Section 2) from many θ(0).

    Args:
      model: ``sideq.linear()`` or ``sideq.single_index(...)`` (flat θ), or a
        :class:`sideq.general.DEQ` (``multi_linear``, ``multi_index``, ``deq``;
        params a pytree): each run is then :func:`sideq.general.descent` on
        the empirical risk R̂ (gradient by Eq. (1)), vmapped over the runs.
      xi: the target ξ, shape (d,); for a built-in DEQ Ξ of shape (k, d)
        (targets f(x) = Ξx or σ(Ξx); (d,) when k = 1), or None with targets ``y``.
      inits: θ(0) for each of K runs, shape (K, p) (see :func:`make_inits`);
        for a DEQ its params pytree with a leading K axis on every leaf
        (``{"W1": (K, k, d), "W2": (K, k, k)}``, ``make_inits(spec, K,
        model=deq, d=d)`` or ``make_inits(spec, K, around=params)``).
      eta: a step size, or E step sizes: the sweep is then the product
        inits × eta, N = K·E runs, run r = i·E + j having θ(0) = inits[i],
        η = eta[j]; with ``pair_eta=True``, eta has shape (K,) and run i uses
        eta[i] (N = K).
      epochs: steps T per run.
      x, y, dist: data (empirical risk; y defaults to f(x) = σ(ξᵀx)) or a law
        ``sideq.uniform``/``sideq.gaussian`` (population risk), as in
        :func:`sideq.train.descent`.  A DEQ takes data x (n, d) with targets y
        (n, k) or ``xi``, or for ``multi_linear`` / ``multi_index`` a law
        ``dist`` with ``xi``: the population risk of
        :func:`sideq.general_risk.population_objective` (its route by its
        rules: the closed form of Eq. (5) for multi_linear, a quadrature for
        d ≤ 3, else Monte Carlo; ``nodes=`` on the law sets the nodes).
      chunk: runs per jitted call (a multiple of the number of devices); default
        :func:`default_chunk`, or the manifest's when resuming.  For a DEQ the
        default also keeps a chunk's trajectories (general.descent returns
        every epoch's params) near 256 MB per device.
      out_dir: folder for ``manifest.json``, ``chunks/``, ``results.npz`` and
        ``summary.json``.  Without it everything stays in memory (fine for
        small K; for large K give a folder).
      resume: continue the sweep in ``out_dir`` (settings must match).  A
        general DEQ's g is recorded by its name only: resuming with another g
        of the same name is not detected.
      gtol, ltol, dtol: a run's ``steps`` is its first epoch with ‖∇R‖ ≤ gtol,
        R ≤ ltol or distance to the target ≤ dtol, else T, as in
        :func:`sideq.dynamics.gradient_descent`.  Its status is then CONVERGED
        (else MAX_STEPS), unless a failure, or NON_UNIQUE or UNVERIFIED at the
        final θ, takes priority (the status is the run's end): to
        ask whether a run met a tolerance, test ``steps < epochs`` (and, for
        one met only at θ(T), ``steps == epochs``, its final values).  A DEQ
        has gtol and ltol (no distance: dtol must be 0).
      backend, maxiter: the equilibrium solver, as in :func:`sideq.train.descent`
        (default ``"jaxopt"``, 100).  A DEQ carries its own solver and limit
        (:func:`sideq.general.deq`): leave them unset.
      progress: True for a progress line on stderr (runs done / N, runs per
        second, ETA), False for none, or a callable receiving a dict
        ``done, total, runs_per_s, eta_s, elapsed_s`` after each chunk.
      distributed: call :func:`initialize_distributed` first (several hosts;
        every host runs the same call).  It must precede every other JAX
        computation: a script that builds arrays before the sweep (as the CLI
        does when it samples data) calls :func:`initialize_distributed` itself,
        first thing.

    Returns a :class:`SweepResult` ``(summary, arrays)``.  Per run: ``theta0``,
    ``eta``, ``theta_final`` (p,), ``loss_final``, ``grad_norm_final``,
    ``distance_final``, ``status`` (a :class:`~sideq.status.Status` code),
    ``fail_step`` (first failing epoch, −1 if none), ``steps``, and the run's
    history in the non-unique regime: ``non_unique_epochs`` (how many epochs),
    ``non_unique_first`` and ``non_unique_last`` (−1 if none).  The summary
    counts runs per status by name, counts the runs that passed through the
    non-unique regime with their final statuses (``non_unique_history``), and gives quantiles (min, 5%, 50%, 95%, max) of
    ``loss_final``, ``distance_final`` and ``steps`` over the runs that did not
    fail (finite values only), with ``runs`` and ``K``, wall time, runs per
    second and the settings.  Precision follows ``jax_enable_x64`` (float64 on, float32 off).

    A DEQ sweep's runs carry ``theta0/NAME`` and ``theta_final/NAME`` for each
    params leaf (:func:`params_from_results` rebuilds the pytree), ``eta``,
    ``loss_final`` R̂(θ(T)), ``grad_norm_final``, ``residual_final`` (the
    worst ‖y − g(y)‖∞ over the samples at θ(T)), ``status``, ``fail_step`` and
    ``steps`` (:class:`sideq.general.DEQTrajectory`); on the population
    risk no ``residual_final`` (a failure there is SINGULAR by
    :meth:`~sideq.general.DEQ.proof`, else DIVERGED for multi_linear and
    SOLVER_FAILURE for multi_index where R or ∇R is not finite: the risk is
    one number, NaN wherever a solve failed).  Its summary has no
    ``distance_final`` and no ``non_unique_history``.
    """
    t_start = time.perf_counter()
    if distributed:
        initialize_distributed()
    is_deq = isinstance(model, DEQ)
    if is_deq:
        for name, value in (("backend", backend), ("maxiter", maxiter)):
            if value is not None:
                raise SideqInputError(
                    f"{name}: a DEQ carries its own solver and iteration limit (sideq.general.deq(..., "
                    f"solver=..., maxiter=...)); leave {name} unset, got {value!r}")
    else:
        backend = "jaxopt" if backend is None else backend
        maxiter = 100 if maxiter is None else maxiter
        if backend not in BACKENDS:
            raise SideqInputError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    epochs = _flag(epochs, "epochs")
    if epochs < 1:
        raise SideqInputError(f"epochs: must be an integer >= 1, got {epochs}")
    if not is_deq:
        maxiter = _flag(maxiter, "maxiter")
        if maxiter < 1:
            raise SideqInputError(f"maxiter: must be >= 1, got {maxiter}")
    tols = check_tolerances(gtol=gtol, ltol=ltol, dtol=dtol)
    if is_deq and tols[2] != 0:
        raise SideqInputError(
            f"dtol: a DEQ sweep measures no distance to a target set; use gtol or ltol, got dtol = {dtol!r}")
    if resume and out_dir is None:
        raise SideqInputError("resume: needs out_dir, the folder of the sweep to continue")

    dtype = jnp.result_type(float)
    if is_deq:
        xj, yj, xi_j, d, problem = _check_deq_problem(model, xi, x, y, dist, dtype)
        population = dist is not None
        inits, names, K = _check_deq_inits(model, inits, d, dtype)
        etas = _check_etas(eta, pair_eta, K).astype(dtype, copy=False)
        shapes = [a.shape[1:] for a in jax.tree_util.tree_leaves(inits)]
        layout = _deq_layout(names, shapes, dtype, _DEQ_POPULATION_FIELDS if population else DEQ_FIELDS)
        model_settings = _deq_settings(model, d, names, shapes)
        p = model_settings["p"]
        n_eq = (max(problem["n_nodes"], 1) if population else xj.shape[0]) * model.dim
        inits_sha = _sha(np.frombuffer(json.dumps(names).encode(), np.uint8), *jax.tree_util.tree_leaves(inits))
    else:
        if xi is None:
            raise SideqInputError(f"xi: the target xi of shape (d,) is required for {model.name}")
        risk, data, xi_j, d, n_eq, problem = _check_problem(model, xi, x, y, dist, dtype)
        population = risk == "population"
        p = model.n_params(d)
        inits, etas = _check_runs(inits, eta, pair_eta, p, dtype)
        K = inits.shape[0]
        layout = _scalar_layout(p, dtype)
        model_settings = {"model": model.name, "kind": model.kind, "bias": model.bias, "p": p}
        inits_sha = _sha(inits)
    fields = [name for name, _, _ in layout]
    E = etas.shape[0]
    paired = bool(pair_eta) or E == 1
    n_runs = K if paired else K * E

    devices = jax.devices()
    n_dev = len(devices)
    settings = {
        **model_settings,
        "xi": None if xi_j is None else np.asarray(xi_j, np.float64).tolist(), **problem,
        "epochs": epochs, "gtol": tols[0], "ltol": tols[1], "dtol": tols[2],
        **({} if is_deq else {"backend": backend, "maxiter": maxiter}), "dtype": np.dtype(dtype).name,
        "K": K, "n_eta": E, "eta_mode": "paired" if paired else "product",
        "eta": etas.tolist() if E <= 16 else None, "inits_sha": inits_sha, "eta_sha": _sha(etas),
        "runs": n_runs,
    }

    out_dir = None if out_dir is None else os.fspath(out_dir)
    manifest_path = None if out_dir is None else os.path.join(out_dir, "manifest.json")
    manifest = None
    if out_dir is not None and os.path.exists(manifest_path):
        if not resume:
            raise SideqInputError(
                f"out_dir: {out_dir!r} already holds a sweep (manifest.json); pass resume=True "
                "(--resume) to continue it, or choose a new or empty folder"
            )
        try:
            with open(manifest_path) as fh:
                manifest = json.load(fh)  # written atomically: whole or absent
        except (OSError, ValueError) as err:
            raise SideqInputError(f"resume: cannot read {manifest_path} ({err}); choose a new out_dir") from None
    elif out_dir is not None:
        stale = [f for f in ("results.npz", "summary.json") if os.path.exists(os.path.join(out_dir, f))]
        if stale:
            raise SideqInputError(
                f"out_dir: {out_dir!r} holds {' and '.join(stale)} but no manifest.json; "
                "choose a new or empty folder"
            )
    if manifest is not None:
        old = manifest.get("settings", {})
        diff = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
        if chunk is not None and int(chunk) != manifest.get("chunk"):
            diff.append("chunk")
        if manifest.get("format") != FORMAT or diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" if k != "chunk"
                              else f"chunk: {manifest.get('chunk')} -> {chunk}" for k in diff[:4])
            raise SideqInputError(
                f"resume: settings differ from {manifest_path} ({shown or 'format'}); rerun with the "
                "sweep's original settings, or choose a new out_dir"
            )
        chunk = int(manifest["chunk"])
        if manifest.get("devices", n_dev) != n_dev:
            warnings.warn(
                f"resume: the sweep in {out_dir!r} started on {manifest.get('devices')} device(s), "
                f"this run has {n_dev}: the results agree to rounding, not bit for bit, with an "
                "uninterrupted run", RuntimeWarning, stacklevel=2,
            )

    platform = devices[0].platform
    if chunk is None:
        # Balance the chunks so that the last one carries little padding.
        target = default_chunk(n_eq, n_dev, platform)
        if is_deq and not population:  # (each run's whole trajectory: T + 1 rows of p params and 3 numbers)
            target = min(target, max(1, 2**25 // ((epochs + 1) * (p + 3))) * n_dev)
        per_device = -(-n_runs // (-(-n_runs // target) * n_dev))
        chunk = per_device * n_dev
    chunk = _flag(chunk, "chunk")
    if chunk < 1 or chunk % n_dev:
        raise SideqInputError(
            f"chunk: must be a positive multiple of the number of devices ({n_dev}), got {chunk}"
        )
    writer = jax.process_index() == 0
    results_path = None if out_dir is None else os.path.join(out_dir, "results.npz")
    summary_path = None if out_dir is None else os.path.join(out_dir, "summary.json")
    finished = writer and summary_path is not None and resume and os.path.exists(summary_path)
    chunk, finished = (int(v) for v in _from_process_0([chunk, finished]))  # hosts agree
    n_chunks = -(-n_runs // chunk)
    fingerprint = _sha(np.frombuffer(json.dumps(settings, sort_keys=True).encode(), np.uint8),
                       np.array([chunk]))
    if finished:
        if not writer:
            return SweepResult({}, {})
        with open(summary_path) as fh:
            summary = json.load(fh)
        _remove_chunks(out_dir, n_chunks)  # in case it was killed while removing them
        return SweepResult(summary, _LazyNpz(results_path))
    if out_dir is not None and writer:
        os.makedirs(os.path.join(out_dir, "chunks"), exist_ok=True)
        if manifest is None:
            _write_json(manifest_path, {
                "format": FORMAT, "fingerprint": fingerprint, "chunk": chunk,
                "n_chunks": n_chunks, "devices": n_dev, "settings": settings,
            })

    # Which chunks are left (decided by process 0 and shared, so all hosts agree).
    done_mask = np.zeros(n_chunks, bool)
    if out_dir is not None and writer:
        if os.path.exists(results_path):
            done_mask[:] = True  # killed after results.npz, before summary.json
        else:
            for name in os.listdir(os.path.join(out_dir, "chunks")):
                if name.startswith("."):  # a temporary file of a killed write
                    os.remove(os.path.join(out_dir, "chunks", name))
            for i in range(n_chunks):
                done_mask[i] = _read_chunk(_chunk_path(out_dir, i), fingerprint, (), fields) is not None
    done_mask = _from_process_0(done_mask).astype(bool)

    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = Mesh(np.array(devices), ("runs",))
    run_sharding = NamedSharding(mesh, P("runs"))
    replicated = NamedSharding(mesh, P())

    def replicate(a):  # a global array on every device (also across hosts)
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, replicated, lambda idx: a[idx])

    if is_deq and population:
        fn = _deq_population_chunk_fn(model, epochs, mesh)
        xi_j, dist_j, tols_j = jax.tree_util.tree_map(replicate, (xi_j, dist, np.asarray(tols[:2], dtype)))
        call = lambda theta0, eta_c: fn(theta0, eta_c, xi_j, dist_j, tols_j)  # noqa: E731
    elif is_deq:
        fn = _deq_chunk_fn(model, epochs, mesh)
        data, tols_j = jax.tree_util.tree_map(replicate, ((xj, yj, xi_j), np.asarray(tols[:2], dtype)))
        call = lambda theta0, eta_c: fn(theta0, eta_c, data, tols_j)  # noqa: E731
    else:
        fn = _chunk_fn(model, risk, epochs, backend, maxiter, mesh)
        data, xi_j, tols_j = jax.tree_util.tree_map(replicate, (data, xi_j, np.asarray(tols, dtype)))
        call = lambda theta0, eta_c: fn(theta0, eta_c, data, xi_j, tols_j)  # noqa: E731

    def chunk_inputs(i):
        r = np.arange(i * chunk, (i + 1) * chunk)
        r = np.minimum(r, n_runs - 1)  # pad with the last run: valid values, dropped later
        init_idx, eta_idx = (r, r if E > 1 else np.zeros_like(r)) if paired else (r // E, r % E)
        return jax.tree_util.tree_map(lambda a: a[init_idx], inits), etas[eta_idx]

    def to_global(a):
        return jax.make_array_from_callback(a.shape, run_sharding, lambda idx: a[idx])

    def compute(i):
        theta0, eta_c = chunk_inputs(i)
        out = call(jax.tree_util.tree_map(to_global, theta0), to_global(eta_c))
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            out = multihost_utils.process_allgather(out, tiled=True)
        out = jax.tree_util.tree_map(np.asarray, out)
        if is_deq:  # the params leaves under their names
            final = jax.tree_util.tree_leaves(out.pop("theta_final"))
            out.update({_field("theta_final", n): a for n, a in zip(names, final)})
            out.update({_field("theta0", n): a for n, a in zip(names, jax.tree_util.tree_leaves(theta0))})
            out["eta"] = eta_c
        else:
            out["theta0"], out["eta"] = theta0, eta_c
        return out

    sizes = np.minimum(chunk, n_runs - chunk * np.arange(n_chunks))
    already = int(np.sum(sizes[done_mask]))
    prog = _Progress(progress if writer else False, n_runs, already)
    memory = {}
    computed = 0
    for i in range(n_chunks):
        if done_mask[i]:
            continue
        out = compute(i)
        computed += min(chunk, n_runs - i * chunk)
        if out_dir is None:
            memory[i] = out
        elif writer:
            def write(fh, out=out):
                np.savez(fh, fingerprint=np.array(fingerprint), **{k: out[k] for k in fields})

            _atomic_write(_chunk_path(out_dir, i), write)
        prog(already + computed, computed)
    wall = time.perf_counter() - t_start

    if out_dir is None:
        arrays = {k: np.concatenate([memory[i][k] for i in range(n_chunks)])[:n_runs] for k in fields}
        summary = _summarize(arrays, settings, wall, computed, int(mesh.devices.size))
        prog(n_runs, computed, final=True)
        return SweepResult(summary, arrays)
    if not writer:
        return SweepResult({}, {})

    if not os.path.exists(results_path):
        def read(i, name):
            arrays = _read_chunk(_chunk_path(out_dir, i), fingerprint, (name,), fields)
            if arrays is None:
                raise RuntimeError(f"sweep: chunk file {_chunk_path(out_dir, i)} vanished; rerun with resume=True")
            return arrays[name]

        _write_results(results_path, n_runs, layout, n_chunks, chunk, read)
    wall = time.perf_counter() - t_start
    lazy = _LazyNpz(results_path)
    # (the devices the runs were sharded over: the mesh's, not merely those available)
    summary = _summarize(lazy, settings, wall, computed, int(mesh.devices.size))  # loads one array at a time
    summary["chunk"], summary["n_chunks"] = chunk, n_chunks
    _write_json(summary_path, summary)
    _remove_chunks(out_dir, n_chunks)
    prog(n_runs, computed, final=True)
    return SweepResult(summary, lazy)
