"""Fuzzed boundaries (property-based, hypothesis): random shapes, dtypes
(ints, float16, complex, object), NaN and inf in θ, x, ξ and data files,
empty or large n, ragged CSVs, models with and without bias, flat θ and
multi-neuron params (dicts of named arrays).

Every case ends in a result whose status says what happened, or in a one-line
:class:`~sideq.errors.SideqInputError` (CLI: exit status 2 and one line on
stderr) — never another exception, and never a NaN in another run of the same
sweep.  Shapes are drawn from small sets so that compiled functions are
shared between examples.
"""

import io
import math
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import sideq  # noqa: E402
from sideq.errors import SideqInputError  # noqa: E402
from sideq.status import SUCCESS, Status  # noqa: E402

FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SPECIALS = [0.0, -0.0, 1.0, -1.0, 4.0, 1e300, -1e300, 1e-300, math.nan, math.inf, -math.inf]
floats = st.one_of(st.floats(-50, 50, allow_nan=False), st.sampled_from(SPECIALS))
MODELS = {
    (name, bias): (sideq.linear(bias=bias) if name == "linear" else sideq.single_index(name, bias=bias))
    for name in ("linear", "sigmoid", "tanh", "softplus", "relu")
    for bias in (False, True)
}
models = st.sampled_from(sorted(MODELS))


def _cast(values, kind):
    a = np.asarray(values, dtype=np.float64)
    if kind == "int":
        return np.nan_to_num(a, nan=0, posinf=1, neginf=-1).clip(-50, 50).astype(np.int64)
    if kind == "float16":
        return a.astype(np.float16)
    if kind == "complex":
        return a + 1j
    if kind == "object":
        return np.array(list(a) if a.ndim == 1 else a.tolist(), dtype=object)
    return a


dtypes = st.sampled_from(["float64", "float32", "int", "float16", "complex", "object"])


ERRORS = set()  # the distinct errors met (the first word of each message: the argument it names)


def _one_line(err):
    text = str(err)
    assert text and "\n" not in text and "Traceback" not in text, text
    ERRORS.add(text.split(":")[0])
    return text


def _result_or_one_line(call):
    """``call()``'s result, or None once the SideqInputError it raised is one line."""
    try:
        return call()
    except SideqInputError as err:
        _one_line(err)
        return None


def _statuses(out):
    """``out.status`` as an array of known status codes."""
    status = np.atleast_1d(np.asarray(out.status))
    assert set(status.tolist()) <= {int(s) for s in Status}
    return status


@FUZZ
@given(
    key=models,
    d=st.sampled_from([1, 2]),
    theta=st.lists(floats, min_size=1, max_size=5),
    x=st.lists(floats, min_size=0, max_size=6),
    kind=dtypes,
    batch=st.booleans(),
)
def test_solve_reports_a_status_or_one_line_error(key, d, theta, x, kind, batch):
    model = MODELS[key]
    theta, x = _cast(theta, kind), _cast(x, kind)
    if batch and x.size % d == 0 and x.size:
        x = x.reshape(-1, d)
    sol = _result_or_one_line(lambda: sideq.solve(model, theta, x))
    if sol is None:
        return
    status = _statuses(sol)
    y = np.atleast_1d(np.asarray(sol.y))
    ok = np.isin(status, [int(s) for s in SUCCESS])
    assert np.all(np.isfinite(y[ok])) and np.all(np.isnan(y[~ok]))


@FUZZ
@given(
    key=models,
    xi=st.lists(floats, min_size=1, max_size=2),
    theta0=st.lists(floats, min_size=2, max_size=4),
    n=st.sampled_from([0, 1, 7]),
    eta=floats,
    epochs=st.sampled_from([0, 1, 3, -2]),
    kind=dtypes,
    population=st.booleans(),
)
def test_descent_reports_a_status_or_one_line_error(key, xi, theta0, n, eta, epochs, kind, population):
    from sideq.train import descent

    model = MODELS[key]
    d = len(xi)
    xi_arr = _cast(xi, kind)
    x = None if population else _cast(np.linspace(-1, 1, n * d).reshape(n, d), kind)
    dist = sideq.uniform(0, 1, d) if population else None
    traj = _result_or_one_line(
        lambda: descent(model, _cast(theta0, kind), xi=xi_arr, x=x, dist=dist, eta=eta, epochs=epochs)
    )
    if traj is None:
        return
    _statuses(traj)
    if int(traj.status) not in (Status.DIVERGED, Status.SINGULAR, Status.SOLVER_FAILURE):
        assert np.all(np.isfinite(np.asarray(traj.theta[-1])))


MULTI = {
    (name, bias): (
        sideq.multi_linear(2, bias=bias) if name == "multi_linear" else sideq.multi_index(name, 2, bias=bias)
    )
    for name in ("multi_linear", "tanh", "sigmoid")
    for bias in (False, True)
}
LEAF_FORMS = st.sampled_from(["array", "list", "wrong_shape", "missing"])


@FUZZ
@given(
    key=st.sampled_from(sorted(MULTI)),
    values=st.lists(floats, min_size=10, max_size=10),
    kinds=st.lists(dtypes, min_size=3, max_size=3),
    forms=st.lists(LEAF_FORMS, min_size=3, max_size=3),
    descend=st.booleans(),
)
def test_pytree_params_report_a_status_or_one_line_error(key, values, kinds, forms, descend):
    """Multi-neuron params (a dict of named arrays) with any dtype, NaN or inf
    in any leaf, a leaf as a nested list, of the wrong shape or missing."""
    from sideq import general

    model = MULTI[key]
    shapes = {"W1": (2, 2), "W2": (2, 2), "b": (2,)}
    params = {}
    for (name, shape), kind, form, start in zip(shapes.items(), kinds, forms, (0, 4, 8)):
        size = math.prod(shape)
        leaf = _cast(np.resize(np.asarray(values[start : start + size]), size).reshape(shape) / 4, kind)
        if form == "missing":
            continue
        if form == "wrong_shape":
            leaf = leaf.reshape(-1)
        params[name] = leaf.tolist() if form == "list" else leaf
    x = np.linspace(-1, 1, 6).reshape(3, 2)
    if descend:
        out = _result_or_one_line(lambda: general.descent(model, params, x=x, xi=np.eye(2) / 2, eta=0.1, epochs=2))
    else:
        out = _result_or_one_line(lambda: general.solve(model, params, x))
    if out is not None:
        _statuses(out)


@FUZZ
@given(
    bad=st.sampled_from([math.nan, math.inf, 1e300, -1e300]),
    where=st.integers(0, 5),
    key=st.sampled_from([("sigmoid", False), ("linear", False), ("tanh", True)]),
)
def test_one_bad_run_never_poisons_the_others_of_a_sweep(bad, where, key):
    from sideq.sweep import run_sweep

    model = MODELS[key]
    p = model.n_params(1)
    inits = np.tile(np.r_[[0.2] * (p - 1), 0.1], (6, 1))
    inits[where, 0] = bad
    x = np.linspace(0, 1, 8)[:, None]
    # (non-finite inits are refused up front)
    res = _result_or_one_line(
        lambda: run_sweep(model, xi=[1.5], x=x, inits=inits, eta=0.1, epochs=4, chunk=6, progress=False)
    )
    if res is None:
        return
    a = res.arrays
    good = np.arange(6) != where
    assert np.all(np.isfinite(a["theta_final"][good])) and np.all(np.isfinite(a["loss_final"][good]))
    clean = run_sweep(model, xi=[1.5], x=x, inits=inits[good], eta=0.1, epochs=4, chunk=6, progress=False)
    np.testing.assert_allclose(a["theta_final"][good], clean.arrays["theta_final"], rtol=1e-12)


@FUZZ
@given(
    rows=st.lists(
        st.lists(st.sampled_from(["1", "0.5", "-2", "nan", "inf", "x", "", "1e400", "3+4j"]), min_size=0, max_size=3),
        min_size=0,
        max_size=4,
    ),
    header=st.booleans(),
)
def test_data_files_load_or_give_one_line_error(tmp_path_factory, rows, header):
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    lines = (["x,y"] if header else []) + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    loaded = _result_or_one_line(lambda: sideq.load_data(path, d=1))
    if loaded is None:
        return
    x, y = loaded
    assert np.all(np.isfinite(x)) and x.ndim == 2 and x.shape[0] >= 1
    assert y is None or (np.all(np.isfinite(y)) and y.shape == (x.shape[0],))


CLI_VALUES = st.sampled_from(
    [
        "0",
        "-1",
        "nan",
        "inf",
        "1e400",
        "abc",
        "",
        "2,",
        ",",
        "1,2",
        "0.1",
        "3e0",
        "normal:0,nan",
        "normal:x",
        "grid:0/1,0/1",
    ]
)
FLAGS = {
    "descent": ["--xi", "--eta", "--epochs", "--init", "--n", "--gtol", "--ltol", "--dtol", "--save-every"],
    "flow": ["--xi", "--t1", "--init", "--n", "--gtol"],
    "sweep": ["--xi", "--eta", "--epochs", "--inits", "--init-dist", "--dtol", "--chunk"],
}


@pytest.mark.slow
@FUZZ
@given(command=st.sampled_from(sorted(FLAGS)), data=st.data())
def test_cli_exits_0_or_2_with_one_line(command, data, tmp_path_factory):
    from sideq.cli import main

    flag = data.draw(st.sampled_from(FLAGS[command]))
    value = data.draw(CLI_VALUES)
    args = [command, "--model", data.draw(st.sampled_from(["sigmoid", "linear", "nope"])), "--json", f"{flag}={value}"]
    small = {"--epochs": "3", "--n": "8", "--inits": "4", "--t1": "0.5"}
    args += [f"{k}={v}" for k, v in small.items() if k in FLAGS[command] and k != flag]
    if command == "sweep":
        args += ["--no-progress", "--cpu-devices", "1", "--out", str(tmp_path_factory.mktemp("sw"))]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exit_:  # (argparse's own errors exit, as the command does)
            code = exit_.code
    assert code in (0, 2), (args, err.getvalue())
    if code == 2:
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"sideq {command}: error:"), (args, lines)
        ERRORS.add(lines[0].split("error:", 1)[1].split(":")[0].strip())
