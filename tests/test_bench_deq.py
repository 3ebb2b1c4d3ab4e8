"""``sideq bench``'s general-DEQ section (sideq/bench.py: bench_deq_step and
its routes; benchmarks/peer_torchdeq.py, torchdeq's side).

Second routes: the gradient of the DEQ's risk by backpropagation through an
unrolled fixed-point iteration (no implicit function theorem anywhere), and
central finite differences of the float64 reference's risk.  One tiny
problem (k = 4, d = 3, n = 16) for every test, so that sideq's step compiles
once for the file.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sideq import bench, general

K, D, N, ETA = 4, 3, 16, 0.01


@pytest.fixture(scope="module")
def problem():
    return bench.deq_problem(K, D, N, w2_norm=0.5, seed=1)


@pytest.fixture(scope="module")
def unrolled(problem):
    """R̂ and ∇R̂ at θ(0) in float32 by jax.value_and_grad through 80 steps
    y ← tanh(W1x + W2y) from y = 0 (‖W2‖₂ = 0.5: the iteration and its
    derivative have converged to float32 rounding long before)."""
    x, t = jnp.asarray(problem["x"]), jnp.asarray(problem["t"])

    def risk(p):
        y = jax.lax.fori_loop(0, 80, lambda _, y: jnp.tanh(x @ p["W1"].T + y @ p["W2"].T), jnp.zeros_like(t))
        return jnp.mean(jnp.sum((y - t) ** 2, axis=1))

    loss, grads = jax.jit(jax.value_and_grad(risk))({key: jnp.asarray(problem[key]) for key in ("W1", "W2")})
    assert loss.dtype == jnp.float32
    return float(loss), {key: np.asarray(v, np.float64) for key, v in grads.items()}


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def test_sideq_step_gradient_equals_unrolled_backprop(problem, unrolled):
    loss_u, grads_u = unrolled
    step = bench.deq_sideq_step(general.multi_index("tanh", K, tol=1e-6), problem, ETA)
    theta0 = {key: jnp.asarray(problem[key]) for key in ("W1", "W2")}
    new, y, loss, grads, iterations = step(theta0, jnp.zeros((N, K), jnp.float32))
    assert y.dtype == jnp.float32 and int(iterations) > 1
    assert abs(float(loss) - loss_u) <= 1e-6 * loss_u
    for key in ("W1", "W2"):
        assert _rel(grads[key], grads_u[key]) <= 1e-5, key
        # the update is θ − η∇R̂ with that gradient
        np.testing.assert_allclose(np.asarray(new[key]), problem[key] - ETA * grads_u[key], rtol=0, atol=1e-6)


def test_floor_step_gradient_equals_unrolled_backprop(problem, unrolled):
    loss_u, grads_u = unrolled
    step = bench.deq_floor_step(problem, ETA, 1e-6)
    _, _, loss, grads, _ = step(
        {key: jnp.asarray(problem[key]) for key in ("W1", "W2")}, jnp.zeros((N, K), jnp.float32)
    )
    assert abs(float(loss) - loss_u) <= 1e-6 * loss_u
    for key in ("W1", "W2"):
        assert _rel(grads[key], grads_u[key]) <= 1e-5, key


def test_reference_gradient_against_finite_differences(problem, unrolled):
    ref = bench.deq_reference(problem)
    base = {key: np.asarray(problem[key], np.float64) for key in ("W1", "W2")}
    h = 1e-6
    for key in ("W1", "W2"):
        fd = np.zeros_like(base[key])
        for idx in np.ndindex(fd.shape):
            plus, minus = {k: v.copy() for k, v in base.items()}, {k: v.copy() for k, v in base.items()}
            plus[key][idx] += h
            minus[key][idx] -= h
            fd[idx] = (bench.deq_reference(problem, plus)["loss"] - bench.deq_reference(problem, minus)["loss"]) / (
                2 * h
            )
        assert _rel(ref[key], fd) <= 1e-7, key
        assert _rel(ref[key], unrolled[1][key]) <= 1e-5, key  # (float32 against float64)
    y = ref["y"]
    assert np.max(np.abs(np.tanh(problem["x"] @ base["W1"].T + y @ base["W2"].T) - y)) <= 1e-14


def test_torch_step_gradient_equals_unrolled_backprop(problem, unrolled):
    pytest.importorskip("torch")
    peer, reason = bench.load_peer()
    if peer is None:
        pytest.skip(reason)
    loss_u, grads_u = unrolled
    for settings in (
        dict(f_solver="fixed_point_iter", b_solver="fixed_point_iter"),
        dict(f_solver="anderson", b_solver="anderson", f_kwargs={"m": 4, "lam": 1e-10}),
        dict(f_solver="simple_fixed_point_iter", b_solver="fixed_point_iter", fixed_iterations=(40, None)),
    ):
        stepper = peer.TorchStep(problem, eta=ETA, tol=1e-6, **settings)
        loss, grads, _ = stepper.loss_and_grad()
        assert abs(loss - loss_u) <= 1e-6 * loss_u, settings
        for key in ("W1", "W2"):
            assert _rel(grads[key], grads_u[key]) <= 1e-5, (settings, key)
        info = stepper.step()  # (the update: θ − η∇R̂)
        assert info["residual_rel"] < 1e-6
        for key in ("W1", "W2"):
            np.testing.assert_allclose(stepper.params()[key], problem[key] - ETA * grads_u[key], rtol=0, atol=1e-6)


def test_deq_section_output(problem, monkeypatch, capsys):
    reason = "torch/torchdeq not importable (ModuleNotFoundError: No module named 'torch')"
    monkeypatch.setattr(bench, "load_peer", lambda: (None, reason))
    r = bench.bench_deq_step(True, problem=problem, steps=2, runs=2, routes=("sideq_solve", "jax_floor"))
    assert r["name"].startswith(f"multi-neuron DEQ training step (tanh, k={K}, d={D}, n={N},")
    assert set(r["routes"]) == {"sideq_solve", "jax_floor"}
    for name, entry in r["routes"].items():
        assert entry["s_per_step"] == np.median(entry["s_per_step_each"]) and len(entry["s_per_step_each"]) == 2
        assert entry["s_per_step"] > 0 and entry["max_iterations"] >= 2
        assert entry["theta_T_rel_to_sideq_solve"] <= 1e-5  # (the same two steps: the same θ(2))
        assert r["agreement_at_theta0"][name]["grad_rel"] <= 1e-5
    assert r["torch_skipped"] == reason and not any(key.startswith("ratio_") for key in r)
    json.dumps(r)  # (sideq bench --json)

    report = {
        "machine": {"cpu": "cpu", "cores": 2, "jax": jax.__version__, "backend": "cpu", "xla_options": None},
        "results": [r],
    }
    monkeypatch.setattr(bench, "run", lambda quick: report)
    assert bench.main(quick=True, as_json=False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == r["name"]
    assert f"  {'torch_skipped':<32} {reason}" in lines
    assert any(line.startswith("      route ") and "sideq.general.solve" in line for line in lines)
    assert bench.main(quick=True, as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["torch_skipped"] == reason
