"""Multi-host sweeps, tested on one machine: two local processes joined by
``jax.distributed`` (CPU, coordinator on localhost) run one sweep sharded
across both into one out folder, launched as a user launches them on a
cluster without SLURM (``sideq sweep --distributed`` with
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID).

Second route: the same sweep in one process, bit for bit.  Killing one
process mid-sweep and resuming both loses nothing.

Marked ``multihost`` (three rounds of process starts and compilations):
``pytest -m multihost -n 0`` runs it; ``.ci/run`` does after the suite.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.multihost

SWEEP = [
    "sweep",
    "--model",
    "sigmoid",
    "--xi",
    "2",
    "--inits",
    "20",
    "--init-dist",
    "normal:0,1",
    "--eta",
    "0.1,0.5",
    "--n",
    "64",
    "--chunk",
    "8",
    "--cpu-devices",
    "2",
    "--no-progress",
    "--json",
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(SIDEQ_CACHE_DIR=str(cache), JAX_PLATFORMS="cpu", **extra)
    return env


def _launch(out, epochs, cache, n, port, *flags):
    args = [sys.executable, "-m", "sideq.cli", *SWEEP, "--epochs", str(epochs), "--out", str(out), *flags]
    if n == 1:
        return [subprocess.Popen(args, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    return [
        subprocess.Popen(
            args + ["--distributed"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(
                cache, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(n), JAX_PROCESS_ID=str(i)
            ),
        )
        for i in range(n)
    ]


def _finish(procs, timeout=240):
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-2000:]
        outs.append(out)
    return outs


def _results(out):
    with np.load(out / "results.npz") as f:
        return {k: f[k] for k in f.files}


def test_two_processes_sweep_as_one_and_resume_after_a_kill(tmp_path):
    cache = tmp_path / "cache"
    epochs = 1500  # long enough per chunk to kill the sweep between chunks
    (ref_out,) = _finish(_launch(tmp_path / "one", epochs, cache, 1, None))
    reference = _results(tmp_path / "one")

    # Two processes, one sweep: process 0 writes, process 1 prints nothing.
    outs = _finish(_launch(tmp_path / "two", epochs, cache, 2, _free_port()))
    assert json.loads(outs[0])["status_counts"] == json.loads(ref_out)["status_counts"]
    assert outs[1].strip() == ""
    two = _results(tmp_path / "two")
    assert set(two) == set(reference)
    for k in reference:
        np.testing.assert_array_equal(two[k], reference[k], err_msg=k)

    # Kill process 1 once a chunk is on disk (process 0 is then stuck in a
    # collective and is killed too), then resume both.
    out = tmp_path / "killed"
    port = _free_port()
    procs = _launch(out, epochs, cache, 2, port)
    n_chunks = -(-40 // 8)
    deadline = time.time() + 240
    while time.time() < deadline:
        done = [
            f
            for f in (os.listdir(out / "chunks") if (out / "chunks").exists() else [])
            if f.endswith(".npz") and not f.startswith(".")
        ]
        if done:
            break
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    try:
        procs[0].wait(timeout=20)
    except subprocess.TimeoutExpired:
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
    for p in procs:
        p.communicate()
    left = [f for f in os.listdir(out / "chunks") if f.endswith(".npz") and not f.startswith(".")]
    assert 1 <= len(left) < n_chunks and not (out / "results.npz").exists(), left
    outs = _finish(_launch(out, epochs, cache, 2, _free_port(), "--resume"))
    resumed = _results(out)
    for k in reference:
        np.testing.assert_array_equal(resumed[k], reference[k], err_msg=k)
    summary = json.loads(outs[0])
    assert summary["status_counts"] == json.loads(ref_out)["status_counts"]
    assert summary["runs_computed"] < summary["runs"]  # the chunks on disk were kept
