"""The extended experiments' pieces (``sideq.paper.extended``), each against a second route.

``run_all(quick=True)`` takes longer than this suite's budget for one test
(about a minute on 2 cores), so the pieces are tested instead; the smallest
experiment (the explicit neuron) is run end to end.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sideq
from sideq.paper import extended


def test_explicit_neuron_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.random((50, 2))
    y = 1 / (1 + np.exp(-(x @ np.array([2.0, -1.0]))))
    theta = np.array([0.3, 0.7])
    g = np.asarray(jax.grad(extended.explicit_neuron_loss)(jnp.asarray(theta), jnp.asarray(x), jnp.asarray(y)))

    def loss_np(t):  # independent numpy loss
        return np.mean((1 / (1 + np.exp(-(x @ t))) - y) ** 2)

    h = 1e-6
    fd = np.array([(loss_np(theta + h * e) - loss_np(theta - h * e)) / (2 * h) for e in np.eye(2)])
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-12)


def test_explicit_neuron_descent_is_plain_gradient_descent():
    rng = np.random.default_rng(1)
    x = rng.random((40, 1))
    y = 1 / (1 + np.exp(-2 * x[:, 0]))
    ths, losses = extended.explicit_neuron_descent(jnp.asarray([0.1]), jnp.asarray(x), jnp.asarray(y),
                                                   jnp.asarray(0.5), 3)
    ths, losses = np.asarray(ths), np.asarray(losses)
    assert ths.shape == (4, 1) and losses.shape == (4,)
    t = np.array([0.1])
    for k in range(3):  # by hand: dL/dθ = mean(2 (s - y) s (1 - s) x)
        s = 1 / (1 + np.exp(-(x @ t)))
        assert losses[k] == pytest.approx(np.mean((s - y) ** 2), rel=1e-12)
        t = t - 0.5 * np.mean((2 * (s - y) * s * (1 - s))[:, None] * x, axis=0)
        np.testing.assert_allclose(ths[k + 1], t, rtol=1e-12)
    assert losses[-1] < losses[0]


def test_phase_portrait_field_is_minus_sideq_gradient_and_closed_form():
    thetas = np.array([[0.3, 0.2], [-1.0, 2.5], [2.0, -1.0], [0.5, 1.2]])
    dist = sideq.uniform(0.0, 1.0, 1)
    F = extended.flow_field(sideq.linear(), thetas)
    # closed form of ERRATA.md §1 with E[X^2] = 1/3
    ref = -extended.linear_gradient_closed_form(thetas, 2.0, 1.0 / 3.0)
    np.testing.assert_allclose(F, ref, rtol=1e-10)
    # sigmoid: against central finite differences of sideq's population risk
    model = sideq.single_index("sigmoid")
    th = np.array([1.0, 0.5])
    F = extended.flow_field(model, th[None])[0]
    h = 1e-5
    R = lambda t: float(sideq.population_risk(model, jnp.asarray(t), jnp.asarray([2.0]), dist))  # noqa: E731
    fd = np.array([(R(th + h * e) - R(th - h * e)) / (2 * h) for e in np.eye(2)])
    np.testing.assert_allclose(F, -fd, rtol=1e-6)


def test_corrected_limit_point_is_on_the_sphere_and_line_on_the_right_side():
    for th0 in [(0.3, 0.2), (0.5, 1.01), (-0.7, 1.6), (0.9, -0.4)]:
        lim, alpha = extended.limit_point(th0, [2.0])
        r0 = math.hypot(th0[0], th0[1] - 1)
        assert math.hypot(lim[0], lim[1] - 1) == pytest.approx(r0)
        assert lim[0] == pytest.approx(2 * alpha) and lim[1] == pytest.approx(1 - alpha)
        assert np.sign(1 - lim[1]) == np.sign(1 - th0[1])  # Lemma 3.2: theta2 stays on its side of 1


def test_limit_point_matches_the_flow():
    from sideq.gradient_flow import flow

    th0 = np.array([0.5, 1.3])
    tr = flow(sideq.linear(), th0, xi=[2.0], dist=sideq.uniform(0.0, 1.0, 1), t1=50.0, gtol=1e-11)
    lim, _ = extended.limit_point(th0, [2.0])
    np.testing.assert_allclose(np.asarray(tr.theta[-1]), lim, atol=1e-8)


def test_step_size_threshold_pieces():
    out = extended.step_size_threshold(2.0, delta1=0.5, delta2=0.5, n_theta1=9, n_theta2=5, nodes=64)
    # gamma = sigma'(z_max), z_max = (1 + delta1)|xi| + M delta2, M = (1/2 + L (1 + delta1)|xi|)/(1 - L delta2)
    M = (0.5 + 0.25 * 1.5 * 2) / (1 - 0.125)
    z = 1.5 * 2 + M * 0.5
    s = 1 / (1 + math.exp(-z))
    assert out["M"] == pytest.approx(M) and out["gamma"] == pytest.approx(s * (1 - s))
    # rho: at theta = (0, 0), y = 1/2, E[(u'(X, 1/2))^2] has min eigenvalue of [[1/3, 1/4], [1/4, 1/4]]
    lmin00 = np.linalg.eigvalsh(np.array([[1 / 3, 1 / 4], [1 / 4, 1 / 4]]))[0]
    assert 0 < out["rho"] <= lmin00 + 1e-12
    assert out["lambda1"] == pytest.approx(2 * out["rho"] * out["gamma"] ** 2 / (1 + 0.125))
    assert out["threshold"] == pytest.approx(out["lambda1"] / (2 * out["lambda2"]))
    assert 0 < out["threshold"] < 1e-2
    # a second route: sideq.paper.theory's rho and fourth-moment sup over the same (printed) Theta
    from sideq.paper import theory as T

    t9 = T.theorem_3_9(sideq.single_index("sigmoid"), [2.0], sideq.uniform(0.0, 1.0, 1), delta2=0.5,
                       delta1=0.5, grid=9, region="printed")
    assert out["rho"] == pytest.approx(t9.t38.rho, rel=1e-2)
    assert out["sup_fourth_moment"] == pytest.approx(t9.moment4, rel=1e-2)
    assert out["threshold"] == pytest.approx(t9.threshold, rel=2e-2)


def test_explicit_neuron_experiment_end_to_end(tmp_path):
    res = extended.run_one("explicit_neuron", str(tmp_path), quick=True, epochs=200)
    assert res["settings"]["epochs"] == 200
    for f in res["files"]:
        assert (tmp_path / f.split("/")[-1]).stat().st_size > 1000
    json.dumps(res)  # JSON-able
    for kind in ("deq", "explicit"):
        assert 0 < res["results"][kind]["loss_final"] < 0.05  # from about 0.06 at theta(0)


def test_basin_counts_non_unique_runs_that_reach_the_target(tmp_path):
    # 4 x 4 starts: the top row starts non-unique (θ2 ≥ 4 for the sigmoid),
    # leaves that regime and reaches 1e-6; it must count as reached, and its
    # status is that of its end, not NON_UNIQUE.
    res = extended.run_one("basin", str(tmp_path), quick=True, grid_points=4)
    s = res["sigmoid"]
    assert s["non_unique_reached_1e_6"] >= 1
    assert s["status_counts"].get("non_unique", 0) == 0
    assert s["reached_1e_6"] == 16 and s["fraction_reached_1e_6"] == 1.0
    assert s["epochs_to_1e_6_quantiles"][-1] >= s["epochs_to_1e_6_max_non_unique"]
    json.dumps(res)


def test_mask_outline_is_the_boundary_of_the_cells():
    m = np.zeros((3, 3), bool)
    m[1, 1] = True  # one cell: its four sides
    segs = extended._mask_outline(m, [0, 3, 0, 3])
    assert sorted(tuple(map(tuple, s)) for s in np.asarray(segs).tolist()) == sorted(
        [((1, 1), (1, 2)), ((2, 1), (2, 2)), ((1, 1), (2, 1)), ((1, 2), (2, 2))])
    m[0, 0] = m[1, 0] = True  # an L of three cells (one at the box's corner): perimeter 8
    assert len(extended._mask_outline(m, [0, 3, 0, 3])) == 8


def test_tex_sci_has_no_spaced_minus():
    assert extended._tex_sci(4.03e-4) == r"4.0\times10^{-4}"
    assert extended._tex_sci(12345.0, 2) == r"1.23\times10^{4}"


@pytest.mark.parametrize("kind", ["file", "under_file"])
def test_script_bad_out_is_one_line_exit_2(tmp_path, capsys, kind):
    f = tmp_path / "afile"
    f.write_text("x")
    out = f if kind == "file" else f / "sub"
    assert extended.script_main("explicit_neuron", ["--out", str(out), "--quick"]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and "--out" in lines[0] and "folder" in lines[0]
