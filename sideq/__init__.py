"""sideq: deep equilibrium models (Dandapanthula & Ramdas, 2025), in JAX.

The public API is importable from here: ``sideq.solve``, ``sideq.descent``,
``sideq.flow``, ``sideq.run_sweep``, ``sideq.deq`` and the rest of
``__all__``.  Names load on first use (PEP 562), so ``import sideq`` and
``sideq --help`` import no jax; the first name used imports its module.

Precision is the caller's choice: this package never changes ``jax_enable_x64``.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

# public name -> module that defines it (docs/design.md shows the layers)
_EXPORTS = {
    "sideq.activations": ("ACTIVATIONS", "Activation", "activation", "get_activation"),
    "sideq.errors": ("SideqInputError", "SingularModelError"),
    "sideq.model": ("Model", "linear", "single_index"),
    "sideq.scalar": (
        "BACKENDS",
        "Equilibrium",
        "WarmStart",
        "equilibrium",
        "predict_start",
        "solve",
        "uniqueness_margin",
        "warm_start",
    ),
    "sideq.status": ("Status",),
    "sideq.data": ("Gaussian", "Uniform", "gaussian", "load_data", "sample", "second_moment", "uniform"),
    "sideq.risk": ("empirical_risk", "population_risk", "targets"),
    "sideq.train": ("descent",),
    "sideq.gradient_flow": ("flow", "DEQFlowTrajectory"),
    "sideq.sweep": ("load_results", "make_inits", "params_from_results", "run_sweep"),
    "sideq.general": ("deq", "DEQ", "DEQEquilibrium", "DEQTrajectory", "multi_linear", "multi_index"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = ("xla",)  # sideq.xla: the XLA:CPU options of sideq's loops

__all__ = [*_WHERE, *_SUBMODULES]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"sideq.{name}")
    else:
        raise AttributeError(f"module 'sideq' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted([*globals(), *__all__])
