r"""Compiled programs kept between processes of the ``sideq`` command.

JAX's persistent compilation cache (:mod:`sideq.cli`) keeps XLA's
executables keyed by the lowered program, so a repeated command still traces
and lowers each program before it can look it up; for a short command that is
most of what it does after importing JAX (BENCHMARKS.md, start-up).  This
store keeps the compiled program of a :func:`sideq.xla.jit` call whole, keyed
by everything its trace can read:

* the function (module and qualified name) and sideq's source: the SHA-256 of
  every ``.py`` file of the package, read when the store is turned on (a
  program compiled after the source changed is not stored);
* the static arguments, each of a kind whose value is all of its meaning:
  None, bools, numbers, strings, numpy dtypes, tuples of them, and the
  dataclasses of sideq and diffrax built of those (a :class:`sideq.Model`
  counts only with a built-in activation);
* the array arguments' pytree structure, shapes, dtypes and weak types;
* JAX's options (every global option, and the context options that JAX's own
  trace cache keys on, x64 among them), the compiler options, the devices,
  the CPU's feature flags, the environment variables that JAX, XLA and sideq
  read (``JAX_*``, ``XLA_*``, ``SIDEQ_*``) and the versions of Python and of
  the libraries sideq traces through (:data:`LIBRARIES`).

A call any part of whose key cannot be stated that way (a traced argument, a
closure, a user's activation or optimizer, an array on several devices)
takes JAX's usual route; an entry that cannot be read back, or that XLA
cannot run, is compiled again and replaced: the store changes whether a call
is traced again, never what it computes
(``tests/test_program_store.py`` compares the numbers with runs without it).
An entry is written whole to a temporary file and then renamed, so processes
can share the folder.  Only ``sideq descent`` turns the store on
(:func:`use`), in the subfolder ``programs`` of its cache folder, with JAX's
own persistent cache off for the process: an executable that JAX's cache
loaded serializes incompletely, so the store keeps only what it compiled
itself and stays off where JAX's cache is on.  A library edited in place
without a new version is not seen; ``--no-cache`` (or deleting the folder) is
then the way out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import hashlib
import inspect
import os
import pickle
import sys
import tempfile

import jax
import numpy as np

__all__ = ["LIBRARIES", "MISS", "use", "folder", "call", "source_digest"]

#: The distributions whose versions are part of every key.
LIBRARIES = (
    "jax",
    "jaxlib",
    "numpy",
    "ml_dtypes",
    "scipy",
    "optax",
    "chex",
    "jaxopt",
    "optimistix",
    "lineax",
    "equinox",
    "diffrax",
)

#: Modules whose dataclasses may be static arguments (by their fields).
_DATACLASS_MODULES = ("sideq.", "diffrax.")

#: The value :func:`call` returns when the call takes JAX's usual route.
MISS = object()

_folder: str | None = None
_source: str | None = None  # sideq's source digest when use() was called
_loaded: dict = {}  # key -> jax.stages.Compiled, for this process


class _Unkeyable(Exception):
    """Part of a call cannot be stated in a key."""


def use(path: str | None) -> None:
    """Keep compiled programs in ``path`` (None: keep none) for this process.

    sideq's source is read here, before the command imports the modules it
    traces; a program is stored only if the source is still the same when it
    is written (:func:`_write`), so that an edit made while a run starts never
    files a program under the source it was not compiled from.

    Args:
      path: a writable folder (created on the first store), or None.
    """
    global _folder, _source
    _folder = path
    _source = _package_digest() if path is not None else None
    _loaded.clear()
    _installation.cache_clear()


def folder() -> str | None:
    """The folder :func:`use` set, or None."""
    return _folder


def source_digest(root: str) -> str:
    """SHA-256 of the ``.py`` files under ``root``: their paths and contents.

    Args:
      root: a folder (sideq's package for the keys).

    Returns:
      The hex digest.
    """
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                digest.update(os.path.relpath(path, root).encode() + b"\0")
                with open(path, "rb") as f:
                    digest.update(f.read() + b"\0")
    return digest.hexdigest()


def _package_digest() -> str:
    """:func:`source_digest` of sideq's package folder."""
    return source_digest(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def _installation() -> str:
    """The part of every key that is fixed for the process: sideq's source,
    Python, the libraries' versions, the environment and the CPU."""
    import importlib.metadata as metadata

    from sideq.xla import _cpu_flags

    versions = []
    for lib in LIBRARIES:
        try:
            versions.append(f"{lib}={metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{lib}=absent")
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(("JAX_", "XLA_", "SIDEQ_")))
    return "\n".join(
        [
            f"sideq source {_source}",
            sys.version,
            sys.platform,
            *versions,
            repr(env),
            " ".join(sorted(_cpu_flags())),
        ]
    )


def _loose(v) -> str:
    """A configuration value as text with no address in it (an object that is
    none of the plain kinds is named by its type)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return repr(v)
    if isinstance(v, enum.Enum):
        return f"{type(v).__qualname__}.{v.name}"
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(_loose(u) for u in v) + ")"
    return type(v).__qualname__


def _configuration() -> str:
    from jax._src import config as jax_config  # (trace_context: what JAX's trace cache keys on)

    devices = [(d.platform, d.device_kind, d.id, d.process_index) for d in jax.devices()]
    return "\n".join(
        [
            _loose(jax_config.trace_context()),
            ";".join(f"{k}={_loose(v)}" for k, v in sorted(jax.config.values.items())),
            jax.default_backend(),
            repr(devices),
            f"processes {jax.process_count()}",
        ]
    )


def _static(v) -> str:
    """A static argument as text that determines it, or _Unkeyable."""
    if v is None or isinstance(v, (bool, int, float, str, np.generic)):
        return f"{type(v).__name__}:{v!r}"
    if isinstance(v, np.dtype):
        return f"dtype:{v.str}"
    if isinstance(v, tuple):
        return "(" + ",".join(_static(u) for u in v) + ")"
    from sideq.activations import ACTIVATIONS, Activation

    if type(v) is Activation:
        if ACTIVATIONS.get(v.name) is not v:  # (a user's σ: its function is not in sideq's source)
            raise _Unkeyable
        return f"Activation:{v.name}"
    cls = type(v)
    if dataclasses.is_dataclass(v) and cls.__module__.startswith(_DATACLASS_MODULES):
        fields = ",".join(f"{f.name}={_static(getattr(v, f.name))}" for f in dataclasses.fields(v))
        return f"{cls.__module__}.{cls.__qualname__}({fields})"
    raise _Unkeyable


def _aval(leaf) -> str:
    if isinstance(leaf, jax.core.Tracer):
        raise _Unkeyable
    if isinstance(leaf, jax.Array):
        if len(leaf.sharding.device_set) != 1:
            raise _Unkeyable
        return f"{leaf.dtype}{leaf.shape}w{int(leaf.weak_type)}"
    if isinstance(leaf, (np.ndarray, np.generic)):
        return f"np{leaf.dtype}{leaf.shape}"
    if isinstance(leaf, (bool, int, float, complex)):
        return type(leaf).__name__
    raise _Unkeyable


@functools.lru_cache(maxsize=None)
def _positional_names(fun) -> tuple | None:
    """The names of ``fun``'s positional parameters (None where it takes *args)."""
    params = inspect.signature(fun).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _split(fun, static_names, args, kwargs):
    """(static items, dynamic args, dynamic kwargs) of a call, as jax.jit splits them."""
    names = _positional_names(fun)
    if names is None or len(args) > len(names):
        raise _Unkeyable
    static, dyn_args, dyn_kwargs = [], [], {}
    for name, value in zip(names, args):
        if name in static_names:
            static.append((name, value))
        else:
            dyn_args.append(value)
    for name, value in kwargs.items():
        if name in static_names:
            static.append((name, value))
        else:
            dyn_kwargs[name] = value
    return sorted(static, key=lambda item: item[0]), dyn_args, dyn_kwargs


def _key(fun, options, static, dyn_args, dyn_kwargs) -> str:
    if "<locals>" in fun.__qualname__:
        raise _Unkeyable
    leaves, tree = jax.tree_util.tree_flatten((tuple(dyn_args), dyn_kwargs))
    text = "\n".join(
        [
            f"{fun.__module__}.{fun.__qualname__}",
            ";".join(f"{name}={_static(value)}" for name, value in static),
            str(tree),
            ";".join(_aval(leaf) for leaf in leaves),
            repr(sorted((options or {}).items())),
            _configuration(),
            _installation(),
        ]
    )
    if " at 0x" in text:  # (an address: the key would differ in every process)
        raise _Unkeyable
    return text


def _skeleton(tree):
    """A picklable stand-in for a pytree structure (its leaves zeros)."""
    return jax.tree_util.tree_unflatten(tree, [0] * tree.num_leaves)


def _path(key: str, fun) -> str:
    return os.path.join(_folder, f"{fun.__name__}-{hashlib.sha256(key.encode()).hexdigest()[:40]}")


def _read(path: str, key: str):
    """The compiled program stored under ``key``, or None."""
    from jax.experimental.serialize_executable import deserialize_and_load

    try:
        with open(path, "rb") as f:
            entry = pickle.load(f)
        if entry.get("key") != key:
            return None
        structure = jax.tree_util.tree_structure
        return deserialize_and_load(entry["program"], structure(entry["in"]), structure(entry["out"]))
    except Exception:  # noqa: BLE001 (a truncated, foreign or stale entry: compile instead)
        return None


def _write(path: str, key: str, compiled) -> None:
    """Store ``compiled`` under ``key`` (nothing where sideq's source changed
    since :func:`use`, the program cannot be serialized or the folder cannot
    be written)."""
    from jax.experimental.serialize_executable import serialize

    if _package_digest() != _source:  # (sideq's source changed since use(): the key may not be this program's)
        return
    try:
        program, in_tree, out_tree = serialize(compiled)
        blob = pickle.dumps({"key": key, "program": program, "in": _skeleton(in_tree), "out": _skeleton(out_tree)})
        os.makedirs(_folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=_folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception:  # noqa: BLE001 (const args, an unpicklable tree, a full disk: not stored)
        return


def _jax_cache_in_use() -> bool:
    """JAX's persistent compilation cache is (or was) on in this process.

    An executable that JAX's cache loaded serializes without its compiled
    kernels: stored and loaded again, it fails at its first run ("Function
    ... not found").  The store only keeps what it compiled itself, so it
    stays off in a process whose compilations may come from JAX's cache: one
    where it is on, or was opened (JAX opens it once, at the first
    compilation with a folder set, and keeps it open: ``_cache``)."""
    from jax._src import compilation_cache

    return compilation_cache.is_persistent_cache_enabled() or getattr(compilation_cache, "_cache", None) is not None


def call(fun, jitted, static_names, options, args, kwargs):
    """``jitted(*args, **kwargs)`` through the store, or :data:`MISS`.

    Args:
      fun: the Python function ``jitted`` compiles.
      jitted: its ``jax.jit`` with ``options``.
      static_names: the names of its static arguments.
      options: the compiler options (part of the key).
      args, kwargs: the call's arguments.

    Returns:
      The call's result, or :data:`MISS` where the store is off (or JAX's
      persistent cache is on: :func:`_jax_cache_in_use`) or the call cannot
      be keyed (the caller then calls ``jitted`` itself).
    """
    if _folder is None or _jax_cache_in_use():
        return MISS
    try:
        static, dyn_args, dyn_kwargs = _split(fun, static_names, args, kwargs)
        key = _key(fun, options, static, dyn_args, dyn_kwargs)
    except _Unkeyable:
        return MISS
    path = _path(key, fun)
    compiled = _loaded.get(key)
    if compiled is None:
        compiled = _read(path, key) if os.path.exists(path) else None
        if compiled is not None:
            try:  # (waited for: XLA reports a program it cannot run when the results are read)
                out = jax.block_until_ready(compiled(*dyn_args, **dyn_kwargs))
            except jax.errors.JaxRuntimeError:  # (a stored program XLA cannot run: compiled again below)
                with contextlib.suppress(OSError):
                    os.unlink(path)
            else:
                _loaded[key] = compiled
                return out
        compiled = jitted.lower(*args, **kwargs).compile()
        _write(path, key, compiled)
        _loaded[key] = compiled
    return compiled(*dyn_args, **dyn_kwargs)
