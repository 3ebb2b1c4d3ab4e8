"""Sweeps of general DEQs (sideq.general): each row against a single
general.descent run, against the scalar linear DEQ's sweep at k = 1, against
the closed-form optimum set of the multi-neuron linear DEQ, the population
risk against gradient descent in numpy, chunking, resume, failure isolation,
the params' names in results.npz and the input checks.

One model, one epoch count and one chunk size are shared by most tests, so
the vmapped descent compiles once for them; the models use fixed-point
iteration (ρ(W2) < 1 here), which compiles in about half the time of the
default Newton solver."""

import numpy as np
import pytest

import sideq
from sideq.errors import SideqInputError
from sideq.general import deq, descent, multi_linear
from sideq.status import Status
from sideq.sweep import load_results, make_inits, params_from_results, run_sweep

SOLVER = "fixed_point"
ML2 = multi_linear(2, solver=SOLVER)
K, D, N, EPOCHS, CHUNK = 6, 3, 8, 80, 3  # two chunks of three runs
X = np.sqrt(N) * np.linalg.qr(np.random.default_rng(0).standard_normal((N, D)))[0]  # XᵀX/n = I
XI = np.array([[1.0, -0.5, 0.3], [0.2, 0.8, -0.6]])
INITS = make_inits("normal:0,0.2", K, model=ML2, d=D, seed=1)
ETA = np.full(K, 0.1)
KW = dict(xi=XI, x=X, epochs=EPOCHS, chunk=CHUNK, pair_eta=True, progress=False)
THETA = ["theta0/W1", "theta0/W2", "theta_final/W1", "theta_final/W2"]


@pytest.fixture(scope="module")
def sweep():
    """The shared sweep, in memory."""
    return run_sweep(ML2, inits=INITS, eta=ETA, **KW).arrays


def _row(tree, r):
    return {key: value[r] for key, value in tree.items()}


def test_each_row_is_the_single_descent_run(sweep):
    assert sorted(sweep) == sorted(
        THETA + ["eta", "loss_final", "grad_norm_final", "residual_final", "status", "fail_step", "steps"]
    )
    assert sweep["theta_final/W1"].shape == (K, 2, D) and sweep["theta_final/W2"].shape == (K, 2, 2)
    for r in range(K):
        tr = descent(ML2, _row(INITS, r), x=X, xi=XI, eta=ETA[r], epochs=EPOCHS)
        for key in ("W1", "W2"):
            np.testing.assert_array_equal(sweep[f"theta0/{key}"][r], INITS[key][r])
            np.testing.assert_allclose(
                sweep[f"theta_final/{key}"][r], np.asarray(tr.params[key][-1]), rtol=1e-12, atol=1e-12
            )
        for field, value in (
            ("loss_final", tr.loss),
            ("grad_norm_final", tr.grad_norm),
            ("residual_final", tr.residual),
        ):
            np.testing.assert_allclose(sweep[field][r], float(value[-1]), rtol=1e-12, atol=1e-15, err_msg=field)
        assert (sweep["status"][r], sweep["fail_step"][r], sweep["steps"][r]) == (
            int(tr.status),
            int(tr.fail_step),
            int(tr.steps),
        )


def test_final_params_reach_the_closed_form_optimum_set(sweep):
    """R̂ = (1/n) Σ ‖(A − Ξ)xᵢ‖² = ‖A − Ξ‖²_F (XᵀX/n = I) with A = (I − W2)⁻¹W1:
    zero exactly on the set A = Ξ; by numpy from the stored params."""
    eye = np.eye(2)
    for r in range(K):
        a0 = np.linalg.solve(eye - INITS["W2"][r], INITS["W1"][r])
        a = np.linalg.solve(eye - sweep["theta_final/W2"][r], sweep["theta_final/W1"][r])
        assert np.linalg.norm(a - XI) < 1e-6 * np.linalg.norm(a0 - XI), r
        # (the root of the risk: the residuals' size, to their rounding)
        np.testing.assert_allclose(np.sqrt(sweep["loss_final"][r]), np.linalg.norm(a - XI), rtol=0, atol=1e-14)
    assert np.all(sweep["status"] == Status.MAX_STEPS)


def test_chunked_equals_unchunked_bit_for_bit(sweep):
    whole = run_sweep(ML2, inits=INITS, eta=ETA, **dict(KW, chunk=K)).arrays
    for key in sweep:
        np.testing.assert_array_equal(whole[key], sweep[key], err_msg=key)


def test_resume_after_one_chunk_gives_the_uninterrupted_file(tmp_path, sweep):
    def stop(info):
        raise KeyboardInterrupt  # killed once the first chunk is on disk

    with pytest.raises(KeyboardInterrupt):
        run_sweep(ML2, inits=INITS, eta=ETA, out_dir=tmp_path / "killed", **dict(KW, progress=stop))
    assert not (tmp_path / "killed" / "results.npz").exists()
    resumed = run_sweep(ML2, inits=INITS, eta=ETA, out_dir=tmp_path / "killed", resume=True, **KW)
    assert resumed.summary["runs_computed"] == K - CHUNK
    run_sweep(ML2, inits=INITS, eta=ETA, out_dir=tmp_path / "straight", **KW)
    assert (tmp_path / "killed" / "results.npz").read_bytes() == (tmp_path / "straight" / "results.npz").read_bytes()
    loaded = load_results(tmp_path / "killed")
    assert list(loaded)[:3] == ["theta0/W1", "theta0/W2", "eta"]  # the file's order
    for key in sweep:
        np.testing.assert_array_equal(loaded[key], sweep[key], err_msg=key)
    final = params_from_results(loaded)
    assert sorted(final) == ["W1", "W2"]
    np.testing.assert_array_equal(final["W2"], sweep["theta_final/W2"])
    start = params_from_results(loaded, "theta0", like=_row(INITS, 0))
    np.testing.assert_array_equal(start["W1"], INITS["W1"])
    s = resumed.summary
    assert s["settings"]["params"] == {"W1": [2, D], "W2": [2, 2]} and s["settings"]["p"] == 10
    assert s["status_counts"]["max_steps"] == K and "distance_final" not in s
    with pytest.raises(SideqInputError, match=r"resume: settings differ .*epochs"):
        run_sweep(ML2, inits=INITS, eta=ETA, out_dir=tmp_path / "killed", resume=True, **dict(KW, epochs=EPOCHS + 1))


def test_singular_and_diverging_runs_are_data_and_leave_the_others_alone(sweep):
    bad = {key: value.copy() for key, value in INITS.items()}
    bad["W2"][1] = np.eye(2)  # I − W2 = 0: singular at θ(0)
    eta = ETA.copy()
    eta[4] = 1e9  # the first step throws the params past the divergence bound
    res = run_sweep(ML2, inits=bad, eta=eta, **KW)
    a = res.arrays
    assert (a["status"][1], a["fail_step"][1]) == (Status.SINGULAR, 0)
    assert (a["status"][4], a["fail_step"][4]) == (Status.DIVERGED, 1)
    assert np.all(np.isfinite(a["theta_final/W1"][4]))  # frozen at its last finite iterate
    others = np.array([0, 2, 3, 5])
    for key in sweep:
        if key not in ("theta0/W2", "eta"):
            np.testing.assert_array_equal(a[key][others], sweep[key][others], err_msg=key)
    s = res.summary
    assert s["failed"] == 2 and s["status_counts"]["singular"] == 1 and s["status_counts"]["diverged"] == 1
    np.testing.assert_allclose(s["loss_final"]["max"], sweep["loss_final"][others].max())


def test_k1_multi_linear_sweep_is_the_scalar_linear_sweep():
    """multi_linear(1) with W1 = θ1, W2 = θ2 is the linear DEQ of Eq. (2); on
    the population risk of Unif[0, 1] (Eq. (5): general_risk's closed form for
    k outputs against risk.py's)."""
    ml1, law = multi_linear(1, solver=SOLVER), sideq.uniform(0.0, 1.0, 1)
    tree = make_inits("normal:0,0.3", 4, model=ml1, d=1, seed=3)
    flat = make_inits("normal:0,0.3", 4, 2, seed=3)
    np.testing.assert_array_equal(np.concatenate([tree["W1"].reshape(4, 1), tree["W2"].reshape(4, 1)], 1), flat)
    kw = dict(xi=[2.0], dist=law, eta=0.2, epochs=20, progress=False)
    general = run_sweep(ml1, inits=tree, **kw).arrays
    scalar = run_sweep(sideq.linear(), inits=flat, **kw).arrays
    assert "residual_final" not in general
    theta = np.concatenate([general["theta_final/W1"].reshape(4, 1), general["theta_final/W2"].reshape(4, 1)], 1)
    np.testing.assert_allclose(theta, scalar["theta_final"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(general["loss_final"], scalar["loss_final"], rtol=1e-10, atol=1e-18)
    np.testing.assert_array_equal(general["status"], scalar["status"])


def test_population_sweep_is_numpy_gradient_descent_on_eq5():
    """R = tr((A − Ξ) M (A − Ξ)ᵀ), M = E[XXᵀ] = I/12 + 11ᵀ/4 for Unif[0, 1]³,
    A = (I − W2)⁻¹W1: ∂R/∂W1 = (I − W2)⁻ᵀG, ∂R/∂W2 = (I − W2)⁻ᵀGAᵀ with
    G = 2(A − Ξ)M, stepped in numpy.  A singular and a diverging run among
    them carry their statuses."""
    bad = {key: value.copy() for key, value in INITS.items()}
    bad["W2"][1] = np.eye(2)
    eta = np.full(K, 0.05)  # (slow enough that R(θ(T)) is still far from 0)
    eta[4] = 1e9
    res = run_sweep(
        ML2,
        inits=bad,
        eta=eta,
        dist=sideq.uniform(0.0, 1.0, D),
        xi=XI,
        epochs=EPOCHS,
        chunk=CHUNK,
        pair_eta=True,
        progress=False,
    )
    a = res.arrays
    assert (a["status"][1], a["fail_step"][1]) == (Status.SINGULAR, 0)
    assert (a["status"][4], a["fail_step"][4]) == (Status.DIVERGED, 1)
    np.testing.assert_array_equal(a["theta_final/W2"][1], np.eye(2))  # frozen where it failed
    M = np.eye(D) / 12 + np.full((D, D), 0.25)
    eye = np.eye(2)
    for r in (0, 2, 3, 5):
        W1, W2 = INITS["W1"][r].copy(), INITS["W2"][r].copy()
        for _ in range(EPOCHS):
            inv_t = np.linalg.inv(eye - W2).T
            A = np.linalg.solve(eye - W2, W1)
            G = 2 * (A - XI) @ M
            W1, W2 = W1 - eta[r] * inv_t @ G, W2 - eta[r] * inv_t @ G @ A.T
        np.testing.assert_allclose(a["theta_final/W1"][r], W1, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a["theta_final/W2"][r], W2, rtol=1e-10, atol=1e-12)
        err = np.linalg.solve(eye - W2, W1) - XI
        assert 1e-4 < a["loss_final"][r] < 1  # (the trace form cancels for R near 0)
        np.testing.assert_allclose(a["loss_final"][r], np.trace(err @ M @ err.T), rtol=1e-10)
        assert a["status"][r] == Status.MAX_STEPS
    assert res.summary["settings"]["route"] == "closed_form" and res.summary["failed"] == 2


_TWO_DEVICES = """
import sys
import jax
import numpy as np
import sideq
from sideq.sweep import make_inits
x = np.random.default_rng(0).normal(size=(16, 2))
xi = np.array([[1.0, -0.5], [0.3, 0.8]])
out = {}
for solver in ("anderson", "newton"):
    model = sideq.multi_index("tanh", 2, solver=solver)
    inits = make_inits("normal:0,0.4", 8, model=model, d=2, seed=3)
    res = sideq.run_sweep(model, inits=inits, x=x, xi=xi, eta=0.2, epochs=30, chunk=8, progress=False)
    out.update({f"{solver}/{k}": v for k, v in res.arrays.items()})
    out[f"{solver}/devices"] = np.array(res.summary["devices"])
np.savez(sys.argv[1], **out)
"""


@pytest.mark.slow
def test_two_cpu_devices_give_the_one_device_sweep(tmp_path):
    """Each device iterates its own runs' solves (shard_map), for jaxopt's and
    for optimistix's solvers (whose linear solves run inside shard_map): two
    CPU devices in a fresh process give the one-device sweep bit for bit."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    flags = env.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count", "--ignored")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
    path = tmp_path / "two.npz"
    proc = subprocess.run([sys.executable, "-c", _TWO_DEVICES, str(path)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    two = np.load(path)
    x = np.random.default_rng(0).normal(size=(16, 2))
    xi = np.array([[1.0, -0.5], [0.3, 0.8]])
    for solver in ("anderson", "newton"):
        assert int(two[f"{solver}/devices"]) == 2
        model = sideq.multi_index("tanh", 2, solver=solver)
        inits = make_inits("normal:0,0.4", 8, model=model, d=2, seed=3)
        one = run_sweep(model, inits=inits, x=x, xi=xi, eta=0.2, epochs=30, chunk=8, progress=False).arrays
        assert set(one) == {key.split("/", 1)[1] for key in two.files if key.startswith(solver + "/")} - {"devices"}
        for key, value in one.items():
            np.testing.assert_array_equal(two[f"{solver}/{key}"], value, err_msg=f"{solver}: {key}")


def test_params_names_of_nested_pytrees_and_refusals():
    arrays = {
        "theta_final/enc/A": np.zeros((2, 3)),
        "theta_final/enc/b": np.ones((2,)),
        "theta_final/B": np.full((2, 2), 2.0),
        "eta": np.ones(2),
    }
    tree = params_from_results(arrays)
    assert sorted(tree) == ["B", "enc"] and sorted(tree["enc"]) == ["A", "b"]
    like = [{"A": 0, "b": 0}, 0]  # a list: rebuilt with its own structure from the same names
    listed = {"theta0/0/A": np.zeros(2), "theta0/0/b": np.ones(2), "theta0/1": np.full(2, 3.0)}
    back = params_from_results(listed, "theta0", like=like)
    assert isinstance(back, list) and back[1][0] == 3.0 and back[0]["b"][0] == 1.0
    g = deq(lambda p, x, y: p["a/b"] @ x + 0.5 * y, dim=2)
    with pytest.raises(SideqInputError, match=r"inits\['a/b'\]: the key 'a/b' cannot name a leaf"):
        run_sweep(g, inits={"a/b": np.zeros((2, 2, D))}, x=X, y=np.zeros((N, 2)), progress=False)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda t: {"W1": t["W1"]}, r"inits: missing key 'W2' of shape \(K, 2, 2\); multi_linear\(k=2\) with d = 3"),
        (lambda t: dict(t, W1=t["W1"][:, :, :2]), r"inits\['W1'\]: expected shape \(K, 2, 3\) .* got \(6, 2, 2\)"),
        (lambda t: dict(t, W1=t["W1"][0]), r"inits\['W1'\]: expected shape \(K, 2, 3\) .*add the leading K axis"),
        (lambda t: dict(t, W2=t["W2"][:5]), r"inits\['W2'\]: has 5 runs .* but inits\['W1'\] has 6"),
        (lambda t: dict(t, c=t["W2"]), r"inits: unexpected key 'c'"),
        (
            lambda t: dict(t, W2=np.where(np.arange(K)[:, None, None] == 2, np.nan, t["W2"])),
            r"inits\['W2'\]: run 2 is not finite",
        ),
        (lambda t: t["W1"], r"inits: expected a dict \{'W1': \(K, 2, 3\), 'W2': \(K, 2, 2\)\}"),
    ],
)
def test_bad_inits_name_the_key_and_the_shape(change, match):
    with pytest.raises(SideqInputError, match=match):
        run_sweep(ML2, inits=change(INITS), eta=0.1, **dict(KW, pair_eta=False))


def test_bad_problem_arguments():
    kw = dict(inits=INITS, eta=0.1, epochs=5, progress=False)
    for extra, match in [
        (dict(xi=XI, x=X, dist=sideq.uniform(0, 1, D)), "x/dist: give exactly one"),
        (dict(xi=XI[:, :2], dist=sideq.uniform(0, 1, D)), r"xi: expected shape \(2, 3\) .* a law in d = 3"),
        (dict(xi=XI, x=X, dtol=1e-3), "dtol: a DEQ sweep measures no distance"),
        (dict(xi=XI, x=X, backend="jaxopt"), "backend: a DEQ carries its own solver"),
        (dict(xi=XI, x=X, y=np.zeros((N, 2))), "y/xi: give exactly one"),
        (dict(xi=XI[:, :2], x=X), r"xi: expected shape \(2, 3\)"),
        (dict(x=X, y=np.zeros((N, 3))), r"y: expected shape \(8, 2\)"),
    ]:
        with pytest.raises(SideqInputError, match=match):
            run_sweep(ML2, **kw, **extra)
    g = deq(lambda p, x, y: p["A"] @ x + 0.5 * y, dim=2)
    with pytest.raises(SideqInputError, match="xi: .* is a general DEQ with no target"):
        run_sweep(g, inits={"A": INITS["W1"]}, x=X, xi=XI, progress=False)
    with pytest.raises(SideqInputError, match="dist: .* is a general DEQ with no target"):
        run_sweep(g, inits={"A": INITS["W1"]}, dist=sideq.uniform(0, 1, D), xi=XI, progress=False)
    with pytest.raises(SideqInputError, match=r"inits: g\(params, x, y\) failed for one run's params"):
        run_sweep(g, inits={"A": INITS["W2"]}, x=X, y=np.zeros((N, 2)), progress=False)


def test_pytree_inits_draws():
    """normal: around params is params + STD·N(0, I) entry by entry (means and
    variances within 5 standard errors); ball: inside the ball of all entries."""
    around = {"W1": XI, "W2": np.array([[0.1, 0.0], [0.0, -0.2]])}
    n = 20_000
    draws = make_inits("normal:0,0.5", n, model=ML2, around=around, seed=4)
    for key, centre in around.items():
        assert draws[key].shape == (n,) + centre.shape
        assert np.all(np.abs(draws[key].mean(0) - centre) < 5 * 0.5 / np.sqrt(n))
        assert np.all(np.abs(draws[key].var(0, ddof=1) - 0.25) < 5 * 0.25 * np.sqrt(2 / (n - 1)))
    ball = make_inits("ball:0,0.3", 500, around=around, seed=5)
    radius = np.sqrt(sum(np.sum((ball[k] - around[k]) ** 2, axis=(1, 2)) for k in around))
    assert radius.max() <= 0.3 * (1 + 1e-12) and radius.max() > 0.25
    zeros = make_inits("normal:0,0", 2, model=multi_linear(2, bias=True), d=4)
    assert {k: v.shape for k, v in zeros.items()} == {"W1": (2, 2, 4), "W2": (2, 2, 2), "b": (2, 2)}
    np.testing.assert_array_equal(zeros["b"], 0.0)
    with pytest.raises(SideqInputError, match="around: .* is a general DEQ"):
        make_inits("normal:0,1", 2, model=deq(lambda p, x, y: y, dim=2))
    with pytest.raises(SideqInputError, match=r"around\['W2'\]: expected shape \(2, 2\)"):
        make_inits("normal:0,1", 2, model=ML2, around={"W1": XI, "W2": np.zeros(2)})
    with pytest.raises(SideqInputError, match="p: give p for flat theta, or model=/around="):
        make_inits("normal:0,1", 2, 10, model=ML2, d=D)
