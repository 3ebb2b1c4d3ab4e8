"""Progress bars: on a terminal, done/total, rate and ETA on stderr; on a pipe
nothing, so that a pipe or a log receives the results alone."""

import json

import sideq.paper.verify as V
import sideq.progress as progress


def test_bar_on_a_terminal_only(monkeypatch, capsys):
    with progress.bar(3, "work", "step") as b:
        assert b is None  # (pytest's stderr is not a terminal)
        progress.advance(b, 1, "ignored")
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    with progress.bar(3, "work", "step") as b:
        for k in range(3):
            progress.advance(b, 1, f"part {k}")
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("work:") and "3/3" in last and "step/s" in last and "part 2" in last, last
    with progress.bar(3, "work", show=False) as b:
        assert b is None


def test_verify_counts_checks_on_a_terminal_and_prints_only_results_on_a_pipe(monkeypatch, capsys):
    record = dict(
        claim="Eq. (1)",
        variant="as printed",
        setting="s",
        statement="",
        observed="",
        theta=[0.0],
        expected="",
        holds=True,
        should_hold=True,
        tightness=1.0,
    )

    def fake_run(quick, log=None):
        for _ in range(4):
            if log:
                log("[   0.1 s] Eq. (1) (as printed): holds")
        return [record] * 4

    monkeypatch.setattr(V, "run", fake_run)
    assert V.main(quick=True, as_json=True) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and len(json.loads(captured.out)) == 4
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    assert V.main(quick=True, as_json=True) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 4  # stdout: the results alone
    last = captured.err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("verify:") and "4check" in last.replace(" ", "") and "holds" in last, last
