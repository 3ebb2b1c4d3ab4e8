r"""Sweeps of gradient descent over many initializations θ(0) (and step sizes η).

This is the only module that knows about chunks, devices, progress and files on
disk.  One run is :func:`sideq.dynamics.gradient_descent` with ``history=False``
(θ(t+1) = θ(t) − η∇R(θ(t)), Section 2); a sweep is that run ``jax.vmap``-ed over
the runs of a *chunk*, ``jax.jit``-ed once, and called chunk after chunk on
arrays of the same shape (the last chunk is padded and the padding dropped), so
memory does not grow with the number of runs K and nothing recompiles.

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
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
import time
import warnings
import zipfile
from collections.abc import Mapping
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sideq.data import Uniform
from sideq.dynamics import gradient_descent
from sideq.errors import SideqInputError
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
    "make_inits", "run_sweep", "load_results", "SweepResult", "default_chunk", "initialize_distributed",
    "FIELDS",
]

FORMAT = "sideq-sweep-2"  # (2: the non-unique history fields; a run's status is its end)

# Per-run arrays of results.npz, in this order; (N,) or (N, p) with N runs.
FIELDS = (
    "theta0", "eta", "theta_final", "loss_final", "grad_norm_final", "distance_final",
    "status", "fail_step", "steps", "non_unique_epochs", "non_unique_first", "non_unique_last",
)
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


def make_inits(spec: str, K: int, p: int, seed: int = 0, *, flag: str = "--init-dist") -> np.ndarray:
    r"""K initializations θ(0) ∈ ℝᵖ as a float64 numpy array of shape (K, p).

    ``spec`` (the CLI's ``--init-dist``) is one of

    * ``normal:MEAN,STD`` — θ(0) ~ N(MEAN, STD² I); MEAN a number or p numbers
      joined by '/' (``normal:0/1,0.1`` is N((0, 1), 0.1² I), Figure 3);
    * ``ball:CENTER,RADIUS`` — uniform in the Euclidean ball
      {θ : ‖θ − CENTER‖ ≤ RADIUS}: θ = CENTER + RADIUS·U^{1/p}·Z/‖Z‖ with
      Z ~ N(0, I), U ~ Unif[0, 1];
    * ``grid:LO1/HI1,LO2/HI2`` (p = 2) — the √K × √K grid of
      ``linspace(LO1, HI1, √K) × linspace(LO2, HI2, √K)``, θ1 slowest
      (row i·√K + j is (θ1ᵢ, θ2ⱼ)); K must be a perfect square.

    ``flag`` names the option in error messages (``sideq descent --init`` parses
    ``normal:`` specs with this function too).  Deterministic in ``seed`` (numpy's PCG64); O(K·p) memory (16 MB for
    K = 10⁶, p = 2).  Bad specs raise :class:`~sideq.errors.SideqInputError`.

    >>> make_inits("grid:-1/1,0/2", K=9, p=2)[:3]
    array([[-1.,  0.],
           [-1.,  1.],
           [-1.,  2.]])
    """
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise SideqInputError(f"K (--inits): the number of initializations must be an integer >= 1, got {K!r}")
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


def _read_chunk(path, fingerprint, fields=FIELDS):
    """``fields`` of a finished chunk file (all present: True if ``fields`` is
    empty), or None if the file is absent, unreadable or not this sweep's."""
    try:
        with np.load(path) as f:
            if str(f["fingerprint"]) != fingerprint or not set(FIELDS) <= set(f.files):
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


def _write_results(path, n_runs, p, dtype, n_chunks, chunk, read_chunk):
    """Stream the chunks into ``path`` (an .npz that np.load reads), one array and
    one chunk at a time: memory O(chunk), not O(K)."""
    shapes = {k: (n_runs, p) if k in ("theta0", "theta_final") else (n_runs,) for k in FIELDS}
    dtypes = {k: np.dtype(np.int32) if k in _INT_FIELDS else np.dtype(dtype) for k in FIELDS}

    def write(fh):
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name in FIELDS:
                with zf.open(_zip_info(name + ".npy"), "w", force_zip64=True) as f:
                    header = {"descr": np.lib.format.dtype_to_descr(dtypes[name]),
                              "fortran_order": False, "shape": shapes[name]}
                    np.lib.format.write_array_header_1_0(f, header)
                    for i in range(n_chunks):
                        arr = read_chunk(i, name)
                        keep = min(chunk, n_runs - i * chunk)
                        f.write(np.ascontiguousarray(arr[:keep], dtypes[name]).tobytes())

    _atomic_write(path, write)


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
    nu_epochs = np.asarray(arrays["non_unique_epochs"])
    visited = nu_epochs > 0
    return {
        "format": FORMAT,
        "runs": int(status.shape[0]),
        "K": settings["K"],
        "n_eta": settings["n_eta"],
        "status_counts": counts,
        "failed": int(np.sum(~ok)),
        # The runs' history in the non-unique regime, apart from their final
        # statuses: how many runs passed through it, and how those ended.
        "non_unique_history": {
            "runs": int(np.sum(visited)),
            "final_status_counts": {s.name.lower(): int(np.sum(visited & (status == s))) for s in Status},
            "epochs": _quantiles(nu_epochs[visited]),
        },
        "loss_final": _quantiles(np.asarray(arrays["loss_final"])[ok]),
        "distance_final": _quantiles(np.asarray(arrays["distance_final"])[ok]),
        "steps": _quantiles(np.asarray(arrays["steps"])[ok]),
        "wall_s": wall_s,
        "runs_computed": int(runs_computed),
        "runs_per_s": (runs_computed / wall_s) if wall_s > 0 and runs_computed else None,
        "devices": n_devices,
        "settings": settings,
    }


class SweepResult(NamedTuple):
    """What :func:`run_sweep` returns.

    ``summary`` is the dict also written to ``summary.json``; ``arrays`` maps each
    name of :data:`FIELDS` to its per-run array (read lazily from
    ``results.npz`` when the sweep has an ``out_dir``).
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
    ``non_unique_first`` and ``non_unique_last`` (−1 if none) (N,).  ``summary.json`` beside it holds the summary and settings."""
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
    etas = np.atleast_1d(np.asarray(eta, dtype=np.float64))
    if etas.ndim != 1 or etas.size == 0:
        raise SideqInputError(f"eta: expected a number or a 1-D array of step sizes, got shape {np.shape(eta)}")
    if not (np.all(np.isfinite(etas)) and np.all(etas > 0)):
        raise SideqInputError(f"eta: step sizes must be positive numbers, got {etas[:8].tolist()}")
    K = inits.shape[0]
    if pair_eta and etas.size not in (1, K):
        raise SideqInputError(f"eta: pair_eta=True needs one step size per init ({K}), got {etas.size}")
    # Cast once to the run dtype, so the stored theta0/eta are what the runs saw.
    return inits.astype(dtype, copy=False), etas.astype(dtype, copy=False)


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
    model: Model,
    *,
    xi,
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
    backend: str = "jaxopt",
    maxiter: int = 100,
    progress: bool | Callable[[dict], None] = True,
    distributed: bool = False,
) -> SweepResult:
    r"""Gradient descent θ(t+1) = θ(t) − η∇R(θ(t)) (Section 2) from many θ(0).

    Args:
      model: ``sideq.linear()`` or ``sideq.single_index(...)``.
      xi: the target ξ, shape (d,).
      inits: θ(0) for each of K runs, shape (K, p) (see :func:`make_inits`).
      eta: a step size, or E step sizes: the sweep is then the product
        inits × eta, N = K·E runs, run r = i·E + j having θ(0) = inits[i],
        η = eta[j]; with ``pair_eta=True``, eta has shape (K,) and run i uses
        eta[i] (N = K).
      epochs: steps T per run.
      x, y, dist: data (empirical risk; y defaults to f(x) = σ(ξᵀx)) or a law
        ``sideq.uniform``/``sideq.gaussian`` (population risk), as in
        :func:`sideq.train.descent`.
      chunk: runs per jitted call (a multiple of the number of devices); default
        :func:`default_chunk`, or the manifest's when resuming.
      out_dir: folder for ``manifest.json``, ``chunks/``, ``results.npz`` and
        ``summary.json``.  Without it everything stays in memory (fine for
        small K; for large K give a folder).
      resume: continue the sweep in ``out_dir`` (settings must match).
      gtol, ltol, dtol: a run's ``steps`` is its first epoch with ‖∇R‖ ≤ gtol,
        R ≤ ltol or distance to the target ≤ dtol, else T, as in
        :func:`sideq.dynamics.gradient_descent`.  Its status is then CONVERGED
        (else MAX_STEPS), unless a failure, or NON_UNIQUE or UNVERIFIED at the
        final θ, takes priority (the status is the run's end): to
        ask whether a run met a tolerance, test ``steps < epochs`` (and, for
        one met only at θ(T), ``steps == epochs``, its final values).
      backend, maxiter: the equilibrium solver, as in :func:`sideq.train.descent`.
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
    """
    t_start = time.perf_counter()
    if distributed:
        initialize_distributed()
    if backend not in BACKENDS:
        raise SideqInputError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    epochs = _flag(epochs, "epochs")
    if epochs < 1:
        raise SideqInputError(f"epochs: must be an integer >= 1, got {epochs}")
    maxiter = _flag(maxiter, "maxiter")
    if maxiter < 1:
        raise SideqInputError(f"maxiter: must be >= 1, got {maxiter}")
    tols = check_tolerances(gtol=gtol, ltol=ltol, dtol=dtol)
    if resume and out_dir is None:
        raise SideqInputError("resume: needs out_dir, the folder of the sweep to continue")

    dtype = jnp.result_type(float)
    risk, data, xi_j, d, n_eq, problem = _check_problem(model, xi, x, y, dist, dtype)
    p = model.n_params(d)
    inits, etas = _check_runs(inits, eta, pair_eta, p, dtype)
    K, E = inits.shape[0], etas.shape[0]
    paired = bool(pair_eta) or E == 1
    n_runs = K if paired else K * E

    devices = jax.devices()
    n_dev = len(devices)
    settings = {
        "model": model.name, "kind": model.kind, "bias": model.bias, "p": p,
        "xi": np.asarray(xi_j, np.float64).tolist(), **problem,
        "epochs": epochs, "gtol": tols[0], "ltol": tols[1], "dtol": tols[2],
        "backend": backend, "maxiter": maxiter, "dtype": np.dtype(dtype).name,
        "K": K, "n_eta": E, "eta_mode": "paired" if paired else "product",
        "eta": etas.tolist() if E <= 16 else None, "inits_sha": _sha(inits), "eta_sha": _sha(etas),
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
                done_mask[i] = _read_chunk(_chunk_path(out_dir, i), fingerprint, ()) is not None
    done_mask = _from_process_0(done_mask).astype(bool)

    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    mesh = Mesh(np.array(devices), ("runs",))
    run_sharding = NamedSharding(mesh, P("runs"))
    fn = _chunk_fn(model, risk, epochs, backend, maxiter, mesh)
    replicated = NamedSharding(mesh, P())

    def replicate(a):  # a global array on every device (also across hosts)
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, replicated, lambda idx: a[idx])

    data, xi_j, tols_j = jax.tree_util.tree_map(replicate, (data, xi_j, np.asarray(tols, dtype)))

    def chunk_inputs(i):
        r = np.arange(i * chunk, (i + 1) * chunk)
        r = np.minimum(r, n_runs - 1)  # pad with the last run: valid values, dropped later
        init_idx, eta_idx = (r, r if E > 1 else np.zeros_like(r)) if paired else (r // E, r % E)
        return inits[init_idx], etas[eta_idx]

    def to_global(a):
        return jax.make_array_from_callback(a.shape, run_sharding, lambda idx: a[idx])

    def compute(i):
        theta0, eta_c = chunk_inputs(i)
        out = fn(to_global(theta0), to_global(eta_c), data, xi_j, tols_j)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            out = multihost_utils.process_allgather(out, tiled=True)
        out = {k: np.asarray(v) for k, v in out.items()}
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
                np.savez(fh, fingerprint=np.array(fingerprint), **{k: out[k] for k in FIELDS})

            _atomic_write(_chunk_path(out_dir, i), write)
        prog(already + computed, computed)
    wall = time.perf_counter() - t_start

    if out_dir is None:
        arrays = {k: np.concatenate([memory[i][k] for i in range(n_chunks)])[:n_runs] for k in FIELDS}
        summary = _summarize(arrays, settings, wall, computed, int(mesh.devices.size))
        prog(n_runs, computed, final=True)
        return SweepResult(summary, arrays)
    if not writer:
        return SweepResult({}, {})

    if not os.path.exists(results_path):
        def read(i, name):
            arrays = _read_chunk(_chunk_path(out_dir, i), fingerprint, (name,))
            if arrays is None:
                raise RuntimeError(f"sweep: chunk file {_chunk_path(out_dir, i)} vanished; rerun with resume=True")
            return arrays[name]

        _write_results(results_path, n_runs, p, dtype, n_chunks, chunk, read)
    wall = time.perf_counter() - t_start
    lazy = _LazyNpz(results_path)
    # (the devices the runs were sharded over: the mesh's, not merely those available)
    summary = _summarize(lazy, settings, wall, computed, int(mesh.devices.size))  # loads one array at a time
    summary["chunk"], summary["n_chunks"] = chunk, n_chunks
    _write_json(summary_path, summary)
    _remove_chunks(out_dir, n_chunks)
    prog(n_runs, computed, final=True)
    return SweepResult(summary, lazy)
