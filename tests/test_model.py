"""sideq.model: the models' names, their default activation, their target
σ(ξ·x) and the target point a distance is measured to.

Expected values by numpy (scipy's expit for the sigmoid) and by hand.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit

import sideq
from sideq.dynamics import distance_to_target

LIN = sideq.linear()
SIG = sideq.single_index("sigmoid")


def test_model_names_and_the_default_activation():
    assert sideq.linear().name == "linear" and sideq.linear(bias=True).name == "linear"
    m = sideq.single_index()
    assert m.name == "sigmoid" and m.activation.name == "sigmoid" and not m.bias


def test_model_target_is_sigma_of_xi_x():
    x = np.array([[0.2, -1.0], [1.5, 0.3], [-0.7, 2.0]])
    xi = np.array([0.8, -0.6])
    np.testing.assert_allclose(np.asarray(SIG.target(xi, x)), expit(x @ xi), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(sideq.single_index("tanh").target(xi, x)), np.tanh(x @ xi), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(LIN.target(xi, x)), x @ xi, rtol=1e-14)


def test_single_index_distance_with_bias_is_to_xi_0_0():
    model = sideq.single_index("tanh", bias=True)
    theta = np.array([0.3, -1.2, 0.7, 0.4])  # (θ1 (2), b, θ2)
    xi = np.array([1.5, -0.5])
    want = np.linalg.norm(theta - np.array([1.5, -0.5, 0.0, 0.0]))
    assert float(distance_to_target(model, jnp.asarray(theta), xi)) == pytest.approx(want, rel=1e-14)
