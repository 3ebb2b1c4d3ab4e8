"""sideq: deep equilibrium single-index models (Dandapanthula & Ramdas, 2025), in JAX.

Precision is the caller's choice: this package never changes ``jax_enable_x64``.
"""

from sideq.activations import ACTIVATIONS, Activation, activation, get_activation
from sideq.data import Gaussian, Uniform, gaussian, load_data, sample, second_moment, uniform
from sideq.errors import SideqInputError, SingularModelError
from sideq.model import Model, linear, single_index
from sideq.solve import (
    BACKENDS, Equilibrium, WarmStart, equilibrium, predict_start, solve, uniqueness_margin, warm_start,
)
from sideq.risk import empirical_risk, population_risk, targets
from sideq.status import Status
from sideq import xla  # the XLA:CPU options of sideq's loops: sideq.xla.compiler_options("cpu")
from sideq.train import descent
from sideq.sweep import load_results, make_inits, run_sweep
# The general DEQ and the gradient flow: ``sideq.deq`` and ``sideq.flow`` are
# these functions; their modules stay importable by name (``from sideq.flow
# import until_stop``, ``from sideq.deq import solve``).
from sideq.deq import DEQ, DEQEquilibrium, DEQTrajectory, multi_index, multi_linear
from sideq.deq import deq  # noqa: E402  (after the names above: it rebinds sideq.deq)
from sideq.flow import flow  # noqa: E402  (it rebinds sideq.flow)

__version__ = "0.2.0"

__all__ = [
    "ACTIVATIONS", "Activation", "activation", "get_activation",
    "SideqInputError", "SingularModelError",
    "Model", "linear", "single_index",
    "BACKENDS", "Equilibrium", "WarmStart", "equilibrium", "predict_start", "solve",
    "uniqueness_margin", "warm_start",
    "Status", "xla",
    "Gaussian", "Uniform", "gaussian", "load_data", "sample", "second_moment", "uniform",
    "empirical_risk", "population_risk", "targets",
    "descent", "flow", "run_sweep", "make_inits", "load_results",
    "deq", "DEQ", "DEQEquilibrium", "DEQTrajectory", "multi_linear", "multi_index",
]
