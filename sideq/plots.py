"""Figures in the style of the paper's Section 4 (matplotlib; returns Figure objects).

Each function draws one panel and returns the ``Figure``; saving is the
caller's business (:mod:`sideq.reproduce`).  Symbols follow the paper: θ1, θ2,
ξ, the solution line (αξ, 1 − α), the trivial point (0, 1), the target (ξ, 0).
"""

from __future__ import annotations

import numpy as np

from sideq.errors import SideqInputError

PANEL_SIZE = (3.4, 2.8)  # inches: one column of a two-column paper


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
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


def _positive(values):
    """The values, with those that a log axis cannot show (≤ 0) as NaN: a gap."""
    return np.where(values > 0, values, np.nan)


def loss_curve(loss, *, title=None, label="empirical risk"):
    """Loss over epochs on a log scale (panel (a) of Figures 1 and 4).

    Epochs where the loss is 0 (or not positive) are left out of the line (a
    gap), not clipped to the bottom of the axes.  ``label`` names the line for
    a legend the caller draws, e.g. after adding a second curve to ``fig.axes[0]``.
    """
    fig, ax = _figure()
    loss = np.asarray(loss)
    epochs = np.arange(len(loss))
    positive = _positive(loss)
    ax.semilogy(epochs, positive, color="C0", lw=1.5, label=label)
    _log_ticks(ax, positive)
    ax.set_xlabel("epoch $t$")
    ax.set_ylabel(r"$\hat R(\theta(t))$")
    ax.set_xlim(0, len(loss) - 1)
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
                "pass n inputs of one feature, shape (n,) or (n, 1), with n targets")
        x_data = np.ravel(x_data)
    fig, ax = _figure()
    if x_data is not None:
        n = len(x_data)
        shown = np.argsort(x_data)[np.unique(np.linspace(0, n - 1, min(n, 40)).round().astype(int))]
        label = "training data" if len(shown) == n else f"training data ({len(shown)} of {n})"
        ax.plot(x_data[shown], y_data[shown], "o", ms=3.5, mfc="white", mec="C0", mew=0.9, ls="none",
                label=label, zorder=4)
    ax.plot(x_grid, y_true, color="k", lw=1.6, alpha=0.75, label=true_label, zorder=2)
    ax.plot(x_grid, y_learned, color="C3", lw=1.4, ls="--", label=r"learned $y_\theta(x)$", zorder=3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def trajectory(theta, *, xi, linear, title=None):
    """The iterates in the (θ1, θ2)-plane coloured by epoch (panel (a) of Figures 2, 3, 5).

    The start θ(0) (open circle) and the end θ(T) (open square) are in the legend.
    Linear DEQ: the solution line (αξ, 1 − α) and the trivial point (0, 1).
    Single-index DEQ: the target (ξ, 0).  θ2 is the last entry of each row of
    ``theta`` (θ = (θ1, b, θ2) with a bias, :mod:`sideq.model`), θ1 the first.
    """
    from matplotlib.collections import LineCollection

    fig, ax = _figure()
    theta = np.asarray(theta)[:, [0, -1]]  # (θ1, θ2): not (θ1, b) for a model with a bias
    t = np.arange(len(theta))
    pts = theta.reshape(-1, 1, 2)
    segs = np.concatenate([pts[:-1], pts[1:]], axis=1)
    lc = LineCollection(segs, cmap="viridis", linewidths=1.6)
    lc.set_array(t[:-1].astype(float))
    ax.add_collection(lc)
    ax.scatter(theta[:, 0], theta[:, 1], c=t, cmap="viridis", s=4, zorder=3)
    cb = fig.colorbar(lc, ax=ax, pad=0.02)
    cb.set_label("epoch", fontsize=8)
    ax.plot(theta[0, 0], theta[0, 1], "o", mfc="none", mec="k", ms=6, label=r"$\theta(0)$", zorder=4)
    ax.plot(theta[-1, 0], theta[-1, 1], "s", mfc="none", mec="k", ms=6, label=rf"$\theta({len(theta) - 1})$",
            zorder=4)
    lo, hi = theta.min(axis=0), theta.max(axis=0)
    if linear:
        lo, hi = np.minimum(lo, [0.0, 1.0]), np.maximum(hi, [0.0, 1.0])
    else:
        lo, hi = np.minimum(lo, [xi, 0.0]), np.maximum(hi, [xi, 0.0])
    pad = 0.12 * np.maximum(hi - lo, 0.2)
    lo, hi = lo - pad, hi + pad
    if linear:
        alphas = np.linspace(-10, 10, 2001)
        ax.plot(alphas * xi, 1 - alphas, color="C3", lw=1, ls="--",
                label=r"solutions $(\alpha\xi, 1-\alpha)$", zorder=1)
        ax.plot(0, 1, marker="X", color="C1", ms=8, ls="none", label=r"trivial $(0, 1)$", zorder=5)
    else:
        ax.plot(xi, 0, marker="*", color="C3", ms=11, ls="none", label=rf"target $(\xi, 0) = ({xi:g}, 0)$",
                zorder=5)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    ax.legend(fontsize=6.5, loc="best")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def distance_curve(distance, *, ylabel, log=False, title=None):
    """Distance to a point over epochs (panel (b) of Figures 2, 3, 5).

    ``log``: a log y-axis, with 1, 2, 5 × 10^k ticks labelled when the curve spans
    at most three decades.  (Figure 5b spans under one decade, about 2.2 to 0.5,
    and :mod:`sideq.reproduce` draws it on a linear axis.)  On a log axis,
    epochs at distance 0 are left out of the line, as in :func:`loss_curve`.
    """
    fig, ax = _figure()
    distance = np.asarray(distance)
    epochs = np.arange(len(distance))
    if log:
        positive = _positive(distance)
        ax.semilogy(epochs, positive, color="C0", lw=1.5)
        _log_ticks(ax, positive)
    else:
        ax.plot(epochs, distance, color="C0", lw=1.5)
    ax.set_xlabel("epoch $t$")
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, len(distance) - 1)
    if title:
        ax.set_title(title, fontsize=9)
    return fig
