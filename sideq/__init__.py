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

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Activation", "activation", "get_activation",
    "SideqInputError", "SingularModelError",
    "Model", "linear", "single_index",
    "BACKENDS", "Equilibrium", "WarmStart", "equilibrium", "predict_start", "solve",
    "uniqueness_margin", "warm_start",
    "Status", "xla",
    "Gaussian", "Uniform", "gaussian", "load_data", "sample", "second_moment", "uniform",
    "empirical_risk", "population_risk", "targets",
]
