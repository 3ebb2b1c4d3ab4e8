"""The ``sideq`` command line.

Entry points choose the precision (``--x64``, the default, or ``--x32``), scoped
to the command with ``jax.enable_x64``; bad
input gets one line on stderr and exit status 2, never a traceback.

The ``sideq`` command keeps JAX's persistent compilation cache in
``$SIDEQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/sideq/jax`` or
``~/.cache/sideq/jax`` (``--no-cache`` turns it off): a second call of the same
run loads its compiled programs instead of compiling them.  ``descent`` keeps
its programs whole in the subfolder :data:`PROGRAMS` instead
(:mod:`sideq.program_store`, with JAX's cache off), so that a second call does
not trace and lower them either.  Only the command
turns it on; ``import sideq`` and ``main(argv)`` called from Python leave the
process's JAX configuration alone.  Nothing here imports JAX before a command
runs: ``--help`` and argument errors stay quick (where ``sideq/__init__.py``
does not import it first).

Imports: at module top only the standard library and :mod:`sideq.errors`
(which needs neither numpy nor JAX).  numpy, JAX and the rest of the library
are imported inside the functions that run a command, and only there: the
one exception, beside matplotlib, to imports at module top
(``docs/design.md``); ``tests/test_cli_options.py`` checks that ``--help``
and argument errors import no JAX.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import time

from sideq.errors import SideqInputError, unwritable_folder


class CLIError(Exception):
    """A user error found while parsing flags (reported like SideqInputError)."""


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error style: one line on stderr, exit 2 (the
    usage block is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    """An integer flag; 4000, 4e3 and 4000.0 are all 4000."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def _floats(text: str, flag: str) -> list[float]:
    items = text.split(",")
    if not text.strip() or any(v.strip() == "" for v in items):
        raise CLIError(f"{flag}: expected numbers separated by single commas (e.g. 0.1,0.5), got {text!r}")
    try:
        return [float(v) for v in items]
    except ValueError:
        raise CLIError(f"{flag}: expected a comma-separated list of numbers, got {text!r}") from None


_MATRIX_HELP = (
    "a number, d numbers joined by commas (e.g. 0,1), a d x d matrix with rows separated "
    "by ';' (e.g. '2,0.3;0.3,1'), or a .npy file"
)


def _load_npy(path: str, flag: str):
    """The array in the .npy file ``path`` (``numpy.save``), or a one-line error naming ``flag``."""
    import numpy as np

    if not os.path.exists(path):
        raise CLIError(
            f"{flag}: file {path!r} does not exist; give the path of a .npy file (numpy.save) or the numbers inline"
        )
    try:
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise CLIError(
                    f"{flag}: {path!r} is not a .npy file (no NumPy header); write it with numpy.save(path, array)"
                )
        arr = np.load(path, allow_pickle=False)
    except CLIError:
        raise
    except Exception as err:  # (OSError, ValueError, EOFError, a zip file's errors, ...)
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        raise CLIError(
            f"{flag}: cannot read {path!r} as a .npy array ({reason}); write it with numpy.save(path, array)"
        ) from None
    if arr.dtype.kind not in "biuf":
        raise CLIError(f"{flag}: {path!r} holds {arr.dtype} values; save an array of real numbers")
    return arr.astype(np.float64)


def _array(text: str, flag: str):
    """``--mean``, ``--cov``, ``--low``, ``--high``: a number, numbers joined by
    commas, rows of numbers separated by ';', or a path ending in .npy, as a
    float64 array (0-, 1- or 2-D).  Its shape and values are checked by the
    law that takes it (:func:`sideq.gaussian`, :func:`sideq.uniform`)."""
    import numpy as np

    text = text.strip()
    if text.lower().endswith(".npy"):
        return _load_npy(text, flag)
    try:
        rows = [_floats(row, flag) for row in text.split(";")]
    except CLIError:
        raise CLIError(f"{flag}: expected {_MATRIX_HELP}, got {text!r}") from None
    if len(rows) == 1:
        return np.array(rows[0][0] if len(rows[0]) == 1 else rows[0])
    if len({len(r) for r in rows}) != 1:
        raise CLIError(
            f"{flag}: the rows of {text!r} have {[len(r) for r in rows]} numbers; "
            "give every row the same number of columns"
        )
    return np.array(rows)


def _writable_folder(folder: str, flag: str) -> None:
    """Create ``folder`` if needed and check that a file can be written there,
    before any work is done; else a one-line error naming ``flag``."""
    problem = unwritable_folder(folder)
    if problem:
        raise CLIError(f"{flag}: {problem}")


def _check_save(path) -> None:
    """``--save PATH.npz``: checked before the run, so that a bad path costs no run."""
    if path is None:
        return
    if not path.endswith(".npz"):
        raise CLIError(f"--save: expected a path ending in .npz, got {path!r}")
    if os.path.isdir(path):
        raise CLIError(f"--save: {path!r} is a folder; give a file name ending in .npz")
    _writable_folder(os.path.dirname(path), "--save")


def _model(args):
    import sideq

    models = ["linear", *sideq.ACTIVATIONS]  # (a new activation is a new --model, nothing to add here)
    if args.model not in models:
        raise CLIError(f"--model: unknown model {args.model!r}; choose one of {', '.join(models)}")
    if args.model == "linear":
        return sideq.linear(bias=args.bias)
    return sideq.single_index(args.model, bias=args.bias)


def parse_init(text: str, p: int, seed: int):
    """``--init``: 'a,b,...' (p values) or 'normal:MEAN,STD' (MEAN a number or
    values joined by '/', e.g. normal:0/1,0.1 for N((0, 1), 0.1² I)), drawn with
    :func:`sideq.data.seeded_normal`: ``--seed S`` gives the θ(0) of
    ``sideq reproduce --seed S``."""
    import numpy as np

    from sideq.data import seeded_normal

    if text.startswith("normal:"):
        from sideq.sweep_inits import normal_spec  # one parser for the specs of runs and sweeps

        mean, std = normal_spec(text, p, flag="--init")
        return seeded_normal(seed, mean, std, p)
    vals = _floats(text, "--init")
    if len(vals) != p:
        raise CLIError(
            f"--init: expected {p} values (theta1 of length d = len(xi), [b,] then theta2), "
            f"got {len(vals)}; e.g. --init={','.join(['0.1'] * p)}"
        )
    return np.array(vals)


# The flags of each law of X (--data uniform | gaussian), with their defaults.
_LAW_FLAGS = {"uniform": {"low": 0.0, "high": 1.0}, "gaussian": {"mean": 0.0, "cov": 1.0}}


def _law(args, d: int):
    """The law of X that ``--data`` names, built by :func:`sideq.uniform` from
    ``--low``/``--high`` or by :func:`sideq.gaussian` from ``--mean``/``--cov``
    (whose checks give the errors: shape, symmetry, PSD, high > low), or None
    for a data file.  A flag of another law than ``--data``'s is an error."""
    import sideq

    for law, flags in _LAW_FLAGS.items():
        for name in flags:
            if getattr(args, name, None) is not None and args.data != law:
                raise CLIError(
                    f"--{name}: sets the law of --data {law}, but --data is {args.data!r}; "
                    f"add --data {law} or drop --{name}"
                )
    if args.data not in _LAW_FLAGS:
        return None
    params = {
        name: default if getattr(args, name, None) is None else _array(getattr(args, name), f"--{name}")
        for name, default in _LAW_FLAGS[args.data].items()
    }
    try:
        return (sideq.uniform if args.data == "uniform" else sideq.gaussian)(*params.values(), d)
    except sideq.SideqInputError as err:
        if "shape" in str(err):  # (d is not a flag: say where it comes from)
            raise sideq.SideqInputError(f"{err} (d = {d}, the length of --xi)") from None
        raise


def _law_record(dist) -> dict | None:
    """The law as JSON (every number, so that a run can be repeated), or None."""
    import sideq

    if dist is None:
        return None
    if isinstance(dist, sideq.Uniform):
        return {"name": "uniform", "low": dist.low.tolist(), "high": dist.high.tolist()}
    return {"name": "gaussian", "mean": dist.mean.tolist(), "cov": dist.cov.tolist()}


def _data_and_law(args, model, xi):
    """(x, y, dist, law) for the chosen --data and --risk: ``dist`` the law of
    X for the population risk (else None), ``law`` the law of --data as JSON
    (None for a file).  Drawn data come from the seed's data key
    (:func:`sideq.data.seed_keys`)."""
    import numpy as np

    import sideq
    from sideq.data import UNIFORM_NODES, seed_keys  # (UNIFORM_NODES: the default Gauss-Legendre rules, by d)

    d = len(xi)
    if args.n < 1:
        raise CLIError(f"--n: the number of samples must be >= 1, got {args.n}")
    law = _law(args, d)
    if args.data == "uniform" and args.risk == "population" and d not in UNIFORM_NODES:
        raise CLIError(
            f"--risk population: with --data uniform the quadrature grows like k**d, and --xi gives "
            f"d = {d} > {max(UNIFORM_NODES)}; use --risk empirical or --data gaussian"
        )
    if law is None:
        if args.risk == "population":
            raise CLIError("--risk population needs --data uniform or gaussian (a file has no law)")
        x, y = sideq.load_data(args.data, d=d)
        return x, y, None, None
    if args.risk == "population":
        return None, None, law, _law_record(law)
    x = sideq.sample(law, seed_keys(args.seed)[0], args.n)
    return np.asarray(x), None, None, _law_record(law)


def _data(args, model, xi):
    """(x, y, dist) for the chosen --data and --risk (see :func:`_data_and_law`)."""
    return _data_and_law(args, model, xi)[:3]


def _add_problem_flags(p, sweep):
    """The model, the target ξ and the data (or the law of X), and the seed."""
    p.add_argument(
        "--model",
        default="sigmoid",
        help="linear, or the single-index DEQ of an activation in sideq.ACTIVATIONS: "
        "sigmoid, tanh, softplus, relu, ... (default sigmoid)",
    )
    p.add_argument("--xi", default="2", help="target xi, comma list; its length is d (default 2)")
    p.add_argument("--bias", action="store_true", help="add a bias b: theta = (theta1, b, theta2)")
    p.add_argument(
        "--data",
        default="uniform",
        help="uniform (Unif[low, high]^d; default [0, 1]^d), gaussian (N(mean, cov); default "
        "N(0, I)), or a .npy/.npz/.csv file",
    )
    p.add_argument("--n", type=_count, default=1000, help="samples drawn for uniform/gaussian (default 1000)")
    law = p.add_argument_group(
        "law of X",
        "the parameters of --data uniform or gaussian; each is inline or a .npy file "
        "(numpy.save), and the run's JSON records the law it used",
    )
    law.add_argument(
        "--low",
        metavar="L",
        help="with --data uniform: the lower corner, a number or d numbers joined by commas (default 0)",
    )
    law.add_argument(
        "--high",
        metavar="H",
        help="with --data uniform: the upper corner, a number or d numbers joined by commas, each > --low (default 1)",
    )
    law.add_argument(
        "--mean",
        metavar="M",
        help="with --data gaussian: the mean, a number or d numbers joined by commas, e.g. --mean 0,1 (default 0)",
    )
    law.add_argument(
        "--cov",
        metavar="C",
        help="with --data gaussian: the covariance, symmetric positive "
        "semidefinite: a number c (c I), d numbers (a diagonal, e.g. --cov 1,0.5), or a d x d "
        "matrix with rows separated by ';' (e.g. --cov '2,0.3;0.3,1') (default 1)",
    )
    p.add_argument(
        "--seed",
        type=_count,
        default=0,
        help=("seed for the data (as `sideq reproduce --seed` draws them) and the --init-dist draws (default 0)")
        if sweep
        else (
            "seed for the data and a normal: init (default 0): `sideq reproduce --seed` draws "
            "the same data and theta(0)"
        ),
    )


def _add_start_flags(p, kind):
    """θ(0) (a sweep's inits) and the step size."""
    sweep = kind == "sweep"
    if sweep:
        p.add_argument("--inits", type=_count, default=1000, help="number K of initializations (default 1000)")
        p.add_argument(
            "--init-dist",
            default="normal:0,0.1",
            help="normal:MEAN,STD | ball:CENTER,RADIUS | grid:LO1/HI1,LO2/HI2 (MEAN, CENTER: a "
            "number or p numbers joined by '/'; default normal:0,0.1)",
        )
        p.add_argument("--eta", default="0.1", help="step size, or a comma list: the sweep is inits x etas")
    else:
        p.add_argument(
            "--init",
            default="normal:0,0.1",
            help="theta(0): comma list (use --init=-0.1,0.2 for a leading minus) or "
            "normal:MEAN,STD (default normal:0,0.1)",
        )
        if kind == "descent":
            p.add_argument("--eta", type=float, default=0.1, help="step size (default 0.1)")
            p.add_argument(
                "--save-every",
                type=_count,
                default=None,
                metavar="M",
                help="keep every M-th epoch of the history and the last (default: every epoch "
                "while that fits in 256 MiB, else the smallest M that does; the final state, "
                "min loss and first epoch each tolerance is met cover every epoch)",
            )


def _add_stop_flags(p, kind):
    """How long a run goes and when it stops early."""
    sweep = kind == "sweep"
    if kind == "flow":  # (sideq.gradient_flow.flow stops on the gradient only)
        p.add_argument("--t1", type=float, default=50.0, help="end time of the flow (default 50)")
        p.add_argument(
            "--gtol", type=float, default=1e-10, help="stop at a steady state |grad R| <= gtol (default 1e-10)"
        )
    else:
        p.add_argument("--epochs", type=_count, default=4000, help="gradient steps (default 4000)")
        dtol = 1e-6 if sweep else 0.0
        p.add_argument(
            "--gtol",
            type=float,
            default=0.0,
            help="a run converges at the first epoch with |grad R| <= gtol, its steps (default 0: off)",
        )
        p.add_argument(
            "--ltol",
            type=float,
            default=0.0,
            help="a run converges at the first epoch with the risk R <= ltol, its steps (default 0: off)",
        )
        p.add_argument(
            "--dtol",
            type=float,
            default=dtol,
            help=f"a run converges at the first epoch with distance to the target <= dtol, its steps "
            f"(default {dtol:g}{': off' if not dtol else ''})",
        )


def _add_run_flags(p, kind="descent"):
    sweep = kind == "sweep"
    _add_problem_flags(p, sweep)
    _add_start_flags(p, kind)
    _add_stop_flags(p, kind)
    p.add_argument("--risk", choices=["empirical", "population"], default="empirical")
    p.add_argument("--backend", choices=["jaxopt", "optimistix"], default="jaxopt")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--x64", dest="x64", action="store_true", default=True, help="float64 (default)")
    prec.add_argument("--x32", dest="x64", action="store_false", help="float32")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    if sweep:
        p.add_argument("--chunk", type=_count, default=None, help="runs per compiled call (default: automatic)")
        p.add_argument("--out", default=None, metavar="DIR", help="write results.npz and summary.json here")
        p.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out DIR")
        p.add_argument(
            "--distributed", action="store_true", help="call jax.distributed.initialize() first (multi-host)"
        )
        p.add_argument(
            "--cpu-devices",
            type=_count,
            default=None,
            metavar="N",
            help="split the CPU into N devices and shard the runs over them "
            "(default: one per core; 1 turns sharding off)",
        )
        p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    else:
        p.add_argument("--save", metavar="PATH.npz", help="save the trajectory arrays")


def _tolerances(args, *names) -> dict:
    """The stopping tolerances the command takes, checked before any work by
    :func:`sideq.train.check_tolerances` (a number >= 0) and here finite; a
    bad one is a one-line error naming its flag."""
    from sideq.train import check_tolerances

    values = check_tolerances(**{name: getattr(args, name) for name in names})
    for name, value in zip(names, values):
        if not math.isfinite(value):
            raise CLIError(f"--{name}: a tolerance must be a finite number >= 0 (0 turns it off), got {value}")
    return dict(zip(names, values))


def _on_host(traj):
    """A run's arrays as numpy, so that summaries index them without a
    compiled slice per field (each one costs a compilation or a cache read)."""
    import jax

    return jax.device_get(traj)


def cmd_descent(args) -> int:
    import numpy as np

    from sideq.train import descent, summary

    model = _model(args)
    xi = _floats(args.xi, "--xi")
    if args.epochs < 1:
        raise CLIError(f"--epochs: must be >= 1, got {args.epochs}")
    if not args.eta > 0:
        raise CLIError(f"--eta: the step size must be > 0, got {args.eta}")
    tols = _tolerances(args, "gtol", "ltol", "dtol")
    _check_save(args.save)
    p = model.n_params(len(xi))
    theta0 = parse_init(args.init, p, args.seed)
    x, y, dist, law = _data_and_law(args, model, xi)
    t0 = time.perf_counter()
    traj = descent(
        model,
        theta0,
        xi=np.array(xi),
        x=x,
        y=y,
        dist=dist,
        eta=args.eta,
        epochs=args.epochs,
        backend=args.backend,
        save_every=args.save_every,
        **tols,
    )
    traj.theta.block_until_ready()
    wall = time.perf_counter() - t0
    traj = _on_host(traj)
    out = summary(model, traj)
    out.update(law=law, **tols)
    out.update(
        theta_initial=[float(v) for v in theta0],
        wall_s=wall,
        eta=args.eta,
        risk=args.risk,
        data=args.data,
        n=None if dist is not None else int(np.shape(x)[0]),
        dtype=str(traj.theta.dtype),
    )
    if args.save:  # (with the model and xi, so that `sideq plot RUN.npz` draws the target set)
        _save(args.save, {**traj._asdict(), "model": model.name, "xi": np.array(xi)})
        out["saved"] = args.save
    _emit(out, args.json)
    return 0


def cmd_flow(args) -> int:
    import numpy as np

    from sideq.gradient_flow import flow, flow_summary, until_stop

    model = _model(args)
    xi = _floats(args.xi, "--xi")
    if not (args.t1 > 0 and math.isfinite(args.t1)):
        raise CLIError(f"--t1: the end time must be a finite number > 0, got {args.t1}")
    tols = _tolerances(args, "gtol")
    _check_save(args.save)
    p = model.n_params(len(xi))
    theta0 = parse_init(args.init, p, args.seed)
    x, y, dist, law = _data_and_law(args, model, xi)
    ts = np.linspace(0.0, args.t1, 201)
    t0 = time.perf_counter()
    traj = flow(
        model, theta0, xi=np.array(xi), x=x, y=y, dist=dist, t1=args.t1, saveat_ts=ts, backend=args.backend, **tols
    )
    traj.theta.block_until_ready()
    wall = time.perf_counter() - t0
    traj = _on_host(traj)
    out = flow_summary(model, traj)
    out.update(law=law, **tols)
    out.update(
        theta_initial=[float(v) for v in theta0],
        wall_s=wall,
        risk=args.risk,
        data=args.data,
        n=None if dist is not None else int(np.shape(x)[0]),
        dtype=str(traj.theta.dtype),
    )
    if args.save:
        reached = until_stop(traj)  # (in time order: the rows the flow reached)
        _save(args.save, {**reached._asdict(), "t": reached.ts, "model": model.name, "xi": np.array(xi)})
        out["saved"] = args.save
    _emit(out, args.json)
    return 0


def _split_cpu(requested):
    """One CPU device per core for sweeps (``--cpu-devices`` overrides): the runs
    of a chunk are sharded over the devices, each on its own thread (a few
    percent faster than one device on two cores: BENCHMARKS.md).
    Only possible before JAX starts its backends; the default quietly keeps
    what exists when that has happened (as when ``main`` is called from Python
    after other JAX work)."""
    import jax

    if requested is not None and requested < 1:
        raise CLIError(f"--cpu-devices: must be >= 1, got {requested}")
    n = requested if requested is not None else len(os.sched_getaffinity(0))
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:
        if requested is not None and len(jax.devices("cpu")) != requested:
            raise CLIError(
                f"--cpu-devices: JAX is already running with {len(jax.devices('cpu'))} CPU "
                "device(s) in this process; pass the option to a fresh `sideq sweep` process"
            ) from None


def cmd_sweep(args) -> int:
    import numpy as np

    from sideq.sweep import initialize_distributed, make_inits, run_sweep

    _split_cpu(args.cpu_devices)
    if args.distributed:  # before any other JAX work
        initialize_distributed()

    model = _model(args)
    xi = _floats(args.xi, "--xi")
    etas = _floats(args.eta, "--eta")
    if any(not e > 0 for e in etas):
        raise CLIError(f"--eta: every step size must be > 0, got {args.eta}")
    if args.epochs < 1:
        raise CLIError(f"--epochs: must be >= 1, got {args.epochs}")
    if args.inits < 1:
        raise CLIError(f"--inits: must be >= 1, got {args.inits}")
    if args.resume and not args.out:
        raise CLIError("--resume: needs --out DIR (the folder of the interrupted sweep)")
    if args.out is not None:
        if args.resume and not os.path.exists(os.path.join(args.out, "manifest.json")):
            print(
                f"sideq sweep: nothing to resume in {args.out!r} (no manifest.json); starting a new sweep",
                file=sys.stderr,
            )
        _writable_folder(args.out, "--out")
    tols = _tolerances(args, "gtol", "ltol", "dtol")
    p = model.n_params(len(xi))
    inits = make_inits(args.init_dist, args.inits, p, args.seed)
    x, y, dist, law = _data_and_law(args, model, xi)
    # (Gloo, the CPU collectives of a multi-host sweep, prints its connections
    # on the process's stdout: sent to stderr, so that stdout holds the results.)
    with _stdout_to_stderr(args.distributed):
        res = run_sweep(
            model,
            xi=np.array(xi),
            inits=inits,
            eta=np.array(etas) if len(etas) > 1 else etas[0],
            epochs=args.epochs,
            x=x,
            y=y,
            dist=dist,
            chunk=args.chunk,
            out_dir=args.out,
            resume=args.resume,
            backend=args.backend,
            progress=not args.no_progress,
            distributed=args.distributed,
            **tols,
        )
    if res.summary:  # (the other processes of a multi-host sweep have nothing to say: process 0 writes)
        _emit({**res.summary, "law": law}, args.json)
    return 0


@contextlib.contextmanager
def _stdout_to_stderr(active: bool):
    """File descriptor 1 points at stderr inside the block (also for what C++
    libraries print), when ``active``."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _save(path, arrays):
    import numpy as np

    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items() if v is not None})


def _emit(out: dict, as_json: bool):
    if as_json:
        print(json.dumps(out))
        return
    width = max(map(len, out), default=0)
    for k, v in out.items():
        if isinstance(v, float):
            v = f"{v:.6g}"
        elif isinstance(v, list):
            v = "[" + ", ".join(f"{t:.6g}" if isinstance(t, float) else str(t) for t in v) + "]"
        elif isinstance(v, dict):
            v = json.dumps(v)
        print(f"{k:>{width}}: {v}")


def cmd_reproduce(args) -> int:
    from sideq.paper.reproduce import reproduce

    if args.seeds < 0:
        raise CLIError(f"--seeds: must be >= 0, got {args.seeds}")
    if args.quick and not args.extended:
        raise CLIError(
            "--quick: only shortens --extended; add --extended, or drop --quick "
            "(the paper's figures always run with the paper's settings)"
        )
    _writable_folder(args.out, "--out")
    code = reproduce(out=args.out, only=args.only, seed=args.seed, as_json=args.json, seeds=args.seeds)
    if args.extended:
        from sideq.paper.extended import run_all

        t0 = time.perf_counter()
        ext = run_all(args.out, quick=args.quick)
        summary_path = os.path.join(args.out, "summary.json")
        with open(summary_path) as fh:
            summary = json.load(fh)
        summary["extended"] = ext
        with open(summary_path, "w") as fh:
            json.dump(summary, fh, indent=2, default=float)
        if not args.json:
            print(
                f"extended experiments ({time.perf_counter() - t0:.1f} s): see experiments/README.md; "
                f"figures in {args.out}/"
            )
    return code


def cmd_verify(args) -> int:
    from sideq.paper.verify import main as verify_main  # float64: see main()

    if args.plots is not None:
        _writable_folder(args.plots, "--plots")
    return verify_main(
        quick=args.quick, as_json=args.json, plots_dir=args.plots, multi=args.multi, markdown=args.markdown
    )


def cmd_bench(args) -> int:
    from sideq.bench import main as bench_main  # float64: see main()

    return bench_main(quick=args.quick, as_json=args.json)


def cmd_plot(args) -> int:
    """``sideq plot PATH``: the figures of a sweep's folder (finished or not) or of a
    run saved with ``--save`` (:func:`sideq.plots.draw`); prints the paths written."""
    from sideq import plots

    formats = [f.strip().lower() for f in args.format.split(",")]
    if any(f not in plots.FORMATS for f in formats):
        raise CLIError(
            f"--format: expected formats from {', '.join(plots.FORMATS)} joined by commas "
            f"(e.g. png,pdf), got {args.format!r}"
        )
    pair = None
    if args.pair is not None:
        try:
            pair = tuple(int(v) for v in args.pair.split(","))
        except ValueError:
            pair = ()
        if len(pair) != 2:
            raise CLIError(
                f"--pair: expected two indices of theta joined by a comma (e.g. 0,-1 for "
                f"theta1[0] and theta2), got {args.pair!r}"
            )
    path = args.path
    if not os.path.exists(path):
        raise CLIError(
            f"PATH: {path!r} does not exist; give a sweep's folder (sideq sweep --out DIR) or a "
            "saved run (sideq descent/flow --save RUN.npz)"
        )
    out = args.out
    if out is None:  # beside the data: DIR/plots for a sweep, the run file's folder for a run
        sweep_dir = (
            path
            if os.path.isdir(path)
            else (os.path.dirname(path) if os.path.basename(path) == "results.npz" else None)
        )
        out = os.path.join(sweep_dir, "plots") if sweep_dir is not None else (os.path.dirname(path) or ".")
    try:
        paths = plots.draw(path, out=out, pair=pair, formats=formats)
    except SideqInputError as err:  # (the library's name of the path is the command's PATH)
        name, sep, rest = str(err).partition(": ")
        if name == "source":
            raise CLIError(f"PATH: {rest}") from None
        raise
    print(json.dumps(paths) if args.json else "\n".join(paths))
    return 0


CACHE_ENV = "SIDEQ_CACHE_DIR"

#: The subfolder of the cache in which ``descent`` keeps its whole compiled
#: programs (:mod:`sideq.program_store`).
PROGRAMS = "programs"


def cache_dir() -> str:
    """The folder of the command's persistent compilation cache:
    ``$SIDEQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/sideq/jax``, else
    ``~/.cache/sideq/jax``."""
    folder = os.environ.get(CACHE_ENV, "").strip()
    if folder:
        return os.path.abspath(os.path.expanduser(folder))
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if not os.path.isabs(base):  # (unset, or relative: the XDG spec ignores a relative path)
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sideq", "jax")


def _add_cache_flag(p) -> None:
    """``--no-cache`` for a command that compiles (also accepted before the
    command, ``sideq --no-cache COMMAND``); marks the command as one that
    uses the persistent compilation cache."""
    p.add_argument(
        "--no-cache",
        action="store_true",
        default=argparse.SUPPRESS,
        help="compile afresh, without the persistent compilation cache (see sideq --help)",
    )
    p.set_defaults(compiles=True)


def _compilation_cache(args, owns_process: bool) -> str | None:
    """The folder in which this command caches its compiled programs, or None:
    only a command that compiles, without ``--no-cache``, started as the
    ``sideq`` command (see :func:`main`)."""
    if not owns_process or not getattr(args, "compiles", False) or getattr(args, "no_cache", False):
        return None
    return cache_dir()


def _writable_cache(folder: str) -> bool:
    """Whether the cache can be kept in ``folder``; if not, one line on
    stderr says why (the run goes on without a cache)."""
    problem = unwritable_folder(folder)
    if problem:
        print(
            f"sideq: warning: no compilation cache: {problem} (or set {CACHE_ENV}, or pass --no-cache)", file=sys.stderr
        )
    return not problem


def _use_compilation_cache(folder: str) -> None:
    """Turn JAX's persistent compilation cache on in ``folder`` for this
    process, for every compiled program however quick to compile (XLA:CPU
    compiles sideq's small helpers in milliseconds, but a process pays for
    each).  A folder that cannot be written leaves the cache off, with one
    line on stderr: the run goes on."""
    import jax

    if not _writable_cache(folder):
        return
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # (-1: no size limit)


def _keep_programs(folder: str) -> None:
    """Keep whole compiled programs in ``folder`` for this process
    (:mod:`sideq.program_store`), with JAX's persistent cache off (the store
    keeps only what it compiled itself).  A folder that cannot be written
    leaves both off, with one line on stderr: the run goes on."""
    import jax

    from sideq import program_store

    jax.config.update("jax_enable_compilation_cache", False)  # (also where JAX_COMPILATION_CACHE_DIR is set)
    if not _writable_cache(folder):
        return
    program_store.use(folder)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sideq",
        description="Deep equilibrium single-index models: equilibria, risks, gradient descent.",
        epilog=(
            f"Commands that compile keep their compiled programs in ${CACHE_ENV} (default "
            "$XDG_CACHE_HOME/sideq/jax or ~/.cache/sideq/jax; here "
            f"{cache_dir()}), so that the same run starts faster the next time; --no-cache "
            "turns it off, and deleting the folder empties it."
        ),
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="compile afresh, without the persistent compilation cache"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("reproduce", help="rerun the paper's experiments (Section 4) and write figures + summary")
    p.add_argument("--out", default="figures", help="output folder (default figures/)")
    p.add_argument("--only", default=None, help="comma list of figures, e.g. fig1,fig3")
    p.add_argument("--seed", type=_count, default=0, help="seed of the figures' run (default 0)")
    p.add_argument(
        "--seeds", type=_count, default=32, help="seeds on which each caption's claim is checked (default 32; 0 skips)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--extended", action="store_true", help="also run the experiments beyond the paper (experiments/README.md)"
    )
    p.add_argument("--quick", action="store_true", help="with --extended: smaller grids and fewer epochs")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--x64", dest="x64", action="store_true", default=True, help="float64 (default)")
    prec.add_argument("--x32", dest="x64", action="store_false", help="float32")
    _add_cache_flag(p)
    p.set_defaults(func=cmd_reproduce, subparser=p)
    p = sub.add_parser("descent", help="one gradient-descent run; prints a summary (or --json)")
    _add_run_flags(p)
    _add_cache_flag(p)
    p.set_defaults(func=cmd_descent, subparser=p, keeps_programs=True)
    p = sub.add_parser("flow", help="one gradient-flow run (diffrax); prints a summary (or --json)")
    _add_run_flags(p, "flow")
    _add_cache_flag(p)
    p.set_defaults(func=cmd_flow, subparser=p)
    p = sub.add_parser("sweep", help="gradient descent from many initializations: chunked, sharded, resumable")
    _add_run_flags(p, "sweep")
    _add_cache_flag(p)
    p.set_defaults(func=cmd_sweep, subparser=p)
    p = sub.add_parser("verify", help="check every theorem of the paper against simulation (VERIFY.md)")
    p.add_argument("--quick", action="store_true", help="fewer initializations (under a minute)")
    p.add_argument("--json", action="store_true", help="print a list of {claim, holds, ...} objects")
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print the whole of VERIFY.md made from this run: sideq verify --markdown --plots docs/verify > VERIFY.md",
    )
    p.add_argument(
        "--plots", metavar="DIR", default=None, help="also write the VERIFY.md figures (PNG) into DIR, e.g. docs/verify"
    )
    p.add_argument(
        "--multi", action="store_true", help="instead, the laws for multi-neuron DEQs (k outputs; MULTI_NEURON.md)"
    )
    _add_cache_flag(p)
    p.set_defaults(func=cmd_verify, subparser=p)
    p = sub.add_parser("bench", help="speed against a per-sample numpy/scipy baseline (see BENCHMARKS.md)")
    p.add_argument("--quick", action="store_true", help="fewer repeats (under two minutes)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench, subparser=p)
    p = sub.add_parser("plot", help="figures of a sweep's folder (finished or not) or of a run saved with --save")
    p.add_argument(
        "path",
        metavar="PATH",
        help="a sweep's --out DIR (or its results.npz), or a RUN.npz of sideq descent/flow --save",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="FOLDER",
        help="where to write the figures (default: DIR/plots for a sweep, the run file's folder)",
    )
    p.add_argument(
        "--pair",
        default=None,
        metavar="I,J",
        help="the entries of theta on the axes of a sweep's figures (default 0,-1: theta1[0], theta2)",
    )
    p.add_argument("--format", default="png", help="png, pdf or svg, or several joined by commas (default png)")
    p.add_argument("--json", action="store_true", help="print the paths as a JSON list")
    p.set_defaults(func=cmd_plot, subparser=p)
    return parser


def _as_flag(message: str, flags) -> str:
    """A library error names its argument (``eta: ...``); at the command line,
    name the flag instead (``--eta: ...``) where the command has one."""
    name, sep, rest = message.partition(":")
    flag = {"out_dir": "--out", "theta0": "--init"}.get(name, "--" + name.strip().replace("_", "-"))
    return f"{flag}{sep}{rest}" if sep and name.isidentifier() and flag in flags else message


def _negative_values(parser, argv):
    """``--init -0.1,0.2`` as ``--init=-0.1,0.2``: argparse takes a token that
    starts with '-' and is not a plain number for an option, so a list with a
    leading minus would be refused."""
    takes_value = {
        s
        for sub in parser._subparsers._group_actions
        for p in sub.choices.values()
        for a in p._actions
        if a.nargs is None and a.option_strings
        for s in a.option_strings
    }
    out = []
    for token in argv:
        if out and out[-1] in takes_value and re.match(r"-\.?\d", token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv=None) -> int:
    """The ``sideq`` command line; returns the exit status.

    With ``argv`` None (the ``sideq`` command, ``python -m sideq.cli``) the
    process is the command's own, and a command that compiles keeps JAX's
    persistent compilation cache in :func:`cache_dir` (``--no-cache``: none;
    ``descent``: its whole programs, :func:`_keep_programs`).
    Called from Python with a list of arguments, it leaves the process's JAX
    configuration as it found it (the cache is a setting of the whole
    process).  ``sideq bench`` measures compilation, so it runs without the
    cache (its start-up figures time the command in fresh processes)."""
    owns_process = argv is None
    parser = build_parser()
    args, extra = parser.parse_known_args(_negative_values(parser, sys.argv[1:] if argv is None else list(argv)))
    if extra:  # named by the command they were given to, as its other errors are
        (getattr(args, "subparser", None) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    import jax

    folder = _compilation_cache(args, owns_process)
    if folder is not None and getattr(args, "keeps_programs", False):
        _keep_programs(os.path.join(folder, PROGRAMS))
    elif folder is not None:
        _use_compilation_cache(folder)
    elif owns_process and getattr(args, "no_cache", False):  # (also off where JAX_COMPILATION_CACHE_DIR is set)
        jax.config.update("jax_enable_compilation_cache", False)

    # The entry point chooses the precision, scoped to the command: --x64 (the
    # default) or --x32; verify and bench always run in float64.
    try:
        with jax.enable_x64(bool(getattr(args, "x64", True))):
            return int(args.func(args) or 0)
    except (CLIError, SideqInputError) as err:
        flags = {s for action in args.subparser._actions for s in action.option_strings}
        print(f"sideq {args.command}: error: {_as_flag(str(err), flags)}", file=sys.stderr)
        return 2
    except OSError as err:  # (a file or folder the user named: full disk, permissions, ...)
        print(f"sideq {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sideq {args.command}: interrupted", file=sys.stderr)
        return 130


def command() -> int:
    """The ``sideq`` console script (and ``python -m sideq.cli``): :func:`main`
    on the process's arguments, then the process ends.

    Before it ends, every object is moved out of the garbage collector's
    reach (:func:`gc.freeze`).  The interpreter's teardown otherwise runs
    full collections over everything JAX allocated, a visible part of a
    warm command's wall time (BENCHMARKS.md, start-up).  Objects are still
    freed by their reference counts and ``atexit`` handlers still run; only
    unreachable cycles are left to the operating system.  Not in
    :func:`main`, which a notebook or a script may call and keep running."""
    code = main()
    import gc

    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(command())
