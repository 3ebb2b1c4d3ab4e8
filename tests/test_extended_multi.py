"""The multi-neuron extended experiments: ext8's descent on the population risk
of the two-output linear DEQ against the same descent written in numpy from
Eq. (5) with k outputs, and the figure's bookkeeping (failures, the sign of
det(I - W2))."""

import json

import numpy as np

import sideq
from sideq.paper import extended


def _numpy_descent(w1, w2, xi, m2, eta, epochs):
    """Gradient descent on R = tr((A - Xi) M (A - Xi)^T), A = (I - W2)^-1 W1:
    dR/dW1 = (I - W2)^-T G, dR/dW2 = (I - W2)^-T G A^T, G = 2 (A - Xi) M."""
    eye = np.eye(len(w2))

    def risk_and_grads(w1, w2):
        inv = np.linalg.inv(eye - w2)
        a = inv @ w1
        e = a - xi
        g = 2 * e @ m2
        return float(np.trace(e @ m2 @ e.T)), inv.T @ g, inv.T @ g @ a.T

    losses = []
    for _ in range(epochs):
        loss, g1, g2 = risk_and_grads(w1, w2)
        losses.append(loss)
        w1, w2 = w1 - eta * g1, w2 - eta * g2
    losses.append(risk_and_grads(w1, w2)[0])
    return w1, w2, np.array(losses)


def test_population_descent_matches_numpy_on_eq5():
    model = sideq.multi_linear(2)
    xi = np.array([[2.0], [1.0]])
    law = sideq.uniform(0.0, 1.0, 1)  # E[X^2] = 1/3, E[X] = 1/2; no bias, so only E[XX^T] enters
    for a, b in [(0.3, -0.5), (2.0, 2.5), (-1.0, 1.8)]:
        w1, w2 = np.array([[0.1], [0.1]]), np.diag([a, b])
        params, loss, failed = extended.multi_population_descent(model, {"W1": w1, "W2": w2}, xi, law, 0.05, 30)
        n1, n2, nloss = _numpy_descent(w1, w2, xi, np.array([[1 / 3]]), 0.05, 30)
        assert int(failed) == -1
        np.testing.assert_allclose(np.asarray(loss), nloss, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(np.asarray(params["W2"]), n2, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(np.asarray(params["W1"]), n1, rtol=1e-10, atol=1e-14)


def test_basin_map_counts_sign_changes_and_writes_the_figure(tmp_path):
    res = extended.run_one("multi_linear_basins", str(tmp_path), grid_points=4, epochs=10)
    out = res["results"]
    assert out["runs"] == 16 and out["failed"] == 0
    assert 0 <= out["crossed_singular_set"] <= 16
    assert (tmp_path / "ext8_multi_linear_basins.png").stat().st_size > 10_000
    json.dumps(res)  # the summary is JSON
