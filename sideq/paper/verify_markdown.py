r"""VERIFY.md as the output of ``sideq verify --markdown`` (:func:`markdown`).

The document is the fixed explanatory prose of this module (how a check is
judged, how the constants of Section 3 are computed, what is not covered),
and tables made from the records of the run that prints it
(:func:`sideq.paper.verify.run`, or :func:`sideq.paper.verify.run_multi`
with ``--multi``): a summary per (claim, variant), the printed statements of
the paper next to their corrections (ERRATA.md), and every record with its
prediction, observation, tolerance, tightness, ``should_hold`` and verdict.
A number in the document comes from the run's records, from the run's own
measurement of itself (wall and CPU time, the machine, its load average), or
from a constant of the code that produced the records; the prose states
none of its own.  So ``sideq verify --markdown --plots docs/verify >
VERIFY.md`` regenerates VERIFY.md and its figures, and nothing in it is
pasted.
"""

from __future__ import annotations

import math
import os
import platform
import re

__all__ = ["machine", "markdown", "records_table", "summary_table", "verdict", "versus_table"]

# Variants whose statement is known wrong (should_hold False) and the variants that replace them.
WRONG_VARIANTS = ("printed", "naive")
RIGHT_VARIANTS = ("corrected", "derived")

_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")

FIGURES_DIR = "docs/verify"
FIGURES = (
    (
        "theorem_3_6_rate.png",
        "for each descent run, the decay of ‖φ(t) − ξ‖² observed up to step t divided by the decay "
        "Theorem 3.6 predicts (the bound holds iff the curve stays ≥ 1). (a) Linear gradient descent "
        "at the computed η0 of each start. (b) X ~ Unif[0, 0.1], each start at its own η0: the "
        "corrected bound (blue) and the printed one (red), ERRATA §4's counterexample; its numbers "
        "are the rows `Theorem 3.6 (eta0)` on Unif[0,0.1].",
    ),
    (
        "theorem_3_8_rate.png",
        "log ‖θ(t) − (ξ, 0)‖²/‖θ(0) − (ξ, 0)‖² along gradient flows from starts in B((ξ, 0), r0), "
        "sigmoid and tanh on Unif[0, 1], with Theorem 3.8's corrected rate 4ργ²/(1 + Lδ2) (dashed) "
        "and the best rate the data support (dotted); the rates are those of the rows "
        "`Theorem 3.8` (corrected).",
    ),
    (
        "step_sizes.png",
        "step sizes the theory guarantees against those that work, log scale. (a) Linear DEQ, per "
        "start: the certified η0 of Lemma 3.7 against the largest η that keeps the lemma's "
        "conclusions and the largest that converges (rows `Theorem 3.6 (eta0 tightness)`). "
        "(b) Single-index DEQ: λ1/(2λ2) of Theorem 3.9 against the largest converging η and the "
        "first failing one, the ratio annotated (rows `Theorem 3.9 (threshold tightness)`).",
    ),
)

INTRO = """\
`sideq verify` (module `sideq.paper.verify`, formulas in `sideq.paper.theory`)
checks every result of Section 3 of the paper against gradient-flow and
gradient-descent simulations and makes one record per (claim, variant,
setting). Exit status 1 means a claim that should hold failed. Printed
statements that ERRATA.md says are wrong have `should_hold = no`: they are run
and shown failing, each next to its counterexample and the corrected
statement ([Printed statements and their corrections](#printed-statements-and-their-corrections)).

Besides the theorems, lemmas and corollaries, every numbered equation of
Section 3 that states something checkable has a record of its own (the others
are definitions or steps inside a proof): Eq. (1), the implicit gradient,
against central differences of solved equilibria; Eqs. (3) and (5), the linear
risk's gradient and quadratic form, against central differences of the
quadrature risk and the risk itself; Eq. (7) along descent at η0; Eq. (8) along
descent; Eq. (9) along the flows; Eq. (13) at points of Θ; Eq. (15), r'(t),
against −2(θ − (ξ, 0))ᵀ∇R with ∇R by central differences; Eq. (18) and the
bound after it, ‖∇R‖² ≤ λ2(θ) r, at points of the ball.

`sideq verify --multi` runs instead the checks of the multi-neuron laws
(Section 3.1 for k-output DEQs: the conserved matrix, the singular set, the
limit, the rate, and multi_index near (Ξ, 0)); their derivations and results
are in MULTI_NEURON.md, whose tables `sideq verify --multi --markdown` prints
from its own run. This file holds the Section 3 group only.
"""

QUICK = """\
`--quick` runs the same checks on fewer settings: {quick_starts} starts instead of
{full_starts} and a {quick_grid}-point grid per axis instead of {full_grid} for ρ; the
linear flow on `unif1` and `gauss3` (not `gauss2`); gradient descent on `unif1`
only (not `gauss3`); the single-index checks (ρ, Theorem 3.8) on `tanh-unif1` and
`sigmoid-unif1` only (not `softplus-unif1`, `tanh-unif2`, `tanh-gauss1` or the
Gaussian d = 2 settings); Corollary 3.1 and the corrected Theorem 3.9 on
`tanh-unif1` only, without the printed Theorem 3.9; and none of the records
outside the assumptions.
"""

JUDGED = """\
## How a check is judged

* **Identities** (Theorem 3.1, Eqs. (1), (3), (5), (8), (15), the limit of
  Theorem 3.3, Lemma 3.2, Lemma 3.7): the worst case over all starts, against
  the tolerance in the record's row.
* **Exponential bounds** r(t) ≤ P r(0) e^{{−λt}} (Theorems 3.4, 3.8): from the
  recorded trajectory, λ_emp = min_t −log(r(t)/(P r(0)))/t is the largest rate
  the data support (rows under {noise:g} r(0) are skipped as numerical noise).
  The bound holds iff λ_emp ≥ λ up to the row's relative tolerance.
  **tightness = λ_emp/λ**: 1 means the bound is attained somewhere, a large
  value that the predicted rate is that many times smaller than the observed
  one. Discrete bounds r(t) ≤ P q^t r(0) (Theorems 3.6, 3.9) use
  log q_emp = max_t log(r(t)/(P r(0)))/t, tightness = log q_emp / log q.
* Every check takes `perturb`, which multiplies its prediction (the limit's α,
  the rate, the η² term of Eq. (8), β of Lemma 3.7, …). `tests/test_verify.py`
  asserts that each check reports holds = false when its prediction is moved
  by a little more than its tightness, so none of them passes vacuously.
* `should_hold`: yes for the statements as printed that ERRATA.md does not
  correct and for the corrected ones; no for a printed statement ERRATA.md marks
  wrong (a failure there is the counterexample, and is not counted); `-` for
  informational rows (outside the assumptions, tightness scans, a printed
  bound with no rate to check). Only a row with should_hold = yes that fails
  makes the exit status 1 and is marked **FAILED**.

Simulations: flows are `jax.vmap` over `sideq.gradient_flow.gradient_flow`
(Dopri8, population risk by quadrature); descent trajectories are `jax.vmap`
over `sideq.dynamics.gradient_descent`; the step-size scan uses
`sideq.sweep.run_sweep`. Starts: for the linear DEQ, half near the singular
hyperplane θ2 = 1, half far from it, on both sides, and two starts with
θ1(0) = 0; for the single-index DEQ, uniform in the ball B((ξ, 0), r0) with
half of them on its boundary sphere. The law of X, ξ, the starts and the step
size of every row are in its setting column.
"""

CONSTANTS = """\
## Computing the constants (sideq/paper/theory.py)

* Expectations: quadrature, no Monte Carlo. Uniform X and Gaussian X in
  d = 1: sums over `sideq.risk.quadrature_rule`'s nodes (tensor
  Gauss–Legendre; composite Gauss–Legendre panels mapped exactly onto the
  truncation {{‖X‖ ≤ α}}). Gaussian X in d > 1 (`sideq.paper.theory.gaussian_block`):
  y_θ(X) depends on X only through s = eᵀX, e = θ1/‖θ1‖, so one quadrature
  axis along θ1 ({gauss_block_nodes} nodes of the risk's composite
  Gauss–Legendre panels) and the rest in closed form — the conditional normal
  moments E[X | s], Cov[X | s] without the indicator (any d; also Theorem 3.9's
  fourth moment), and for the indicator in d = 2 the truncated-normal moments
  of the coordinate orthogonal to θ1 on the chord |W| ≤ √(α² − s²), with
  s = α sin t to remove the square-root endpoint. Doubling the nodes and a
  Monte Carlo sample (within its error bars) are the second routes in
  `tests/test_theory.py`. Not covered: the indicator for Gaussian X in
  d ≥ 3 (raises).
* α: sup‖X‖ for the uniform law (the indicator is then 1), 2·sqrt(tr E[XXᵀ])
  for a Gaussian (the rows' `alpha`). δ2 = r0 (the start radius), δ1 = δ2/‖ξ‖
  (ERRATA §5).
* γ = inf σ' on [−z_max, z_max] on a fine grid plus the endpoints (exact for
  the built-in activations, whose σ' is unimodal); the rows of Theorem 3.8
  print it.
* ρ = inf over Θ of λ_min of the (d+1)×(d+1) matrix: a grid over the compact
  set (d = 1: {full_grid} × {full_grid} in the full run, {quick_grid} × {quick_grid} in
  `--quick`; d > 1: quasi-uniform directions × radii × θ2, capped at
  {max_grid_high_dim} per axis), then Nelder–Mead from the best grid points,
  projected onto the set. The value returned is attained at a point of the
  set, so it is an upper estimate of the infimum; each `Theorem 3.8 (rho > 0)`
  row's tolerance column gives the grid size and `rel_refinement` (grid value
  against refined value). Equilibria inside: the library's own solver,
  `sideq.scalar.solve` (safeguarded Newton), jitted and vmapped over θ;
  σ and σ' are `sideq.activations`' functions (σ' by `jax.grad`); brentq and
  scipy.quad are its second routes (`tests/test_theory.py`).
* ρ is computed over Θ as printed and over the ball B((ξ, 0), r0) that the
  proof actually needs (ERRATA §6): the printed and corrected rows.
* η0 of Lemma 3.7 / Theorem 3.6 (`sideq.paper.theory.theorem_3_6_eta0`), per
  start: η0 = min{{1/L_Θ, β/(2G), β²/(4R(θ(0)))}} (ERRATA §7 for the middle term;
  the printed β/2 is reported beside it). L_Θ = sup ‖∇²R‖₂ over the component
  of Θ + B̄(0, β/2) on θ(0)'s side. The Hessian is closed form,
  ∇²R = (2/(1 − θ2)²)A(φ) with A(φ) = [[Σ₂, Σ₂(2φ − ξ)], [·, 3φᵀΣ₂φ − 2φᵀΣ₂ξ]]
  (checked against implicit differentiation in `tests/test_theory.py`), so on
  a slice |1 − θ2| = g the set is a ball ‖φ‖ ≤ P(g). `L_bound` (used) bounds
  ‖A‖ by the norm of its 2×2 matrix of block norms, increasing in P, over the
  cells of a {n_gap}-point geometric grid in g (a certificate, no gap between
  grid points); `L_attained` is the largest ‖∇²R‖ found at points of the set
  ({n_gap_search} slices). Both are in the `Theorem 3.6 (eta0)` rows; their
  note gives L_bound/L_attained over every start and on how many starts each
  term of the minimum binds.
"""

NOT_COVERED = """\
## What is not covered

* Lemma 3.5 / 3.7, Eq. (8) and the first Theorem 3.6 rows run at
  η = min over the starts of min(β/2, β²/(4R(θ(0)))) (the proof's other two
  conditions), which can exceed the certified η0 of a start; the rows
  `Theorem 3.6 (eta0)`, Eq. (7) and the Theorem 3.6 counterexample run each
  start at its own computed η0.
* For the cond-100 Gaussian linear setting η0 is tiny (R(θ(0)) is large for
  starts near θ2 = 1), so its η0 rows only show the bound holding over runs
  that barely move (their tightness comes mostly from the prefactor κ).
* Gaussian X in d ≥ 3 with the indicator 1{‖X‖ ≤ α} of Theorem 3.8 (its
  conditional law given θ1ᵀX is a generalized chi-square on a ball: no closed
  form; `sideq.paper.theory.gaussian_block` raises). Without the indicator any
  d works.
* The Corollary 3.1 / ERRATA §6 issue (the ball contains θ1 = 0 when
  ‖ξ‖ < 1/L) is not exercised by a dedicated setting: with ξ = 1 the 0.99/L
  ball excludes θ1 = 0 for tanh.
* Outside the assumptions (rows `outside`): starts outside the Corollary 3.1
  ball, where softplus has no equilibrium for θ2 ≥ 1 (status SOLVER_FAILURE)
  and tanh's equilibrium is not certified unique (NON_UNIQUE); relu (not
  differentiable) and gelu (not monotone). These flows run with a smaller
  step budget (status MAX_STEPS when a stalled flow reaches it). The status
  codes are `sideq.status.Status`.
"""

MULTI_INTRO = """\
`sideq verify --multi` (module `sideq.paper.verify`, formulas in
`sideq.paper.multi`) checks the multi-neuron laws (Section 3.1 for k-output
DEQs: the conserved matrix, the singular set, the limit, the rate, and
multi_index near (Ξ, 0)) against simulation; their derivations are in
MULTI_NEURON.md. Naive guesses (`variant = naive`, `should_hold = no`) are run
and shown failing next to the derived statement. Exit status 1 means a claim
that should hold failed.
"""


def machine() -> dict:
    """The machine a run measures itself on: ``processor`` (platform.processor(),
    or the CPU model of /proc/cpuinfo, or the architecture), ``cpus``
    (os.cpu_count()) and ``load`` (the 1-, 5- and 15-minute load averages, or
    None where the platform has none).

    Returns:
        A dict with keys ``processor``, ``cpus``, ``load``.
    """
    proc = platform.processor()
    if not proc:
        try:
            with open("/proc/cpuinfo") as fh:
                proc = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
        except OSError:
            proc = ""
    try:
        load = tuple(os.getloadavg())
    except (AttributeError, OSError):
        load = None
    return {"processor": proc or platform.machine(), "cpus": os.cpu_count(), "load": load}


def _cell(v) -> str:
    """A table cell: text with the characters Markdown would read as markup escaped."""
    s = v if isinstance(v, str) else ("" if v is None else str(v))
    s = " ".join(s.split())
    for ch in ("\\", "|", "*", ">"):
        s = s.replace(ch, "\\" + ch)
    return _TAG_START.sub("&lt;", s)  # (a "<" before a letter would open an HTML tag)


def _num(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.3g}"


def _should(r) -> str:
    return {True: "yes", False: "no", None: "-"}[r["should_hold"]]


def verdict(r) -> str:
    """The result column of a record: ``pass``/``**FAILED**`` for a claim that
    should hold, ``fails (known wrong)``/``holds here`` for a statement known
    wrong, ``holds``/``fails`` (informational) otherwise.

    Args:
        r: a record of :func:`sideq.paper.verify.run`.

    Returns:
        The verdict as Markdown text.
    """
    if r["should_hold"] is True:
        return "pass" if r["holds"] else "**FAILED**"
    if r["should_hold"] is False:
        return "holds here" if r["holds"] else "fails (known wrong)"
    return "holds" if r["holds"] else "fails"


def _table(header, rows, *, open_end=False) -> str:
    """A Markdown table; ``open_end``: rows without the closing pipe, so that each
    line ends with its last cell's text."""
    end = "" if open_end else " |"
    lines = ["| " + " | ".join(header) + end, "|" + "|".join(" --- " for _ in header) + ("" if open_end else "|")]
    lines += ["| " + " | ".join(row) + end for row in rows]
    return "\n".join(lines)


def _groups(recs):
    """(claim, variant) -> its records, in the order of first appearance."""
    out: dict = {}
    for r in recs:
        out.setdefault((r["claim"], r["variant"]), []).append(r)
    return out


def summary_table(recs) -> str:
    """One row per (claim, variant): how many settings, how many hold, the
    verdicts, and the range of the tightness over the settings.

    Args:
        recs: records of :func:`sideq.paper.verify.run`.

    Returns:
        A Markdown table.
    """
    rows = []
    for (claim, variant), rs in _groups(recs).items():
        tight = [r["tightness"] for r in rs if r["tightness"] is not None]
        tight = [t for t in tight if isinstance(t, (int, float))]
        span = "" if not tight else (_num(min(tight)) + ("" if len(tight) == 1 else " … " + _num(max(tight))))
        shoulds = sorted({_should(r) for r in rs})
        verdicts = []
        for v in dict.fromkeys(verdict(r) for r in rs):
            n = sum(verdict(r) == v for r in rs)
            verdicts.append(f"{v} ({n})" if len(rs) > 1 else v)
        rows.append(
            [
                _cell(claim),
                _cell(variant),
                "/".join(shoulds),
                str(len(rs)),
                str(sum(r["holds"] for r in rs)),
                ", ".join(verdicts),
                span,
            ]
        )
    return _table(["claim", "variant", "should hold", "settings", "holds", "result", "tightness (min … max)"], rows)


def _partner(r, recs):
    """The record that corrects ``r``: same claim, a variant of RIGHT_VARIANTS and the
    same setting (or one whose setting extends the other's)."""
    for other in recs:
        if other["claim"] != r["claim"] or other["variant"] not in RIGHT_VARIANTS:
            continue
        a, b = str(r["setting"]), str(other["setting"])
        if a == b or a.startswith(b) or b.startswith(a):
            return other
    return None


def versus_table(recs) -> str:
    """Every record of a printed (or naive) statement, next to the record of its
    correction in the same setting: the prediction, the observation (the
    counterexample when it fails) and the verdict of each.

    Args:
        recs: records of :func:`sideq.paper.verify.run` or :func:`~sideq.paper.verify.run_multi`.

    Returns:
        A Markdown table, or a sentence when there are no such records.
    """
    rows = []
    for r in recs:
        if r["variant"] not in WRONG_VARIANTS:
            continue
        c = _partner(r, recs)
        rows.append(
            [
                _cell(r["claim"]),
                _cell(r["setting"]),
                _cell(r["predicted"]),
                _cell(r["observed"]),
                verdict(r),
                "" if c is None else _cell(f"{c['variant']}: {c['predicted']}"),
                "" if c is None else _cell(c["observed"]),
                "" if c is None else verdict(c),
            ]
        )
    if not rows:
        return "No printed statement was run."
    header = ["claim", "setting", "as printed", "observed", "result", "corrected", "observed", "result"]
    return _table(header, rows)


def records_table(recs) -> str:
    """Every record: claim, variant, setting, prediction, tolerance, tightness,
    should_hold, verdict, note and observation.  The rows have no closing pipe,
    so each line ends with the record's observed text (``statuses [..]`` for
    the flows: tests/test_status.py reads the status codes back from them).

    Args:
        recs: records of :func:`sideq.paper.verify.run` or :func:`~sideq.paper.verify.run_multi`.

    Returns:
        A Markdown table.
    """
    header = [
        "claim",
        "variant",
        "setting",
        "predicted",
        "tolerance",
        "tightness",
        "should hold",
        "result",
        "note",
        "observed",
    ]
    rows = [
        [
            _cell(r["claim"]),
            _cell(r["variant"]),
            _cell(r["setting"]),
            _cell(r["predicted"]),
            _cell(r["tolerance"]),
            _num(r["tightness"]),
            _should(r),
            verdict(r),
            _cell(r.get("note", "")),
            _cell(r["observed"]),
        ]
        for r in recs
    ]
    return _table(header, rows, open_end=True)


def _run_line(recs, run_info, multi) -> str:
    bad = [r for r in recs if r["should_hold"] is True and not r["holds"]]
    shown = [r for r in recs if r["should_hold"] is False and not r["holds"]]
    known = "naive guess(es)" if multi else "printed statement(s)"
    line = f"{len(recs)} records: {len(bad)} claim(s) that should hold failed; {len(shown)} {known} shown failing."
    if not run_info:
        return line
    m = run_info.get("machine", {})
    load = lambda v: "n/a" if v is None else " ".join(f"{x:.2f}" for x in v)  # noqa: E731
    return (
        f"{line} The run took {run_info['wall_s']:.0f} s of wall time and {run_info['cpu_s']:.0f} s of CPU "
        f"time (float64, JAX compile time included) on {m.get('processor') or 'an unnamed processor'} "
        f"with {m.get('cpus')} CPUs; load average (1, 5, 15 min) {load(run_info.get('load_start'))} "
        f"at the start and {load(run_info.get('load_end'))} at the end."
    )


def _figures(plots_written) -> str:
    written = {os.path.abspath(p) for p in plots_written}
    lines = ["## Figures", ""]
    drawn = all(os.path.abspath(os.path.join(FIGURES_DIR, f)) in written for f, _ in FIGURES)
    lines.append(
        f"`sideq verify --plots {FIGURES_DIR}` draws them from the same simulations as the records "
        + (
            "(this run drew them):"
            if drawn
            else f"(this run did not draw them; they are from a run with --plots {FIGURES_DIR}):"
        )
    )
    lines.append("")
    for name, caption in FIGURES:
        path = f"{FIGURES_DIR}/{name}"
        lines.append(f"* [{path}]({path}): {caption}")
    return "\n".join(lines)


def markdown(recs, params, *, quick=False, multi=False, command=None, run_info=None, plots_written=()) -> str:
    """VERIFY.md (or, with ``multi``, the multi-neuron group's document) from the records of one run.

    Args:
        recs: the records of :func:`sideq.paper.verify.run` (or :func:`~sideq.paper.verify.run_multi`).
        params: the constants of the code that made them, which the prose quotes
            (:func:`sideq.paper.verify.run_parameters`).
        quick: the records are those of a ``--quick`` run (said in the header).
        multi: the records are the multi-neuron group's.
        command: the command line that printed the document (said in the header).
        run_info: what the run measured of itself: ``wall_s``, ``cpu_s``, ``machine``
            (:func:`machine`), ``load_start`` and ``load_end`` (load averages); None leaves them out.
        plots_written: the paths of the figures the run wrote (``--plots``).

    Returns:
        The Markdown document, ending in a newline.
    """
    command = command or ("sideq verify --markdown" + (" --multi" if multi else "") + (" --quick" if quick else ""))
    title = "Multi-neuron laws against simulation" if multi else "Verification of Section 3 against simulation"
    parts = [
        f"# {title}",
        "",
        f"<!-- Generated by `{command}`: edit sideq/paper/verify_markdown.py, not this file. -->",
        "",
        f"This file is the output of `{command}`"
        + (" (a `--quick` run: fewer settings and starts than the full run)." if quick else " (the full run).")
        + " Every number in it comes from that run's records, from the run's measurement of itself,"
        " or from a constant of the code.",
        "",
        _run_line(recs, run_info, multi),
        "",
    ]
    consts = params
    parts += [MULTI_INTRO if multi else INTRO]
    if not multi:
        parts += [QUICK.format(**consts)]
    parts += [
        "## Findings",
        "",
        "Per claim and variant, over the settings of this run (the rows are in [All records](#all-records)):",
        "",
        summary_table(recs),
        "",
        "## Printed statements and their corrections" if not multi else "## Naive guesses and the derived laws",
        "",
        "Each printed statement next to its correction in the same setting; where the printed one fails, its "
        "observed column is the counterexample.",
        "",
        versus_table(recs),
        "",
    ]
    if not multi:
        parts += [JUDGED.format(**consts), CONSTANTS.format(**consts), _figures(plots_written), "", NOT_COVERED]
    parts += [
        "## All records",
        "",
        "One row per (claim, variant, setting); `tightness` is observed/predicted for bounds (≥ 1 when the "
        "bound holds; how loose it is), `worst` starts are in `sideq verify --json`.",
        "",
        records_table(recs),
        "",
    ]
    return "\n".join(parts)
