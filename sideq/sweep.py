r"""Sweeps of gradient descent over many initializations θ(0) (and step sizes η).

:func:`run_sweep` checks a sweep's arguments, plans its chunks and runs them;
the pieces live beside it: the initializations in :mod:`sideq.sweep_inits`,
the compiled chunk in :mod:`sideq.sweep_chunks`, the files and the summary in
:mod:`sideq.sweep_store` (all re-exported here).  These are the only modules
that know about chunks, devices, progress and files on disk.  One run is :func:`sideq.dynamics.gradient_descent` with ``history=False``
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
  while every device holds at least two runs of a chunk).  On a multi-core
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
import json
import math
import os
import time
from collections.abc import Mapping
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from sideq import sweep_chunks, sweep_store
from sideq.data import check_law, describe
from sideq.errors import SideqInputError
from sideq.general import DEQ
from sideq.general_risk import n_nodes as deq_n_nodes
from sideq.general_risk import route_for as deq_route_for
from sideq.model import Model
from sideq.progress import make as make_bar
from sideq.risk import n_nodes
from sideq.scalar import BACKENDS
from sideq.sweep_chunks import default_chunk
from sideq.sweep_inits import check_layout, make_inits, normal_spec
from sideq.sweep_store import (
    DEQ_FIELDS,
    DEQ_POPULATION_FIELDS,
    FIELDS,
    LazyNpz,
    deq_layout,
    digest,
    field_name,
    leaf_names,
    load_results,
    params_from_results,
    scalar_layout,
    summarize,
)
from sideq.train import check_problem, check_tolerances

__all__ = [
    "make_inits",
    "run_sweep",
    "load_results",
    "params_from_results",
    "SweepResult",
    "default_chunk",
    "initialize_distributed",
    "FIELDS",
    "DEQ_FIELDS",
    "normal_spec",
]

# The summary, under the name tests/test_sweep.py and tests/test_bench.py use.
_summarize = summarize
# Every JSON file of a sweep (the manifest, the summary) is written through
# this module global: tests/test_sweep.py replaces it to kill a sweep between
# its results.npz and its summary.json.
_write_json = sweep_store.write_json


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


def _law_description(dist):
    """The population risk's law in a sweep's settings (JSON, every number)."""
    return {"risk": "population", **describe(dist)}


def _check_problem(model, xi, x, y, dist, dtype):
    """(risk, data, xi, d, n_eq, description) for the jitted chunk, or a one-line error."""
    xi, d, xj, yj, dist = check_problem(model, xi, x, y, dist, dtype)
    if dist is not None:
        return "population", dist, xi, d, n_nodes(dist, model), _law_description(dist)
    desc = {"risk": "empirical", "n": int(xj.shape[0]), "data_sha": digest(np.asarray(xj), np.asarray(yj))}
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
            "x/dist: give exactly one: data x (n, d) (empirical risk) or a law dist (population risk)"
        )
    if dist is not None:
        if model.kind == "general":
            raise SideqInputError(
                f"dist: {model.name} is a general DEQ with no target f; the population risk needs "
                "sideq.general.multi_linear(k) or multi_index(sigma, k) (or pass data x and targets y)"
            )
        check_law(dist)
        if y is not None:
            raise SideqInputError("y: targets are only used with data x; the population risk uses f(x) from xi")
        d, k = dist.d, model.dim
        if xi is None:
            raise SideqInputError(f"xi: the population risk needs the target xi of shape ({k}, {d}) (k, d)")
        xi = _real(xi, "xi")
        if k == 1 and xi.shape == (d,):
            xi = xi[None]
        if xi.shape != (k, d):
            raise SideqInputError(
                f"xi: expected shape ({k}, {d}) (k, d) for {model.name} and a law in d = {d}, got {xi.shape}"
            )
        if not np.all(np.isfinite(xi)):
            raise SideqInputError("xi: contains NaN or inf; pass finite numbers")
        desc = {**_law_description(dist), "route": deq_route_for(model, dist), "n_nodes": deq_n_nodes(model, dist)}
        return None, None, xi.astype(dtype), d, desc
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
            "(multi_linear) or sigma(xi x) (multi_index)"
        )
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
        desc = {"risk": "empirical", "n": n, "data_sha": digest(x.astype(dtype))}
        return x.astype(dtype), None, xi.astype(dtype), d, desc
    y = _real(y, "y")
    if k == 1 and y.shape == (n,):
        y = y[:, None]
    if y.shape != (n, k):
        raise SideqInputError(
            f"y: expected shape ({n}, {k}) to match x{' (or (n,) for k = 1)' if k == 1 else ''}, got {y.shape}"
        )
    if not np.all(np.isfinite(y)):
        raise SideqInputError("y: contains NaN or inf; remove those samples")
    desc = {"risk": "empirical", "n": n, "data_sha": digest(x.astype(dtype), y.astype(dtype))}
    return x.astype(dtype), y.astype(dtype), None, d, desc


def _check_deq_inits(model: DEQ, inits, d, dtype):
    """(params0 pytree of (K, ...) ``dtype`` numpy arrays, leaf names, K), or a
    one-line error naming the key and the expected shape."""
    if model.kind != "general":
        check_layout(model, inits, d, "inits")
    leaves, treedef = jax.tree_util.tree_flatten_with_path(inits)
    if not leaves:
        raise SideqInputError(
            "inits: expected the params of K runs, a pytree whose leaves have a leading K axis "
            f"(see sideq.sweep.make_inits(spec, K, around=params)), got {type(inits).__name__}"
        )
    names = leaf_names(inits)
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
                "every leaf needs the same K"
            )
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
                f"x of shape ({d},) and y of shape ({k},) ({type(err).__name__}: {text})"
            ) from None
        if getattr(out, "shape", None) != (k,):
            raise SideqInputError(
                f"inits: g(params, x, y) returned {getattr(out, 'shape', type(out).__name__)} for one run's "
                f"params; it must return shape ({k},) (dim = {k})"
            )
    return params0, names, K


def _deq_settings(model: DEQ, d, names, shapes):
    """The model's part of a DEQ sweep's settings (JSON: compared on resume)."""

    def plain(v):
        return v if isinstance(v, (bool, int, float, str)) or v is None else repr(v)

    return {
        "model": model.name,
        "kind": model.kind,
        "dim": model.dim,
        "d": d,
        "solver": model.solver,
        "tol": model.tol,
        "maxiter": model.maxiter,
        "options": {k: plain(v) for k, v in model.options},
        "activation": None if model.activation is None else model.activation.name,
        "bias": model.bias,
        "params": {name: list(shape) for name, shape in zip(names, shapes)},
        "p": int(sum(math.prod(s) for s in shapes)),
    }


# ----------------------------------------------------------------------------
# Several hosts.


def initialize_distributed():
    """``jax.distributed.initialize`` once, before any other JAX call, from the
    environment: on SLURM, Open MPI or Cloud TPU JAX detects the cluster by
    itself; elsewhere set ``JAX_COORDINATOR_ADDRESS`` (host:port of process
    0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` on every process (JAX
    reads the first itself; the other two are passed on here).  Does
    nothing when JAX's distributed runtime is already initialized.

    Raises:
      SideqInputError: ``JAX_NUM_PROCESSES`` or ``JAX_PROCESS_ID`` is not an
        integer, the cluster is not described, or JAX is already in use.
    """
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
    return np.asarray(multihost_utils.broadcast_one_to_all(values))


def _flag(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise SideqInputError(f"{name}: expected an integer, got {v!r}")
    return int(v)


def _check_options(is_deq, epochs, backend, maxiter, gtol, ltol, dtol, resume, out_dir):
    """(epochs, backend, maxiter, tols) of :func:`run_sweep`, checked (a DEQ
    carries its own solver: backend and maxiter stay None), or a one-line error."""
    if is_deq:
        for name, value in (("backend", backend), ("maxiter", maxiter)):
            if value is not None:
                raise SideqInputError(
                    f"{name}: a DEQ carries its own solver and iteration limit (sideq.general.deq(..., "
                    f"solver=..., maxiter=...)); leave {name} unset, got {value!r}"
                )
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
            f"dtol: a DEQ sweep measures no distance to a target set; use gtol or ltol, got dtol = {dtol!r}"
        )
    if resume and out_dir is None:
        raise SideqInputError("resume: needs out_dir, the folder of the sweep to continue")
    return epochs, backend, maxiter, tols


# ----------------------------------------------------------------------------
# The plan: what a sweep runs, and in which chunks.


class _Plan(NamedTuple):
    """A checked sweep: its K initializations and E step sizes, the fields of
    its results, its settings and how to call a chunk."""

    inits: object  # (K, p) θ(0), or a DEQ's params pytree of (K, ...) arrays
    etas: np.ndarray  # (E,) step sizes, in the run dtype
    K: int
    names: list | None  # a DEQ's params leaves (results.npz's theta0/NAME), None for flat θ
    layout: list  # results.npz: (name, shape of one run's value, dtype) of each field
    model_settings: dict  # the model's part of the settings
    problem: dict  # the risk's part (data digest, or the law)
    xi: object  # ξ as the runs see it (None: a DEQ given targets y)
    p: int  # parameters per run
    n_eq: int  # equilibria per risk evaluation (for default_chunk)
    inits_sha: str
    population: bool
    call: Callable  # call(mesh) -> chunk(theta0, eta) -> per-run dict (sweep_chunks)


def _plan_scalar(model, xi, x, y, dist, inits, eta, pair_eta, epochs, backend, maxiter, tols, dtype) -> _Plan:
    """The plan of a sweep of a scalar model (flat θ), or a one-line error."""
    if xi is None:
        raise SideqInputError(f"xi: the target xi of shape (d,) is required for {model.name}")
    risk, data, xi_j, d, n_eq, problem = _check_problem(model, xi, x, y, dist, dtype)
    p = model.n_params(d)
    inits, etas = _check_runs(inits, eta, pair_eta, p, dtype)
    model_settings = {"model": model.name, "kind": model.kind, "bias": model.bias, "p": p}
    call = functools.partial(sweep_chunks.scalar_call, model, risk, epochs, backend, maxiter, data, xi_j, tols, dtype)
    return _Plan(
        inits,
        etas,
        inits.shape[0],
        None,
        scalar_layout(p, dtype),
        model_settings,
        problem,
        xi_j,
        p,
        n_eq,
        digest(inits),
        risk == "population",
        call,
    )


def _plan_deq(model, xi, x, y, dist, inits, eta, pair_eta, epochs, tols, dtype) -> _Plan:
    """The plan of a DEQ sweep (params pytrees), or a one-line error."""
    xj, yj, xi_j, d, problem = _check_deq_problem(model, xi, x, y, dist, dtype)
    population = dist is not None
    inits, names, K = _check_deq_inits(model, inits, d, dtype)
    etas = _check_etas(eta, pair_eta, K).astype(dtype, copy=False)
    shapes = [a.shape[1:] for a in jax.tree_util.tree_leaves(inits)]
    layout = deq_layout(names, shapes, dtype, DEQ_POPULATION_FIELDS if population else DEQ_FIELDS)
    model_settings = _deq_settings(model, d, names, shapes)
    n_eq = (max(problem["n_nodes"], 1) if population else xj.shape[0]) * model.dim
    inits_sha = digest(np.frombuffer(json.dumps(names).encode(), np.uint8), *jax.tree_util.tree_leaves(inits))
    if population:
        call = functools.partial(sweep_chunks.deq_population_call, model, epochs, xi_j, dist, tols, dtype)
    else:
        call = functools.partial(sweep_chunks.deq_call, model, epochs, xj, yj, xi_j, tols, dtype)
    return _Plan(
        inits,
        etas,
        K,
        names,
        layout,
        model_settings,
        problem,
        xi_j,
        model_settings["p"],
        n_eq,
        inits_sha,
        population,
        call,
    )


def _settings(plan: _Plan, epochs, tols, solver, dtype, paired, n_runs) -> dict:
    """A sweep's settings (JSON): in its manifest (compared on resume), its
    fingerprint and its summary.  ``solver``: (backend, maxiter) of a scalar
    model, None for a DEQ."""
    E = plan.etas.shape[0]
    return {
        **plan.model_settings,
        "xi": None if plan.xi is None else np.asarray(plan.xi, np.float64).tolist(),
        **plan.problem,
        "epochs": epochs,
        "gtol": tols[0],
        "ltol": tols[1],
        "dtol": tols[2],
        **({} if solver is None else {"backend": solver[0], "maxiter": solver[1]}),
        "dtype": np.dtype(dtype).name,
        "K": plan.K,
        "n_eta": E,
        "eta_mode": "paired" if paired else "product",
        "eta": plan.etas.tolist() if E <= 16 else None,
        "inits_sha": plan.inits_sha,
        "eta_sha": digest(plan.etas),
        "runs": n_runs,
    }


def _chunk_size(chunk, plan: _Plan, n_runs, epochs, n_dev, platform, is_deq) -> int:
    """``chunk`` checked (a positive multiple of the number of devices), or
    by default :func:`default_chunk`'s, balanced so that the last chunk
    carries little padding."""
    if chunk is None:
        target = default_chunk(plan.n_eq, n_dev, platform)
        if is_deq and not plan.population:  # (each run's whole trajectory: T + 1 rows of p params and 3 numbers)
            target = min(target, max(1, 2**25 // ((epochs + 1) * (plan.p + 3))) * n_dev)
        per_device = -(-n_runs // (-(-n_runs // target) * n_dev))
        chunk = per_device * n_dev
    chunk = _flag(chunk, "chunk")
    if chunk < 1 or chunk % n_dev:
        raise SideqInputError(f"chunk: must be a positive multiple of the number of devices ({n_dev}), got {chunk}")
    return chunk


class _Chunks(NamedTuple):
    """The N runs of a sweep in chunks of ``chunk`` runs: run r = i·E + j has
    θ(0) = inits[i] and η = etas[j] (the product), or run i inits[i] and
    etas[i] (paired; one η for all when E = 1)."""

    inits: object
    etas: np.ndarray
    n_runs: int
    paired: bool
    chunk: int

    @property
    def count(self) -> int:
        return -(-self.n_runs // self.chunk)

    def size(self, i) -> int:
        """Runs in chunk ``i`` (the last may be short)."""
        return min(self.chunk, self.n_runs - i * self.chunk)

    def inputs(self, i):
        """(θ(0), η) of chunk ``i``'s runs, padded with the last run (valid
        values, dropped later) to ``chunk`` rows."""
        r = np.arange(i * self.chunk, (i + 1) * self.chunk)
        r = np.minimum(r, self.n_runs - 1)  # pad with the last run: valid values, dropped later
        E = self.etas.shape[0]
        init_idx, eta_idx = (r, r if E > 1 else np.zeros_like(r)) if self.paired else (r // E, r % E)
        return jax.tree_util.tree_map(lambda a: a[init_idx], self.inits), self.etas[eta_idx]


def _compute(chunks: _Chunks, i, call, mesh, names):
    """The per-run arrays of chunk ``i`` (numpy, every field of results.npz;
    a DEQ's params leaves under their names)."""
    theta0, eta_c = chunks.inputs(i)
    out = sweep_chunks.run_chunk(call, mesh, theta0, eta_c)
    if names is not None:  # the params leaves under their names
        final = jax.tree_util.tree_leaves(out.pop("theta_final"))
        out.update({field_name("theta_final", n): a for n, a in zip(names, final)})
        out.update({field_name("theta0", n): a for n, a in zip(names, jax.tree_util.tree_leaves(theta0))})
        out["eta"] = eta_c
    else:
        out["theta0"], out["eta"] = theta0, eta_c
    return out


def _run_chunks(chunks: _Chunks, done_mask, call, mesh, names, fields, out_dir, writer, fingerprint, prog, already):
    """Compute the chunks not done yet, one after the other: each kept in
    memory (no ``out_dir``) or written to its file (by process 0), and the
    progress after each.  Returns (the chunks kept in memory, runs computed)."""
    memory = {}
    computed = 0
    for i in range(chunks.count):
        if done_mask[i]:
            continue
        out = _compute(chunks, i, call, mesh, names)
        computed += chunks.size(i)
        if out_dir is None:
            memory[i] = out
        elif writer:
            sweep_store.write_chunk(out_dir, i, fingerprint, {k: out[k] for k in fields})
        prog(already + computed, computed)
    return memory, computed


def _finish_on_disk(out_dir, layout, chunks: _Chunks, fingerprint, settings, t_start, computed, n_devices):
    """results.npz from the chunk files, then summary.json, then the chunk
    files removed: ``(summary, arrays)``, the arrays read lazily from
    results.npz."""
    sweep_store.gather_chunks(out_dir, chunks.n_runs, layout, chunks.count, chunks.chunk, fingerprint)
    wall = time.perf_counter() - t_start
    lazy = LazyNpz(os.path.join(out_dir, "results.npz"))
    summary = summarize(lazy, settings, wall, computed, n_devices)  # loads one array at a time
    summary["chunk"], summary["n_chunks"] = chunks.chunk, chunks.count
    _write_json(os.path.join(out_dir, "summary.json"), summary)
    sweep_store.remove_chunks(out_dir, chunks.count)
    return summary, lazy


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
        eta[i] (N = K).  Positive and finite.
      pair_eta: pair ``eta`` with the inits (above) instead of the product.
      epochs: steps T per run, an integer ≥ 1.
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

    Returns:
      A :class:`SweepResult` ``(summary, arrays)`` (on a host other than
      process 0 of a distributed sweep, empty dicts).  Per run: ``theta0``,
      ``eta``, ``theta_final`` (p,), ``loss_final``, ``grad_norm_final``,
      ``distance_final``, ``status`` (a :class:`~sideq.status.Status` code),
      ``fail_step`` (first failing epoch, −1 if none), ``steps``, and the
      run's history in the non-unique regime: ``non_unique_epochs`` (how many
      epochs), ``non_unique_first`` and ``non_unique_last`` (−1 if none).  The
      summary counts runs per status by name, counts the runs that passed
      through the non-unique regime with their final statuses
      (``non_unique_history``), and gives quantiles (min, 5%, 50%, 95%, max)
      of ``loss_final``, ``distance_final`` and ``steps`` over the runs that
      did not fail (finite values only), with ``runs`` and ``K``, wall time,
      runs per second and the settings.  Precision follows
      ``jax_enable_x64`` (float64 on, float32 off).

    Raises:
      SideqInputError: a bad argument, named in one line: ``epochs``,
        ``backend``, ``maxiter`` (or either set for a DEQ), a tolerance < 0
        (``dtol`` ≠ 0 for a DEQ), ``resume`` without ``out_dir``, the problem
        (``xi``, ``x``, ``y``, ``dist``), ``inits``, ``eta``, ``chunk`` (not
        a positive multiple of the number of devices), an ``out_dir`` that
        holds a sweep without ``resume`` (or results without a manifest), a
        resumed sweep whose settings differ, or a distributed start that
        fails (:func:`initialize_distributed`).

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
    epochs, backend, maxiter, tols = _check_options(is_deq, epochs, backend, maxiter, gtol, ltol, dtol, resume, out_dir)
    dtype = jnp.result_type(float)
    if is_deq:
        plan = _plan_deq(model, xi, x, y, dist, inits, eta, pair_eta, epochs, tols, dtype)
    else:
        plan = _plan_scalar(model, xi, x, y, dist, inits, eta, pair_eta, epochs, backend, maxiter, tols, dtype)
    fields = [name for name, _, _ in plan.layout]
    paired = bool(pair_eta) or plan.etas.shape[0] == 1
    n_runs = plan.K if paired else plan.K * plan.etas.shape[0]
    devices = jax.devices()
    n_dev = len(devices)
    settings = _settings(plan, epochs, tols, None if is_deq else (backend, maxiter), dtype, paired, n_runs)

    out_dir = None if out_dir is None else os.fspath(out_dir)
    manifest = None
    if out_dir is not None:
        manifest, chunk = sweep_store.read_manifest(out_dir, resume, settings, chunk, n_dev)
    chunk = _chunk_size(chunk, plan, n_runs, epochs, n_dev, devices[0].platform, is_deq)
    writer = jax.process_index() == 0
    summary_path = None if out_dir is None else os.path.join(out_dir, "summary.json")
    finished = writer and summary_path is not None and resume and os.path.exists(summary_path)
    chunk, finished = (int(v) for v in _from_process_0([chunk, finished]))  # hosts agree
    chunks = _Chunks(plan.inits, plan.etas, n_runs, paired, chunk)
    fingerprint = digest(np.frombuffer(json.dumps(settings, sort_keys=True).encode(), np.uint8), np.array([chunk]))
    if finished:
        if not writer:
            return SweepResult({}, {})
        with open(summary_path) as fh:
            summary = json.load(fh)
        sweep_store.remove_chunks(out_dir, chunks.count)  # in case it was killed while removing them
        return SweepResult(summary, LazyNpz(os.path.join(out_dir, "results.npz")))
    if out_dir is not None and writer:
        os.makedirs(os.path.join(out_dir, "chunks"), exist_ok=True)
        if manifest is None:
            _write_json(
                os.path.join(out_dir, "manifest.json"),
                {
                    "format": sweep_store.FORMAT,
                    "fingerprint": fingerprint,
                    "chunk": chunk,
                    "n_chunks": chunks.count,
                    "devices": n_dev,
                    "settings": settings,
                },
            )
    # Which chunks are left (decided by process 0 and shared, so all hosts agree).
    done_mask = np.zeros(chunks.count, bool)
    if out_dir is not None and writer:
        done_mask = sweep_store.finished_chunks(out_dir, chunks.count, fingerprint, fields)
    done_mask = _from_process_0(done_mask).astype(bool)

    mesh = Mesh(np.array(devices), ("runs",))
    call = plan.call(mesh)
    already = sum(chunks.size(i) for i in range(chunks.count) if done_mask[i])
    prog = _Progress(progress if writer else False, n_runs, already)
    memory, computed = _run_chunks(
        chunks, done_mask, call, mesh, plan.names, fields, out_dir, writer, fingerprint, prog, already
    )
    # (the devices the runs were sharded over: the mesh's, not merely those available)
    n_devices = int(mesh.devices.size)
    if out_dir is None:
        wall = time.perf_counter() - t_start
        arrays = {k: np.concatenate([memory[i][k] for i in range(chunks.count)])[:n_runs] for k in fields}
        summary = summarize(arrays, settings, wall, computed, n_devices)
        prog(n_runs, computed, final=True)
        return SweepResult(summary, arrays)
    if not writer:
        return SweepResult({}, {})
    summary, lazy = _finish_on_disk(out_dir, plan.layout, chunks, fingerprint, settings, t_start, computed, n_devices)
    prog(n_runs, computed, final=True)
    return SweepResult(summary, lazy)
