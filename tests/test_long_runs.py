"""Long runs in constant memory: a descent keeps every m-th epoch (and the
last) when its history would not fit, while the run's end and its online
quantities (min loss, first epoch each tolerance is met, non-unique epochs)
still cover every epoch.  Second routes: the full history of the same run,
and XLA's own account of the compiled program's memory."""

import jax.numpy as jnp
import numpy as np
import pytest

import sideq
import sideq.train as train
from sideq.train import descent, history_stride

SIG = sideq.single_index("sigmoid")
X = np.random.default_rng(5).uniform(0, 1, (64, 1))
EPOCHS = 900
RUN = dict(xi=[2.0], x=X, eta=0.5, epochs=EPOCHS, gtol=2e-3, ltol=1e-3, dtol=0.5)


@pytest.fixture(scope="module")
def full():
    return descent(SIG, [0.1, 0.1], save_every=1, **RUN)


def test_strided_history_is_the_full_history_at_its_rows(full):
    strided = descent(SIG, [0.1, 0.1], save_every=40, **RUN)
    t = np.asarray(strided.t)
    assert t.tolist() == list(range(0, EPOCHS, 40)) + [EPOCHS]
    assert np.asarray(full.t).tolist() == list(range(EPOCHS + 1))
    for field in ("theta", "loss", "grad_norm", "distance", "residual"):
        np.testing.assert_allclose(
            np.asarray(getattr(strided, field)),
            np.asarray(getattr(full, field))[t],
            rtol=1e-12,
            atol=1e-15,
            err_msg=field,
        )
    # online quantities over every epoch, recomputed from the full history
    loss, gnorm, dist = (np.asarray(v) for v in (full.loss, full.grad_norm, full.distance))
    first = [
        int(np.argmax(m)) if m.any() else -1 for m in (gnorm <= RUN["gtol"], loss <= RUN["ltol"], dist <= RUN["dtol"])
    ]
    assert sum(f >= 0 for f in first) >= 2, "the run must meet tolerances for this to test anything"
    assert np.asarray(strided.first_met).tolist() == first == np.asarray(full.first_met).tolist()
    assert int(strided.steps) == min(f for f in first if f >= 0)
    assert float(strided.loss_min) == pytest.approx(loss.min(), rel=1e-12)
    assert int(strided.status) == int(full.status)


def test_automatic_stride_keeps_the_history_under_the_budget(monkeypatch, full):
    p = 2
    budget = 200 * (6 * p + 16) * 8  # room for 200 rows
    monkeypatch.setattr(train, "HISTORY_BYTES", budget)
    traj = descent(SIG, [0.1, 0.1], **RUN)
    rows = np.asarray(traj.t).size
    assert rows <= 200 and np.asarray(traj.theta).shape == (rows, p)
    assert history_stride(EPOCHS, p, budget=budget) == np.diff(np.asarray(traj.t))[0] == 5
    assert history_stride(10**9, p, budget=budget) * 199 >= 10**9  # any length fits
    np.testing.assert_allclose(np.asarray(traj.theta[-1]), np.asarray(full.theta[-1]), rtol=1e-12)


def test_a_billion_epochs_compile_to_bounded_memory():
    """XLA's memory account of the compiled run: with the automatic stride the
    output and temporaries of 10⁹ epochs stay within the history budget (a
    full history would need 10⁹ rows)."""
    epochs = 10**9
    every = history_stride(epochs, 2)
    compiled = train._descent_empirical.lower(
        SIG,
        jnp.asarray([0.1, 0.1]),
        jnp.asarray(X),
        None,
        jnp.asarray([2.0]),
        np.float64(0.1),
        np.zeros(3),
        epochs=epochs,
        optimizer=None,
        backend="jaxopt",
        maxiter=100,
        save_every=every,
    ).compile()
    memory = compiled.memory_analysis()
    used = memory.output_size_in_bytes + memory.temp_size_in_bytes
    assert used <= 1.1 * train.HISTORY_BYTES, used
    assert epochs * (6 * 2 + 16) * 8 > 100 * train.HISTORY_BYTES  # what every epoch would take


def test_save_every_is_checked():
    with pytest.raises(sideq.SideqInputError, match="^save_every:"):
        descent(SIG, [0.1, 0.1], save_every=0, **RUN)


def test_cli_save_every_writes_the_strided_rows_and_the_online_quantities(tmp_path, capsys):
    import json

    from sideq.cli import main

    path = tmp_path / "run.npz"
    args = [
        "descent",
        "--model",
        "sigmoid",
        "--xi",
        "2",
        "--n",
        "64",
        "--init=0.1,0.1",
        "--eta",
        "0.5",
        "--epochs",
        str(EPOCHS),
        "--ltol",
        "1e-3",
        "--save-every",
        "40",
        "--save",
        str(path),
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    with np.load(path) as f:
        saved = {k: f[k] for k in f.files}
    assert saved["t"].tolist() == list(range(0, EPOCHS, 40)) + [EPOCHS]
    assert saved["theta"].shape == (len(saved["t"]), 2) and str(saved["model"]) == "sigmoid"
    assert out["save_every"] == 40 and out["first_met"]["ltol"] == int(saved["first_met"][1])
    # the library's run of the same problem (the CLI's data: seed 0's draw)
    x = np.asarray(sideq.sample(sideq.uniform(0, 1, 1), sideq.data.seed_keys(0)[0], 64))
    lib = descent(SIG, [0.1, 0.1], xi=[2.0], x=x, eta=0.5, epochs=EPOCHS, ltol=1e-3)
    assert out["loss_min"] == pytest.approx(float(lib.loss_min), rel=1e-12)
    assert out["first_met"]["ltol"] == int(lib.first_met[1]) == out["steps"]
    assert main(args[:-5] + ["--save-every", "0"]) == 2
    assert "--save-every" in capsys.readouterr().err
