r"""XLA compiler options for sideq's compiled training loops.

XLA:CPU vectorizes with 256-bit registers unless told otherwise, even on CPUs
with AVX-512.  sideq's descent loops make a dozen short passes (n ≈ 10³
samples) per epoch, each bound by arithmetic (σ's ``exp``, the Newton
division); with 512-bit vectors the Section 4.2 run took 0.029 s instead of
0.040 s on a 2-core AMD EPYC (BENCHMARKS.md).  So on a CPU that reports
``avx512f``, sideq compiles its descent runs and sweep chunks with
``xla_cpu_prefer_vector_width=512``.  Other backends, and CPUs without
AVX-512, get XLA's defaults.

The options change how XLA vectorizes, not the arithmetic: each σ and each
Newton step is the same IEEE operation; only sums over samples may round
differently (the benchmark's exactness checks hold either way).

Override with the environment variable ``SIDEQ_CPU_VECTOR_WIDTH``: ``256``
(XLA's default), ``512``, or ``auto`` (the default).  It is read when a
function is called, so a benchmark can time both widths in one process.
Functions you ``jax.jit`` yourself get what you pass them:
``jax.jit(f, compiler_options=sideq.xla.compiler_options("cpu"))``.
"""

from __future__ import annotations

import functools
import os

import jax

from sideq.errors import SideqInputError

__all__ = ["ENV", "cpu_vector_width", "compiler_options", "jit"]

ENV = "SIDEQ_CPU_VECTOR_WIDTH"


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


def compiler_options(platform: str) -> dict | None:
    """``jax.jit(..., compiler_options=...)`` for sideq's loops on ``platform``."""
    if platform != "cpu":
        return None
    width = cpu_vector_width()
    return None if width is None else {"xla_cpu_prefer_vector_width": width}


class _Jit:
    """``jax.jit`` whose compiler options follow the default backend at call time."""

    def __init__(self, fun, jit_kwargs):
        functools.update_wrapper(self, fun)
        self._fun, self._jit_kwargs, self._by_options = fun, jit_kwargs, {}

    def _jitted(self):
        options = compiler_options(jax.default_backend())
        key = tuple(sorted((options or {}).items()))
        fn = self._by_options.get(key)
        if fn is None:
            fn = self._by_options[key] = jax.jit(self._fun, compiler_options=options, **self._jit_kwargs)
        return fn

    def __call__(self, *args, **kwargs):
        return self._jitted()(*args, **kwargs)

    def lower(self, *args, **kwargs):
        return self._jitted().lower(*args, **kwargs)

    def _cache_size(self) -> int:
        return sum(fn._cache_size() for fn in self._by_options.values())


def jit(fun=None, **jit_kwargs):
    """Like ``jax.jit`` (also as ``@jit(static_argnames=...)``), adding
    :func:`compiler_options` for the default backend when called."""
    if fun is None:
        return functools.partial(jit, **jit_kwargs)
    return _Jit(fun, jit_kwargs)
