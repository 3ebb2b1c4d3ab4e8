"""sideq.paper.verify: each check holds on its setting and fails when its prediction is perturbed.

All simulations are shared through sideq.paper.verify's cache (K = 4 starts per setting).
"""

import json

import numpy as np

from sideq.paper import verify as V

K = 4
GRID = 21


def _tight(rec):
    assert rec["tightness"] is not None and rec["tightness"] >= 1 - 1e-6
    return rec["tightness"]


def test_theorem_3_1():
    assert V.check_theorem_3_1("unif1", K)["holds"]
    assert not V.check_theorem_3_1("unif1", K, perturb=1.1)["holds"]


def test_lemma_3_2():
    assert V.check_lemma_3_2("unif1", K)["holds"]
    assert not V.check_lemma_3_2("unif1", K, perturb=-1.0)["holds"]


def test_theorem_3_3():
    rec = V.check_theorem_3_3("unif1", K, "corrected")
    assert rec["holds"] and rec["should_hold"]
    assert not V.check_theorem_3_3("unif1", K, "corrected", perturb=1.1)["holds"]
    printed = V.check_theorem_3_3("unif1", K, "printed")
    assert not printed["holds"] and printed["should_hold"] is False


def test_theorem_3_4():
    rec = V.check_theorem_3_4("unif1", K, "corrected")
    t = _tight(rec)
    assert not V.check_theorem_3_4("unif1", K, "corrected", perturb=1.1 * t)["holds"]
    assert not V.check_theorem_3_4("unif1", K, "printed")["holds"]  # theta1(0) = 0 counterexample


def test_eq_8_lemma_3_5_lemma_3_7():
    assert V.check_eq_8("unif1", K)["holds"]
    assert not V.check_eq_8("unif1", K, perturb=1.1)["holds"]
    for check in (V.check_lemma_3_5, V.check_lemma_3_7):
        t = _tight(check("unif1", K))
        assert not check("unif1", K, perturb=1.1 * t)["holds"]


def test_theorem_3_6():
    t = _tight(V.check_theorem_3_6("unif1", K, "corrected"))
    assert not V.check_theorem_3_6("unif1", K, "corrected", perturb=1.1 * t)["holds"]


def test_theorem_3_6_counterexample_within_hypotheses():
    # X ~ Unif[0, 0.1], every start at its own certified eta0 and inside Theta throughout:
    # the printed rate fails, the corrected one holds (ERRATA.md §4)
    kw = dict(variant="printed", **V.COUNTEREXAMPLE_3_6)
    printed = V.check_theorem_3_6_eta0("unif0.1", K, **kw)
    assert not printed["holds"] and printed["should_hold"] is False and "in Theta: 4/4" in printed["observed"]
    assert printed["tightness"] < 0.1
    kw["variant"] = "corrected"
    t = _tight(V.check_theorem_3_6_eta0("unif0.1", K, **kw))
    assert not V.check_theorem_3_6_eta0("unif0.1", K, perturb=1.1 * t, **kw)["holds"]


def test_eq_1_3_5():
    assert V.check_eq_1(K)["holds"]
    assert not V.check_eq_1(K, perturb=1.001)["holds"]
    assert V.check_eq_3("unif1", K, "corrected")["holds"]
    assert not V.check_eq_3("unif1", K, "corrected", perturb=1.001)["holds"]
    printed = V.check_eq_3("unif1", K, "printed")
    assert not printed["holds"] and printed["should_hold"] is False
    assert V.check_eq_5("unif1", K)["holds"]
    assert not V.check_eq_5("unif1", K, perturb=1 + 1e-8)["holds"]


def test_eq_7_and_9():
    t = _tight(V.check_eq_7("unif1", K))
    assert not V.check_eq_7("unif1", K, perturb=1.1 * t)["holds"]
    _tight(V.check_eq_9("unif1", K))  # d = 1: both sides of Eq. (9) are equalities
    assert not V.check_eq_9("unif1", K, perturb=1.001)["holds"]


def test_eq_13_15_18():
    name = "sigmoid-unif1"
    t = _tight(V.check_eq_13(name, K))
    assert not V.check_eq_13(name, K, perturb=1.1 * t)["holds"]
    assert V.check_eq_15(name, K, "corrected")["holds"]
    assert not V.check_eq_15(name, K, "corrected", perturb=1.001)["holds"]
    printed = V.check_eq_15(name, K, "printed")  # ERRATA.md §8: off by exactly a factor 2
    assert not printed["holds"] and printed["should_hold"] is False and "observed/predicted 2" in printed["observed"]
    t = _tight(V.check_eq_18(name, K))
    assert not V.check_eq_18(name, K, perturb=1.1 * t)["holds"]


def test_rho_positive():
    assert not V.check_rho_positive("tanh-unif1", "printed", GRID)["holds"]
    assert V.check_rho_positive("tanh-unif1", "corrected", GRID)["holds"]
    assert not V.check_rho_positive("tanh-unif1", "corrected", GRID, perturb=-1.0)["holds"]


def test_theorem_3_8():
    t = _tight(V.check_theorem_3_8("tanh-unif1", K, "corrected", GRID))
    assert not V.check_theorem_3_8("tanh-unif1", K, "corrected", GRID, perturb=1.1 * t)["holds"]


def test_corollary_3_1():
    assert V.check_corollary_3_1("tanh-unif1", K)["holds"]
    assert not V.check_corollary_3_1("tanh-unif1", K, perturb=1.2)["holds"]


def test_theorem_3_9():
    t = _tight(V.check_theorem_3_9("tanh-unif1", K, "corrected", GRID))
    assert not V.check_theorem_3_9("tanh-unif1", K, "corrected", GRID, perturb=1.1 * t)["holds"]


def test_main_exit_code_and_json(monkeypatch, capsys):
    good = V._rec("Theorem X", "corrected", "s", 1, 1, None, "t", True, True)
    wrong_printed = V._rec("Theorem X", "printed", "s", 1, 2, None, "t", False, False)
    monkeypatch.setattr(V, "run", lambda quick, log=None: [good, wrong_printed])
    assert V.main(quick=True, as_json=True) == 0
    assert json.loads(capsys.readouterr().out)[1]["should_hold"] is False
    bad = dict(good, holds=False)
    monkeypatch.setattr(V, "run", lambda quick, log=None: [good, bad])
    assert V.main(quick=True) == 1
    assert "should hold failed" in capsys.readouterr().out


def test_theorem_3_6_at_eta0():
    rec = V.check_theorem_3_6_eta0("unif1", K)
    assert rec["holds"] and "in Theta: 4/4" in rec["observed"]
    t = _tight(rec)
    assert not V.check_theorem_3_6_eta0("unif1", K, perturb=1.1 * t)["holds"]


def test_eta0_tightness():
    rec = V.check_eta0_tightness("unif1", K)
    assert rec["holds"]  # eta0 itself keeps Lemma 3.7's conclusions from every start
    keeps = V.eta0_scan("unif1", K)["keeps"]
    assert np.all(keeps >= 1) and np.all(keeps < 2.0**40)  # and a larger step breaks them


def test_rho_gaussian_d2():
    for name in ("softplus-gauss2", "softplus-gauss2iso"):
        rec = V.check_rho_positive(name, "corrected", GRID)
        assert rec["holds"] and rec["should_hold"]
        assert not V.check_rho_positive(name, "corrected", GRID, perturb=-1.0)["holds"]


def test_plots(tmp_path):
    import jax

    with jax.enable_x64(True):
        paths = V.plots(str(tmp_path), K=K, grid=GRID)
    assert len(paths) == 3
    for p in paths:
        with open(p, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
