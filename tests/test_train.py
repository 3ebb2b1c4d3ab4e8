"""sideq.train: what ``descent`` does with its defaults and its tolerance, what it
refuses at its boundary, and what ``summary`` reports.

Expected values come from hand-written gradient steps of the linear DEQ
(y_θ = θ1 x/(1 − θ2)) or from the arguments' documented names; a refused
argument is a one-line SideqInputError that starts with the argument's name.
"""

import math

import numpy as np
import pytest
from helpers import linear_empirical_grad, raises_input_error

import sideq
from sideq.status import Status
from sideq.train import descent, summary

X16 = np.linspace(0.05, 0.95, 16)[:, None]
XI = np.array([2.0])
LIN = sideq.linear()
SIG = sideq.single_index("sigmoid")


def test_descent_defaults_are_eta_0_1_and_100_epochs():
    theta0 = np.array([0.3, -0.4])
    traj = descent(LIN, theta0, xi=XI, x=X16)
    assert traj.theta.shape == (101, 2)
    theta1 = theta0 - 0.1 * linear_empirical_grad(theta0, X16[:, 0], 2.0 * X16[:, 0])
    np.testing.assert_allclose(np.asarray(traj.theta[1]), theta1, rtol=1e-13)


def test_descent_dtol_counts_to_the_first_epoch_near_the_line():
    theta0, eta, T = np.array([0.3, -0.4]), 0.05, 30
    x, y = X16[:, 0], 2.0 * X16[:, 0]
    th, dist = theta0.copy(), []
    for _ in range(T + 1):  # hand-written steps; distance to {(2a, 1 − a)} = |θ1 + 2θ2 − 2|/√5
        dist.append(abs(th[0] + 2 * th[1] - 2) / math.sqrt(5))
        th = th - eta * linear_empirical_grad(th, x, y)
    dist = np.array(dist)
    k = T // 2
    dtol = (dist[k - 1] + dist[k]) / 2 if dist[k] < dist[k - 1] else None
    assert dtol is not None and np.all(np.diff(dist) < 0)
    traj = descent(LIN, theta0, xi=XI, x=X16, eta=eta, epochs=T, dtol=dtol)
    assert int(traj.steps) == k and int(traj.status) == Status.CONVERGED


@pytest.mark.parametrize(
    "kwargs, prefix",
    [
        (dict(eta=0.0), "eta:"),  # a step size must be positive
        (dict(epochs=True), "epochs:"),  # a bool is not a count of epochs
        (dict(epochs=2.0), "epochs:"),
        (dict(backend="scipy"), "backend:"),
        (dict(optimizer="adam"), "optimizer:"),
        (dict(y=2.0 * X16), "y:"),  # y of shape (n, 1) would broadcast to (n, n)
        (dict(x=None, dist=sideq.uniform(), y=np.ones(16)), "y:"),  # targets are σ(ξ·x) under a law
        (dict(x=np.where(np.arange(16)[:, None] == 3, np.nan, X16)), "x:"),  # a NaN sample
    ],
)
def test_descent_rejects_bad_arguments(kwargs, prefix):
    args = dict(xi=XI, x=X16, eta=0.1, epochs=3)
    args.update(kwargs)
    raises_input_error(prefix, lambda: descent(SIG, np.array([0.1, 0.2]), **args))


@pytest.mark.parametrize("bad", [0, -3, "abc"])
def test_descent_rejects_a_bad_maxiter(bad):
    raises_input_error(
        "maxiter:", lambda: descent(SIG, np.array([0.1, 0.2]), xi=XI, x=X16, eta=0.1, epochs=3, maxiter=bad)
    )


def test_descent_rejects_complex_data():
    """Complex x or y is refused, not cast to its real part."""
    x = X16[:, 0].astype(complex)
    x[3] += 0.5j
    raises_input_error("x holds complex", lambda: descent(LIN, np.array([0.1, 0.2]), xi=XI, x=x, eta=0.1, epochs=3))
    y = np.zeros(16, complex)
    y[0] = 1j
    raises_input_error(
        "y holds complex", lambda: descent(LIN, np.array([0.1, 0.2]), xi=XI, x=X16, y=y, eta=0.1, epochs=3)
    )


def test_identity_single_index_singular_start_is_rejected():
    # single_index("identity") is the linear DEQ: θ2(0) = 1 is its singular hyperplane
    with pytest.raises(sideq.SingularModelError, match="^theta0"):
        descent(sideq.single_index("identity"), np.array([0.3, 1.0]), xi=XI, x=X16, eta=0.1, epochs=3)


def test_summary_reports_fail_step_zero_and_the_epochs():
    # maxiter = 2 from a cold start fails the run at epoch 0 (tests/test_dynamics.py)
    traj = descent(SIG, np.array([0.5, 0.5]), xi=XI, x=X16, eta=0.1, epochs=3, maxiter=2)
    s = summary(SIG, traj)
    assert s["status"] == "solver_failure" and s["fail_step"] == 0 and s["epochs"] == 3
    s = summary(LIN, descent(LIN, np.array([0.3, -0.4]), xi=XI, x=X16, eta=0.05, epochs=7))
    assert s["epochs"] == 7 and "fail_step" not in s and s["model"] == "linear"
