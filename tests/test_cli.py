"""The command line as a user runs it: output, exit codes, one-line errors.

Most commands run for real on tiny problems and are compared with the library
called from Python; where only the plumbing is under test (the flags reaching
the library, the exit status of a failed claim, an interrupt), the heavy work
is replaced by a stand-in that records what it was given.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_cli, verify_record

import sideq
from sideq import cli
from sideq.cli import main
from sideq.paper import verify as V


def test_descent_json_fields_and_agreement_with_library(capsys, tmp_path):
    save = tmp_path / "run.npz"
    code, out, err = run_cli(
        capsys,
        "descent",
        "--model",
        "linear",
        "--init=-0.1,0.2",
        "--eta",
        "0.01",
        "--epochs",
        "5e1",
        "--n",
        "200",
        "--json",
        "--save",
        str(save),
    )
    assert code == 0, err
    rec = json.loads(out)
    # `--init -0.1,0.2` (no '=') is the same run
    code, out2, err = run_cli(
        capsys,
        "descent",
        "--model",
        "linear",
        "--init",
        "-0.1,0.2",
        "--eta",
        "0.01",
        "--epochs",
        "5e1",
        "--n",
        "200",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out2)["theta_final"] == rec["theta_final"]
    for key in ("theta_final", "loss_final", "status", "steps", "wall_s"):
        assert key in rec
    assert rec["theta_initial"] == [-0.1, 0.2]
    arrays = np.load(save)
    assert arrays["theta"].shape == (51, 2) and arrays["loss"].shape == (51,)
    np.testing.assert_allclose(arrays["theta"][-1], rec["theta_final"], rtol=0, atol=0)
    # The same run from Python gives the same numbers.
    from sideq.train import descent

    x = sideq.sample(sideq.uniform(0.0, 1.0, 1), sideq.data.seed_keys(0)[0], 200)
    traj = descent(sideq.linear(), np.array([-0.1, 0.2]), xi=np.array([2.0]), x=x, eta=0.01, epochs=50)
    np.testing.assert_allclose(np.asarray(traj.theta[-1]), rec["theta_final"], rtol=1e-14)


def test_descent_population_and_data_file(capsys, tmp_path):
    from sideq.train import descent

    code, out, _ = run_cli(
        capsys,
        "descent",
        "--model",
        "tanh",
        "--xi",
        "1,-0.5",
        "--risk",
        "population",
        "--data",
        "gaussian",
        "--init=0.1,0.1,0.0",
        "--epochs",
        "20",
        "--json",
    )
    assert code == 0
    # the run of `descent` on N(0, I_2)'s population risk
    traj = descent(
        sideq.single_index("tanh"),
        np.array([0.1, 0.1, 0.0]),
        xi=np.array([1.0, -0.5]),
        dist=sideq.gaussian(0.0, 1.0, 2),
        eta=0.1,
        epochs=20,
    )
    np.testing.assert_allclose(json.loads(out)["theta_final"], np.asarray(traj.theta[-1]), rtol=1e-13)
    # --bias and --backend reach the library
    code, out, _ = run_cli(
        capsys,
        "descent",
        "--model",
        "tanh",
        "--bias",
        "--backend",
        "optimistix",
        "--init=0.2,0.1,-0.3",
        "--epochs",
        "15",
        "--n",
        "40",
        "--json",
    )
    assert code == 0
    x40 = sideq.sample(sideq.uniform(0.0, 1.0, 1), sideq.data.seed_keys(0)[0], 40)
    traj = descent(
        sideq.single_index("tanh", bias=True),
        np.array([0.2, 0.1, -0.3]),
        xi=np.array([2.0]),
        x=x40,
        eta=0.1,
        epochs=15,
        backend="optimistix",
    )
    np.testing.assert_allclose(json.loads(out)["theta_final"], np.asarray(traj.theta[-1]), rtol=1e-13)
    # a data file's y column is the target (here not the default sigma(2x))
    path = tmp_path / "d.csv"
    x = np.linspace(0, 1, 30)
    y = 1 / (1 + np.exp(-2 * x)) + 0.1 * np.sin(7 * x)
    np.savetxt(path, np.c_[x, y], delimiter=",", header="x,y", comments="")
    code, out, _ = run_cli(capsys, "descent", "--data", str(path), "--epochs", "10", "--init=0.1,-0.2", "--json")
    assert code == 0 and json.loads(out)["n"] == 30
    traj = descent(
        sideq.single_index("sigmoid"), np.array([0.1, -0.2]), xi=np.array([2.0]), x=x[:, None], y=y, eta=0.1, epochs=10
    )
    np.testing.assert_allclose(json.loads(out)["theta_final"], np.asarray(traj.theta[-1]), rtol=1e-13)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--model", "linear", "--init=0.3,1"], "--init: theta2(0) = 1"),
        (["--init=nan,0.2"], "--init: contains non-finite values [nan, 0.2]; pass finite numbers"),
        (["--init", "-0.1,nan"], "--init: contains non-finite values [-0.1, nan]"),  # a list with a leading minus
        (["--foo"], "sideq descent: error: unrecognized arguments: --foo (see sideq descent --help)"),
        (["--model", "swish"], "--model: unknown model 'swish'; choose one of linear, sigmoid"),
        (["--eta", "0"], "--eta"),
        (["--eta=-1"], "--eta"),
        (["--epochs", "0"], "--epochs"),
        (["--init", "1,2,3"], "--init: expected 2 values"),
        (["--init", "normal:0,abc"], "--init"),
        (["--data", "/no/such/file.npy"], "data: file '/no/such/file.npy' does not exist"),
        (["--xi", "a,b"], "--xi"),
        (["--n", "0"], "--n"),
        (["--eta", "abc"], "argument --eta: invalid float value: 'abc' (see sideq descent --help)"),
        (["--epochs", "2.5"], "argument --epochs: expected an integer, got '2.5'"),
        (["--eta", "inf"], "--eta: the step size must be a positive number"),
        (["--xi", "1,,2"], "--xi: expected numbers separated by single commas"),
        (["--seed", "-1"], "--seed: expected an integer >= 0"),
        (["--risk", "population", "--xi", "1,2,3,4,5,6"], "--risk population: with --data uniform"),
        (["--save", "run.txt"], "--save: expected a path ending in .npz"),
    ],
)
def test_descent_bad_input_one_line(capsys, argv, needle):
    code, out, err = run_cli(capsys, "descent", "--epochs", "3", *argv)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("content, needle", [("", "no samples"), ("x,y\n0.1,nan\n", "NaN")])
def test_descent_bad_data_files(capsys, tmp_path, content, needle):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, _, err = run_cli(capsys, "descent", "--epochs", "3", "--data", str(path))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("reproduce", "descent"):
        assert cmd in out


def test_entry_point_x32_subprocess(tmp_path):
    """The installed console script, as a user calls it, in float32."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "sideq.cli", "descent", "--x32", "--epochs", "20", "--n", "50", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["dtype"] == "float32"
    bad = subprocess.run(
        [sys.executable, "-m", "sideq.cli", "descent", "--model", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_sweep_and_flow_commands(capsys, tmp_path):
    out = tmp_path / "sw"
    code, text, err = run_cli(
        capsys,
        "sweep",
        "--model",
        "linear",
        "--inits",
        "9",
        "--init-dist",
        "grid:-1/1,-0.5/0.5",
        "--eta",
        "0.01,0.02",
        "--epochs",
        "30",
        "--n",
        "50",
        "--out",
        str(out),
        "--json",
        "--no-progress",
        "--resume",
    )
    assert code == 0, err
    assert "nothing to resume" in err  # (a new folder: --resume starts the sweep, and says so)
    summary = json.loads(text)
    assert summary["runs"] == 18 and sum(summary["status_counts"].values()) == 18
    res = np.load(out / "results.npz")
    assert res["theta_final"].shape == (18, 2)
    code, text, err = run_cli(
        capsys,
        "flow",
        "--model",
        "linear",
        "--init=0.3,0.2",
        "--t1",
        "5",
        "--risk",
        "population",
        "--json",
        "--save",
        str(tmp_path / "f.npz"),
    )
    assert code == 0, err
    rec = json.loads(text)
    assert rec["conservation_drift"] <= 1e-10 and rec["status"] == "converged"
    saved = np.load(tmp_path / "f.npz")
    assert saved["t"].shape[0] == saved["theta"].shape[0]
    # the rows the flow reached, in time order, the last at the stop
    assert np.all(np.diff(saved["t"]) > 0) and saved["t"][-1] == rec["t_final"] < 5
    np.testing.assert_array_equal(saved["theta"][-1], rec["theta_final"])
    code, _, err = run_cli(capsys, "sweep", "--resume", "--inits", "4", "--epochs", "3")
    assert code == 2 and "--resume" in err
    code, _, err = run_cli(capsys, "sweep", "--init-dist", "uniform:0,1", "--inits", "4", "--epochs", "3")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    # a library error names the command's flag
    code, _, err = run_cli(capsys, "sweep", "--dtol", "-1", "--inits", "4", "--epochs", "3")
    assert code == 2 and err.startswith("sideq sweep: error: --dtol: a tolerance must be")


def test_unwritable_outputs_fail_before_any_work(capsys, tmp_path):
    """An output path that cannot be written is a one-line error, found before
    the run (a finished run is not thrown away by a bad --save)."""
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = [
        (["descent", "--save", str(afile / "run.npz")], "--save: "),
        (["flow", "--save", str(afile / "run.npz")], "--save: "),
        (["sweep", "--out", str(afile)], "--out: "),
        (["reproduce", "--out", str(afile / "figs")], "--out: "),
        (["verify", "--plots", str(afile)], "--plots: "),
        (["reproduce", "--quick"], "--quick: only shortens --extended"),
    ]
    for argv, needle in cases:
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and needle in err and ("afile" in err or argv[-1] == "--quick"), (argv, err)
        assert len(err.strip().splitlines()) == 1 and not out, (argv, err)
    assert afile.read_text() == "" and sorted(os.listdir(tmp_path)) == ["afile"]


def test_sweep_on_two_cpu_devices_subprocess(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sideq.cli",
            "sweep",
            "--inits",
            "8",
            "--epochs",
            "5",
            "--n",
            "20",
            "--cpu-devices",
            "2",
            "--no-progress",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["devices"] == 2


def test_sweep_uses_one_cpu_device_per_core_by_default(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sideq.cli",
            "sweep",
            "--inits",
            "4",
            "--epochs",
            "3",
            "--n",
            "10",
            "--no-progress",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["devices"] == len(os.sched_getaffinity(0))


@pytest.mark.slow
def test_reproduce_writes_figures_summary_and_claims(capsys, tmp_path):
    out = tmp_path / "figs"
    code, text, err = run_cli(capsys, "reproduce", "--out", str(out), "--only", "fig2", "--seeds", "2", "--json")
    assert code == 0, err
    summary = json.loads(text)
    assert set(summary) >= {"linear", "claims"} and "sigmoid" not in summary  # --only fig2
    for panel in ("fig2a", "fig2b"):
        for ext in ("png", "pdf"):
            assert (out / f"{panel}.{ext}").stat().st_size > 1000
    assert not (out / "fig1a.png").exists()
    run = summary["linear"]
    assert len(run["theta_final"]) == 2 and run["loss_final"] < 1e-10
    claims = {c["figure"]: c for c in summary["claims"]}
    assert set(claims) == {"fig1,fig2", "fig2"} and all(c["holds"] for c in summary["claims"])  # only fig2's
    from sideq.paper.reproduce import check_claims

    claims = {c["figure"]: c for c in check_claims(2, 0, ["fig3", "fig5"])}
    assert set(claims) == {"fig3", "fig3 (variant)", "fig4", "fig5", "fig5 (variant)"}
    assert claims["fig3 (variant)"]["holds"] and claims["fig5 (variant)"]["holds"]
    assert "1 seed:" in claims["fig5 (variant)"]["detail"]
    assert json.loads((out / "summary.json").read_text())["linear"]["theta_final"] == run["theta_final"]
    code, _, err = run_cli(capsys, "reproduce", "--out", str(out), "--only", "fig9")
    assert code == 2 and "--only" in err
    # `sideq descent --seed S` draws the data and theta(0) of `reproduce --seed S`: the same run
    code, text, err = run_cli(
        capsys, "descent", "--model", "linear", "--xi", "2", "--eta", "0.01", "--epochs", "200", "--json"
    )
    assert code == 0, err
    rec = json.loads(text)
    assert rec["theta_initial"] == run["theta_initial"] and rec["theta_final"] == run["theta_final"]


# ---------------------------------------------------------------------------
# Parsing, messages and plumbing (stand-ins for the heavy work where only that is
# under test).


def test_console_script_returns_mains_status_and_freezes_the_gc(monkeypatch):
    """The installed ``sideq`` script is ``command``: main's exit status, and
    the heap moved out of the collector's reach before the interpreter's
    teardown (whose full collections would otherwise cost every call)."""
    import gc
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="sideq")
    assert script.value == "sideq.cli:command"
    frozen = []
    monkeypatch.setattr(cli, "main", lambda argv=None: 3)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    assert cli.command() == 3 and frozen == [True]


def test_no_command_prints_help_and_exits_0(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0 and "usage: sideq" in out


def test_negative_values_rewrites_only_options_that_take_a_value():
    p = cli.build_parser()
    assert cli._negative_values(p, ["descent", "--init", "-.1,0.2"]) == ["descent", "--init=-.1,0.2"]
    assert cli._negative_values(p, ["descent", "--init", "-0.1,0.2", "--xi", "-2,1"]) == [
        "descent",
        "--init=-0.1,0.2",
        "--xi=-2,1",
    ]
    # --json takes no value: the token after it is left alone; a non-number is left alone
    assert cli._negative_values(p, ["descent", "--json", "-0.5"]) == ["descent", "--json", "-0.5"]
    assert cli._negative_values(p, ["descent", "--init", "-x"]) == ["descent", "--init", "-x"]


def test_as_flag_names_the_commands_flag():
    assert cli._as_flag("out_dir: cannot write", {"--out"}) == "--out: cannot write"
    assert cli._as_flag("theta0: bad", {"--init"}) == "--init: bad"
    assert cli._as_flag("cpu_devices: must be >= 1", {"--cpu-devices"}) == "--cpu-devices: must be >= 1"
    # no such flag on this command, or not a name before the colon: unchanged
    assert cli._as_flag("gtol: bad", {"--eta"}) == "gtol: bad"
    assert cli._as_flag("file 'a': missing", {"--file 'a'"}) == "file 'a': missing"
    assert cli._as_flag("no colon", {"--no"}) == "no colon"


def test_emit_text_layout(capsys):
    cli._emit({"a": 3.14159265358979, "long_key": [1.0 / 3, 2, "x"], "d": {"k": 1}, "s": "text", "n": None}, False)
    assert capsys.readouterr().out.splitlines() == [
        "       a: 3.14159",
        "long_key: [0.333333, 2, x]",
        '       d: {"k": 1}',
        "       s: text",
        "       n: None",
    ]


def test_interrupt_and_os_errors_exit_codes(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_verify", interrupted)
    code, _, err = run_cli(capsys, "verify")
    assert code == 130 and err == "sideq verify: interrupted\n"

    def disk_full(args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "cmd_verify", disk_full)
    code, _, err = run_cli(capsys, "verify")
    assert code == 2 and err == "sideq verify: error: [Errno 28] No space left on device\n"


def test_verify_command_passes_flags_and_exit_code(monkeypatch, capsys):
    seen = []

    def fake_run(quick, log=None):
        seen.append(quick)
        return [verify_record(True, True), verify_record(False, True)]

    monkeypatch.setattr(V, "run", fake_run)
    code, out, _ = run_cli(capsys, "verify", "--quick", "--json")
    assert code == 1 and [r["holds"] for r in json.loads(out)] == [True, False]
    monkeypatch.setattr(V, "run", lambda quick, log=None: seen.append(quick) or [verify_record(True, True)])
    code, out, _ = run_cli(capsys, "verify")
    assert code == 0 and "1 records in" in out and seen == [True, False]


def test_descent_json_population_fields(capsys):
    code, out, err = run_cli(
        capsys,
        "descent",
        "--model",
        "linear",
        "--risk",
        "population",
        "--eta",
        "0.05",
        "--epochs",
        "3",
        "--init=0.3,0.2",
        "--json",
    )
    assert code == 0, err
    rec = json.loads(out)
    assert rec["n"] is None and rec["eta"] == 0.05 and rec["risk"] == "population" and rec["data"] == "uniform"
    assert rec["dtype"] == "float64" and rec["theta_initial"] == [0.3, 0.2]
    # one population descent step by hand: R = (phi - 2)^2/3, phi = t1/(1 - t2), grad = (2/(1-t2)) (v/3, phi v/3)
    t1, t2 = 0.3, 0.2
    for _ in range(3):
        phi = t1 / (1 - t2)
        v = phi - 2.0
        t1, t2 = t1 - 0.05 * 2 * v / 3 / (1 - t2), t2 - 0.05 * 2 * phi * v / 3 / (1 - t2)
    np.testing.assert_allclose(rec["theta_final"], [t1, t2], rtol=1e-12)


def test_flow_saves_201_times(monkeypatch, capsys):
    import sideq.gradient_flow

    seen = {}

    def fake_flow(model, theta0, **kw):
        seen.update(kw)
        raise sideq.SideqInputError("stop here")

    monkeypatch.setattr(sys.modules["sideq.gradient_flow"], "flow", fake_flow)
    code, _, err = run_cli(capsys, "flow", "--model", "linear", "--t1", "0.5", "--init=0.3,0.2", "--risk", "population")
    assert code == 2 and "stop here" in err
    np.testing.assert_array_equal(seen["saveat_ts"], np.linspace(0.0, 0.5, 201))
    assert seen["t1"] == 0.5


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["flow", "--t1", "inf"], "sideq flow: error: --t1: the end time must be a finite number > 0, got inf"),
        (["flow", "--t1", "0"], "sideq flow: error: --t1: the end time must be a finite number > 0, got 0.0"),
        (
            ["sweep", "--eta", "0.1,0", "--inits", "2", "--epochs", "2"],
            "sideq sweep: error: --eta: every step size must be > 0, got 0.1,0",
        ),
        (["sweep", "--inits", "0", "--epochs", "2"], "sideq sweep: error: --inits: must be >= 1, got 0"),
        (["sweep", "--cpu-devices", "0", "--inits", "2"], "sideq sweep: error: --cpu-devices: must be >= 1, got 0"),
        (
            ["descent", "--risk", "population", "--data", "DATAFILE", "--epochs", "2"],
            "sideq descent: error: --risk population needs --data uniform or gaussian",
        ),
    ],
)
def test_bad_flags_of_flow_sweep_and_descent_are_one_line(capsys, tmp_path, argv, needle):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n0.1,0.2\n0.3,0.4\n")
    argv = [str(path) if a == "DATAFILE" else a for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and err.startswith(needle) and len(err.strip().splitlines()) == 1, err
    assert not out


def test_save_refuses_a_folder_named_npz(capsys, tmp_path):
    folder = tmp_path / "run.npz"
    folder.mkdir()
    code, _, err = run_cli(capsys, "descent", "--epochs", "2", "--save", str(folder))
    assert (
        code == 2
        and err == f"sideq descent: error: --save: {str(folder)!r} is a folder; give a file name ending in .npz\n"
    )
    assert list(folder.iterdir()) == []


def test_reproduce_passes_seeds_0_and_its_exit_code(monkeypatch, capsys, tmp_path):
    import sideq.paper.reproduce

    seen = {}

    def fake(out, only, seed, as_json, seeds):
        seen.update(out=out, seeds=seeds, seed=seed)
        return 1

    monkeypatch.setattr(sideq.paper.reproduce, "reproduce", fake)
    code, _, err = run_cli(capsys, "reproduce", "--out", str(tmp_path / "f"), "--seeds", "0", "--seed", "3")
    assert code == 1, err  # a claim that failed: the command's status
    assert seen == {"out": str(tmp_path / "f"), "seeds": 0, "seed": 3}
    code, _, err = run_cli(capsys, "reproduce", "--out", str(tmp_path / "f"), "--seeds", "-1")
    assert code == 2 and "--seeds: must be >= 0, got -1" in err
