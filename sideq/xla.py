r"""XLA compiler options for sideq's compiled training loops (CPU).

Two options, each measured on the Section 4.2 run (BENCHMARKS.md); other
backends get XLA's defaults.

* **512-bit vectors** (``xla_cpu_prefer_vector_width=512``) on a CPU that
  reports ``avx512f``.  XLA:CPU vectorizes with 256-bit registers unless told
  otherwise; the per-sample passes (σ's ``exp``, the Newton division) then take
  two thirds of the time.
* **Reassociated sums** (``xla_cpu_enable_fast_math`` with NaN, ∞, division
  and math functions all honoured, so what is left is reassociation, fused
  multiply–add and the sign of zero).  Without it every sum over the samples
  (R, ∇R by Eq. (1), the worst residual) is one chain of a thousand dependent
  additions, bound by the adder's latency, not its throughput; with it LLVM
  sums in vector lanes.  σ, ``exp`` and the solver's steps compile to the same
  instructions (bit for bit the same values: ``tests/test_xla.py``); only the
  order of summation and the rounding of a·b + c change, by an ulp or so.

Both options make the Section 4.2 run about twice as fast on the 2-core
AMD EPYC of BENCHMARKS.md, with the same θ to the last ulps (``sideq bench``
times it both ways).  sideq compiles its descent runs,
sweep chunks and gradient flows (``sideq.train``, ``sideq.sweep``,
``sideq.flow``) with them.

Environment variables, read when a sideq loop is called (so a benchmark can
time every setting in one process):

* ``SIDEQ_CPU_VECTOR_WIDTH``: ``256`` (XLA's default), ``512``, or ``auto``
  (the default: 512 where the CPU has AVX-512);
* ``SIDEQ_CPU_REASSOCIATE``: ``1`` (the default) or ``0`` (XLA's strict order).

Functions you ``jax.jit`` yourself get what you pass them:
``jax.jit(f, compiler_options=sideq.xla.compiler_options("cpu"))``.
"""

from __future__ import annotations

import functools
import os

import jax

from sideq import program_store
from sideq.errors import SideqInputError

__all__ = ["ENV", "ENV_REASSOCIATE", "cpu_vector_width", "cpu_reassociate", "compiler_options", "jit"]

ENV = "SIDEQ_CPU_VECTOR_WIDTH"
ENV_REASSOCIATE = "SIDEQ_CPU_REASSOCIATE"

# Fast math with every IEEE guarantee that matters here kept: NaN and ∞ are
# honoured (a diverging run stays detectable), division is exact (no
# reciprocal approximations), math functions are the accurate ones.
_REASSOCIATE = {
    "xla_cpu_enable_fast_math": True,
    "xla_cpu_fast_math_honor_nans": True,
    "xla_cpu_fast_math_honor_infs": True,
    "xla_cpu_fast_math_honor_division": True,
    "xla_cpu_fast_math_honor_functions": True,
}


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> frozenset:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_vector_width() -> int | None:
    """The vector width XLA:CPU should prefer: 512 on AVX-512, else None (XLA's own).

    ``SIDEQ_CPU_VECTOR_WIDTH=256|512`` forces a width; ``auto`` (or unset) detects.
    """
    value = os.environ.get(ENV, "auto").strip().lower()
    if value in ("", "auto"):
        return 512 if "avx512f" in _cpu_flags() else None
    if value in ("256", "512"):
        return int(value)
    raise SideqInputError(f"{ENV}: expected 256, 512 or auto, got {value!r}; unset it to detect")


def cpu_reassociate() -> bool:
    """Whether XLA:CPU may reorder sums (``SIDEQ_CPU_REASSOCIATE``, default 1)."""
    value = os.environ.get(ENV_REASSOCIATE, "1").strip().lower()
    if value in ("", "1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise SideqInputError(f"{ENV_REASSOCIATE}: expected 1 or 0, got {value!r}; unset it for the default (1)")


def compiler_options(platform: str) -> dict | None:
    """``jax.jit(..., compiler_options=...)`` for sideq's loops on ``platform``."""
    if platform != "cpu":
        return None
    options = dict(_REASSOCIATE) if cpu_reassociate() else {}
    width = cpu_vector_width()
    if width is not None:
        options["xla_cpu_prefer_vector_width"] = width
    return options or None


class _Jit:
    """``jax.jit`` whose compiler options follow the default backend at call
    time (XLA's defaults with ``plain``).  Inside another ``jax.jit`` (which
    refuses compiler options on a nested jit, and whose own options then
    apply) it is a plain ``jax.jit``.  In ``sideq descent`` a call goes
    through :mod:`sideq.program_store`."""

    def __init__(self, fun, jit_kwargs, plain=False):
        functools.update_wrapper(self, fun)
        self._fun, self._jit_kwargs, self._by_options, self._plain = fun, jit_kwargs, {}, plain
        static = jit_kwargs.get("static_argnames", ())
        self._static_names = frozenset((static,) if isinstance(static, str) else static)
        self._storable = "static_argnums" not in jit_kwargs

    def _jitted(self, options):
        key = tuple(sorted((options or {}).items()))
        fn = self._by_options.get(key)
        if fn is None:
            fn = self._by_options[key] = jax.jit(self._fun, compiler_options=options, **self._jit_kwargs)
        return fn

    def _options(self):
        return None if self._plain else compiler_options(jax.default_backend())

    def __call__(self, *args, **kwargs):
        options = self._options()
        if self._storable and program_store.folder() is not None:  # (the sideq command)
            out = program_store.call(self._fun, self._jitted(options), self._static_names, options, args, kwargs)
            if out is not program_store.MISS:
                return out
        if not options:
            return self._jitted(None)(*args, **kwargs)
        try:
            return self._jitted(options)(*args, **kwargs)
        except ValueError as e:  # (raised while tracing, before anything runs)
            if "compiler_options" not in str(e) or "nested" not in str(e):
                raise
        return self._jitted(None)(*args, **kwargs)

    def lower(self, *args, **kwargs):
        return self._jitted(self._options()).lower(*args, **kwargs)

    def _cache_size(self) -> int:
        return sum(fn._cache_size() for fn in self._by_options.values())


def jit(fun=None, *, plain=False, **jit_kwargs):
    """Like ``jax.jit`` (also as ``@jit(static_argnames=...)``), adding
    :func:`compiler_options` for the default backend when called.

    Args:
      fun: the function to compile.
      plain: compile with XLA's default options instead (a program whose
        values must be bit for bit those of eager JAX: seeded draws).
      **jit_kwargs: ``jax.jit``'s own (``static_argnames``, ...).

    Returns:
      The compiled function; ``sideq descent`` keeps its programs between
      processes (:mod:`sideq.program_store`).
    """
    if fun is None:
        return functools.partial(jit, plain=plain, **jit_kwargs)
    return _Jit(fun, jit_kwargs, plain)
