"""The command line's law, tolerance and cache options against the library
calls they stand for; the persistent compilation cache across processes; and
what `sideq --help` imports."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import sideq
from sideq import bench, cli
from sideq.cli import main
from sideq.data import seed_keys
from sideq.train import descent

ENV = dict(os.environ, JAX_PLATFORMS="cpu")


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as stop:  # (argparse's own errors and --help exit)
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def numbers(record):
    """A run's JSON without its timing: what must repeat exactly."""
    return {k: v for k, v in record.items() if k != "wall_s"}


# ---------------------------------------------------------------------------
# The law of X: --mean/--cov (gaussian), --low/--high (uniform)

MEAN, COV = [0.2, -0.1], [[1.5, 0.3], [0.3, 0.8]]
GAUSS = (
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
)


def test_gaussian_mean_and_cov_are_the_library_law(capsys, tmp_path):
    rec = run_json(capsys, *GAUSS, "--mean", "0.2,-0.1", "--cov", "1.5,0.3;0.3,0.8")
    traj = descent(
        sideq.single_index("tanh"),
        np.array([0.1, 0.1, 0.0]),
        xi=np.array([1.0, -0.5]),
        dist=sideq.gaussian(np.array(MEAN), np.array(COV)),
        eta=0.1,
        epochs=20,
    )
    np.testing.assert_allclose(rec["loss_final"], float(traj.loss[-1]), rtol=1e-13)
    np.testing.assert_allclose(rec["theta_final"], np.asarray(traj.theta[-1]), rtol=1e-13)
    assert rec["law"] == {"name": "gaussian", "mean": MEAN, "cov": COV}
    # not the default N(0, I): the flags changed the run
    default = run_json(capsys, *GAUSS)
    assert default["law"] == {"name": "gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 0.0], [0.0, 1.0]]}
    assert abs(default["loss_final"] - rec["loss_final"]) > 1e-6
    # .npy files give the same law, hence the same run
    np.save(tmp_path / "mean.npy", np.array(MEAN))
    np.save(tmp_path / "cov.npy", np.array(COV))
    from_files = run_json(capsys, *GAUSS, "--mean", str(tmp_path / "mean.npy"), "--cov", str(tmp_path / "cov.npy"))
    assert numbers(from_files) == numbers(rec)
    # the record repeats the run: its numbers, written back as flags
    law = rec["law"]
    again = run_json(
        capsys,
        *GAUSS,
        "--mean",
        ",".join(map(repr, law["mean"])),
        "--cov",
        ";".join(",".join(map(repr, row)) for row in law["cov"]),
    )
    assert numbers(again) == numbers(rec)
    # a diagonal given as d numbers is the matrix with them on its diagonal
    diag = run_json(capsys, *GAUSS, "--cov", "1.5,0.8")
    full = run_json(capsys, *GAUSS, "--cov", "1.5,0;0,0.8")
    assert numbers(diag) == numbers(full) and diag["law"]["cov"] == [[1.5, 0.0], [0.0, 0.8]]
    traj = descent(
        sideq.single_index("tanh"),
        np.array([0.1, 0.1, 0.0]),
        xi=np.array([1.0, -0.5]),
        dist=sideq.gaussian(0.0, np.diag([1.5, 0.8])),
        eta=0.1,
        epochs=20,
    )
    np.testing.assert_allclose(diag["theta_final"], np.asarray(traj.theta[-1]), rtol=1e-13)


RUN = ("descent", "--n", "30", "--eta", "0.5", "--init=0.1,0.2", "--epochs", "40")
UNIF = (*RUN, "--low", "0.5", "--high", "1.5")


@pytest.fixture(scope="module")
def unif_run():
    """The library's run of UNIF without tolerances: its data and full history."""
    x = sideq.sample(sideq.uniform(0.5, 1.5, 1), seed_keys(0)[0], 30)
    traj = descent(sideq.single_index("sigmoid"), np.array([0.1, 0.2]), xi=np.array([2.0]), x=x, eta=0.5, epochs=40)
    return x, traj


def test_uniform_low_high_draw_the_library_data(capsys, unif_run):
    x, traj = unif_run
    rec = run_json(capsys, *UNIF)
    assert rec["law"] == {"name": "uniform", "low": [0.5], "high": [1.5]} and rec["n"] == 30
    np.testing.assert_allclose(rec["loss_final"], float(traj.loss[-1]), rtol=1e-13)
    np.testing.assert_allclose(rec["theta_final"], np.asarray(traj.theta[-1]), rtol=1e-13)
    assert np.all((np.asarray(x) >= 0.5) & (np.asarray(x) < 1.5)) and np.max(np.asarray(x)) > 1.0
    default = run_json(capsys, *RUN)  # (the same shapes: no new compilation)
    assert default["law"] == {"name": "uniform", "low": [0.0], "high": [1.0]}  # (recorded too)
    assert abs(default["loss_final"] - rec["loss_final"]) > 1e-6


@pytest.mark.parametrize("name, field", [("ltol", "loss"), ("gtol", "grad_norm"), ("dtol", "distance")])
def test_descent_tolerances_set_steps_as_the_library_does(capsys, unif_run, name, field):
    x, traj = unif_run
    history = np.asarray(getattr(traj, field))
    tol = float(history[11] + history[12]) / 2  # (between epochs 11 and 12: no rounding decides)
    expected = int(np.argmax(history <= tol))  # the first epoch at or under tol
    assert history[11] > tol >= history[12] and expected == 12
    rec = run_json(capsys, *UNIF, f"--{name}", repr(tol))
    lib = descent(
        sideq.single_index("sigmoid"), np.array([0.1, 0.2]), xi=np.array([2.0]), x=x, eta=0.5, epochs=40, **{name: tol}
    )
    assert rec["steps"] == int(lib.steps) == expected and rec["status"] == "converged"
    assert rec[name] == tol and rec["steps"] < rec["epochs"] == 40


def test_sweep_ltol_reaches_run_sweep(capsys, tmp_path, unif_run):
    from sideq.sweep import make_inits, run_sweep

    x, _ = unif_run
    grid = "grid:0.1/0.3,0.2/0.4"
    inits = make_inits(grid, 4, 2)
    model = sideq.single_index("sigmoid")
    losses = np.array(
        [np.asarray(descent(model, th, xi=np.array([2.0]), x=x, eta=0.5, epochs=40).loss) for th in inits]
    )
    tol = float(np.median(losses[:, 20]))
    assert np.min(np.abs(losses - tol)) > 1e-9 * tol  # (no epoch within rounding of tol)
    expected = np.where(np.any(losses <= tol, axis=1), np.argmax(losses <= tol, axis=1), 40)
    assert len(set(expected.tolist())) > 1  # (the runs meet it at different epochs)
    code, out, err = run_cli(
        capsys,
        "sweep",
        "--low",
        "0.5",
        "--high",
        "1.5",
        "--n",
        "30",
        "--eta",
        "0.5",
        "--epochs",
        "40",
        "--inits",
        "4",
        "--init-dist",
        grid,
        "--ltol",
        repr(tol),
        "--dtol",
        "0",
        "--out",
        str(tmp_path / "sw"),
        "--no-progress",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["settings"]["ltol"] == tol and summary["law"]["low"] == [0.5]
    steps = np.load(tmp_path / "sw" / "results.npz")["steps"]
    np.testing.assert_array_equal(steps, expected)
    lib = run_sweep(model, xi=np.array([2.0]), inits=inits, eta=0.5, epochs=40, x=x, ltol=tol, progress=False)
    np.testing.assert_array_equal(np.asarray(lib.arrays["steps"]), expected)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (
            ["--data", "gaussian", "--mean", "1,2,3"],
            "--mean: expected a scalar or shape (1,), got shape (3,) (d = 1, the length of --xi)",
        ),
        (["--data", "gaussian", "--mean", "nan"], "--mean: contains non-finite values"),
        (["--data", "gaussian", "--xi", "1,1", "--cov", "1,2;3,1"], "--cov: must be symmetric"),
        (["--data", "gaussian", "--xi", "1,1", "--cov", "1,2;2,1"], "--cov: must be positive semidefinite"),
        (
            ["--data", "gaussian", "--xi", "1,1", "--cov", "1,0,0"],
            "--cov: expected a scalar or shape (2,), got shape (3,)",
        ),
        (
            ["--data", "gaussian", "--xi", "1,1", "--cov", "1,0,0;0,1,0"],
            "--cov: expected a scalar, shape (2,) or (2, 2), got (2, 3)",
        ),
        (["--data", "gaussian", "--cov", "1,2;3"], "--cov: the rows of '1,2;3' have [2, 1] numbers"),
        (["--data", "gaussian", "--cov", "abc"], "--cov: expected a number, d numbers joined by commas"),
        (["--data", "gaussian", "--cov", "1;"], "--cov: expected a number"),
        (["--low", "1", "--high", "0.5"], "--high: must exceed low in every coordinate"),
        (["--xi", "1,1", "--low", "0,0", "--high", "1,0"], "--high: must exceed low"),
        (["--low", "0,0"], "--low: expected a scalar or shape (1,)"),
        (["--data", "gaussian", "--low", "0"], "--low: sets the law of --data uniform, but --data is 'gaussian'"),
        (["--mean", "0"], "--mean: sets the law of --data gaussian, but --data is 'uniform'"),
        (["--data", "FILE", "--cov", "2"], "--cov: sets the law of --data gaussian"),
        (["--data", "gaussian", "--cov", "/no/such/cov.npy"], "--cov: file '/no/such/cov.npy' does not exist"),
        (["--data", "gaussian", "--cov", "GARBAGE"], "is not a .npy file (no NumPy header)"),
        (["--data", "gaussian", "--mean", "STRINGS"], "--mean: "),
        (["--gtol", "-1"], "--gtol: a tolerance must be a number >= 0"),
        (["--ltol", "nan"], "--ltol: a tolerance must be a number >= 0"),
        (["--dtol", "inf"], "--dtol: a tolerance must be a finite number >= 0"),
    ],
)
def test_bad_law_and_tolerance_flags_one_line(capsys, tmp_path, argv, needle):
    data = tmp_path / "d.csv"
    data.write_text("x\n0.1\n0.5\n")
    (tmp_path / "garbage.npy").write_text("not an array")
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    files = {"FILE": str(data), "GARBAGE": str(tmp_path / "garbage.npy"), "STRINGS": str(tmp_path / "strings.npy")}
    argv = [files.get(a, a) for a in argv]
    code, out, err = run_cli(capsys, "descent", "--epochs", "3", *argv)
    assert code == 2 and needle in err, err
    assert err.startswith("sideq descent: error: --") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["flow", "--data", "gaussian", "--cov", "1,2;2,1", "--xi", "1,1"], "--cov: must be positive semidefinite"),
        (["flow", "--low", "2"], "--high: must exceed low"),
        (["flow", "--gtol", "-1e-3"], "--gtol: "),
        (["flow", "--ltol", "1"], "unrecognized arguments: --ltol 1"),  # (the library's flow has no ltol)
        (["sweep", "--ltol", "-2", "--inits", "4", "--epochs", "3"], "--ltol: a tolerance must be"),
        (["sweep", "--data", "gaussian", "--mean", "0,0", "--inits", "4"], "--mean: expected a scalar or shape (1,)"),
    ],
)
def test_flow_and_sweep_take_the_same_flags(capsys, argv, needle):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "command, present, absent",
    [
        ("descent", ["--low", "--high", "--mean", "--cov", "--gtol", "--ltol", "--dtol", "--no-cache"], []),
        ("sweep", ["--low", "--high", "--mean", "--cov", "--gtol", "--ltol", "--dtol", "--no-cache"], []),
        ("flow", ["--low", "--high", "--mean", "--cov", "--gtol", "--no-cache"], ["--ltol", "--dtol"]),
        ("reproduce", ["--no-cache"], []),
        ("verify", ["--no-cache"], []),
        (None, ["--no-cache", "SIDEQ_CACHE_DIR", "~/.cache/sideq/jax"], []),
    ],
)
def test_help_documents_each_flag(capsys, command, present, absent):
    code, out, _ = run_cli(capsys, *([command] if command else []), "--help")
    assert code == 0
    out = " ".join(out.split())  # (argparse wraps lines)
    for flag in present:
        assert flag in out, flag
    for flag in absent:
        assert flag not in out, flag
    if command == "sweep":
        assert "(default 1e-06)" in out  # (the sweep's --dtol keeps its default)
    if command == "flow":
        assert "(default 1e-10)" in out


# ---------------------------------------------------------------------------
# The persistent compilation cache


def test_cache_folder_and_when_it_is_used(monkeypatch, tmp_path):
    monkeypatch.delenv("SIDEQ_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cli.cache_dir() == str(tmp_path / "home" / ".cache" / "sideq" / "jax")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert cli.cache_dir() == str(tmp_path / "home" / ".cache" / "sideq" / "jax")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cli.cache_dir() == str(tmp_path / "xdg" / "sideq" / "jax")
    monkeypatch.setenv("SIDEQ_CACHE_DIR", str(tmp_path / "mine"))
    assert cli.cache_dir() == str(tmp_path / "mine")
    parser = cli.build_parser()

    def folder(*argv, owns_process=True):
        return cli._compilation_cache(parser.parse_args(list(argv)), owns_process)

    for command in ("descent", "flow", "sweep", "reproduce", "verify"):
        assert folder(command) == str(tmp_path / "mine")
        assert folder(command, "--no-cache") is None and folder("--no-cache", command) is None
        assert folder(command, owns_process=False) is None  # (main(argv) from Python)
    assert folder("bench") is None  # (bench times compilation: never cached)


@pytest.mark.slow
def test_two_processes_share_one_fresh_cache(capsys, tmp_path):
    """Two `sideq descent` at once on one empty cache folder both succeed with
    the same numbers and store the run's programs whole (sideq.program_store:
    JAX's own cache stays off for descent); a third call loads every program
    and compiles nothing; the numbers are those of a run without any cache."""
    cache = tmp_path / "cache"
    argv = [sys.executable, "-m", "sideq.cli", "descent", "--epochs", "5", "--n", "20", "--json"]
    # (JAX_LOG_COMPILES in all three calls: the environment is part of the key)
    env = dict(ENV, SIDEQ_CACHE_DIR=str(cache), JAX_LOG_COMPILES="1")

    def start(argv, env):
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def finish(proc):
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        return out, err

    first, second = [finish(p) for p in [start(argv, env), start(argv, env)]]
    assert numbers(json.loads(first[0])) == numbers(json.loads(second[0]))
    assert "Compiling jit(_descent_empirical)" in first[1]
    entries = sorted(os.listdir(cache / cli.PROGRAMS))
    assert [e.split("-")[0] for e in entries] == ["_descent_empirical", "_seed_keys", "_seeded_z", "_uniform_draw"]
    assert not any(f.endswith("-cache") for f in os.listdir(cache))
    out3, err3 = finish(start(argv, env))
    assert "Compiling" not in err3 and "tracing" not in err3
    assert sorted(os.listdir(cache / cli.PROGRAMS)) == entries
    # The same numbers, from the store, without it, and in this process
    # (main(argv) from Python leaves JAX's configuration alone: no cache).
    import jax

    before = jax.config.jax_compilation_cache_dir
    in_process = numbers(run_json(capsys, "descent", "--epochs", "5", "--n", "20"))
    assert jax.config.jax_compilation_cache_dir == before
    out4, _ = finish(start([*argv, "--no-cache"], env))
    assert numbers(json.loads(out3)) == numbers(json.loads(first[0])) == in_process == numbers(json.loads(out4))


def test_the_sideq_command_turns_the_cache_on_unless_told_not_to(monkeypatch, capsys, tmp_path):
    """main() as the `sideq` command (argv None) sets up the cache before the
    command runs: JAX's persistent cache in the folder, or for descent the
    store of whole programs in its subfolder (with JAX's cache off);
    --no-cache, before or after the command, turns JAX's cache off and keeps
    no programs (here each command then stops at a bad flag)."""
    import jax

    used, kept = [], []
    monkeypatch.setattr(cli, "_use_compilation_cache", used.append)
    monkeypatch.setattr(cli, "_keep_programs", kept.append)
    monkeypatch.setenv("SIDEQ_CACHE_DIR", str(tmp_path / "c"))
    enabled = jax.config.jax_enable_compilation_cache
    bad = {"descent": ["--eta", "0"], "flow": ["--t1", "0"]}
    try:
        for argv, jax_cache, programs in [
            (["descent"], None, str(tmp_path / "c" / cli.PROGRAMS)),
            (["flow"], str(tmp_path / "c"), None),
            (["--no-cache", "descent"], None, None),
            (["descent", "--no-cache"], None, None),
            (["flow", "--no-cache"], None, None),
        ]:
            used.clear(), kept.clear()
            jax.config.update("jax_enable_compilation_cache", True)
            command = next(a for a in argv if not a.startswith("-"))
            monkeypatch.setattr(sys, "argv", ["sideq", *argv, *bad[command]])
            try:
                code = main()
            except SystemExit as stop:
                code = stop.code
            assert code == 2, argv
            assert used == ([jax_cache] if jax_cache else []) and kept == ([programs] if programs else []), argv
            if jax_cache is None and programs is None:
                assert not jax.config.jax_enable_compilation_cache
        capsys.readouterr()
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)


def test_unwritable_cache_folder_is_a_warning(capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    cli._use_compilation_cache(str(afile / "cache"))  # (returns before touching JAX's configuration)
    err = capsys.readouterr().err
    assert err.startswith("sideq: warning: no compilation cache: ") and "afile" in err
    assert len(err.splitlines()) == 1


def test_unwritable_program_folder_is_a_warning(capsys, tmp_path):
    """descent's store of programs in a folder it cannot write: one line, the
    store stays off (and so does JAX's cache: the run compiles afresh)."""
    import jax

    from sideq import program_store

    afile = tmp_path / "afile"
    afile.write_text("")
    enabled = jax.config.jax_enable_compilation_cache
    try:
        cli._keep_programs(str(afile / cli.PROGRAMS))
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
    err = capsys.readouterr().err
    assert err.startswith("sideq: warning: no compilation cache: ") and "afile" in err
    assert len(err.splitlines()) == 1 and program_store.folder() is None


# ---------------------------------------------------------------------------
# What `sideq --help` and argument errors import

_NO_JAX = r"""
import importlib.util, io, contextlib, sys, types
if sys.argv[1] == "bare":  # sideq's package, its __init__ not run: what cli.py itself imports
    spec = importlib.util.find_spec("sideq")
    pkg = types.ModuleType("sideq")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["sideq"] = pkg
from sideq.cli import main
codes = []
for argv in (["--help"], ["descent", "--help"], ["sweep", "--help"], ["descent", "--epochs", "x"],
             ["descent", "--nope"], []):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            codes.append(main(argv))
        except SystemExit as stop:
            codes.append(stop.code)
assert codes == [0, 0, 0, 2, 2, 0], codes
print(sorted(m for m in sys.modules if m == "jax" or m.startswith(("jax.", "jaxlib"))))
"""


def test_help_and_argument_errors_do_not_import_jax():
    proc = subprocess.run([sys.executable, "-c", _NO_JAX, "bare"], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_sideq_help_does_not_import_jax():
    proc = subprocess.run(
        [sys.executable, "-c", _NO_JAX, "package"], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# `sideq bench`: start-up figures


class FakeProcesses:
    """subprocess.run and a clock for bench_startup: each call advances the
    clock by the next of its durations; a descent writes a cache entry on a
    cold call and must find it on the warm one."""

    def __init__(self, help_s, cold_s, warm_s, warm_theta=None, floor_s=None):
        self.now, self.calls, self.envs = 0.0, [], []
        floor_s = [0.5] * len(help_s) if floor_s is None else floor_s
        self.durations = {"help": list(help_s), "cold": list(cold_s), "warm": list(warm_s), "floor": list(floor_s)}
        self.warm_theta = warm_theta

    def clock(self):
        return self.now

    def run(self, cmd, capture_output, text, env, timeout):
        folder = env["SIDEQ_CACHE_DIR"]
        self.envs.append(env)
        if "--help" in cmd:
            kind, out = "help", "usage: sideq"
        elif cmd[1:] == list(bench.STARTUP_FLOOR):
            kind, out = "floor", ""
        else:
            kind = "warm" if os.path.isdir(folder) and os.listdir(folder) else "cold"
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"jit_f-{len(self.calls)}-cache"), "w"):
                pass
            theta = self.warm_theta if kind == "warm" and self.warm_theta else [1.5, 0.25]
            out = json.dumps({"theta_final": theta, "wall_s": self.now})
        self.calls.append((kind, cmd, folder))
        self.now += self.durations[kind].pop(0)
        return subprocess.CompletedProcess(cmd, 0, out, "")


def test_bench_startup_medians_ranges_and_fresh_folders(monkeypatch):
    # (durations in binary fractions: the clock's sums and differences are exact)
    fake = FakeProcesses([0.375, 0.125, 0.25], [3.0, 5.0, 4.0], [1.0, 2.0, 1.5], floor_s=[0.75, 0.5, 0.625])
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    r = bench.bench_startup(3, run=fake.run, clock=fake.clock)
    assert r["jax_floor_s"] == {"median": 0.625, "min": 0.5, "max": 0.75, "each": [0.75, 0.5, 0.625]}
    assert fake.calls[3][1] == [sys.executable, "-c", "import jax; jax.devices()"]
    # (the commands keep Python's bytecode cache, as a user's shell does)
    assert all("PYTHONDONTWRITEBYTECODE" not in env for env in fake.envs)
    assert r["help_s"] == {"median": 0.25, "min": 0.125, "max": 0.375, "each": [0.375, 0.125, 0.25]}
    assert r["cold_descent_s"]["median"] == 4.0 and r["cold_descent_s"]["min"] == 3.0
    assert r["warm_descent_s"] == {"median": 1.5, "min": 1.0, "max": 2.0, "each": [1.0, 2.0, 1.5]}
    assert [k for k, _, _ in fake.calls] == ["help", "cold", "warm", "floor"] * 3  # (in turns)
    colds = [f for k, _, f in fake.calls if k == "cold"]
    warms = [f for k, _, f in fake.calls if k == "warm"]
    assert len(set(colds)) == 3 and warms == colds  # a new folder per cold call; the warm one reuses it
    descent_cmd = fake.calls[1][1]
    assert descent_cmd[-len(bench.STARTUP_DESCENT) :] == list(bench.STARTUP_DESCENT)
    assert r["cache_entries_after_cold"] == 1 and not os.path.exists(colds[0])  # (a temporary folder)


def test_bench_startup_refuses_a_warm_run_with_other_numbers():
    fake = FakeProcesses([0.1], [3.0], [1.0], warm_theta=[1.5, 0.2500001])
    with pytest.raises(AssertionError, match="theta_final"):
        bench.bench_startup(1, run=fake.run, clock=fake.clock)

    def failing(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 2, "", "sideq: error: something\n")

    with pytest.raises(RuntimeError, match="exited with 2: sideq: error: something"):
        bench.bench_startup(1, run=failing, clock=fake.clock)
