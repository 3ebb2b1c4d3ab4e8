"""Figures in the style of the paper's Section 4 (matplotlib; returns Figure objects).

The panels of the paper (:mod:`sideq.paper.reproduce`): each function draws one
panel and returns the ``Figure``; saving is the caller's business.  Symbols
follow the paper: θ1, θ2, ξ, the solution line (αξ, 1 − α), the trivial point
(0, 1), the target (ξ, 0).

The pictures of runs, in the same style: :func:`sweep` for a sweep of many
θ(0) (a folder of ``sideq sweep --out DIR``, finished or not, or the arrays of
:func:`sideq.sweep.run_sweep`), :func:`run` for one saved run (``sideq
descent/flow --save RUN.npz``), :func:`draw` for either from a path (``sideq
plot``); these write the figures when given a folder.  The map over a grid of
θ(0) (:func:`basin_map`) is also the extended experiment ext5's.
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys
import zipfile
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from sideq.activations import get_activation
from sideq.errors import SideqInputError, unwritable_folder
from sideq.gradient_flow import until_stop
from sideq.status import Status
from sideq.sweep import load_results

PANEL_SIZE = (3.4, 2.8)  # inches: one column of a two-column paper


def use_headless_backend():
    """Draw with Agg (no display needed) unless a backend was chosen: pyplot
    already imported (a notebook's inline backend, a desktop GUI) or
    ``MPLBACKEND`` set.  Switching backends once pyplot is up would close a
    notebook's figures and leave its cells blank."""

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg", force=False)


def _figure():
    use_headless_backend()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=PANEL_SIZE, constrained_layout=True)
    ax.grid(True, alpha=0.3, lw=0.5)
    return fig, ax


def _log_ticks(ax, values):
    """Enough labelled ticks on a log y-axis to read a level off it.

    Over at most three decades (Figure 4a: about 3e-4 to 7e-2) the ticks are
    1, 2, 5 × 10^k, all labelled; plain decimals where the data lie in
    [0.01, 1000), else m × 10^k.  Over more decades (Figure 1a: thirty) matplotlib's
    decade ticks already read well and are kept.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0 or np.log10(values.max() / values.min()) > 3:
        return
    plain = 1e-2 <= values.min() and values.max() < 1e3

    def label(v, _pos):
        if v <= 0:
            return ""
        if plain:
            return f"{v:g}"
        mantissa, exponent = f"{v:.0e}".split("e")
        exponent = int(exponent)
        return rf"$10^{{{exponent}}}$" if mantissa == "1" else rf"${mantissa}\times 10^{{{exponent}}}$"

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=30))
    ax.yaxis.set_major_formatter(FuncFormatter(label))
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0), numticks=30))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _abscissa(rows, t, epochs=None):
    """The x values of a curve: the times ``t`` of a flow, else the ``epochs``
    of the rows (a descent that kept every m-th), else 0..rows−1."""
    if t is not None:
        return np.asarray(t, dtype=float)
    return np.arange(rows) if epochs is None else np.asarray(epochs)


def _time_axis(ax, rows, t, epochs=None):
    """x label and limits of the rows: times (a gradient flow) or epochs."""
    if t is None and epochs is None:
        ax.set_xlabel("epoch $t$")
        ax.set_xlim(0, rows - 1)
    else:
        x = _abscissa(rows, t, epochs)
        ax.set_xlabel("time $t$" if t is not None else "epoch $t$")
        ax.set_xlim(x[0], x[-1])


def _positive(values):
    """The values, with those that a log axis cannot show (≤ 0) as NaN: a gap."""
    return np.where(values > 0, values, np.nan)


def loss_curve(loss, *, title=None, label="empirical risk", t=None, epochs=None, ylabel=r"$\hat R(\theta(t))$"):
    """Loss over epochs on a log scale (panel (a) of Figures 1 and 4).

    Epochs where the loss is 0 (or not positive) are left out of the line (a
    gap), not clipped to the bottom of the axes.  ``label`` names the line for
    a legend the caller draws, e.g. after adding a second curve to ``fig.axes[0]``.
    ``t``: the times of the rows (a gradient flow), drawn on the x-axis instead
    of the epochs 0, 1, …; ``epochs``: the epochs of the rows when they are not
    0, 1, … (a descent that kept every m-th); ``ylabel`` names the risk (R for
    the population risk).
    """
    fig, ax = _figure()
    loss = np.asarray(loss)
    positive = _positive(loss)
    ax.semilogy(_abscissa(len(loss), t, epochs), positive, color="C0", lw=1.5, label=label)
    _log_ticks(ax, positive)
    _time_axis(ax, len(loss), t, epochs)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def learned_function(x_grid, y_learned, y_true, *, x_data=None, y_data=None, true_label, title=None):
    """Learned y_θ(x) against the true f(x) (panel (b) of Figures 1 and 4).

    The samples lie on f (the targets are noise-free), so an evenly spaced subsample
    of them (at most 40, sorted by x) is drawn as open markers above both curves;
    the legend says how many of the n are shown.  ``x_data`` is (n,) or (n, 1):
    the curves are over one input (d = 1).
    """
    if x_data is not None:
        x_data, y_data = np.asarray(x_data), np.ravel(y_data)
        if x_data.ndim > 2 or (x_data.ndim == 2 and x_data.shape[1] != 1) or len(x_data) != len(y_data):
            raise SideqInputError(
                f"learned_function: x_data has shape {x_data.shape} and y_data {len(y_data)} values; "
                "pass n inputs of one feature, shape (n,) or (n, 1), with n targets"
            )
        x_data = np.ravel(x_data)
    fig, ax = _figure()
    if x_data is not None:
        n = len(x_data)
        shown = np.argsort(x_data)[np.unique(np.linspace(0, n - 1, min(n, 40)).round().astype(int))]
        label = "training data" if len(shown) == n else f"training data ({len(shown)} of {n})"
        ax.plot(
            x_data[shown], y_data[shown], "o", ms=3.5, mfc="white", mec="C0", mew=0.9, ls="none", label=label, zorder=4
        )
    ax.plot(x_grid, y_true, color="k", lw=1.6, alpha=0.75, label=true_label, zorder=2)
    ax.plot(x_grid, y_learned, color="C3", lw=1.4, ls="--", label=r"learned $y_\theta(x)$", zorder=3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def trajectory(theta, *, xi, linear, title=None, t=None, epochs=None):
    """The iterates in the (θ1, θ2)-plane coloured by epoch (panel (a) of Figures 2, 3, 5).

    The start θ(0) (open circle) and the end θ(T) (open square) are in the legend.
    Linear DEQ: the solution line (αξ, 1 − α) and the trivial point (0, 1).
    Single-index DEQ: the target (ξ, 0).  θ2 is the last entry of each row of
    ``theta`` (θ = (θ1, b, θ2) with a bias, :mod:`sideq.model`), θ1 the first.
    ``xi=None`` draws no target set (it is not known); ``t``: the times of the
    rows of a gradient flow, which then colour the path instead of the epochs;
    ``epochs``: the epochs of the rows when they are not 0, 1, … .
    """
    from matplotlib.collections import LineCollection

    fig, ax = _figure()
    theta = np.asarray(theta)[:, [0, -1]]  # (θ1, θ2): not (θ1, b) for a model with a bias
    flow = t is not None
    t = _abscissa(len(theta), t, epochs)
    pts = theta.reshape(-1, 1, 2)
    segs = np.concatenate([pts[:-1], pts[1:]], axis=1)
    lc = LineCollection(segs, cmap="viridis", linewidths=1.6)
    lc.set_array(t[:-1].astype(float))
    ax.add_collection(lc)
    ax.scatter(theta[:, 0], theta[:, 1], c=t, cmap="viridis", s=4, zorder=3)
    cb = fig.colorbar(lc, ax=ax, pad=0.02)
    cb.set_label("time $t$" if flow else "epoch", fontsize=8)
    end = rf"$\theta({t[-1]:.3g})$" if flow else rf"$\theta({t[-1]})$"
    ax.plot(theta[0, 0], theta[0, 1], "o", mfc="none", mec="k", ms=6, label=r"$\theta(0)$", zorder=4)
    ax.plot(theta[-1, 0], theta[-1, 1], "s", mfc="none", mec="k", ms=6, label=end, zorder=4)
    finite = theta[np.all(np.isfinite(theta), axis=1)]
    lo, hi = (finite.min(axis=0), finite.max(axis=0)) if len(finite) else (np.zeros(2), np.zeros(2))
    if xi is not None and linear:
        lo, hi = np.minimum(lo, [0.0, 1.0]), np.maximum(hi, [0.0, 1.0])
    elif xi is not None:
        lo, hi = np.minimum(lo, [xi, 0.0]), np.maximum(hi, [xi, 0.0])
    pad = 0.12 * np.maximum(hi - lo, 0.2)
    lo, hi = lo - pad, hi + pad
    if xi is not None and linear:
        alphas = np.linspace(-10, 10, 2001)
        ax.plot(
            alphas * xi, 1 - alphas, color="C3", lw=1, ls="--", label=r"solutions $(\alpha\xi, 1-\alpha)$", zorder=1
        )
        ax.plot(0, 1, marker="X", color="C1", ms=8, ls="none", label=r"trivial $(0, 1)$", zorder=5)
    elif xi is not None:
        ax.plot(xi, 0, marker="*", color="C3", ms=11, ls="none", label=rf"target $(\xi, 0) = ({xi:g}, 0)$", zorder=5)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    ax.legend(fontsize=6.5, loc="best")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def distance_curve(distance, *, ylabel, log=False, title=None, t=None, epochs=None):
    """Distance to a point over epochs (panel (b) of Figures 2, 3, 5).

    ``log``: a log y-axis, with 1, 2, 5 × 10^k ticks labelled when the curve spans
    at most three decades.  (Figure 5b spans under one decade, about 2.2 to 0.5,
    and :mod:`sideq.paper.reproduce` draws it on a linear axis.)  On a log axis,
    epochs at distance 0 are left out of the line, as in :func:`loss_curve`.
    ``t``, ``epochs``: the times or epochs of the rows (x-axis), as in :func:`loss_curve`.
    """
    fig, ax = _figure()
    distance = np.asarray(distance)
    x = _abscissa(len(distance), t, epochs)
    if log:
        positive = _positive(distance)
        ax.semilogy(x, positive, color="C0", lw=1.5)
        _log_ticks(ax, positive)
    else:
        ax.plot(x, distance, color="C0", lw=1.5)
    _time_axis(ax, len(distance), t, epochs)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


# ----------------------------------------------------------------------------
# Statuses, target sets, and maps over a grid of θ(0) (shared with
# sideq.paper.extended's ext5 basin map).

DPI = 200  # the paper's figures (sideq.paper.reproduce) are saved at 200 dpi
FORMATS = ("png", "pdf", "svg")

# One colour per status, by name, so that a status keeps its colour in every
# figure (codes this version does not know get a spare colour).
_STATUS_COLORS = {
    "CONVERGED": "C2",
    "UNVERIFIED": "C9",
    "NON_UNIQUE": "C0",
    "MAX_STEPS": "C1",
    "SOLVER_FAILURE": "C7",
    "DIVERGED": "C3",
    "SINGULAR": "C4",
}
_SPARE_COLORS = ("C5", "C6", "C8", "k")
_MOST_RINGS = 2000  # runs ringed as "non-unique at some epoch" in the final-theta figure, at most
# The statuses of a run that failed (frozen at a failure: its final values are not a result).
_FAILED_NAMES = ("DIVERGED", "SINGULAR", "SOLVER_FAILURE")


def _status_member(code):
    try:
        return Status(int(code))
    except ValueError:
        return None


def status_label(code) -> str:
    """The name of a :class:`~sideq.status.Status` code as a legend shows it
    ("converged", "max steps"); "status 9" for a code this version does not know."""
    member = _status_member(code)
    if member is None:
        return f"status {int(code)}"
    return member.name.lower().replace("non_", "non-").replace("_", " ")


def status_color(code) -> str:
    """The colour of a status code in every figure of :func:`sweep` (a matplotlib colour)."""
    member = _status_member(code)
    if member is not None and member.name in _STATUS_COLORS:
        return _STATUS_COLORS[member.name]
    return _SPARE_COLORS[int(code) % len(_SPARE_COLORS)]


def _failed(status):
    """Whether each run failed (a status of :data:`_FAILED_NAMES`)."""

    return np.isin(status, [int(s) for s in Status if s.name in _FAILED_NAMES])


def _codes(status):
    """The status codes present in ``status``: :class:`~sideq.status.Status`
    order (by code), then any codes it does not name."""

    present = {int(c) for c in np.unique(status)}
    known = [int(s) for s in Status if int(s) in present]
    return known + sorted(present - set(known))


def target_set(
    ax, *, linear, xi, pair=(0, -1), bias=False, lipschitz=None, alpha=(-5.0, 5.0), edge_label=None, color="C1"
):
    r"""The paper's target set in the plane of the coordinates ``pair`` of θ.

    Single-index DEQ (Section 3.2): the global minimiser θ* = (ξ, [0,] 0) (a
    star) and, given ``lipschitz`` = L = ‖σ‖_Lip, the line θ2 = 1/L (dotted)
    above which θ2 σ' can reach 1, so that the equilibrium may not be unique.
    Linear DEQ (Section 3.1): the solution line {(αξ, [0,] 1 − α)} for α in
    ``alpha`` and the singular line θ2 = 1 (dashed), where 1 − ∂g/∂y = 0.

    Args:
      ax: the axes.
      linear: the linear DEQ (else single-index).
      xi: ξ, a number or shape (d,).
      pair: the indices (i, j) of θ on the x and y axes (θ2 is index −1 or p − 1).
      bias: θ = (θ1, b, θ2).
      lipschitz: L, for the line θ2 = 1/L of the single-index DEQ (None: not drawn).
      alpha: the range of α drawn of the solution line.
      edge_label: the legend entry of the line θ2 = 1/L (None: not in the legend).
      color: the colour of the minimiser or of the solution line.
    """
    xi = np.atleast_1d(np.asarray(xi, dtype=float))
    p = xi.size + 1 + int(bias)
    i, j = (int(k) % p for k in pair)
    tail = ",0" if bias else ""
    line = ax.axhline if j == p - 1 else ax.axvline if i == p - 1 else None
    if linear:
        c = np.zeros(p)
        c[-1] = 1.0
        v = np.concatenate([xi, [0.0] * int(bias), [-1.0]])
        a = np.linspace(alpha[0], alpha[1], 2)
        ax.plot(c[i] + a * v[i], c[j] + a * v[j], color=color, lw=1.0, label=rf"$(\alpha\xi{tail},1-\alpha)$")
        if line is not None:
            line(1, color="k", lw=0.8, ls="--", label=r"$\theta_2=1$")
    else:
        star = np.concatenate([xi, [0.0] * int(bias), [0.0]])
        ax.plot(star[i], star[j], "*", color=color, mec="k", mew=0.4, ms=10, ls="none", label=rf"$(\xi{tail},0)$")
        if lipschitz and line is not None:
            extra = {} if edge_label is None else {"label": edge_label}
            line(1 / lipschitz, color="k", lw=0.8, ls=":", **extra)


def cell_extent(g1, g2):
    """[x0, x1, y0, y1] of the cells of the grid ``g1 × g2`` (evenly spaced
    points; cell (i, j) is centred on (g1[i], g2[j]), half a spacing each side)."""
    g1, g2 = np.asarray(g1, dtype=float), np.asarray(g2, dtype=float)
    h1 = (g1[-1] - g1[0]) / max(len(g1) - 1, 1)
    h2 = (g2[-1] - g2[0]) / max(len(g2) - 1, 1)
    return [g1[0] - h1 / 2, g1[-1] + h1 / 2, g2[0] - h2 / 2, g2[-1] + h2 / 2]


def cell_outline(mask, extent):
    """Segments [((x0, y0), (x1, y1)), ...] of the boundary of the union of the
    cells where ``mask`` (m1, m2) is True, cell (i, j) being the i-th of m1
    equal columns of ``extent`` = [x0, x1, y0, y1] and the j-th of m2 rows."""
    mask = np.asarray(mask, bool)
    m1, m2 = mask.shape
    xe = np.linspace(extent[0], extent[1], m1 + 1)
    ye = np.linspace(extent[2], extent[3], m2 + 1)
    pad = np.pad(mask, 1)
    segs = []
    for i, j in zip(*np.nonzero(pad[1:, 1:-1] != pad[:-1, 1:-1])):  # between columns i-1 and i
        segs.append(((xe[i], ye[j]), (xe[i], ye[j + 1])))
    for i, j in zip(*np.nonzero(pad[1:-1, 1:] != pad[1:-1, :-1])):  # between rows j-1 and j
        segs.append(((xe[i], ye[j]), (xe[i + 1], ye[j])))
    return segs


def basin_map(
    fig,
    ax,
    values,
    g1,
    g2,
    *,
    norm=None,
    cmap="viridis",
    cbar_label=None,
    failed=None,
    failed_label=None,
    nonunique=None,
    nonunique_label=None,
    target=None,
    handles=(),
    xlabel=r"$\theta_1(0)$",
    ylabel=r"$\theta_2(0)$",
    legend_loc="lower left",
    legend_fontsize=5.5,
):
    r"""A map over a grid of initializations θ(0) = (g1[i], g2[j]): one cell per run.

    Cells are coloured by ``values`` (NaN: white); diverged or failed runs are
    red crosses (markers, so that a single cell stays visible); runs with a
    possibly non-unique equilibrium are hatched cells, the union outlined (a
    lone cell is narrower than the hatch spacing); the target set is drawn
    with :func:`target_set`.  The basin maps of :func:`sweep` and of the
    extended experiment ext5 (:func:`sideq.paper.extended.exp_basin`).

    Args:
      fig, ax: the figure and axes to draw in.
      values: (m1, m2) the colour of each cell (run (i, j) at θ(0) = (g1[i], g2[j])).
      g1, g2: (m1,), (m2,) the evenly spaced grid values on each axis.
      norm, cmap: how values become colours (a colormap name or object).
      cbar_label: the colour bar's label (None: no colour bar).
      failed, nonunique: (m1, m2) boolean masks of the runs to mark.
      failed_label, nonunique_label: their legend entries (defaults name the count).
      target: keyword arguments of :func:`target_set` (None: no target set).
      handles: legend entries placed before the marks' (e.g. status patches).
      xlabel, ylabel, legend_loc, legend_fontsize: axis labels and legend.

    Returns:
      The ``AxesImage`` of the cells.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Rectangle

    g1, g2 = np.asarray(g1, dtype=float), np.asarray(g2, dtype=float)
    ext = cell_extent(g1, g2)
    h1 = (g1[-1] - g1[0]) / max(len(g1) - 1, 1)
    h2 = (g2[-1] - g2[0]) / max(len(g2) - 1, 1)
    G1, G2 = np.meshgrid(g1, g2, indexing="ij")
    cm = (plt.get_cmap(cmap) if isinstance(cmap, str) else cmap).with_extremes(bad="white")
    im = ax.imshow(
        np.asarray(values).T, origin="lower", extent=ext, aspect="auto", cmap=cm, norm=norm, interpolation="nearest"
    )
    if cbar_label is not None:
        cb = fig.colorbar(im, ax=ax, pad=0.02)
        cb.set_label(cbar_label)
    if failed is not None and np.any(failed):
        failed = np.asarray(failed, bool)
        ax.plot(
            G1[failed],
            G2[failed],
            "x",
            color="red",
            ms=4,
            mew=1.0,
            ls="none",
            label=failed_label or f"diverged / failed ({int(failed.sum())})",
            zorder=6,
        )
    if nonunique is not None and np.any(nonunique):
        nonunique = np.asarray(nonunique, bool)
        cells = [Rectangle((u - h1 / 2, v - h2 / 2), h1, h2) for u, v in zip(G1[nonunique], G2[nonunique])]
        ax.add_collection(
            PatchCollection(cells, facecolor="none", edgecolor="k", linewidth=0, hatch="//////", zorder=5)
        )
        ax.add_collection(LineCollection(cell_outline(nonunique, ext), colors="k", linewidths=0.6, zorder=5))
        ax.fill(
            [],
            [],
            facecolor="none",
            edgecolor="k",
            lw=0.6,
            hatch="//////",
            label=nonunique_label or f"non-unique equilibrium ({int(nonunique.sum())})",
        )
    if target is not None:
        target_set(ax, **target)
    ax.set_xlim(ext[0], ext[1])
    ax.set_ylim(ext[2], ext[3])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    handles = list(handles or ()) + ax.get_legend_handles_labels()[0]
    if handles:  # (none where no run failed and nothing else is labelled)
        ax.legend(handles=handles, loc=legend_loc, fontsize=legend_fontsize, framealpha=0.85)
    return im


# ----------------------------------------------------------------------------
# Sweeps (sideq.sweep.run_sweep, ``sideq sweep --out DIR``)


class SweepData(NamedTuple):
    """A sweep's per-run arrays and settings, as :func:`load_sweep` reads them.

    ``arrays`` maps the fields of :data:`sideq.sweep.FIELDS` that are present
    to numpy arrays of ``runs`` rows; ``settings`` is the sweep's settings dict
    (``summary.json``/``manifest.json``; {} when unknown); ``total`` is the
    number of runs of the whole sweep (more than ``runs`` while it is
    unfinished); ``run`` (runs,) the number of each row's run in the sweep
    (0..total − 1: the rows of an unfinished sweep are those of its finished chunks).
    """

    arrays: dict
    settings: dict
    runs: int
    total: int
    run: np.ndarray


def _read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _partial_chunks(folder, manifest):
    """The finished chunks of an unfinished sweep in ``folder``, in run order:
    each a dict of per-run arrays without the padding of the last chunk.  A
    chunk file that is being written, unreadable or of another sweep (its
    fingerprint differs from the manifest's) is skipped."""
    chunk, total = int(manifest["chunk"]), int(manifest["settings"]["runs"])
    found = []
    for path in glob.glob(os.path.join(folder, "chunks", "chunk_*.npz")):
        stem = os.path.basename(path)[len("chunk_") : -len(".npz")]
        if not stem.isdigit():
            continue
        i = int(stem)
        try:
            with np.load(path) as f:
                if str(f["fingerprint"]) != manifest.get("fingerprint"):
                    continue
                keep = max(0, min(chunk, total - i * chunk))
                arrays = {k: f[k][:keep] for k in f.files if k != "fingerprint"}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            continue
        arrays["run"] = i * chunk + np.arange(keep)
        found.append((i, arrays))
    return [arrays for _, arrays in sorted(found, key=lambda item: item[0])]


def _sweep_folder(folder):
    """(arrays, settings, total, run) of the sweep in ``folder``, finished or not."""
    results = os.path.join(folder, "results.npz")
    manifest = _read_json(os.path.join(folder, "manifest.json"))
    summary = _read_json(os.path.join(folder, "summary.json"))
    settings = (summary or {}).get("settings") or (manifest or {}).get("settings") or {}
    if os.path.exists(results):
        arrays = load_results(folder)
        n = len(np.asarray(arrays.get("status", [])))
        return arrays, settings, n, np.arange(n)
    if manifest is None:
        what = "is empty" if not os.listdir(folder) else "holds no sweep (no manifest.json or results.npz)"
        raise SideqInputError(
            f"source: the folder {folder!r} {what}; give the --out DIR of `sideq sweep` "
            "(or run_sweep's out_dir), or a saved run RUN.npz"
        )
    try:
        total = int(manifest["settings"]["runs"])
        chunks = _partial_chunks(folder, manifest)
    except (KeyError, TypeError, ValueError):
        raise SideqInputError(
            f"source: cannot read the sweep's manifest.json in {folder!r}; it was not written by sideq sweep"
        ) from None
    if not chunks:
        raise SideqInputError(
            f"source: the sweep in {folder!r} has no finished chunk yet (0 of {total} runs); "
            "plot it once its first chunk is written"
        )
    common = [k for k in chunks[0] if all(k in c for c in chunks)]
    arrays = {k: np.concatenate([c[k] for c in chunks]) for k in common}
    return arrays, settings, total, arrays.pop("run")


def load_sweep(source, *, settings=None) -> SweepData:
    """A sweep's per-run arrays and settings, from where :func:`sweep` takes them.

    Args:
      source: a sweep's folder (``sideq sweep --out DIR`` or
        :func:`sideq.sweep.run_sweep`'s ``out_dir``): finished, or unfinished
        (still running or killed), when the chunks finished so far are read;
        or its ``results.npz``; or the :class:`~sideq.sweep.SweepResult` that
        :func:`~sideq.sweep.run_sweep` returns; or a dict of per-run arrays
        (at least ``theta_final`` (N, p) and ``status`` (N,)).
      settings: the sweep's settings (``summary["settings"]``: model, kind,
        bias, xi, epochs, gtol, ltol, dtol, eta, risk, ...), replacing those
        read from the folder; needed to draw the target set of a dict.

    Returns:
      A :class:`SweepData`.
    """
    total = run = None
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isfile(path) and os.path.basename(path) == "results.npz":
            path = os.path.dirname(path) or "."
        if not os.path.isdir(path):
            raise SideqInputError(
                f"source: {path!r} is not a folder"
                + ("" if os.path.exists(path) else " (it does not exist)")
                + "; give the --out DIR of `sideq sweep` (or run_sweep's out_dir)"
            )
        arrays, found, total, run = _sweep_folder(path)
        settings = dict(found, **(settings or {}))
    elif hasattr(source, "summary") and hasattr(source, "arrays"):  # a SweepResult
        arrays = {k: np.asarray(source.arrays[k]) for k in source.arrays}
        settings = dict((source.summary or {}).get("settings") or {}, **(settings or {}))
    elif isinstance(source, Mapping):
        arrays = {k: np.asarray(v) for k, v in source.items()}
        settings = dict(settings or {})
    else:
        raise SideqInputError(
            f"source: expected a sweep folder, a SweepResult or a dict of per-run arrays, got {type(source).__name__}"
        )
    for key in ("theta_final", "status"):
        if key not in arrays:
            raise SideqInputError(
                f"source: the sweep's arrays have no {key!r} (they have {sorted(arrays)}); "
                "pass the arrays of sideq.sweep.run_sweep / load_results"
            )
    theta = np.asarray(arrays["theta_final"])
    status = np.asarray(arrays["status"])
    if theta.ndim != 2 or status.ndim != 1 or theta.shape[0] != status.shape[0]:
        raise SideqInputError(
            f"source: theta_final has shape {theta.shape} and status {status.shape}; expected (N, p) and (N,)"
        )
    if status.dtype.kind not in "iu":
        if not np.all(np.isfinite(status)) or np.any(status != np.round(status)):
            raise SideqInputError("source: status holds non-integer values; pass sideq.Status codes")
        arrays["status"] = status.astype(np.int32)
    n = status.shape[0]
    for key, value in arrays.items():
        if np.ndim(value) == 0 or np.shape(value)[0] != n:
            raise SideqInputError(
                f"source: {key} has shape {np.shape(value)}, but there are {n} runs "
                "(theta_final, status); pass one row per run"
            )
    if total is None:
        total, run = n, np.arange(n)
    return SweepData(arrays, settings, n, max(int(total), n), run)


def _check_formats(formats):
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise SideqInputError(
            f"formats: unknown format {bad[0] if bad else formats!r}; choose from {', '.join(FORMATS)}"
        )
    return formats


def _save_all(named, out, formats):
    """Write each (name, figure) as out/name.FORMAT; close them; the paths."""
    import matplotlib.pyplot as plt

    paths = []
    for name, fig in named:
        for fmt in formats:
            path = os.path.join(out, f"{name}.{fmt}")
            fig.savefig(path, dpi=DPI)
            paths.append(path)
        plt.close(fig)
    return paths


def _finish(named, out, formats):
    """The figures, each labelled with its name (``out`` None), or the paths written."""
    if out is None:
        for name, fig in named:
            fig.set_label(name)
        return [fig for _, fig in named]
    return _save_all(named, out, formats)


def _check_out(out):
    if out is None:
        return None
    out = os.fspath(out)
    problem = unwritable_folder(out)
    if problem:
        raise SideqInputError(f"out: {problem}")
    return out


def _coordinate_names(p, settings):
    """Axis labels of the entries of θ: θ1 (d = 1) or θ1[k], b, θ2."""
    bias = bool(settings.get("bias", False))
    d = p - 1 - int(bias)
    names = [r"$\theta_1$" if d == 1 else rf"$\theta_1[{k}]$" for k in range(d)]
    return names + ([r"$b$"] if bias else []) + [r"$\theta_2$"]


def _check_pair(pair, p):
    if pair is None:
        return (0, p - 1)
    try:
        i, j = (int(k) for k in pair)
    except (TypeError, ValueError):
        raise SideqInputError(f"pair: expected two indices of theta (i, j), got {pair!r}") from None
    if not (-p <= i < p and -p <= j < p) or i % p == j % p:
        raise SideqInputError(
            f"pair: {pair!r} is not two different indices of theta, which has p = {p} entries "
            f"(0..{p - 1}; theta2 is {p - 1} or -1)"
        )
    return (i % p, j % p)


def _target_kw(settings, pair):
    """Keyword arguments of :func:`target_set` from a sweep's settings, or None."""
    xi = settings.get("xi")
    if xi is None or settings.get("model") is None:
        return None
    linear = settings.get("kind") == "linear" or settings.get("model") == "linear"
    kw = dict(
        linear=linear,
        xi=np.asarray(xi, dtype=float),
        pair=pair,
        bias=bool(settings.get("bias", False)),
        color="k" if linear else "gold",
    )  # (C1 is MAX_STEPS's colour in these figures)
    if not linear:
        try:
            lip = float(get_activation(settings["model"]).lipschitz)
        except Exception:  # (an activation this version does not know: no line)
            lip = None
        if lip and np.isfinite(lip) and lip > 0:
            kw.update(lipschitz=lip, edge_label=rf"$\theta_2 = 1/L_\sigma = {1 / lip:g}$")
    return kw


def _fit_target(target, lo, hi):
    """Fit the keyword arguments of :func:`target_set` to the view [lo, hi]
    (x, y): the solution line's α range crosses it, the line θ2 = 1/L is
    dropped when it is out of view."""
    xi, bias, pair = target["xi"], int(target["bias"]), target["pair"]
    if target["linear"]:
        c = np.zeros(xi.size + 1 + bias)
        c[-1] = 1.0
        v = np.concatenate([xi, [0.0] * bias, [-1.0]])[list(pair)]
        reach = np.max(np.abs(np.concatenate([lo, hi]) - np.tile(c[list(pair)], 2)))
        scale = np.min(np.abs(v[v != 0])) if np.any(v != 0) else 1.0
        span = 1.0 + 1.5 * reach / scale  # |α| beyond which (c + αv)[pair] is outside the view
        target["alpha"] = (-span, span)
    elif target.get("lipschitz"):
        edge = 1 / target["lipschitz"]
        axis = 1 if pair[1] == xi.size + bias else 0 if pair[0] == xi.size + bias else None
        if axis is None or not lo[axis] <= edge <= hi[axis]:
            target.pop("lipschitz")
            target.pop("edge_label", None)


def _fmt(v):
    return f"{float(v):.3g}"


def _title(data, what, eta=None, runs=None):
    """A figure's title: what it shows; the model, ξ, η, T; how many runs
    (``eta``, ``runs``: of a figure of the ``runs`` runs with step size ``eta``)."""
    s = data.settings
    parts = []
    if s.get("model"):
        model = "linear" if s.get("kind") == "linear" else s["model"]
        parts.append(model + (" + bias" if s.get("bias") else ""))
    if s.get("xi") is not None:
        xi = np.atleast_1d(np.asarray(s["xi"], dtype=float))
        parts.append(rf"$\xi={_fmt(xi[0])}$" if xi.size == 1 else rf"$d={xi.size}$")
    etas = np.unique(np.asarray(data.arrays["eta"])) if "eta" in data.arrays else np.array([])
    if eta is not None:
        etas = np.array([eta])
    if etas.size == 1:
        parts.append(rf"$\eta={_fmt(etas[0])}$")
    elif etas.size > 1:
        parts.append(rf"{etas.size} values of $\eta$")
    if s.get("epochs") is not None:
        parts.append(f"$T={int(s['epochs'])}$")
    count = f"{data.runs} runs" if data.runs == data.total else f"{data.runs} of {data.total} runs (unfinished)"
    if runs is not None:
        count = f"{runs} runs (of {count})"
    return f"{what}: {count}\n{', '.join(parts)}" if parts else f"{what}: {count}"


def _legend_note(text):
    """An entry of text only (no marker) for the legend the axes draw next."""
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="none", label=text)


def _view(xy, must=()):
    """Axis limits (lo, hi) for the points ``xy`` (n, 2, finite) and the points
    ``must``: all of them, unless a few lie far out: then, on an axis where
    the points span more than twice that box, the box of the central 90%
    grown by its width each side (points of a normal law lie outside it with
    probability ~1e-6)."""
    pts = np.concatenate([xy, np.reshape(must, (-1, 2))]) if len(must) else xy
    if len(pts) == 0:
        return np.zeros(2) - 1, np.zeros(2) + 1
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if len(xy) >= 20:
        q05, q95 = np.quantile(xy, [0.05, 0.95], axis=0)
        width = np.maximum(q95 - q05, 1e-3 * np.maximum(np.abs(q05), np.abs(q95)) + 1e-12)
        box_lo, box_hi = q05 - width, q95 + width
        if len(must):
            m = np.reshape(must, (-1, 2))
            box_lo, box_hi = np.minimum(box_lo, m.min(axis=0)), np.maximum(box_hi, m.max(axis=0))
        far = (hi - lo) > 2 * (box_hi - box_lo)  # (per axis: zoom only where a few lie far out)
        lo, hi = np.where(far, np.maximum(lo, box_lo), lo), np.where(far, np.minimum(hi, box_hi), hi)
    pad = 0.08 * np.maximum(hi - lo, 0.2 * np.maximum(1.0, np.abs(hi + lo) / 2))
    return lo - pad, hi + pad


def _quiet_corner(xy, lo, hi):
    """The corner of the view [lo, hi] with the fewest of the points ``xy`` in
    its 40% × 40% box: where a legend hides least."""
    u = (xy - lo) / (hi - lo)
    corners = {"upper right": (1, 1), "upper left": (0, 1), "lower left": (0, 0), "lower right": (1, 0)}
    counts = {loc: int(np.sum(np.all(np.abs(u - c) <= 0.4, axis=1))) for loc, c in corners.items()}
    return min(counts, key=counts.get)


def _status_points(ax, xy, status, codes, finite, inside, edge, axis, sign, size):
    """The points of each status in the view, the largest group first (the
    rarest on top), and those beyond it as triangles on its edge pointing
    their way (``edge``, ``axis``, ``sign``).  Returns {status code: its
    legend handle}."""
    n = len(xy)
    outside = finite & ~inside
    arrows = {(0, 1.0): ">", (0, -1.0): "<", (1, 1.0): "^", (1, -1.0): "v"}
    handles = {}
    counts = {c: int(np.sum(finite & (status == c))) for c in codes}
    for code in sorted(codes, key=lambda c: -counts[c]):  # the largest group first: the rarest on top
        keep = inside & (status == code)
        label = f"{status_label(code)} ({counts[code]})"
        if keep.any() or counts[code]:
            handles[code] = ax.scatter(
                xy[keep, 0],
                xy[keep, 1],
                s=size,
                color=status_color(code),
                lw=0,
                alpha=0.8,
                label=label,
                rasterized=n > 5000,
                zorder=3,
            )
        for (k, sgn), marker in arrows.items():
            far = outside & (status == code) & (axis == k) & (sign == sgn)
            if far.any():
                ax.scatter(
                    edge[far, 0],
                    edge[far, 1],
                    s=max(size, 4) * 3,
                    marker=marker,
                    color=status_color(code),
                    lw=0,
                    alpha=0.8,
                    zorder=3,
                    clip_on=False,
                )
    return handles


def _non_unique_rings(ax, data, xy, inside, size):
    """Rings around the runs in the view that were non-unique at some epoch
    (while there are at most ``_MOST_RINGS`` such runs; beyond, a note: so
    many rings would hide the points).  Returns the legend entries."""
    if "non_unique_epochs" not in data.arrays:
        return []
    visited = np.asarray(data.arrays["non_unique_epochs"]) > 0
    total = int(np.sum(visited))
    if not total:
        return []
    if total > _MOST_RINGS:
        return [_legend_note(f"{total} non-unique at some epoch (not ringed)")]
    ring = inside & visited
    return [
        ax.scatter(
            xy[ring, 0],
            xy[ring, 1],
            s=4 * size + 8,
            facecolors="none",
            edgecolors="k",
            linewidths=0.4,
            rasterized=len(xy) > 5000,
            zorder=4,
            label=f"non-unique at some epoch ({total})",
        )
    ]


def _theta_figure(data, pair):
    """Final θ in the plane of ``pair``, one colour per status, with the target set."""
    from matplotlib.lines import Line2D

    fig, ax = _figure()
    theta = np.asarray(data.arrays["theta_final"], dtype=float)
    status = data.arrays["status"]
    p = theta.shape[1]
    xy = theta[:, list(pair)]
    finite = np.all(np.isfinite(xy), axis=1)
    n = len(xy)
    size = 6 if n <= 2000 else 2 if n <= 50000 else 0.5
    target = _target_kw(data.settings, pair)
    must = []
    if target is not None and not target["linear"]:
        must = [np.concatenate([target["xi"], [0.0] * int(target["bias"]), [0.0]])[list(pair)]]
    lo, hi = _view(xy[finite], must)
    inside = finite & np.all((xy >= lo) & (xy <= hi), axis=1)
    outside = finite & ~inside
    # Points beyond the view: on its edge, a triangle pointing their way.
    margin = 0.015 * (hi - lo)
    edge = np.clip(xy, lo + margin, hi - margin)
    excess = np.where(finite[:, None], (xy - edge) / (hi - lo), 0.0)
    axis = np.argmax(np.abs(excess), axis=1)
    sign = np.sign(excess[np.arange(n), axis])
    codes = _codes(status)
    handles = _status_points(ax, xy, status, codes, finite, inside, edge, axis, sign, size)
    legend = [handles[c] for c in codes if c in handles]
    legend += _non_unique_rings(ax, data, xy, inside, size)
    if outside.any():
        legend.append(
            Line2D(
                [],
                [],
                ls="none",
                marker=">",
                color="0.4",
                ms=5,
                label=f"{int(outside.sum())} beyond the view (on its edge)",
            )
        )
    if (~finite).any():
        legend.append(_legend_note(f"{int((~finite).sum())} not finite (not drawn)"))
    if target is not None:
        _fit_target(target, lo, hi)
        before = len(ax.get_legend_handles_labels()[0])
        target_set(ax, **target)
        legend += ax.get_legend_handles_labels()[0][before:]
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    names = _coordinate_names(p, data.settings)
    ax.set_xlabel(names[pair[0]][:-1] + "(T)$")
    ax.set_ylabel(names[pair[1]][:-1] + "(T)$")
    # (matplotlib's "best" tests every point against every place: slow for large sweeps)
    loc = "best" if n <= 5000 else _quiet_corner(xy[inside], lo, hi)
    leg = ax.legend(handles=legend, fontsize=6.5, loc=loc, framealpha=0.85)
    for handle in leg.legend_handles:  # (markers of a readable size, whatever the points')
        if hasattr(handle, "set_sizes") and not isinstance(handle, Line2D):
            handle.set_sizes([24])
    ax.set_title(_title(data, r"final $\theta$"), fontsize=8)
    return fig


def _stacked_hist(ax, groups, edges):
    """One histogram of several groups stacked, one colour per status: a filled
    ``StepPatch`` per group from its bottom (``baseline``) to its top
    (``values``), drawn in the order given; ``groups`` [(code, values)].
    Returns the patches (the legend handles), in that order."""
    bottom = np.zeros(len(edges) - 1)
    patches = []
    for code, values in groups:
        if not len(values):
            continue
        counts, _ = np.histogram(values, bins=edges)
        patches.append(
            ax.stairs(
                bottom + counts,
                edges,
                baseline=bottom.copy(),
                fill=True,
                alpha=0.9,
                color=status_color(code),
                label=f"{status_label(code)} ({len(values)})",
            )
        )
        bottom = bottom + counts
    if patches:
        ax.set_ylim(0, 1.05 * max(bottom.max(), 1))
    return patches


def _empty_axes(ax, text):
    """Axes with nothing to draw: the reason, in the middle, and no ticks."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=7.5, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])


def _log_hist_figure(data, field, xlabel, what):
    """A histogram of a per-run field on a log x-axis, stacked by status; runs
    at 0, below 0 or not finite are counted in the legend (a log axis cannot show them)."""
    fig, ax = _figure()
    values = np.asarray(data.arrays[field], dtype=float)
    status = data.arrays["status"]
    finite = np.isfinite(values)
    shown = finite & (values > 0)
    if shown.any():
        lo, hi = values[shown].min(), values[shown].max()
        if hi <= lo * 1.001:
            lo, hi = lo / 10**0.25, hi * 10**0.25
        edges = np.geomspace(lo, hi, 41)
        handles = _stacked_hist(ax, [(c, values[shown & (status == c)]) for c in _codes(status)], edges)
        ax.set_xscale("log")
    else:
        handles = []
        _empty_axes(ax, "no run has a positive finite value")
    for count, text in (
        (np.sum(finite & (values == 0)), "at 0"),
        (np.sum(finite & (values < 0)), "below 0"),
        (np.sum(~finite), "not finite"),
    ):
        if count:
            handles.append(_legend_note(f"{int(count)} {text} (not drawn)"))
    if handles:
        ax.legend(handles=handles, fontsize=6.5, loc="best", framealpha=0.85)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("runs")
    ax.set_title(_title(data, what), fontsize=8)
    return fig


def _met(data):
    """(met, epochs): which runs met a tolerance, and T (None when unknown).

    ``steps`` is the first epoch meeting gtol, ltol or dtol, T if none did
    (:func:`sideq.sweep.run_sweep`); a run with steps = T met one at θ(T)
    itself if its final values meet it."""
    steps = np.asarray(data.arrays["steps"])
    s = data.settings
    if s.get("epochs") is None:
        return None, None
    epochs = int(s["epochs"])
    met = steps < epochs
    at_end = steps == epochs
    for tol, field in (("gtol", "grad_norm_final"), ("ltol", "loss_final"), ("dtol", "distance_final")):
        if s.get(tol) and field in data.arrays:
            met |= at_end & (np.asarray(data.arrays[field]) <= float(s[tol]))
    return met, epochs


def _tolerances(settings):
    tols = [f"{name} = {settings[name]:g}" for name in ("gtol", "ltol", "dtol") if settings.get(name)]
    return ", ".join(tols) if tols else "no tolerance set"


def _steps_figure(data):
    """Epochs to the tolerance: a histogram of ``steps`` over the runs that met one."""
    fig, ax = _figure()
    steps = np.asarray(data.arrays["steps"])
    status = data.arrays["status"]
    met, epochs = _met(data)
    if met is None:  # T unknown: every run's steps, said so
        met = np.ones(len(steps), bool)
        note = "T unknown: all runs' steps"
    else:
        note = None
    handles = []
    if met.any():
        lo, hi = int(steps[met].min()), int(steps[met].max())
        edges = np.linspace(lo - 0.5, hi + 0.5, min(40, hi - lo + 1) + 1)
        handles = _stacked_hist(ax, [(c, steps[met & (status == c)]) for c in _codes(status)], edges)
    else:
        _empty_axes(ax, f"no run met a tolerance\n({_tolerances(data.settings)})")
    never = int(np.sum(~met))
    if epochs is not None:
        handles.append(_legend_note(f"{never} never met in {epochs} epochs"))
    if note:
        handles.append(_legend_note(note))
    ax.legend(handles=handles, fontsize=6.5, loc="best", framealpha=0.85)
    ax.set_xlabel(f"epochs to tolerance ({_tolerances(data.settings)})")
    ax.set_ylabel("runs")
    ax.set_title(_title(data, "epochs to tolerance"), fontsize=8)
    return fig


def grid_of(theta0, pair=(0, 1)):
    """The grid of initializations that ``theta0`` lies on, if it does.

    θ(0) of ``make_inits("grid:...")``: the coordinates ``pair`` take m1 and
    m2 evenly spaced values, every other coordinate is constant, and each
    grid point is the start of one run (a sweep that is not finished covers
    part of the grid: its missing cells are NaN in the index).

    Args:
      theta0: (N, p) the initializations.
      pair: the two coordinates of the grid.

    Returns:
      ``(g1, g2, index)`` with ``index`` (m1, m2) the run at each grid point
      (−1 where none), or None when ``theta0`` is not on such a grid.
    """
    theta0 = np.asarray(theta0, dtype=float)
    if theta0.ndim != 2 or len(theta0) < 4 or not np.all(np.isfinite(theta0)):
        return None
    others = [k for k in range(theta0.shape[1]) if k not in pair]
    if others and np.any(np.ptp(theta0[:, others], axis=0) > 0):
        return None
    axes, cells = [], []
    for k in pair:
        u = np.unique(theta0[:, k])
        if len(u) < 2 or len(u) > len(theta0) // 2:
            return None
        h = (u[-1] - u[0]) / (len(u) - 1)
        if np.any(np.abs(np.diff(u) - h) > 1e-3 * h):
            return None
        axes.append(u[0] + h * np.arange(len(u)))
        cells.append(np.rint((theta0[:, k] - u[0]) / h).astype(int))
    index = np.full((len(axes[0]), len(axes[1])), -1)
    index[cells[0], cells[1]] = np.arange(len(theta0))
    if np.sum(index >= 0) != len(theta0):  # two runs on one point
        return None
    return axes[0], axes[1], index


def _whole_grid(data, where, pair, grid):
    """The whole grid an unfinished sweep runs over, when ``grid`` (from
    :func:`grid_of`) is part of the √K × √K grid of ``make_inits("grid:...")``
    (θ1 slowest: init i at (i // √K, i % √K)): its cells not run yet get −1."""
    g1, g2, index = grid
    s = data.settings
    K, E = s.get("K"), s.get("n_eta") or 1
    if data.runs == data.total or not K or tuple(pair) != (0, 1):
        return grid
    m = math.isqrt(int(K))
    if m * m != int(K) or len(g2) != m or not 2 <= len(g1) < m:
        return grid
    run = np.asarray(data.run)[where]
    init = run if s.get("eta_mode") == "paired" else run // int(E)
    k1, k2 = np.nonzero(index >= 0)
    cols, rows = init[index[k1, k2]] // m, init[index[k1, k2]] % m
    offset = int(cols[0] - k1[0])
    if np.any(cols - k1 != offset) or np.any(rows != k2) or offset < 0 or offset + len(g1) > m:
        return grid
    whole = np.full((m, m), -1)
    whole[offset : offset + len(g1)] = index
    return g1[0] + (g1[1] - g1[0]) * (np.arange(m) - offset), g2, whole


def _on_grid(values, index, fill=np.nan):
    out = np.full(index.shape, fill, dtype=float)
    out[index >= 0] = np.asarray(values, dtype=float)[index[index >= 0]]
    return out


def _basin_figures(data, pair, suffix, where):
    """The basin maps over the grid of θ(0) of the runs ``where``: (name, figure) pairs."""
    from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm
    from matplotlib.patches import Patch

    theta0 = np.asarray(data.arrays["theta0"], dtype=float)[where]
    grid = grid_of(theta0, pair)
    if grid is None:
        return []
    g1, g2, index = _whole_grid(data, where, pair, grid)
    sub = {k: np.asarray(v)[where] for k, v in data.arrays.items()}
    status = sub["status"]
    names = _coordinate_names(theta0.shape[1], data.settings)
    xlabel, ylabel = names[pair[0]][:-1] + "(0)$", names[pair[1]][:-1] + "(0)$"
    target = _target_kw(data.settings, pair)
    if target is not None:
        ext = cell_extent(g1, g2)
        _fit_target(target, np.array([ext[0], ext[2]]), np.array([ext[1], ext[3]]))
    missing = int(np.sum(index < 0))
    notes = [Patch(facecolor="white", edgecolor="0.5", lw=0.5, label=f"not run yet ({missing})")] if missing else []
    eta = np.unique(sub["eta"]) if "eta" in sub else []
    # (one map per step size: its title names the step size and its runs)
    subset = dict(eta=eta[0], runs=int(np.sum(where))) if suffix and len(eta) == 1 else {}
    # History of the non-unique regime if the sweep records it, else the final status.
    if "non_unique_epochs" in sub:
        nonunique = _on_grid(np.asarray(sub["non_unique_epochs"]) > 0, index, 0).astype(bool)
        nu_label = f"non-unique at some epoch ({int(nonunique.sum())})"
    else:
        nonunique = _on_grid(status == int(Status.NON_UNIQUE), index, 0).astype(bool)
        nu_label = None  # (basin_map's: "non-unique equilibrium (k)")
    out = []

    # 1. The status each run ends with.
    codes = _codes(status)
    position = {c: k for k, c in enumerate(codes)}
    fig, ax = _figure()
    values = _on_grid(np.array([position[int(c)] for c in status]), index)
    cmap = ListedColormap([status_color(c) for c in codes])
    norm = BoundaryNorm(np.arange(len(codes) + 1) - 0.5, len(codes))
    patches = [Patch(facecolor=status_color(c), label=f"{status_label(c)} ({int(np.sum(status == c))})") for c in codes]
    basin_map(
        fig,
        ax,
        values,
        g1,
        g2,
        norm=norm,
        cmap=cmap,
        nonunique=nonunique if "non_unique_epochs" in sub else None,
        nonunique_label=nu_label,
        target=target,
        handles=patches + notes,
        xlabel=xlabel,
        ylabel=ylabel,
        legend_loc="best",
        legend_fontsize=6,
    )
    ax.set_title(_title(data, r"final status over $\theta(0)$", **subset), fontsize=8)
    out.append((f"sweep_basin_status{suffix}", fig))

    # 2. Where the runs end: the distance to the target set (ext5's panels (a), (b)).
    if "distance_final" in sub:
        failed = _on_grid(_failed(status), index, 0).astype(bool)
        dist = _on_grid(sub["distance_final"], index)
        shown = ~failed & np.isfinite(dist)
        D = np.where(shown, np.maximum(dist, 1e-16), np.nan)
        fig, ax = _figure()
        if shown.any():
            norm = LogNorm(max(1e-16, np.nanmin(D)), max(np.nanmax(D), 10 * np.nanmin(D)))
        else:
            norm = LogNorm(1e-16, 1.0)
        if target is None:
            what = "the target set"
        else:
            what = "solution line" if target["linear"] else rf"$(\xi{',0' if target['bias'] else ''},0)$"
        basin_map(
            fig,
            ax,
            D,
            g1,
            g2,
            norm=norm,
            cbar_label=f"final distance to {what}",
            failed=failed,
            nonunique=nonunique,
            nonunique_label=nu_label,
            target=target,
            handles=notes,
            xlabel=xlabel,
            ylabel=ylabel,
            legend_loc="best",
            legend_fontsize=6,
        )
        ax.set_title(_title(data, r"final distance over $\theta(0)$", **subset), fontsize=8)
        out.append((f"sweep_basin_distance{suffix}", fig))
    return out


def sweep(source, *, pair=None, out=None, formats=("png",), settings=None):
    r"""The figures of a sweep of gradient descent over many θ(0) (Section 2),
    in the style of the paper's (Section 4): one panel each.

    * ``sweep_theta_final``: the final θ in the plane of two of its entries
      (θ1[0] and θ2 by default), one colour per final status (legend: the
      status names and counts), with the target set: the global minimiser
      (ξ, [0,] 0) of the single-index DEQ and its line θ2 = 1/L (Section 3.2),
      or the solution line {(αξ, 1 − α)} and the singular line θ2 = 1 of the
      linear DEQ (Section 3.1).  Runs that passed through the non-unique
      regime are ringed when the sweep records it (``non_unique_epochs``).
    * ``sweep_loss_final``, ``sweep_distance_final``: histograms of the final
      risk and distance to the target set on a log axis, stacked by status;
      runs at 0 or not finite are counted in the legend.
    * ``sweep_steps``: epochs to the first tolerance met (``steps``), over the
      runs that met one; how many never did is in the legend.
    * for θ(0) on a grid (``make_inits("grid:...")``, :func:`grid_of`):
      ``sweep_basin_status`` (the status each θ(0) ends with) and
      ``sweep_basin_distance`` (its final distance to the target set), drawn
      with :func:`basin_map`; one pair per step size η when the sweep has
      several (suffix ``_eta0``, ``_eta1``, ...).

    An unfinished sweep is drawn from the chunks it has finished; each title
    says how many runs of how many.

    Args:
      source: a sweep's folder (finished or not) or its ``results.npz``, a
        :class:`~sideq.sweep.SweepResult`, or a dict of per-run arrays
        (:func:`load_sweep`).
      pair: the indices (i, j) of θ on the axes of the θ and basin figures
        (default (0, p − 1): θ1[0] and θ2; −1 is θ2).
      out: a folder to write the figures into (created if needed); None
        returns the figures.
      formats: file formats written, a subset of :data:`FORMATS` (e.g.
        ``("png", "pdf")``).
      settings: the sweep's settings, replacing those read from the folder
        (for a dict of arrays: ``model``, ``kind``, ``bias``, ``xi``,
        ``epochs``, ``gtol``/``ltol``/``dtol``, ``risk`` draw the target set,
        the titles and the tolerance test).

    Returns:
      The paths written (``out/NAME.FORMAT``, figure by figure), or with
      ``out=None`` the matplotlib Figures, each labelled with its NAME
      (``fig.get_label()``).
    """
    formats = _check_formats(formats)
    data = load_sweep(source, settings=settings)
    p = np.shape(data.arrays["theta_final"])[1]
    pair = _check_pair(pair, p)
    out = _check_out(out)  # (after the checks of the source: a bad source creates no folder)
    s = data.settings
    linear = s.get("kind") == "linear" or s.get("model") == "linear"
    population = s.get("risk") == "population"
    named = [("sweep_theta_final", _theta_figure(data, pair))]
    if "loss_final" in data.arrays:
        risk = r"R(\theta(T))" if population else r"\hat R(\theta(T))"
        named.append(("sweep_loss_final", _log_hist_figure(data, "loss_final", f"final risk ${risk}$", "final risk")))
    if "distance_final" in data.arrays:
        if s.get("xi") is None:
            label = "final distance to the target set"
        elif linear:
            label = "final distance to the solution line"
        else:
            label = r"final $\|\theta(T) - (\xi, 0, 0)\|$" if s.get("bias") else r"final $\|\theta(T) - (\xi, 0)\|$"
        named.append(("sweep_distance_final", _log_hist_figure(data, "distance_final", label, "final distance")))
    if "steps" in data.arrays:
        named.append(("sweep_steps", _steps_figure(data)))
    if "theta0" in data.arrays:
        eta = np.asarray(data.arrays["eta"]) if "eta" in data.arrays else np.zeros(data.runs)
        values = np.unique(eta)
        for k, value in enumerate(values):
            suffix = f"_eta{k}" if len(values) > 1 else ""
            named += _basin_figures(data, pair, suffix, eta == value)
    return _finish(named, out, formats)


# ----------------------------------------------------------------------------
# Single runs (``sideq descent --save RUN.npz``, ``sideq flow --save RUN.npz``)


def load_run(source) -> dict:
    """The arrays of a saved run of gradient descent or gradient flow.

    Args:
      source: the ``.npz`` of ``sideq descent --save`` or ``sideq flow --save``,
        a :class:`~sideq.dynamics.Trajectory` or :class:`~sideq.gradient_flow.FlowTrajectory`
        of one run, or a dict of its arrays (at least ``theta`` (T+1, p) and ``loss``).

    Returns:
      A dict of numpy arrays.  A flow's (it has ``ts``, ``t_final`` or
      ``drift``) holds the times of its rows under ``t``; a descent's ``t``,
      if any, holds the epochs of its rows.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise SideqInputError(
                f"source: {path!r} "
                + ("is a folder" if os.path.isdir(path) else "does not exist")
                + "; give a run saved by `sideq descent --save RUN.npz` or `sideq flow --save RUN.npz`"
            )
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {}
                for k in f.files:
                    try:
                        arrays[k] = f[k]
                    except ValueError:  # (an object array, e.g. a field saved as None: not data)
                        continue
        except Exception:  # (not an .npz: OSError, ValueError, a zip file's errors, ...)
            raise SideqInputError(
                f"source: {path!r} is neither a sweep's folder nor a saved run (it is not an .npz file); "
                "give a run saved by `sideq descent --save RUN.npz` or `sideq flow --save RUN.npz`, "
                "or a sweep's --out DIR"
            ) from None
    elif hasattr(source, "_asdict"):  # a Trajectory / FlowTrajectory
        arrays = {k: np.asarray(v) for k, v in source._asdict().items() if v is not None}
        if "ts" in arrays and "t_final" in arrays and np.ndim(arrays["ts"]) == 1:  # a FlowTrajectory
            arrays = {k: np.asarray(v) for k, v in until_stop(source)._asdict().items() if v is not None}
    elif isinstance(source, Mapping):
        arrays = {k: np.asarray(v) for k, v in source.items()}
    else:
        raise SideqInputError(
            f"source: expected a saved run (.npz), a trajectory or a dict of arrays, got {type(source).__name__}"
        )
    if _is_flow(arrays) and "ts" in arrays:
        arrays["t"] = arrays["ts"]
    theta = arrays.get("theta")
    if theta is None or "loss" not in arrays:
        hint = (
            " (it holds a sweep's results: pass its folder to sideq.plots.sweep / `sideq plot DIR`)"
            if "theta_final" in arrays
            else ""
        )
        raise SideqInputError(
            f"source: the arrays {sorted(arrays)[:8]} are neither a saved run (theta and loss, as "
            f"`sideq descent --save` writes) nor a sweep's results{hint}"
        )
    if theta.ndim != 2 or theta.shape[0] < 1 or theta.shape[1] < 2:
        raise SideqInputError(f"source: theta has shape {theta.shape}; a run's is (T+1, p), one row per epoch")
    for key in ("loss", "distance", "t"):
        if key in arrays and np.shape(arrays[key]) != (theta.shape[0],):
            if key == "t" and not _is_flow(arrays):  # (a descent's epochs of the rows, if any)
                del arrays["t"]
                continue
            raise SideqInputError(
                f"source: {key} has shape {np.shape(arrays[key])}, theta {theta.shape}; "
                "a run has one value per row of theta"
            )
    return arrays


def _is_flow(arrays):
    """A gradient flow's arrays (:class:`~sideq.gradient_flow.FlowTrajectory`), not a descent's."""
    return any(k in arrays for k in ("ts", "t_final", "drift", "rejected"))


def _fit_point(theta, distance):
    """θ* with ‖θ(t) − θ*‖ = distance(t) on every row, or None (least squares on
    ‖θ(t)‖² − 2θ(t)ᵀθ* + ‖θ*‖² = distance(t)², checked on every row)."""
    A = np.concatenate([2 * theta, -np.ones((len(theta), 1))], axis=1)
    b = np.sum(theta**2, axis=1) - distance**2
    sol, _, rank, _ = np.linalg.lstsq(A, b, rcond=None)
    if rank < A.shape[1]:
        return None
    star = sol[:-1]
    err = np.abs(np.linalg.norm(theta - star, axis=1) - distance)
    return star if np.max(err) <= 1e-6 * (1 + np.max(distance)) else None


def _fit_line(theta, distance, bias):
    """ξ with distance(t) = the distance of θ(t) to the line {(αξ, [0,] 1 − α)}
    on every row, or None.  With u = θ − (0, …, 0, 1) and n the line's unit
    direction, ‖u‖² − distance² = (uᵀn)², linear in the entries of nnᵀ."""
    p = theta.shape[1]
    u = theta.copy()
    u[:, -1] -= 1.0
    iu = np.triu_indices(p)
    A = np.stack([u[:, i] * u[:, j] * (1 if i == j else 2) for i, j in zip(*iu)], axis=1)
    b = np.sum(u**2, axis=1) - distance**2
    sol, _, rank, _ = np.linalg.lstsq(A, b, rcond=None)
    if rank < A.shape[1]:
        return None
    M = np.zeros((p, p))
    M[iu] = sol
    M = M + M.T - np.diag(np.diag(M))
    w, V = np.linalg.eigh(M)
    n = V[:, -1]
    if abs(n[-1]) < 1e-12:
        return None
    v = -n / n[-1]  # (ξ, [0,] −1)
    line = v / np.linalg.norm(v)
    err = np.abs(np.linalg.norm(u - np.outer(u @ line, line), axis=1) - distance)
    if np.max(err) > 1e-6 * (1 + np.max(distance)) or (bias and abs(v[-2]) > 1e-6 * (1 + np.max(np.abs(v)))):
        return None
    return v[: p - 1 - int(bias)]


def _run_target(arrays, model, xi):
    """(linear, ξ) of a run, or (None, None) when it cannot be told: from
    ``model``/``xi`` if given, else from the run's own ``model``/``xi`` arrays,
    else from its distances to the target set (``distance`` is ‖θ − (ξ, [0,] 0)‖
    for the single-index DEQ and the distance to the solution line for the
    linear DEQ, :func:`sideq.dynamics.distance_to_target`)."""
    if model is None and "model" in arrays:
        model = str(arrays["model"])
    if xi is None and "xi" in arrays:
        xi = arrays["xi"]
    linear = None
    if model is not None:
        linear = (getattr(model, "kind", None) == "linear") if not isinstance(model, str) else model == "linear"
    if xi is not None:
        xi = np.atleast_1d(np.asarray(xi, dtype=float))
        return (bool(linear) if linear is not None else None), xi
    theta = np.asarray(arrays["theta"], dtype=float)
    dist = np.asarray(arrays.get("distance", np.full(len(theta), np.nan)), dtype=float)
    ok = np.all(np.isfinite(theta), axis=1) & np.isfinite(dist)
    theta, dist = theta[ok], dist[ok]
    if len(theta) < theta.shape[1] + 2 if len(theta) else True:
        return linear, None
    bias = bool(getattr(model, "bias", False))
    if linear is not True:
        star = _fit_point(theta, dist)
        if star is not None and abs(star[-1]) <= 1e-6 * (1 + np.max(np.abs(star))):
            return False, star[:-1]
    if linear is not False:
        xi = _fit_line(theta, dist, bias)
        if xi is not None:
            return True, xi
    return linear, None


def run(source, *, model=None, xi=None, out=None, formats=("png",), name=None):
    r"""The figures of one run of gradient descent or gradient flow (Section 2),
    as the paper draws them (Figures 1–5): ``NAME_loss`` (the risk on a log
    axis, panel (a) of Figures 1 and 4), ``NAME_distance`` (the distance to
    the target set, panel (b) of Figure 5; a log axis when it spans a decade
    or more) and ``NAME_trajectory`` (θ in the (θ1, θ2) plane with the target
    set, panel (a) of Figures 2, 3, 5).  A flow's rows are drawn against time.

    The target set needs the model and ξ, which a saved run does not hold: by
    default they are recovered from the run's distances to the target set,
    ‖θ(t) − (ξ, [0,] 0)‖ (single-index DEQ) or the distance to the line
    {(αξ, [0,] 1 − α)} (linear DEQ), each fit checked on every row to 1e-6;
    a run whose rows do not determine them is drawn without it.

    Args:
      source: a run saved by ``sideq descent --save RUN.npz`` or ``sideq flow
        --save RUN.npz``, a :class:`~sideq.dynamics.Trajectory` or
        :class:`~sideq.gradient_flow.FlowTrajectory` of one run, or a dict of its arrays.
      model: ``"linear"``, an activation name or a :class:`~sideq.model.Model`:
        the kind of DEQ (default: recovered from the run).
      xi: ξ (default: recovered from the run).
      out: a folder to write the figures into (created if needed); None
        returns the figures.
      formats: file formats written, a subset of :data:`FORMATS`.
      name: the files' prefix NAME (default: the .npz file's name, else "run").

    Returns:
      The paths written (``out/NAME_loss.FORMAT``, ...), or with ``out=None``
      the matplotlib Figures, each labelled with its name (``fig.get_label()``).
    """
    formats = _check_formats(formats)
    arrays = load_run(source)
    out = _check_out(out)
    if name is None:
        name = (
            os.path.splitext(os.path.basename(os.fspath(source)))[0]
            if isinstance(source, (str, os.PathLike))
            else "run"
        )
    theta = np.asarray(arrays["theta"], dtype=float)
    flow = _is_flow(arrays)
    t = np.asarray(arrays["t"], dtype=float) if flow and "t" in arrays else None
    epochs = np.asarray(arrays["t"]) if not flow and "t" in arrays else None
    linear, xi_vec = _run_target(arrays, model, xi)
    title = _run_title(arrays, t, epochs)
    named = [(f"{name}_loss", loss_curve(arrays["loss"], t=t, epochs=epochs, title=title))]
    if "distance" in arrays:
        dist = np.asarray(arrays["distance"], dtype=float)
        positive = dist[np.isfinite(dist) & (dist > 0)]
        log = positive.size > 0 and positive.max() / positive.min() >= 10
        if xi_vec is None or linear is None:
            ylabel = "distance to the target set"
        elif linear:
            ylabel = "distance to the solution line"
        elif theta.shape[1] == 2:
            ylabel = rf"$\|\theta(t) - ({xi_vec[0]:g}, 0)\|_2$"  # (Figure 5b's)
        else:
            ylabel = r"$\|\theta(t) - \theta^*\|_2$"
        named.append(
            (f"{name}_distance", distance_curve(dist, ylabel=ylabel, log=log, t=t, epochs=epochs, title=title))
        )
    draw_xi = None if xi_vec is None or linear is None else float(xi_vec[0])
    named.append(
        (f"{name}_trajectory", trajectory(theta, xi=draw_xi, linear=bool(linear), t=t, epochs=epochs, title=title))
    )
    return _finish(named, out, formats)


def _run_title(arrays, t, epochs):
    """'descent, 4000 epochs: max steps' / 'flow to t = 50: converged'."""
    if t is not None:
        kind = f"flow to $t = {t[-1]:.3g}$"
    else:
        kind = f"descent, {int(epochs[-1]) if epochs is not None else len(arrays['theta']) - 1} epochs"
    if "status" in arrays and np.ndim(arrays["status"]) == 0:
        return f"{kind}: {status_label(arrays['status'])}"
    return kind


# ----------------------------------------------------------------------------
# Either, from a path (``sideq plot``)


def draw(path, *, out, pair=None, formats=("png",)):
    """The figures of what ``path`` holds: :func:`sweep` for a sweep's folder
    (or its ``results.npz``), :func:`run` for a saved run (``.npz``).

    Args:
      path: a sweep's folder or ``results.npz``, or a run's ``.npz``.
      out: the folder to write into (created if needed).
      pair: the indices of θ on the axes of a sweep's θ figures (not for a run).
      formats: file formats written, a subset of :data:`FORMATS`.

    Returns:
      The paths written.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SideqInputError(
            f"source: {path!r} does not exist; give a sweep's folder (sideq sweep --out DIR) "
            "or a saved run (sideq descent/flow --save RUN.npz)"
        )
    if os.path.isdir(path) or os.path.basename(path) == "results.npz":
        return sweep(path, pair=pair, out=out, formats=formats)
    if pair is not None:
        raise SideqInputError(
            f"pair: {pair!r} is for a sweep's figures; a saved run is drawn in the (theta1, theta2) plane; drop it"
        )
    return run(path, out=out, formats=formats)
