"""The slope bounds of a user's activation: a decreasing activation's Lipschitz
constant is sup |σ'| (not sup σ'), bounds given by the user are taken as
given, and a ``slope_of_value`` that is not σ' (off by 1e-6, wrong on part of
the line, or NaN) is refused in one line.

Expected values by central finite differences of numpy's tanh.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import sideq
from sideq import SideqInputError


def test_lipschitz_of_a_decreasing_activation():
    # sigma = -2 tanh: sigma' = -2 sech^2 in [-2, 0); L = sup |sigma'| = 2 (finite differences agree)
    act = sideq.activation(lambda z: -2 * jnp.tanh(z))
    z = np.linspace(-5, 5, 100_001)
    h = 1e-6
    fd = (-2 * np.tanh(z + h) + 2 * np.tanh(z - h)) / (2 * h)
    assert act.slope_min == pytest.approx(fd.min(), abs=1e-8)
    assert act.slope_max == pytest.approx(0.0, abs=1e-12)  # sup sigma' (-> 0 at +-20), not sup |sigma'|
    assert act.lipschitz == pytest.approx(np.abs(fd).max(), abs=1e-8)
    assert act.lipschitz == pytest.approx(2.0, abs=1e-9)
    given = sideq.activation(lambda z: -3 * jnp.tanh(z) + 0.5 * z, slope_bounds=(-2.5, 0.5))
    assert given.lipschitz == 2.5 and not given.monotone and not given.meets_corollary_3_1


def test_slope_of_value_check_refuses_near_misses_and_nan():
    # tanh: sigma' = 1 - sigma^2 exactly; the check is to 1e-9 relative on [-20, 20]
    sideq.activation(jnp.tanh, slope_of_value=lambda y: 1 - y * y)  # accepted
    for bad in (
        lambda y: (1 - y * y) * (1 + 1e-6),  # a 1e-6 relative error
        lambda y: jnp.where(jnp.abs(y) > 0.9, 0.0, 1 - y * y),  # wrong only for |z| > 1.47
        lambda y: jnp.nan * y,
    ):  # not a number at all
        with pytest.raises(SideqInputError, match="^activation: slope_of_value"):
            sideq.activation(jnp.tanh, slope_of_value=bad)
