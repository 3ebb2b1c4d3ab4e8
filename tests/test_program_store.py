"""The compiled programs that `sideq descent` keeps between processes
(sideq.program_store): loaded again they give the numbers of a run without
them, bit for bit; a call whose key cannot be stated and a process in which
JAX's own persistent cache is on take JAX's usual route; an entry that cannot
be read back, was stored under another key or cannot be run is compiled
again and replaced."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import optax
import pytest

import sideq
from sideq import program_store
from sideq.program_store import _key, _split, _static, _Unkeyable
from sideq.train import _descent_empirical

SIGMOID = sideq.single_index("sigmoid")


def _descent_call(epochs=5, x64=True):
    """The key of one _descent_empirical call (static and array arguments as
    sideq.train.descent passes them)."""
    with jax.enable_x64(x64):
        args = (SIGMOID, np.array([0.3, 0.2]), np.ones((13, 1)), None, np.array([2.0]), 0.5, np.zeros(3))
        kwargs = dict(epochs=epochs, optimizer=None, backend="jaxopt", maxiter=100, history=True, save_every=1)
        static, dyn_args, dyn_kwargs = _split(_descent_empirical._fun, _descent_empirical._static_names, args, kwargs)
        return _key(_descent_empirical._fun, {"o": 1}, static, dyn_args, dyn_kwargs)


def test_the_key_names_every_static_argument_and_the_precision():
    key = _descent_call()
    assert key == _descent_call()  # (nothing in it changes from call to call)
    assert " at 0x" not in key and "Activation:sigmoid" in key and "int:5" in key
    assert _descent_call(epochs=6) != key
    assert _descent_call(x64=False) != key  # (JAX's context options: x64)


def test_what_cannot_be_stated_in_a_key_is_refused():
    assert "Activation:tanh" in _static(sideq.single_index("tanh"))
    assert _static((1, 2.5, None, "a", np.dtype("float32"))) == "(int:1,float:2.5,NoneType:None,str:'a',dtype:<f4)"
    mine = sideq.single_index(sideq.activation(lambda z: z / (1 + abs(z)), slope_bounds=(0.0, 1.0)))
    for value in (mine, optax.sgd(0.1), lambda z: z, np.ones(2), [1, 2]):
        with pytest.raises(_Unkeyable):
            _static(value)
    with pytest.raises(_Unkeyable):  # (a traced argument: inside another jit or vmap)
        jax.vmap(lambda t: _key(_descent_empirical._fun, None, [], [t], {}))(np.ones((2, 3)))


def test_source_digest_follows_the_python_files_only(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    before = program_store.source_digest(str(tmp_path))
    (tmp_path / "notes.txt").write_text("not code")
    assert program_store.source_digest(str(tmp_path)) == before
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    assert program_store.source_digest(str(tmp_path)) != before


def test_nothing_is_stored_once_the_source_has_changed(tmp_path, monkeypatch):
    """A program compiled after sideq's source changed (an edit while a run
    starts) is not filed under the source read when the store was turned on."""
    program_store.use(str(tmp_path))
    try:
        compiled = jax.jit(lambda v: v + 1.0).lower(1.0).compile()
        with monkeypatch.context() as m:
            m.setattr(program_store, "_package_digest", lambda: "an edited source")
            program_store._write(str(tmp_path / "entry"), "key", compiled)
        assert not (tmp_path / "entry").exists()
        program_store._write(str(tmp_path / "entry"), "key", compiled)  # (the same source: stored)
        assert (tmp_path / "entry").exists()
    finally:
        program_store.use(None)


def test_off_where_jax_persistent_cache_is_on(tmp_path):
    """The test process runs with JAX's persistent cache (conftest.py), whose
    loaded executables cannot be stored again: the store stays out of it."""
    program_store.use(str(tmp_path / "programs"))
    try:
        trajectory = sideq.descent(SIGMOID, np.array([0.3, 0.2]), xi=np.array([2.0]), x=np.ones((13, 1)), epochs=3)
    finally:
        program_store.use(None)
    assert np.isfinite(np.asarray(trajectory.theta)).all()
    assert not (tmp_path / "programs").exists()


_SCRIPT = textwrap.dedent(
    """
    import json, os, pickle, sys
    import jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    import sideq
    from sideq import program_store, train

    folder = sys.argv[1]
    x = np.linspace(0.05, 0.95, 13)[:, None]

    def run():
        tr = sideq.descent(sideq.single_index("sigmoid"), np.array([0.3, 0.2]), xi=np.array([2.0]), x=x,
                           epochs=7, eta=0.5)
        return {k: np.asarray(v).tolist() for k, v in tr._asdict().items() if v is not None}

    def vmapped():
        theta0 = np.array([[0.3, 0.2], [-0.4, 0.1]])
        tr = jax.vmap(lambda th: train.descent_empirical(
            sideq.single_index("sigmoid"), th, x, None, np.array([2.0]), 0.5, np.zeros(3), epochs=7,
            optimizer=None, backend="jaxopt", maxiter=100))(theta0)
        return np.asarray(tr.theta).tolist()

    reads = []
    read = program_store._read
    program_store._read = lambda path, key: reads.append(read(path, key)) or reads[-1]
    out = {"plain": run(), "plain_vmapped": vmapped()}
    program_store.use(folder)
    out["first"] = run()
    out["entries"] = sorted(os.listdir(folder))
    program_store.use(folder)  # (a new process, as far as the store knows)
    out["second"] = run()
    out["second_loaded"] = [r is not None for r in reads]
    path = os.path.join(folder, out["entries"][0])
    with open(path, "wb") as f:
        f.write(b"not a program")
    program_store.use(folder)
    out["after_corrupt"] = run()
    with open(path, "rb") as f:
        entry = pickle.load(f)
    out["rewritten"] = entry["key"].startswith("sideq.train._descent_empirical")

    def rerun_with(entry):
        # (the entry written in place of the stored one; the run's numbers, and
        # whether the store read a program back)
        with open(path, "wb") as f:
            pickle.dump(entry, f)
        program_store.use(folder)
        reads.clear()
        return run(), reads[0] is not None

    out["after_foreign"], out["foreign_loaded"] = rerun_with(dict(entry, key="another key"))
    # A program XLA cannot run (an executable loaded from disk serializes
    # without its kernels): read back, it fails, and is compiled and replaced.
    from jax.experimental import serialize_executable as se
    tree = jax.tree_util.tree_structure
    with open(path, "rb") as f:
        entry = pickle.load(f)
    loaded = se.deserialize_and_load(entry["program"], tree(entry["in"]), tree(entry["out"]))
    entry["program"] = se.serialize(loaded)[0]
    out["after_broken"], out["broken_read"] = rerun_with(entry)
    with open(path, "rb") as f:
        out["replaced"] = pickle.load(f)["program"] != entry["program"]
    out["vmapped"] = vmapped()  # (traced arguments: JAX's usual route)
    out["entries_at_end"] = sorted(os.listdir(folder))
    print(json.dumps(out))
    """
)


def test_stored_programs_give_the_numbers_of_a_run_without_them(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "SIDEQ_TEST_JAX"))}
    folder = tmp_path / "programs"
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(folder)],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(env, JAX_PLATFORMS="cpu"),
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["entries"] == [e for e in out["entries"] if e.startswith("_descent_empirical-")] != []
    assert out["second_loaded"] == [True]  # (loaded, not compiled again)
    for name in ("first", "second", "after_corrupt", "after_foreign", "after_broken"):
        assert out[name] == out["plain"], name
    assert out["rewritten"] and not out["foreign_loaded"]
    assert out["broken_read"] and out["replaced"]
    assert out["vmapped"] == out["plain_vmapped"]
    assert out["entries_at_end"] == out["entries"]  # (the temporary files renamed, none left)
