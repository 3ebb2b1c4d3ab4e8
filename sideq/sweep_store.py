r"""A sweep's results, in memory and on disk (:mod:`sideq.sweep`'s store).

* The per-run fields (:data:`FIELDS`; a DEQ sweep's :func:`deq_layout`, each
  params leaf under its path, :func:`params_from_results`), their quantiles
  in the summary (:func:`summarize`).
* The folder ``out_dir``: ``manifest.json`` (the settings, compared on
  resume: :func:`read_manifest`), ``chunks/chunk_NNNNNN.npz`` (one file per
  finished chunk, written atomically: a temporary file, fsync, ``os.replace``,
  and recognized by the sweep's fingerprint), ``results.npz`` (the chunks
  streamed into one file, one array and one chunk at a time:
  :func:`gather_chunks`) and ``summary.json``.  :func:`load_results` reads
  ``results.npz`` back.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Mapping

import jax
import numpy as np

from sideq.errors import SideqInputError
from sideq.status import Status

__all__ = [
    "FORMAT",
    "FIELDS",
    "DEQ_FIELDS",
    "DEQ_POPULATION_FIELDS",
    "params_from_results",
    "load_results",
    "leaf_names",
    "field_name",
    "digest",
    "atomic_write",
    "write_json",
    "chunk_path",
    "read_chunk",
    "write_chunk",
    "finished_chunks",
    "remove_chunks",
    "write_results",
    "gather_chunks",
    "scalar_layout",
    "deq_layout",
    "summarize",
    "LazyNpz",
    "read_manifest",
]

FORMAT = "sideq-sweep-2"  # (2: the non-unique history fields; a run's status is its end)

# Per-run arrays of results.npz, in this order; (N,) or (N, p) with N runs.
FIELDS = (
    "theta0",
    "eta",
    "theta_final",
    "loss_final",
    "grad_norm_final",
    "distance_final",
    "status",
    "fail_step",
    "steps",
    "non_unique_epochs",
    "non_unique_first",
    "non_unique_last",
)
# Per-run arrays of a DEQ sweep (sideq.general): each params leaf is stored
# twice, as "theta0/NAME" before "eta" and "theta_final/NAME" after it (NAME:
# the leaf's path, see params_from_results), then these, each (N,); a
# population-risk sweep has no residual_final (its risk solves no equilibrium,
# or many): DEQ_POPULATION_FIELDS.
DEQ_FIELDS = ("loss_final", "grad_norm_final", "residual_final", "status", "fail_step", "steps")
DEQ_POPULATION_FIELDS = tuple(f for f in DEQ_FIELDS if f != "residual_final")
_INT_FIELDS = ("status", "fail_step", "steps", "non_unique_epochs", "non_unique_first", "non_unique_last")
_QUANTILES = {"min": 0.0, "q05": 0.05, "median": 0.5, "q95": 0.95, "max": 1.0}
_FAILED = (Status.DIVERGED, Status.SINGULAR, Status.SOLVER_FAILURE)


# ----------------------------------------------------------------------------
# Names of params leaves in results.npz


def leaf_names(tree, what="inits") -> list[str]:
    """The name of each leaf of a params pytree, in its leaves' order: the keys
    on its path joined by '/' (dict keys, sequence indices, attribute names),
    "" for a bare array.  A key holding '/' or two leaves of one name are
    refused (the names must give the pytree back unambiguously).

    Args:
      tree: a params pytree.
      what: the argument named in error messages.

    Returns:
      One name per leaf (``["W1", "W2"]`` for ``{"W1": ..., "W2": ...}``).
    """
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = []
        for key in path:
            part = (
                key.key
                if isinstance(key, (jax.tree_util.DictKey, jax.tree_util.FlattenedIndexKey))
                else key.idx
                if isinstance(key, jax.tree_util.SequenceKey)
                else key.name
                if isinstance(key, jax.tree_util.GetAttrKey)
                else key
            )
            part = str(part)
            if not part or "/" in part:
                raise SideqInputError(
                    f"{what}{jax.tree_util.keystr(path)}: the key {part!r} cannot name a leaf in results.npz "
                    "(empty or holding '/'); rename it"
                )
            parts.append(part)
        names.append("/".join(parts))
    seen = set()
    for name in names:
        if name in seen:
            raise SideqInputError(f"{what}: two leaves are both named {name!r} (keys equal as text); rename one")
        seen.add(name)
    return names


def field_name(prefix, name):
    """The results.npz field of the leaf ``name`` under ``prefix``
    (``"theta0/W1"``; ``prefix`` alone for a bare array's ``""``).

    Args:
      prefix: ``"theta0"`` or ``"theta_final"``.
      name: the leaf's name (:func:`leaf_names`).

    Returns:
      The field's name.
    """
    return f"{prefix}/{name}" if name else prefix


def params_from_results(arrays: Mapping, which: str = "theta_final", like=None):
    r"""The params of a DEQ sweep (:func:`~sideq.sweep.run_sweep` with a
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
      The pytree of numpy arrays, e.g. ``{"W1": (N, k, d), "W2": (N, k, k)}``.

    Raises:
      SideqInputError: ``which`` is neither name, ``arrays`` has no such
        fields, or the leaves of ``like`` do not match them.
    """
    if which not in ("theta0", "theta_final"):
        raise SideqInputError(f"which: expected 'theta0' or 'theta_final', got {which!r}")
    keys = [key for key in arrays.keys() if key == which or key.startswith(which + "/")]
    if not keys:
        raise SideqInputError(f"arrays: no {which!r} fields; expected the arrays of a DEQ sweep")
    if like is not None:
        names = leaf_names(like, "like")
        missing = [n for n in names if field_name(which, n) not in keys]
        if missing or len(names) != len(keys):
            raise SideqInputError(
                f"like: its leaves {names} do not match the sweep's {[k[len(which) + 1 :] for k in keys]}"
            )
        treedef = jax.tree_util.tree_structure(like)
        return jax.tree_util.tree_unflatten(treedef, [np.asarray(arrays[field_name(which, n)]) for n in names])
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
# Files: atomic writes, the manifest, chunk files, results.npz


def digest(*arrays) -> str:
    """16 hex digits of the SHA-256 of ``arrays`` (dtype, shape and bytes of
    each): how the settings record data and inits without storing them.

    Args:
      *arrays: array-likes.

    Returns:
      A string of 16 hexadecimal digits.
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(memoryview(a).cast("B"))  # no copy
    return h.hexdigest()[:16]


def atomic_write(path, write):
    """``write(fh)`` to a temporary file beside ``path``, fsync, then os.replace.

    A reader sees the old file or the whole new one; the temporary file is
    removed when ``write`` raises (the exception propagates).

    Args:
      path: the file to write.
      write: ``write(fh)`` writing bytes to the open binary file ``fh``.
    """
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


def write_json(path, obj):
    """``obj`` as indented JSON in ``path``, written atomically (:func:`atomic_write`).

    Args:
      path: the file to write.
      obj: a JSON-serializable object.
    """
    atomic_write(path, lambda fh: fh.write((json.dumps(obj, indent=2) + "\n").encode()))


def read_manifest(out_dir, resume, settings, chunk, n_devices):
    """The manifest of the sweep in ``out_dir`` when it is resumed (None for a
    new sweep), and the chunk size: the manifest's on resume, else ``chunk``.

    A one-line error where ``out_dir`` holds a sweep and ``resume`` is off,
    holds results but no manifest, or holds a sweep with other settings (or
    another ``chunk``); a warning where the sweep started on another number
    of devices (its results then agree to rounding only).

    Args:
      out_dir: the sweep's folder.
      resume: whether the sweep is resumed.
      settings: the sweep's settings, compared with the manifest's.
      chunk: the chunk size asked for, or None.
      n_devices: the number of devices of this run.

    Returns:
      ``(manifest, chunk)``: the manifest dict or None, and the chunk size
      (the manifest's on resume, else ``chunk``).

    Raises:
      SideqInputError: as described above, or an unreadable manifest.
    """
    manifest_path = os.path.join(out_dir, "manifest.json")
    manifest = None
    if os.path.exists(manifest_path):
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
    else:
        stale = [f for f in ("results.npz", "summary.json") if os.path.exists(os.path.join(out_dir, f))]
        if stale:
            raise SideqInputError(
                f"out_dir: {out_dir!r} holds {' and '.join(stale)} but no manifest.json; choose a new or empty folder"
            )
    if manifest is not None:
        old = manifest.get("settings", {})
        diff = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
        if chunk is not None and int(chunk) != manifest.get("chunk"):
            diff.append("chunk")
        if manifest.get("format") != FORMAT or diff:
            shown = ", ".join(
                f"{k}: {old.get(k)!r} -> {settings.get(k)!r}"
                if k != "chunk"
                else f"chunk: {manifest.get('chunk')} -> {chunk}"
                for k in diff[:4]
            )
            raise SideqInputError(
                f"resume: settings differ from {manifest_path} ({shown or 'format'}); rerun with the "
                "sweep's original settings, or choose a new out_dir"
            )
        chunk = int(manifest["chunk"])
        if manifest.get("devices", n_devices) != n_devices:
            warnings.warn(
                f"resume: the sweep in {out_dir!r} started on {manifest.get('devices')} device(s), "
                f"this run has {n_devices}: the results agree to rounding, not bit for bit, with an "
                "uninterrupted run",
                RuntimeWarning,
                stacklevel=3,  # (run_sweep's caller)
            )
    return manifest, chunk


def chunk_path(out_dir, i):
    """The file of chunk ``i``: ``out_dir/chunks/chunk_NNNNNN.npz``.

    Args:
      out_dir: the sweep's folder.
      i: the chunk's index.

    Returns:
      The path.
    """
    return os.path.join(out_dir, "chunks", f"chunk_{i:06d}.npz")


def read_chunk(path, fingerprint, fields=FIELDS, required=FIELDS):
    """``fields`` of a finished chunk file (all ``required`` present: True if
    ``fields`` is empty), or None if the file is absent, unreadable or not this
    sweep's.

    Args:
      path: the chunk file.
      fingerprint: the sweep's fingerprint, which the file must hold.
      fields: the fields to read.
      required: the fields the file must hold.

    Returns:
      A dict of numpy arrays, True, or None.
    """
    try:
        with np.load(path) as f:
            if str(f["fingerprint"]) != fingerprint or not set(required) <= set(f.files):
                return None
            return {k: f[k] for k in fields} if fields else True
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def write_chunk(out_dir, i, fingerprint, arrays):
    """Chunk ``i``'s per-run ``arrays`` (a dict, in the file's order) to its
    file, atomically, with the sweep's ``fingerprint``.

    Args:
      out_dir: the sweep's folder (with its ``chunks/``).
      i: the chunk's index.
      fingerprint: the sweep's fingerprint.
      arrays: the chunk's per-run arrays, by field.
    """

    def write(fh):
        np.savez(fh, fingerprint=np.array(fingerprint), **arrays)

    atomic_write(chunk_path(out_dir, i), write)


def finished_chunks(out_dir, n_chunks, fingerprint, fields):
    """Which of the ``n_chunks`` chunks are finished on disk (bool array): a
    chunk file of this sweep with every field; all of them once results.npz
    exists (a sweep killed after writing it, before its summary).  The
    temporary files of writes that a kill interrupted are removed.

    Args:
      out_dir: the sweep's folder.
      n_chunks: the number of chunks.
      fingerprint: the sweep's fingerprint.
      fields: the fields a finished chunk holds.

    Returns:
      A numpy bool array of shape (n_chunks,).
    """
    done = np.zeros(n_chunks, bool)
    if os.path.exists(os.path.join(out_dir, "results.npz")):
        done[:] = True  # killed after results.npz, before summary.json
    else:
        for name in os.listdir(os.path.join(out_dir, "chunks")):
            if name.startswith("."):  # a temporary file of a killed write
                os.remove(os.path.join(out_dir, "chunks", name))
        for i in range(n_chunks):
            done[i] = read_chunk(chunk_path(out_dir, i), fingerprint, (), fields) is not None
    return done


def remove_chunks(out_dir, n_chunks):
    """Remove the chunk files and the ``chunks/`` folder (once results.npz holds them).

    A folder that is not empty, or absent, is left as it is.

    Args:
      out_dir: the sweep's folder.
      n_chunks: the number of chunks.
    """
    for i in range(n_chunks):
        path = chunk_path(out_dir, i)
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


def write_results(path, n_runs, layout, n_chunks, chunk, read):
    """Stream the chunks into ``path`` (an .npz that np.load reads), one array and
    one chunk at a time: memory O(chunk), not O(K).  ``layout``: (name, shape of
    one run's value, dtype) of each field, in the file's order; ``read(i,
    name)`` the field ``name`` of chunk ``i`` (the last chunk's padding is
    dropped here).

    Args:
      path: the .npz file to write (atomically).
      n_runs: N, the number of runs.
      layout: ``(name, shape, dtype)`` of each field.
      n_chunks: the number of chunks.
      chunk: runs per chunk.
      read: ``read(i, name) -> array`` of chunk ``i``.
    """

    def write(fh):
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, shape, dtype in layout:
                with zf.open(_zip_info(name + ".npy"), "w", force_zip64=True) as f:
                    header = {
                        "descr": np.lib.format.dtype_to_descr(dtype),
                        "fortran_order": False,
                        "shape": (n_runs,) + tuple(shape),
                    }
                    np.lib.format.write_array_header_1_0(f, header)
                    for i in range(n_chunks):
                        arr = read(i, name)
                        keep = min(chunk, n_runs - i * chunk)
                        f.write(np.ascontiguousarray(arr[:keep], dtype).tobytes())

    atomic_write(path, write)


def gather_chunks(out_dir, n_runs, layout, n_chunks, chunk, fingerprint):
    """``out_dir/results.npz`` from the chunk files (:func:`write_results`),
    unless it is there already.

    Args:
      out_dir: the sweep's folder.
      n_runs: N, the number of runs.
      layout: ``(name, shape, dtype)`` of each field.
      n_chunks: the number of chunks.
      chunk: runs per chunk.
      fingerprint: the sweep's fingerprint.

    Raises:
      RuntimeError: a chunk file is missing or not this sweep's.
    """
    results_path = os.path.join(out_dir, "results.npz")
    if os.path.exists(results_path):
        return
    fields = [name for name, _, _ in layout]

    def read(i, name):
        arrays = read_chunk(chunk_path(out_dir, i), fingerprint, (name,), fields)
        if arrays is None:
            raise RuntimeError(f"sweep: chunk file {chunk_path(out_dir, i)} vanished; rerun with resume=True")
        return arrays[name]

    write_results(results_path, n_runs, layout, n_chunks, chunk, read)


def scalar_layout(p, dtype):
    """results.npz of a sweep of a scalar model: (name, shape of one run's
    value, dtype) of each field of :data:`FIELDS`, θ of p entries.

    Args:
      p: the number of parameters.
      dtype: the float dtype of the runs.

    Returns:
      A list of ``(name, shape, numpy dtype)``; the status and count fields
      are int32.
    """
    return [
        (k, (p,) if k in ("theta0", "theta_final") else (), np.dtype(np.int32) if k in _INT_FIELDS else np.dtype(dtype))
        for k in FIELDS
    ]


def deq_layout(names, shapes, dtype, fields=DEQ_FIELDS):
    """results.npz of a DEQ sweep: theta0/NAME..., eta, theta_final/NAME..., ``fields``.

    Args:
      names: the params leaves' names (:func:`leaf_names`).
      shapes: one run's shape of each leaf.
      dtype: the float dtype of the runs.
      fields: :data:`DEQ_FIELDS`, or :data:`DEQ_POPULATION_FIELDS` for a
        population risk.

    Returns:
      A list of ``(name, shape, numpy dtype)``; the status and count fields
      are int32.
    """
    theta = lambda prefix: [(field_name(prefix, n), s, np.dtype(dtype)) for n, s in zip(names, shapes)]  # noqa: E731
    return (
        theta("theta0")
        + [("eta", (), np.dtype(dtype))]
        + theta("theta_final")
        + [(k, (), np.dtype(np.int32) if k in _INT_FIELDS else np.dtype(dtype)) for k in fields]
    )


# ----------------------------------------------------------------------------
# The summary, and reading results back


def _quantiles(values):
    """min, 5%, median, 95% and max of the finite ``values`` (None if there are none)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {k: None for k in _QUANTILES}
    return {k: float(np.quantile(v, q)) for k, q in _QUANTILES.items()}


def summarize(arrays, settings, wall_s, runs_computed, n_devices):
    """The summary of a sweep (``summary.json``, ``SweepResult.summary``): runs
    per status by name, the runs that passed through the non-unique regime,
    quantiles of ``loss_final``, ``distance_final`` and ``steps`` over the runs
    that did not fail, the timing and the settings.

    Args:
      arrays: the per-run arrays (a dict, or :class:`LazyNpz` read one at a time).
      settings: the sweep's settings (with ``K`` and ``n_eta``).
      wall_s: seconds the sweep took.
      runs_computed: runs computed by this call (not read back on resume).
      n_devices: devices the runs were sharded over.

    Returns:
      The summary dict (JSON-ready).
    """
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
    summary.update(
        {
            "steps": _quantiles(np.asarray(arrays["steps"])[ok]),
            "wall_s": wall_s,
            "runs_computed": int(runs_computed),
            "runs_per_s": (runs_computed / wall_s) if wall_s > 0 and runs_computed else None,
            "devices": n_devices,
            "settings": settings,
        }
    )
    return summary


class LazyNpz(Mapping):
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
    ``residual_final`` (N,; not on the population risk) and int32 ``status``,
    ``fail_step``, ``steps`` (N,): :func:`params_from_results` gives the
    params back as a pytree.

    Args:
      out_dir: the sweep's folder (a str or path-like).

    Returns:
      A dict of numpy arrays, loaded in full (:class:`LazyNpz` reads one at a
      time).

    Raises:
      SideqInputError: ``out_dir`` holds no results.npz (the message says
        whether the sweep is unfinished).
    """
    path = os.path.join(os.fspath(out_dir), "results.npz")
    if not os.path.exists(path):
        hint = (
            " (the sweep has not finished; run it again with resume=True / --resume)"
            if os.path.exists(os.path.join(os.fspath(out_dir), "manifest.json"))
            else ""
        )
        raise SideqInputError(f"out_dir: no results.npz in {os.fspath(out_dir)!r}{hint}")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
