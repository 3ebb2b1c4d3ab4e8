"""Sweeps: vmapped runs against single runs, failure isolation, chunking, resume
after SIGKILL, 1 vs 4 devices, and the initialization specs."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

import sideq
from sideq.errors import SideqInputError
from sideq.status import Status
from sideq.sweep import FIELDS, _summarize, load_results, make_inits, run_sweep
from sideq.train import descent

SIG = sideq.single_index("sigmoid")
LIN = sideq.linear()
XI = np.array([2.0])
X16 = np.linspace(0.03, 0.97, 16)  # tiny empirical problem
UNIF8 = sideq.uniform(0.0, 1.0, 1, nodes=8)  # tiny population problem
EPOCHS = 30
FLOATS = [k for k in FIELDS if k not in ("status", "fail_step", "steps")]

# A script run in a subprocess (float64, its own devices): the sweep of the
# resume and device tests, written to sys.argv[1].
# With a fifth argument it pauses after each chunk, so that a kill lands mid-sweep.
_SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np, jax, sideq
    from sideq.sweep import make_inits, run_sweep
    assert jax.config.jax_enable_x64
    print("devices", len(jax.devices()), flush=True)
    pause = (lambda info: time.sleep(float(sys.argv[5]))) if len(sys.argv) > 5 else False
    run_sweep(sideq.single_index("sigmoid"), xi=[2.0], x=np.linspace(0.03, 0.97, 16),
              inits=make_inits("normal:0,0.5", int(sys.argv[3]), 2, seed=7), eta=[0.1, 0.7],
              epochs=int(sys.argv[4]), chunk=int(sys.argv[2]), out_dir=sys.argv[1], progress=pause)
""")


def _subprocess(args, devices=1, same_backend=False):
    """The sweep script in a fresh process: on CPU with `devices` host devices, or, with
    `same_backend`, on this process's backend (a GPU's bits differ from the CPU's)."""
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    if same_backend and jax.default_backend() != "cpu":
        env.pop("JAX_PLATFORMS")
    flags = env.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count", "--ignored")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _script_sweep(out_dir, chunk, K, epochs, **kw):
    """The subprocess's sweep, in this process."""
    return run_sweep(
        SIG,
        xi=[2.0],
        x=X16,
        inits=make_inits("normal:0,0.5", K, 2, seed=7),
        eta=[0.1, 0.7],
        epochs=epochs,
        chunk=chunk,
        out_dir=out_dir,
        progress=False,
        **kw,
    )


# ----------------------------------------------------------------------------
# Runs


@pytest.mark.parametrize("problem", ["empirical-sigmoid", "population-linear"])
def test_vmapped_runs_equal_single_descent_runs(problem):
    model, kw = (SIG, dict(x=X16)) if problem == "empirical-sigmoid" else (LIN, dict(dist=UNIF8))
    inits = make_inits("normal:0,0.3", 3, 2, seed=1)
    etas = [0.02, 0.1]
    res = run_sweep(model, xi=XI, inits=inits, eta=etas, epochs=EPOCHS, chunk=4, progress=False, **kw)
    a = res.arrays
    # Away from R = 0 exactly, where "R <= ltol = 0" would hang on the last bit.
    assert np.all(a["loss_final"] > 1e-30)
    assert a["theta_final"].shape == (6, 2) and a["theta_final"].dtype == np.float64
    for r in range(6):  # product order: run r = i*E + j
        i, j = divmod(r, 2)
        np.testing.assert_array_equal(a["theta0"][r], inits[i])
        assert a["eta"][r] == etas[j]
        tr = descent(model, inits[i], xi=XI, eta=etas[j], epochs=EPOCHS, **kw)
        np.testing.assert_allclose(a["theta_final"][r], np.asarray(tr.theta[-1]), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(a["loss_final"][r], float(tr.loss[-1]), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(a["distance_final"][r], float(tr.distance[-1]), rtol=1e-12, atol=1e-15)
        assert (a["status"][r], a["fail_step"][r], a["steps"][r]) == (int(tr.status), int(tr.fail_step), int(tr.steps))
    assert res.summary["runs"] == 6 and res.summary["K"] == 3 and res.summary["n_eta"] == 2


def test_paired_etas_and_tolerance_steps():
    inits = make_inits("normal:0,0.3", 4, 2, seed=2)
    etas = np.array([0.05, 0.1, 0.2, 0.4])
    res = run_sweep(
        LIN, xi=XI, dist=UNIF8, inits=inits, eta=etas, pair_eta=True, epochs=EPOCHS, dtol=1e-3, chunk=4, progress=False
    )
    np.testing.assert_array_equal(res.arrays["eta"], etas)
    for i in (0, 3):
        tr = descent(LIN, inits[i], xi=XI, dist=UNIF8, eta=etas[i], epochs=EPOCHS, dtol=1e-3)
        assert res.arrays["steps"][i] == int(tr.steps) and res.arrays["status"][i] == int(tr.status)
    assert res.summary["steps"]["min"] < EPOCHS  # some run met dtol before the end


def test_diverging_run_is_data_and_does_not_touch_its_neighbours():
    inits = make_inits("normal:0,0.3", 6, 2, seed=3)
    eta = np.full(6, 0.5)
    wild = eta.copy()
    wild[2] = 1e12  # the first step throws theta past the divergence bound
    calm = run_sweep(
        SIG, xi=XI, dist=UNIF8, inits=inits, eta=eta, pair_eta=True, epochs=EPOCHS, chunk=4, progress=False
    )
    res = run_sweep(
        SIG, xi=XI, dist=UNIF8, inits=inits, eta=wild, pair_eta=True, epochs=EPOCHS, chunk=4, progress=False
    )
    a = res.arrays
    assert a["status"][2] == Status.DIVERGED and a["fail_step"][2] == 1
    assert np.all(np.isfinite(a["theta_final"][2]))  # frozen at its last finite iterate
    others = np.arange(6) != 2
    for k in FIELDS:
        if k != "eta":
            np.testing.assert_array_equal(a[k][others], calm.arrays[k][others], err_msg=k)
    s = res.summary
    assert s["status_counts"]["diverged"] == 1 and s["failed"] == 1
    assert sum(s["status_counts"].values()) == 6
    for stat in ("loss_final", "distance_final", "steps"):
        assert all(np.isfinite(v) for v in s[stat].values())
    np.testing.assert_allclose(s["loss_final"]["max"], a["loss_final"][others].max())


def test_solver_failure_run_does_not_touch_its_neighbours():
    """softplus with theta2 = 2 > 1: y = softplus(a + 2y) has no root, a SOLVER_FAILURE at epoch 0."""
    sp = sideq.single_index("softplus")
    inits = np.array([[0.5, 0.1], [0.2, -0.3], [0.3, 2.0], [-0.4, 0.2]])
    res = run_sweep(sp, xi=XI, x=X16, inits=inits, eta=0.2, epochs=EPOCHS, chunk=4, progress=False)
    calm = run_sweep(sp, xi=XI, x=X16, inits=inits[[0, 1, 3]], eta=0.2, epochs=EPOCHS, chunk=4, progress=False)
    a = res.arrays
    assert a["status"][2] == Status.SOLVER_FAILURE and a["fail_step"][2] == 0
    for k in FIELDS:
        np.testing.assert_array_equal(a[k][[0, 1, 3]], calm.arrays[k], err_msg=k)
    assert res.summary["status_counts"]["solver_failure"] == 1


def test_summary_uses_finite_values_of_runs_that_did_not_fail():
    arrays = dict(
        status=np.array([0, 1, 2, 1, 5], np.int32),
        loss_final=np.array([1.0, np.nan, 1e30, 3.0, 7.0]),
        distance_final=np.array([0.5, np.inf, 9.0, 1.5, 2.0]),
        steps=np.array([4, 10, 1, 10, 2], np.int32),
        non_unique_epochs=np.array([0, 3, 0, 0, 1], np.int32),
    )
    s = _summarize(arrays, {"K": 5, "n_eta": 1}, 1.0, 5, 1)
    history = s["non_unique_history"]  # the runs that passed through the regime, by final status
    assert history["runs"] == 2 and history["final_status_counts"]["max_steps"] == 1
    assert history["final_status_counts"]["solver_failure"] == 1 and history["epochs"]["max"] == 3.0
    assert s["status_counts"]["max_steps"] == 2 and s["failed"] == 2
    assert (s["loss_final"]["min"], s["loss_final"]["max"]) == (1.0, 3.0)  # NaN and failed runs left out
    assert s["distance_final"]["median"] == 1.0 and s["steps"]["max"] == 10
    nothing = _summarize(dict(arrays, status=np.full(5, 2, np.int32)), {"K": 5, "n_eta": 1}, 1.0, 5, 1)
    assert nothing["loss_final"]["median"] is None
    json.dumps(s, allow_nan=False)  # strict JSON


def test_chunk_sizes_that_divide_and_do_not_divide_agree():
    inits = make_inits("ball:0/0,1", 10, 2, seed=4)
    runs = {
        c: run_sweep(SIG, xi=XI, x=X16, inits=inits, eta=[0.1, 0.7], epochs=EPOCHS, chunk=c, progress=False).arrays
        for c in (4, 3, 32)
    }
    for c, a in runs.items():
        for k in FIELDS:  # per-run math does not depend on the chunk: equal to the bit
            np.testing.assert_array_equal(a[k], runs[4][k], err_msg=f"chunk {c}: {k}")
        assert a["theta_final"].shape == (20, 2)


def test_progress_bar_on_a_terminal_nothing_on_a_pipe_and_callback(capsys, monkeypatch):
    import sideq.progress

    inits = make_inits("normal:0,0.3", 5, 2, seed=5)
    kw = dict(xi=XI, dist=UNIF8, inits=inits, eta=0.1, epochs=EPOCHS, chunk=4)
    run_sweep(LIN, progress=True, **kw)  # stderr is not a terminal here: nothing
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sideq.progress, "on_terminal", lambda: True)
    run_sweep(LIN, progress=True, **kw)
    captured = capsys.readouterr()
    assert captured.out == ""
    bar = captured.err.replace("\r", "\n").strip().splitlines()[-1]  # tqdm redraws in place
    assert bar.startswith("sweep:") and "5/5" in bar and "run/s" in bar and "100%" in bar, bar
    run_sweep(LIN, progress=False, **kw)
    assert capsys.readouterr().err == ""
    seen = []
    run_sweep(LIN, progress=seen.append, **kw)
    assert [s["done"] for s in seen][-1] == 5 and all(s["total"] == 5 for s in seen)
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------
# Files and resume


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    K, chunk, epochs = 12, 2, 200  # 12 chunks of 2 runs, a 0.5 s pause after each
    killed = tmp_path / "killed"
    proc = _subprocess([killed, chunk, K, epochs, 0.5], same_backend=True)
    chunks = killed / "chunks"
    deadline = time.monotonic() + 120
    while not (chunks.exists() and any(n.startswith("chunk_") for n in os.listdir(chunks))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no chunk file appeared"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.npz").exists(), "the sweep finished before it was killed"
    n_done = sum(n.startswith("chunk_") for n in os.listdir(chunks))
    assert 1 <= n_done < K, n_done
    (chunks / ".chunk_000005.npz.999.tmp").write_bytes(b"half a write")  # a write cut short

    with pytest.raises(SideqInputError, match="already holds a sweep"):
        _script_sweep(killed, chunk, K, epochs)
    with pytest.raises(SideqInputError, match=r"resume: settings differ .*epochs"):
        _script_sweep(killed, chunk, K, epochs + 1, resume=True)
    with pytest.raises(SideqInputError, match=r"resume: settings differ .*chunk"):
        _script_sweep(killed, 4, K, epochs, resume=True)

    resumed = _script_sweep(killed, None, K, epochs, resume=True)  # chunk from the manifest
    assert resumed.summary["runs_computed"] == 2 * K - chunk * n_done, (resumed.summary, n_done)
    _script_sweep(tmp_path / "straight", chunk, K, epochs)
    assert (killed / "results.npz").read_bytes() == (tmp_path / "straight" / "results.npz").read_bytes()
    a, b = load_results(killed), load_results(tmp_path / "straight")
    assert sorted(a) == sorted(FIELDS) and all(np.array_equal(a[k], b[k]) for k in FIELDS)
    assert not chunks.exists()  # chunk files removed once results.npz is written
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["runs"] == 2 * K and summary["settings"]["epochs"] == epochs
    again = _script_sweep(killed, None, K, epochs, resume=True)  # finished: nothing to do
    assert again.summary == summary
    with pytest.raises(SideqInputError, match="out_dir: no results.npz"):
        load_results(tmp_path / "nowhere")


def test_results_file_format_and_a_kill_between_results_and_summary(tmp_path, monkeypatch):
    """results.npz holds each field as a clean .npy of N rows (the last chunk's padding
    dropped; int32 for the integer fields), and a sweep killed after writing it but
    before summary.json resumes without computing anything again."""
    import zipfile

    import sideq.sweep as sweep_mod

    inits = make_inits("normal:0,0.3", 5, 2, seed=7)  # 5 runs in chunks of 2: the last is padded
    kw = dict(xi=XI, dist=UNIF8, inits=inits, eta=0.1, epochs=EPOCHS, chunk=2, progress=False)
    real = sweep_mod._write_json

    def dies_at_summary(path, obj):
        if path.endswith("summary.json"):
            raise KeyboardInterrupt  # the kill
        real(path, obj)

    monkeypatch.setattr(sweep_mod, "_write_json", dies_at_summary)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SIG, out_dir=str(tmp_path / "s"), **kw)
    monkeypatch.setattr(sweep_mod, "_write_json", real)
    assert (tmp_path / "s" / "results.npz").exists() and not (tmp_path / "s" / "summary.json").exists()
    seen = []
    resumed = run_sweep(SIG, out_dir=str(tmp_path / "s"), resume=True, **dict(kw, progress=seen.append))
    assert resumed.summary["runs_computed"] == 0
    assert seen and seen[-1]["done"] == 5 and seen[-1]["eta_s"] == 0.0
    fresh = run_sweep(SIG, **kw)
    for k in FIELDS:
        np.testing.assert_array_equal(resumed.arrays[k], fresh.arrays[k], err_msg=k)
    with zipfile.ZipFile(tmp_path / "s" / "results.npz") as zf:
        for k in FIELDS:
            with zf.open(f"{k}.npy") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = {
                    (1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0,
                }[version]
                shape, _, dtype = read_header(fh)
                header = fh.tell()
            assert shape[0] == 5 and (dtype == np.int32 if k in ("status", "fail_step", "steps") else True), k
            assert zf.getinfo(f"{k}.npy").file_size == header + int(np.prod(shape)) * dtype.itemsize, k


def test_progress_after_resume_counts_runs_done_before(tmp_path):
    """On resume the progress counts the runs already on disk as done, the rate
    counts only the runs computed now, and the ETA reaches 0 at the end."""
    inits = make_inits("normal:0,0.3", 6, 2, seed=8)
    kw = dict(xi=XI, dist=UNIF8, inits=inits, eta=0.1, epochs=EPOCHS, chunk=2)
    seen = []

    def stop_after_first_chunk(info):
        raise KeyboardInterrupt  # killed once the first chunk is on disk

    with pytest.raises(KeyboardInterrupt):
        run_sweep(SIG, out_dir=str(tmp_path / "s"), progress=stop_after_first_chunk, **kw)
    resumed = run_sweep(SIG, out_dir=str(tmp_path / "s"), resume=True, progress=seen.append, **kw)
    computed = resumed.summary["runs_computed"]
    assert computed == 4
    already = 6 - computed
    assert sorted(set(s["done"] for s in seen)) == [4, 6]  # counted from the 2 runs already done
    assert seen[-1]["eta_s"] == 0.0
    for s in seen:  # the rate is of the runs computed in this call; the ETA is of the runs left
        assert s["runs_per_s"] * s["elapsed_s"] == pytest.approx(s["done"] - already, rel=1e-9)
        assert s["eta_s"] == pytest.approx((6 - s["done"]) / s["runs_per_s"], rel=1e-12)


def test_one_and_four_cpu_devices_agree(tmp_path):
    K, chunk = 6, 8  # 12 runs: two chunks of 8, two runs per device
    proc = _subprocess([tmp_path / "four", chunk, K, EPOCHS], devices=4)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "devices 4" in out
    four = load_results(tmp_path / "four")
    one = _script_sweep(None, chunk, K, EPOCHS).arrays
    for k in ("status", "fail_step", "steps"):
        np.testing.assert_array_equal(four[k], one[k])
    for k in FLOATS:
        np.testing.assert_allclose(four[k], one[k], rtol=1e-12, atol=1e-12, err_msg=k)
    settings = json.loads((tmp_path / "four" / "summary.json").read_text())
    assert settings["devices"] == 4 and settings["chunk"] == chunk


# ----------------------------------------------------------------------------
# Checks


def test_bad_run_arguments():
    inits = make_inits("normal:0,0.3", 3, 2, seed=0)
    kw = dict(xi=XI, dist=UNIF8, epochs=5, progress=False)
    with pytest.raises(SideqInputError, match=r"inits: expected an array of shape \(K, 2\)"):
        run_sweep(LIN, inits=np.zeros((3, 3)), **kw)
    with pytest.raises(SideqInputError, match="inits: row 1"):
        run_sweep(LIN, inits=np.array([[0.1, 0.2], [np.nan, 0.0]]), **kw)
    with pytest.raises(SideqInputError, match="eta: step sizes must be positive"):
        run_sweep(LIN, inits=inits, eta=[0.1, -1.0], **kw)
    with pytest.raises(SideqInputError, match="eta: pair_eta=True needs one step size per init"):
        run_sweep(LIN, inits=inits, eta=[0.1, 0.2], pair_eta=True, **kw)
    with pytest.raises(SideqInputError, match="resume: needs out_dir"):
        run_sweep(LIN, inits=inits, resume=True, **kw)
    with pytest.raises(SideqInputError, match="chunk: must be a positive multiple"):
        run_sweep(LIN, inits=inits, chunk=0, **kw)
    with pytest.raises(SideqInputError, match="dtol: a tolerance must be a number >= 0"):
        run_sweep(LIN, inits=inits, dtol=-1.0, **kw)
    with pytest.raises(SideqInputError, match="x/dist: give exactly one"):
        run_sweep(LIN, inits=inits, x=X16, **kw)


def test_singular_start_is_a_status_not_an_error():
    res = run_sweep(LIN, xi=XI, dist=UNIF8, inits=np.array([[0.5, 1.0], [0.1, 0.2]]), eta=0.1, epochs=5, progress=False)
    assert list(res.arrays["status"]) == [Status.SINGULAR, Status.MAX_STEPS]
    assert res.arrays["fail_step"][0] == 0


def test_normal_inits_moments():
    K, mean, std = 40_000, np.array([1.0, -2.0]), 0.5
    th = make_inits("normal:1/-2,0.5", K, 2, seed=11)
    assert th.shape == (K, 2) and th.dtype == np.float64
    se_mean = std / np.sqrt(K)
    se_var = std**2 * np.sqrt(2.0 / (K - 1))
    assert np.all(np.abs(th.mean(0) - mean) < 5 * se_mean)
    assert np.all(np.abs(th.var(0, ddof=1) - std**2) < 5 * se_var)
    assert abs(np.corrcoef(th.T)[0, 1]) < 5 / np.sqrt(K)
    np.testing.assert_array_equal(th, make_inits("normal:1/-2,0.5", K, 2, seed=11))
    assert not np.array_equal(th, make_inits("normal:1/-2,0.5", K, 2, seed=12))
    np.testing.assert_array_equal(make_inits("normal:3,0", 4, 3, seed=0), np.full((4, 3), 3.0))


@pytest.mark.parametrize("p", [2, 3])
def test_ball_inits_are_uniform_in_the_ball(p):
    K, center, R = 40_000, np.arange(p, dtype=float), 2.0
    th = make_inits(f"ball:{'/'.join(map(str, center))},{R}", K, p, seed=13)
    r = np.linalg.norm(th - center, axis=1)
    assert r.max() <= R * (1 + 1e-12)
    # Uniform in the ball: P(r <= R/2) = 2^-p; the mean is the centre, the
    # per-coordinate variance R²/(p + 2).
    frac = np.mean(r <= R / 2)
    assert abs(frac - 0.5**p) < 5 * np.sqrt(0.5**p * (1 - 0.5**p) / K)
    sd = R / np.sqrt(p + 2)
    assert np.all(np.abs(th.mean(0) - center) < 5 * sd / np.sqrt(K))
    assert np.all(np.abs(th.var(0) - sd**2) < 5 * sd**2 * np.sqrt(2.0 / K) * 1.5)


def test_grid_inits():
    th = make_inits("grid:-1/1,0/2", 25, 2, seed=0)
    assert th.shape == (25, 2)
    np.testing.assert_array_equal(th[0], [-1, 0])
    np.testing.assert_array_equal(th[-1], [1, 2])
    np.testing.assert_array_equal(th[1], [-1, 0.5])  # theta2 fastest
    assert len(np.unique(th[:, 0])) == len(np.unique(th[:, 1])) == 5
    with pytest.raises(
        SideqInputError, match=r"K \(--inits\): grid: needs a perfect square .* K = 24; use K = 16 or 25"
    ):
        make_inits("grid:-1/1,0/2", 24, 2, seed=0)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("uniform:0,1", "unknown kind 'uniform'"),
        ("0.1,0.2", r"expected normal:MEAN,STD, ball:CENTER,RADIUS or grid"),
        ("normal:0", "expected normal:MEAN,STD"),
        ("normal:a,0.1", "MEAN .* must be a number"),
        ("normal:0/1/2,0.1", "MEAN .* has 3 values but theta has p = 2"),
        ("normal:0,-1", "STD .* must be >= 0"),
        ("normal:0,nan", "STD .* must be finite"),
        ("ball:0,-2", "RADIUS .* must be >= 0"),
        ("ball:0/0", "expected ball:CENTER,RADIUS"),
        ("grid:0/1", "expected grid:LO1/HI1,LO2/HI2"),
        ("grid:0/1/2,0/1", "LO1/HI1 .* must be two numbers"),
    ],
)
def test_bad_init_specs_name_the_flag(spec, match):
    with pytest.raises(SideqInputError, match=r"spec \(--init-dist\): .*" + match):
        make_inits(spec, 9, 2, seed=0)


def test_bad_init_counts():
    with pytest.raises(SideqInputError, match=r"K \(--inits\): the number of initializations"):
        make_inits("normal:0,1", 0, 2)
    with pytest.raises(SideqInputError, match="p: the number of parameters"):
        make_inits("normal:0,1", 4, 0)
    with pytest.raises(SideqInputError, match="seed: expected an integer"):
        make_inits("normal:0,1", 4, 2, seed=-1)
    with pytest.raises(SideqInputError, match=r"grid:LO1/HI1,LO2/HI2 is for p = 2"):
        make_inits("grid:0/1,0/1", 4, 3)
