"""``sideq verify --markdown``: VERIFY.md made from a run's records (sideq.paper.verify_markdown).

The writer runs on hand-built records (no simulation); its tables are read back
with python-markdown (the docs' own renderer) as a second route for the cells,
and the counts are the test's own.
"""

import re

import pytest
from helpers import run_cli

from sideq.paper import verify as V
from sideq.paper import verify_markdown as VM


def rec(claim, variant, setting, holds, should, *, observed="o", predicted="p", tightness=None, note=""):
    return V._rec(claim, variant, setting, predicted, observed, None, "tol", holds, should, tightness, note)


RECS = [
    rec("Theorem A", "printed", "lin, X~Unif", False, False, observed="error 6.7 (counterexample)"),
    rec("Theorem A", "corrected", "lin, X~Unif", True, True, observed="error 3e-13", tightness=4.0),
    rec("Theorem A", "corrected", "lin, X~Gauss", True, True, observed="error 1e-12", tightness=250.0),
    rec("Eq. (9)", "as printed", "lin", False, True, predicted="||v||^2 <= R", observed="ratio 0.5"),
    rec("Theorem B", "printed", "tanh GD, X~Unif", False, False, observed="lambda1 = 0"),
    rec("Theorem B", "corrected", "tanh GD, X~Unif, 24 inits", True, True, observed="rate 2e-9"),
    rec("Corollary C", "outside", "softplus", False, None, observed="min rate -1, statuses [1, 5]"),
]


def _cells(line):
    """Cells of a table row, split at pipes not escaped by a backslash."""
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _section(doc, title):
    return doc.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _rows(text):
    return [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith(("| claim", "| ---"))]


@pytest.fixture(scope="module")
def doc():
    info = {"wall_s": 12.0, "cpu_s": 20.0, "machine": VM.machine(), "load_start": (1.0, 2.0, 3.0), "load_end": None}
    return VM.markdown(RECS, V.run_parameters(), command="sideq verify --markdown", run_info=info)


def test_header_says_the_command_and_the_run(doc):
    assert doc.startswith("# Verification of Section 3 against simulation\n")
    assert "`sideq verify --markdown`" in doc.split("\n## ", 1)[0]
    # 1 should-hold failure (Eq. (9)), 2 printed statements failing (A, B); the outside row is neither
    assert "7 records: 1 claim(s) that should hold failed; 2 printed statement(s) shown failing." in doc
    assert "12 s of wall time and 20 s of CPU time" in doc and "1.00 2.00 3.00 at the start and n/a at the end" in doc
    # the prose quotes the code's constants, not its own numbers
    assert f"{V.QUICK_STARTS} starts instead of\n{V.FULL_STARTS}" in doc


def test_every_record_is_a_row_and_the_failing_claim_is_marked(doc):
    rows = [_cells(r) for r in _rows(_section(doc, "All records"))]
    assert len(rows) == len(RECS)
    for cells, r in zip(rows, RECS):
        assert len(cells) == 10 and cells[0] == r["claim"] and cells[1] == r["variant"]
        assert cells[-1] == r["observed"]
        assert cells[6] == {True: "yes", False: "no", None: "-"}[r["should_hold"]]
    verdicts = [c[7] for c in rows]
    assert verdicts == [
        "fails (known wrong)",
        "pass",
        "pass",
        "**FAILED**",
        "fails (known wrong)",
        "pass",
        "fails",
    ]
    assert [c[5] for c in rows][1:3] == ["4", "250"]
    assert rows[3][3] == "||v||^2 <= R"  # the pipes of a norm stay in their cell
    # a row ends with the record's observed text (tests/test_status.py reads statuses back)
    assert any(ln.endswith("statuses [1, 5]") for ln in doc.splitlines())


def test_summary_counts_and_tightness_range(doc):
    rows = {(c[0], c[1]): c for c in map(_cells, _rows(_section(doc, "Findings")))}
    assert list(rows) == [
        ("Theorem A", "printed"),
        ("Theorem A", "corrected"),
        ("Eq. (9)", "as printed"),
        ("Theorem B", "printed"),
        ("Theorem B", "corrected"),
        ("Corollary C", "outside"),
    ]
    assert rows[("Theorem A", "corrected")][2:] == ["yes", "2", "2", "pass (2)", "4 … 250"]
    assert rows[("Eq. (9)", "as printed")][5] == "**FAILED**"


def test_printed_statement_sits_next_to_its_correction(doc):
    rows = [_cells(r) for r in _rows(_section(doc, "Printed statements and their corrections"))]
    assert [(c[0], c[1]) for c in rows] == [("Theorem A", "lin, X~Unif"), ("Theorem B", "tanh GD, X~Unif")]
    a, b = rows
    # the counterexample, then the correction in the same setting (not the X~Gauss one)
    assert a[3:] == ["error 6.7 (counterexample)", "fails (known wrong)", "corrected: p", "error 3e-13", "pass"]
    # a setting that the correction's extends (more detail) is the same setting
    assert b[6] == "rate 2e-9"


def test_tables_render_with_one_cell_per_column(doc):
    markdown = pytest.importorskip("markdown")
    html = markdown.markdown(doc, extensions=["tables"])
    tables = re.findall(r"<table>.*?</table>", html, re.S)
    assert len(tables) == 3
    rows = re.findall(r"<tr>(.*?)</tr>", tables[-1], re.S)
    assert len(rows) == 1 + len(RECS)
    assert all(row.count("<td>") == 10 for row in rows[1:])
    assert "<strong>FAILED</strong>" in tables[-1] and "||v||^2 &lt;= R" in tables[-1]


def test_cli_markdown_flag(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(V, "run", lambda quick, log=None: seen.append(quick) or RECS)
    code, out, err = run_cli(capsys, "verify", "--markdown", "--quick")
    assert code == 1 and seen == [True]  # Eq. (9) should hold and fails
    assert out.startswith("# Verification of Section 3") and "`sideq verify --markdown --quick`" in out
    assert "(a `--quick` run" in out
    # its summary row and its record
    assert [_section(out, t).count("**FAILED**") for t in ("Findings", "All records")] == [1, 1]
    monkeypatch.setattr(V, "run_multi", lambda quick, log=None: RECS[1:3])
    code, out, _ = run_cli(capsys, "verify", "--markdown", "--multi")
    assert code == 0 and out.startswith("# Multi-neuron laws") and "`sideq verify --markdown --multi`" in out
    code, out, err = run_cli(capsys, "verify", "--markdown", "--json")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1 and "--markdown" in err
