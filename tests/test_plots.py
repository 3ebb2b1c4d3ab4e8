"""The figures of sideq.plots: one run's panels (loss_curve, distance_curve,
learned_function, trajectory), pictures of sweeps and saved runs
(sideq.plots.sweep / run / draw) and `sideq plot`.

What a figure draws is read back from matplotlib's objects (scatter offsets,
bar heights and edges, image arrays, line data, tick labels, legends) and
compared with the arrays it was given, by a second route: numpy's histogram
of the same values, the results file read with np.load, the status codes
counted by numpy, the target set from the paper's formulas (the minimiser
(ξ, 0), the solution line θ2 = 1 − θ1/ξ), the axis labels with the paper's
symbols.  The sweep folders come from one tiny real sweep of the linear DEQ
(16 runs on a 4 × 4 grid of θ(0) with a row on the singular line θ2 = 1, 50
samples, 50 epochs; compiled once), finished and killed after two of its four
chunks.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import run_cli  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

import sideq  # noqa: E402
from sideq import plots  # noqa: E402
from sideq.errors import SideqInputError  # noqa: E402
from sideq.status import Status  # noqa: E402

LIN = sideq.linear()
XI = 2.0
EPOCHS = 50
GRID = "grid:-1/3,-1/2"  # 4 x 4 starts; theta2(0) = 1 on one row: singular runs


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A finished sweep folder and the same sweep killed after two of its four chunks."""
    from sideq.sweep import make_inits, run_sweep

    base = tmp_path_factory.mktemp("sweeps")
    x = np.asarray(sideq.sample(sideq.uniform(0.0, 1.0, 1), jax.random.PRNGKey(0), 50))
    kw = dict(xi=[XI], x=x, inits=make_inits(GRID, 16, 2), eta=0.5, epochs=EPOCHS, chunk=4, dtol=0.05)
    run_sweep(LIN, out_dir=str(base / "done"), progress=False, **kw)

    def killed_after_two_chunks(info):
        if info["done"] >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(LIN, out_dir=str(base / "partial"), progress=killed_after_two_chunks, **kw)
    return base / "done", base / "partial"


def _named(figs):
    return {fig.get_label(): fig for fig in figs}


def _scatters(ax):
    """{label: PathCollection} of the labelled scatters of ``ax``."""
    from matplotlib.collections import PathCollection

    return {
        c.get_label(): c for c in ax.collections if isinstance(c, PathCollection) and not c.get_label().startswith("_")
    }


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _hist_counts(ax):
    """(edges, {label: counts}) of the stacked histogram of ``ax`` (one filled
    step patch per status, from its baseline to its top)."""
    from matplotlib.patches import StepPatch

    out, edges = {}, None
    for patch in ax.patches:
        if isinstance(patch, StepPatch):
            top, edges, baseline = patch.get_data()
            out[patch.get_label()] = np.asarray(top) - np.asarray(baseline)
    return np.asarray(edges), out


def _stacks(ax):
    """[(baseline, top)] of the step patches of ``ax``, in drawing order."""
    from matplotlib.patches import StepPatch

    return [(np.asarray(p.get_data()[2]), np.asarray(p.get_data()[0])) for p in ax.patches if isinstance(p, StepPatch)]


def _count(values, edges):
    """Values per bin [e_k, e_k+1) (the last bin closed), by comparisons, not np.histogram."""
    v = np.asarray(values)[:, None]
    inside = (v >= edges[:-1]) & (v < edges[1:])
    inside[:, -1] |= v[:, 0] == edges[-1]
    return inside.sum(axis=0)


def _label(code, n):
    return f"{plots.status_label(code)} ({n})"


def _hand_made(n=60, seed=0):
    """Per-run arrays with every status code (and one this version does not name)."""
    rng = np.random.default_rng(seed)
    codes = [int(s) for s in Status] + [9]
    status = np.array([codes[i % len(codes)] for i in range(n)], np.int32)
    theta = rng.normal(size=(n, 3))
    loss = 10.0 ** rng.uniform(-12, 0, n)
    loss[:3] = 0.0
    loss[3:5] = np.nan
    loss[5] = np.inf
    dist = 10.0 ** rng.uniform(-8, 1, n)
    dist[7] = -1.0  # (impossible in a sweep: counted, not dropped)
    steps = rng.integers(1, 100, n).astype(np.int32)
    steps[::4] = 100  # never met a tolerance...
    dist[8] = 1e-4  # ...but run 8 met dtol at theta(T) itself
    return dict(
        theta_final=theta, status=status, loss_final=loss, distance_final=dist, steps=steps, eta=np.full(n, 0.5)
    )


SETTINGS = dict(model="tanh", kind="single_index", bias=False, xi=[1.5, -0.5], epochs=100, dtol=1e-3)


# ----------------------------------------------------------------------------
# One run's panels: loss, distance, learned function, trajectory


def _lines_by_label(ax):
    return {line.get_label(): line for line in ax.lines}


def _is_custom(ax):
    from matplotlib.ticker import FuncFormatter

    return isinstance(ax.yaxis.get_major_formatter(), FuncFormatter)


def _visible_major_ticks(ax):
    lo, hi = ax.get_ylim()
    t = np.asarray(ax.get_yticks())
    return t[(t >= lo * (1 - 1e-9)) & (t <= hi * (1 + 1e-9))]


def test_loss_curve_draws_the_positive_losses_against_the_epochs():
    loss = np.asarray([1.0, 0.1, 0.0, np.nan, 1e-3])
    fig = plots.loss_curve(loss, title="Fig 1a", label="population risk")
    ax = fig.axes[0]
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3, 4])
    # log axis: the zero (and the NaN) are left out, not drawn at the bottom
    np.testing.assert_array_equal(line.get_ydata(), [1.0, 0.1, np.nan, np.nan, 1e-3])
    assert ax.get_yscale() == "log" and ax.get_xlim() == (0.0, 4.0)
    assert "epoch" in ax.get_xlabel() and ax.get_ylabel() == r"$\hat R(\theta(t))$"
    assert line.get_label() == "population risk" and ax.get_title() == "Fig 1a"


def test_log_ticks_1_2_5_labelled_over_at_most_three_decades():
    # Figure 4a's range (docstring: about 3e-4 to 7e-2): every 1, 2, 5 x 10^k inside
    d = np.geomspace(7e-2, 3e-4, 30)
    ax = plots.distance_curve(d, ylabel="d", log=True).axes[0]
    assert ax.get_yscale() == "log" and _is_custom(ax)
    ticks = _visible_major_ticks(ax)
    for v in [5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2]:
        assert np.any(np.isclose(ticks, v, rtol=1e-9)), (v, ticks)
    for v in ticks:
        mantissa = v / 10 ** np.floor(np.log10(v) + 1e-12)
        assert np.isclose(mantissa, [1, 2, 5], rtol=1e-9).any(), v
    fmt = ax.yaxis.get_major_formatter()
    # not all of [0.01, 1000): m x 10^k, and a plain power for m = 1
    assert fmt(5e-4, 0) == r"$5\times 10^{-4}$"
    assert fmt(2e-2, 0) == r"$2\times 10^{-2}$"
    assert fmt(1e-3, 0) == r"$10^{-3}$"


def test_log_ticks_plain_decimals_only_inside_0_01_to_1000():
    ax = plots.distance_curve(np.asarray([4.0, 1.0, 0.05]), ylabel="d", log=True).axes[0]
    fmt = ax.yaxis.get_major_formatter()
    assert _is_custom(ax)
    assert [fmt(v, 0) for v in (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)] == ["0.05", "0.1", "0.2", "0.5", "1", "2"]
    # below 0.01: not plain
    fmt = plots.distance_curve(np.asarray([0.5, 2e-3]), ylabel="d", log=True).axes[0].yaxis.get_major_formatter()
    assert fmt(2e-3, 0) == r"$2\times 10^{-3}$" and fmt(0.1, 0) == r"$10^{-1}$"
    # 1000 is outside [0.01, 1000): not plain either (three decades, still labelled)
    ax = plots.distance_curve(np.asarray([1000.0, 1.0]), ylabel="d", log=True).axes[0]
    fmt = ax.yaxis.get_major_formatter()
    assert _is_custom(ax) and fmt(1000.0, 0) == r"$10^{3}$" and fmt(2.0, 0) == r"$2\times 10^{0}$"


def test_log_ticks_kept_by_matplotlib_over_more_than_three_decades_only():
    assert _is_custom(plots.distance_curve(np.asarray([0.3, 1e-3]), ylabel="d", log=True).axes[0])  # 2.5
    assert not _is_custom(plots.distance_curve(np.asarray([1.0, 1e-5]), ylabel="d", log=True).axes[0])  # 5
    assert not _is_custom(plots.loss_curve(np.geomspace(1.0, 1e-30, 50)).axes[0])  # Figure 1a: thirty
    # an exact zero (the target reached) is not a decade of data: still 1, 2, 5 ticks
    ax = plots.distance_curve(np.asarray([3e-2, 1e-2, 1e-3, 0.0]), ylabel="d", log=True).axes[0]
    assert _is_custom(ax)


def test_distance_curve_draws_the_distances_on_the_asked_axis():
    d = np.asarray([2.0, 1.0, 0.5, 0.25])
    for log in (False, True):
        fig = plots.distance_curve(d, ylabel=r"$\|\theta(t) - (0, 1)\|_2$", log=log, title="b")
        ax = fig.axes[0]
        (line,) = ax.lines
        np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3])
        np.testing.assert_array_equal(line.get_ydata(), d)
        assert ax.get_yscale() == ("log" if log else "linear")
        assert ax.get_xlim() == (0.0, 3.0) and "epoch" in ax.get_xlabel()
        assert ax.get_ylabel() == r"$\|\theta(t) - (0, 1)\|_2$" and ax.get_title() == "b"
    # a distance of exactly 0: a gap on the log axis (as loss_curve), drawn as it is on the linear one
    d0 = np.asarray([1e-2, 1e-3, 0.0, 1e-4])
    (line,) = plots.distance_curve(d0, ylabel="d", log=True).axes[0].lines
    np.testing.assert_array_equal(line.get_ydata(), [1e-2, 1e-3, np.nan, 1e-4])
    (line,) = plots.distance_curve(d0, ylabel="d").axes[0].lines
    np.testing.assert_array_equal(line.get_ydata(), d0)


def _learned(n):
    rng = np.random.default_rng(5)
    x = rng.uniform(0.0, 1.0, n)
    grid = np.linspace(0.0, 1.0, 11)
    fig = plots.learned_function(
        grid, 2 * grid + 0.1, 2 * grid, x_data=x[:, None], y_data=2 * x, true_label="true $f(x) = 2x$", title="Fig 1b"
    )
    return fig.axes[0], x, grid


def test_learned_function_curves_and_data_match_the_inputs():
    ax, x, grid = _learned(100)
    by = _lines_by_label(ax)
    true, learned = by["true $f(x) = 2x$"], by[r"learned $y_\theta(x)$"]
    np.testing.assert_array_equal(true.get_xdata(), grid)
    np.testing.assert_array_equal(true.get_ydata(), 2 * grid)
    np.testing.assert_array_equal(learned.get_ydata(), 2 * grid + 0.1)
    (data,) = [line for line in ax.lines if line.get_marker() == "o"]
    xs, ys = np.asarray(data.get_xdata()), np.asarray(data.get_ydata())
    np.testing.assert_allclose(ys, 2 * xs, rtol=0, atol=0)  # each marker is a sample (x, y) pair
    # an evenly spaced subsample of 40, sorted by x, from the smallest x to the largest
    ranks = np.searchsorted(np.sort(x), xs)
    assert len(xs) == 40 and ranks[0] == 0 and ranks[-1] == 99
    gaps = np.diff(ranks)
    assert gaps.min() >= 1 and gaps.max() - gaps.min() <= 1, gaps
    assert data.get_label() == "training data (40 of 100)"
    # markers above both curves; the legend lists all three
    assert data.get_zorder() > max(true.get_zorder(), learned.get_zorder())
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["training data (40 of 100)", "true $f(x) = 2x$", r"learned $y_\theta(x)$"]
    assert ax.get_xlabel() == "$x$" and ax.get_ylabel() == "$y$" and ax.get_title() == "Fig 1b"


@pytest.mark.parametrize(
    "x_data,y_data",
    [
        (np.zeros((5, 2)), np.zeros(5)),  # two features: not a curve over one input
        (np.zeros(5), np.zeros(4)),  # one target short
        (np.zeros((5, 1, 1)), np.zeros(5)),
    ],
)
def test_learned_function_refuses_data_it_cannot_draw_in_one_line(x_data, y_data):
    grid = np.linspace(0.0, 1.0, 3)
    with pytest.raises(SideqInputError, match=r"learned_function: x_data .*shape \(n,\) or \(n, 1\)") as e:
        plots.learned_function(grid, grid, grid, x_data=x_data, y_data=y_data, true_label="f")
    assert "\n" not in str(e.value)
    ax = plots.learned_function(grid, grid, grid, x_data=np.zeros((5, 1)), y_data=np.ones(5), true_label="f").axes[0]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), np.ones(5))  # (n, 1) is fine


def test_learned_function_shows_all_of_a_small_sample():
    ax, x, _ = _learned(10)
    (data,) = [line for line in ax.lines if line.get_marker() == "o"]
    np.testing.assert_array_equal(data.get_xdata(), np.sort(x))
    assert data.get_label() == "training data"


def _traj_axes(fig):
    ax, cax = fig.axes  # the panel and its colorbar
    return ax, cax


def test_trajectory_linear_draws_iterates_coloured_by_epoch_and_the_solution_line():
    theta = np.asarray([[2.0, -2.0], [2.5, -1.5], [2.8, -1.2], [2.9, -1.1], [3.0, -1.0]])
    xi = 2.0
    fig = plots.trajectory(theta, xi=xi, linear=True, title="Fig 2a")
    ax, cax = _traj_axes(fig)
    from matplotlib.collections import LineCollection, PathCollection

    (lc,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    (sc,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    segs = lc.get_segments()
    assert len(segs) == 4
    for i, seg in enumerate(segs):  # segment i: theta(i) -> theta(i+1), coloured by epoch i
        np.testing.assert_array_equal(seg, theta[i : i + 2])
    np.testing.assert_array_equal(lc.get_array(), [0, 1, 2, 3])
    np.testing.assert_array_equal(sc.get_offsets(), theta)
    np.testing.assert_array_equal(sc.get_array(), [0, 1, 2, 3, 4])
    assert cax.get_ylabel() == "epoch"
    by = _lines_by_label(ax)
    start, end = by[r"$\theta(0)$"], by[r"$\theta(4)$"]
    assert (start.get_marker(), end.get_marker()) == ("o", "s")
    np.testing.assert_array_equal(np.ravel([start.get_xdata(), start.get_ydata()]), theta[0])
    np.testing.assert_array_equal(np.ravel([end.get_xdata(), end.get_ydata()]), theta[-1])
    trivial = by[r"trivial $(0, 1)$"]
    np.testing.assert_array_equal(np.ravel([trivial.get_xdata(), trivial.get_ydata()]), [0.0, 1.0])
    sol = by[r"solutions $(\alpha\xi, 1-\alpha)$"]
    sx, sy = np.asarray(sol.get_xdata()), np.asarray(sol.get_ydata())
    np.testing.assert_allclose(sx, xi * (1 - sy), atol=1e-12)  # theta1 = alpha xi, theta2 = 1 - alpha
    # the view holds every iterate and the trivial point, with a margin
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    bx = [min(theta[:, 0].min(), 0.0), max(theta[:, 0].max(), 0.0)]
    by_ = [min(theta[:, 1].min(), 1.0), max(theta[:, 1].max(), 1.0)]
    for (lo, hi), (a, b) in [((x0, x1), bx), ((y0, y1), by_)]:
        span = b - a
        assert 0.05 * span <= a - lo <= 0.5 * span and 0.05 * span <= hi - b <= 0.5 * span, (lo, hi, a, b)
    inside = (sx > x0) & (sx < x1) & (sy > y0) & (sy < y1)
    assert inside.any()  # the solution line crosses the view
    assert ax.get_xlabel() == r"$\theta_1$" and ax.get_ylabel() == r"$\theta_2$" and ax.get_title() == "Fig 2a"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert r"$\theta(0)$" in labels and r"$\theta(4)$" in labels


def test_trajectory_single_index_marks_the_target_inside_the_view():
    theta = np.asarray([[0.1, 0.5], [0.5, 0.3], [1.0, 0.2]])
    fig = plots.trajectory(theta, xi=3.0, linear=False)
    ax, _ = _traj_axes(fig)
    (target,) = [line for line in ax.lines if line.get_marker() == "*"]
    np.testing.assert_array_equal(np.ravel([target.get_xdata(), target.get_ydata()]), [3.0, 0.0])
    assert "(3, 0)" in target.get_label()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 < 0.1 and x1 > 3.0 and y0 < 0.0 and y1 > 0.5
    labels = {line.get_label() for line in ax.lines}
    assert r"$\theta(2)$" in labels and not any("trivial" in s or "solutions" in s for s in labels)


def test_trajectory_of_a_model_with_a_bias_draws_theta1_against_theta2():
    """θ = (θ1, b, θ2) with a bias (sideq.model): the panel is the (θ1, θ2)-plane its
    axes name, read off by the model's own split, not (θ1, b)."""
    import sideq

    model = sideq.single_index("sigmoid", bias=True)
    theta = np.asarray([[0.1, 0.7, 0.5], [0.2, 0.8, 0.3], [0.4, 0.9, 0.1]])
    t1, _, t2 = (np.asarray(v) for v in model.split(jnp.asarray(theta)))
    plane = np.stack([t1[:, 0], t2], axis=1)
    fig = plots.trajectory(theta, xi=2.0, linear=False)
    ax, _ = _traj_axes(fig)
    from matplotlib.collections import PathCollection

    (sc,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_array_equal(sc.get_offsets(), plane)
    end = _lines_by_label(ax)[r"$\theta(2)$"]
    np.testing.assert_array_equal(np.ravel([end.get_xdata(), end.get_ydata()]), plane[-1])
    (y0, y1) = ax.get_ylim()
    assert y0 < plane[:, 1].min() and y1 > plane[:, 1].max() and ax.get_ylabel() == r"$\theta_2$"


# ----------------------------------------------------------------------------
# Final theta


def test_final_theta_scatter_is_theta_final_grouped_by_status(folders):
    done, _ = folders
    with np.load(done / "results.npz") as f:  # the file itself, not sideq's reader
        theta, status = f["theta_final"], f["status"]
    assert len(np.unique(status)) >= 2  # (converged, singular, ...: several groups)
    figs = _named(plots.sweep(done))
    assert list(figs) == [
        "sweep_theta_final",
        "sweep_loss_final",
        "sweep_distance_final",
        "sweep_steps",
        "sweep_basin_status",
        "sweep_basin_distance",
    ]
    ax = figs["sweep_theta_final"].axes[0]
    scatters = _scatters(ax)
    codes, counts = np.unique(status, return_counts=True)
    assert set(scatters) >= {_label(c, n) for c, n in zip(codes, counts)}
    lo, hi = np.array([ax.get_xlim(), ax.get_ylim()]).T
    for c, n in zip(codes, counts):
        xy = theta[status == c]
        in_view = np.all((xy >= lo) & (xy <= hi), axis=1)
        np.testing.assert_array_equal(scatters[_label(c, n)].get_offsets(), xy[in_view])
    assert "16 runs" in ax.get_title() and r"$\xi=2$" in ax.get_title()
    # the linear DEQ's solution line theta2 = 1 - theta1/xi, and its singular line theta2 = 1
    (line,) = [ln for ln in ax.lines if ln.get_label() == r"$(\alpha\xi,1-\alpha)$"]
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    np.testing.assert_allclose(y, 1 - x / XI, rtol=1e-12, atol=1e-12)
    assert x.min() <= ax.get_xlim()[0] and x.max() >= ax.get_xlim()[1]  # it crosses the whole view
    (singular,) = [ln for ln in ax.lines if ln.get_label() == r"$\theta_2=1$"]
    assert np.all(np.asarray(singular.get_ydata()) == 1.0)


def test_every_status_gets_its_name_and_one_colour_and_pair_picks_the_coordinates():
    arrays = _hand_made()
    figs = _named(plots.sweep(arrays, pair=(1, -1), settings=SETTINGS))
    assert "sweep_basin_status" not in figs  # no theta0: no map
    ax = figs["sweep_theta_final"].axes[0]
    scatters = _scatters(ax)
    status = arrays["status"]
    colours = set()
    for code in [int(s) for s in Status] + [9]:
        n = int(np.sum(status == code))
        name = "status 9" if code == 9 else Status(code).name.lower().replace("non_", "non-").replace("_", " ")
        coll = scatters[f"{name} ({n})"]
        np.testing.assert_array_equal(coll.get_offsets(), arrays["theta_final"][status == code][:, [1, 2]])
        rgba = tuple(coll.get_facecolor()[0][:3])
        assert rgba == to_rgba(plots.status_color(code))[:3]
        colours.add(rgba)
    assert len(colours) == len(Status) + 1  # one colour per status
    assert ax.get_xlabel() == r"$\theta_1[1](T)$" and ax.get_ylabel() == r"$\theta_2(T)$"
    # target (xi, 0) seen in the plane (theta1[1], theta2): (-0.5, 0)
    (star,) = [ln for ln in ax.lines if ln.get_marker() == "*"]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (-0.5, 0.0)
    # tanh: L = 1, the line theta2 = 1 is in view
    (edge,) = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    assert np.all(np.asarray(edge.get_ydata()) == 1.0)


def test_single_index_model_draws_its_minimiser_and_the_edge_of_contraction():
    rng = np.random.default_rng(1)
    theta = np.array([XI, 0.0]) + rng.normal(scale=0.3, size=(30, 2))
    arrays = dict(theta_final=theta, status=np.zeros(30, np.int32))
    settings = dict(model="sigmoid", kind="single_index", bias=False, xi=[XI])
    ax = _named(plots.sweep(arrays, settings=settings))["sweep_theta_final"].axes[0]
    (star,) = [ln for ln in ax.lines if ln.get_marker() == "*"]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (XI, 0.0)
    # sigmoid: L = 1/4; the line theta2 = 4 is far out of this view: not drawn
    assert not [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    theta[:10, 1] += 4.5  # now it is in view
    ax = _named(plots.sweep(dict(arrays, theta_final=theta), settings=settings))["sweep_theta_final"].axes[0]
    (edge,) = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    assert np.all(np.asarray(edge.get_ydata()) == 4.0)


def test_far_and_non_finite_points_are_counted_not_dropped():
    rng = np.random.default_rng(2)
    theta = rng.normal(size=(100, 2))
    theta[0] = [1e6, 0.0]  # thrown far
    theta[1] = [np.nan, 0.0]
    arrays = dict(theta_final=theta, status=np.ones(100, np.int32), non_unique_epochs=np.arange(100) % 7)
    ax = _named(plots.sweep(arrays))["sweep_theta_final"].axes[0]
    texts = _legend_texts(ax)
    assert "1 beyond the view (on its edge)" in texts and "1 not finite (not drawn)" in texts
    assert ax.get_xlim()[1] < 100  # the view is the bulk's
    shown = _scatters(ax)[_label(1, 99)].get_offsets()
    np.testing.assert_array_equal(shown, theta[2:])
    visited = np.arange(100) % 7 > 0
    ring = _scatters(ax)[f"non-unique at some epoch ({int(visited.sum())})"]
    np.testing.assert_array_equal(ring.get_offsets(), theta[visited & np.all(np.abs(theta) < 100, axis=1)])


def test_large_sweeps_put_the_legend_in_the_emptiest_corner_and_do_not_ring_every_point():
    rng = np.random.default_rng(6)
    theta = rng.uniform(size=(9000, 2))
    theta = theta[~((theta[:, 0] < 0.5) & (theta[:, 1] > 0.5))][:6000]  # the upper left is empty
    arrays = dict(theta_final=theta, status=np.zeros(6000, np.int32), non_unique_epochs=np.ones(6000, np.int32))
    ax = _named(plots.sweep(arrays))["sweep_theta_final"].axes[0]
    assert ax.get_legend()._loc == 2  # matplotlib's code of "upper left"
    assert "6000 non-unique at some epoch (not ringed)" in _legend_texts(ax)
    assert list(_scatters(ax)) == [_label(0, 6000)]


# ----------------------------------------------------------------------------
# Histograms


@pytest.mark.parametrize("field", ["loss_final", "distance_final"])
def test_histograms_are_numpys_and_count_what_a_log_axis_cannot_show(field):
    arrays = _hand_made()
    figs = _named(plots.sweep(arrays, settings=SETTINGS))
    ax = figs[f"sweep_{field}"].axes[0]
    assert ax.get_xscale() == "log"
    v, status = arrays[field], arrays["status"]
    ok = np.isfinite(v) & (v > 0)
    edges, counts = _hist_counts(ax)
    lo, hi = v[ok].min(), v[ok].max()
    np.testing.assert_allclose(edges, lo * (hi / lo) ** (np.arange(41) / 40), rtol=1e-12)  # 40 log bins
    np.testing.assert_array_equal(sum(counts.values()), _count(v[ok], edges))
    assert sum(c.sum() for c in counts.values()) == ok.sum()
    stacks = _stacks(ax)  # stacked: each status starts where the one below ends
    assert len(stacks) >= 2 and np.all(stacks[0][0] == 0)
    for (_, below), (base, _) in zip(stacks, stacks[1:]):
        np.testing.assert_array_equal(base, below)
    for code in np.unique(status):
        mine = ok & (status == code)
        if mine.any():
            np.testing.assert_array_equal(counts[_label(code, int(mine.sum()))], _count(v[mine], edges))
    texts = _legend_texts(ax)
    for n, what in ((np.sum(v == 0), "at 0"), (np.sum(v < 0), "below 0"), (np.sum(~np.isfinite(v)), "not finite")):
        assert (f"{n} {what} (not drawn)" in texts) == (n > 0)
    assert any("not drawn" in t for t in texts)


def test_epochs_to_tolerance_counts_the_runs_that_met_one_and_says_how_many_never_did():
    arrays = _hand_made()
    ax = _named(plots.sweep(arrays, settings=SETTINGS))["sweep_steps"].axes[0]
    steps, dist = arrays["steps"], arrays["distance_final"]
    met = (steps < 100) | ((steps == 100) & (dist <= SETTINGS["dtol"]))  # run 8: met at theta(T)
    assert met[8] and steps[8] == 100
    edges, counts = _hist_counts(ax)
    assert sum(c.sum() for c in counts.values()) == met.sum()
    np.testing.assert_array_equal(sum(counts.values()), _count(steps[met], edges))
    assert np.all(np.diff(edges) >= 1) and edges[0] == steps[met].min() - 0.5  # whole epochs per bin
    assert f"{int((~met).sum())} never met in 100 epochs" in _legend_texts(ax)


def test_no_run_met_a_tolerance_is_said():
    arrays = dict(theta_final=np.zeros((5, 2)), status=np.ones(5, np.int32), steps=np.full(5, 30, np.int32))
    ax = _named(plots.sweep(arrays, settings=dict(epochs=30, dtol=1e-6)))["sweep_steps"].axes[0]
    assert not _hist_counts(ax)[1]
    assert "5 never met in 30 epochs" in _legend_texts(ax)
    assert any("no run met a tolerance" in t.get_text() for t in ax.texts)


# ----------------------------------------------------------------------------
# Basin maps over a grid of theta(0)


def test_basin_maps_put_each_run_in_its_grid_cell(folders):
    done, _ = folders
    with np.load(done / "results.npz") as f:
        a = {k: f[k] for k in f.files}
    figs = _named(plots.sweep(done))
    g1, g2 = np.linspace(-1, 3, 4), np.linspace(-1, 2, 4)  # the grid: spec GRID
    # run r = i*4 + j starts at (g1[i], g2[j]) (make_inits: theta1 slowest)
    np.testing.assert_array_equal(a["theta0"], np.stack(np.meshgrid(g1, g2, indexing="ij"), -1).reshape(16, 2))
    ax = figs["sweep_basin_status"].axes[0]
    (im,) = ax.images
    np.testing.assert_allclose(im.get_extent(), [-5 / 3, 11 / 3, -1.5, 2.5], rtol=1e-12)  # half a cell each side
    codes = sorted(set(a["status"].tolist()))
    shown = np.asarray(im.get_array()).T  # (theta1, theta2)
    np.testing.assert_array_equal(shown, np.searchsorted(codes, a["status"]).reshape(4, 4))
    ax = figs["sweep_basin_distance"].axes[0]
    (im,) = ax.images
    failed = np.isin(a["status"], [Status.DIVERGED, Status.SINGULAR, Status.SOLVER_FAILURE])
    assert failed.any()  # (the row theta2(0) = 1)
    shown = np.asarray(im.get_array(), dtype=float).T.ravel()
    np.testing.assert_allclose(shown[~failed], np.maximum(a["distance_final"][~failed], 1e-16), rtol=1e-12)
    assert np.isnan(shown[failed]).all()
    (crosses,) = [ln for ln in ax.lines if ln.get_marker() == "x"]
    np.testing.assert_array_equal(np.c_[crosses.get_xdata(), crosses.get_ydata()], a["theta0"][failed])


def test_grid_of_finds_grids_only():
    g = plots.grid_of(sideq.sweep.make_inits("grid:-1/1,0/3", 9, 2))
    np.testing.assert_array_equal(g[0], [-1, 0, 1])
    np.testing.assert_array_equal(g[1], [0, 1.5, 3])
    np.testing.assert_array_equal(g[2], np.arange(9).reshape(3, 3))
    assert plots.grid_of(sideq.sweep.make_inits("normal:0,1", 16, 2)) is None
    assert plots.grid_of(np.repeat(sideq.sweep.make_inits("grid:-1/1,0/3", 9, 2), 2, axis=0)) is None
    assert plots.grid_of(np.stack([np.arange(9.0), np.arange(9.0)], axis=1)) is None  # a diagonal


def test_a_product_sweep_gets_one_map_per_step_size():
    grid = sideq.sweep.make_inits("grid:-1/1,0/3", 9, 2)
    theta0, eta = np.repeat(grid, 2, axis=0), np.tile([0.1, 0.5], 9)  # run r = 2i + j (product order)
    status = np.random.default_rng(7).choice([0, 1], 18).astype(np.int32)
    figs = _named(plots.sweep(dict(theta0=theta0, eta=eta, theta_final=theta0, status=status)))
    for j, value in enumerate([0.1, 0.5]):
        ax = figs[f"sweep_basin_status_eta{j}"].axes[0]
        mine = status[j::2]
        codes = sorted(set(status.tolist()) & set(mine.tolist()))
        np.testing.assert_array_equal(
            np.asarray(ax.images[0].get_array()).T, np.searchsorted(codes, mine).reshape(3, 3)
        )
        assert f"$\\eta={value:g}$" in ax.get_title() and "9 runs (of 18 runs)" in ax.get_title()


def test_failed_and_non_unique_runs_are_marked_on_the_distance_map():
    theta0 = sideq.sweep.make_inits("grid:-1/1,0/3", 9, 2)
    status = np.zeros(9, np.int32)
    status[[1, 5]] = Status.DIVERGED
    nue = np.zeros(9, np.int32)
    nue[[0, 5, 8]] = 3
    arrays = dict(
        theta0=theta0, theta_final=theta0, status=status, distance_final=np.full(9, 0.1), non_unique_epochs=nue
    )
    ax = _named(plots.sweep(arrays))["sweep_basin_distance"].axes[0]
    (crosses,) = [ln for ln in ax.lines if ln.get_marker() == "x"]
    np.testing.assert_array_equal(np.c_[crosses.get_xdata(), crosses.get_ydata()], theta0[[1, 5]])
    assert "non-unique at some epoch (3)" in _legend_texts(ax)
    shown = np.asarray(ax.images[0].get_array()).T.ravel()
    assert np.isnan(shown[[1, 5]]).all() and np.all(shown[[0, 2, 3, 4, 6, 7, 8]] == 0.1)


def test_ext5_draws_its_cells_with_the_shared_basin_map():
    """exp_basin's figure is sideq.plots.basin_map's (pixel-identical to before the
    move, checked once by hand); here: its outline helper is the shared one."""
    from sideq.paper import extended

    assert extended._mask_outline is plots.cell_outline
    import inspect

    assert "basin_map(" in inspect.getsource(extended.exp_basin)


# ----------------------------------------------------------------------------
# Unfinished sweeps, files, errors


def test_unfinished_sweep_is_drawn_from_its_finished_chunks(folders):
    done, partial = folders
    assert not (partial / "results.npz").exists() and len(os.listdir(partial / "chunks")) == 2
    with np.load(done / "results.npz") as f:
        theta, status = f["theta_final"][:8], f["status"][:8]  # the first two chunks' runs
    figs = _named(plots.sweep(partial))
    ax = figs["sweep_theta_final"].axes[0]
    assert "8 of 16 runs (unfinished)" in ax.get_title()
    got = np.concatenate([c.get_offsets() for c in _scatters(ax).values()])
    np.testing.assert_array_equal(np.sort(got, axis=0), np.sort(theta[:, [0, -1]], axis=0))
    # the map covers the whole 4 x 4 grid; the runs not done yet are blank and counted
    ax = figs["sweep_basin_status"].axes[0]
    shown = np.asarray(ax.images[0].get_array(), dtype=float).T
    assert shown.shape == (4, 4) and np.isnan(shown[2:]).all() and np.isfinite(shown[:2]).all()
    assert "not run yet (8)" in _legend_texts(ax)
    data = plots.load_sweep(partial)
    assert (data.runs, data.total) == (8, 16) and np.array_equal(data.run, np.arange(8))
    np.testing.assert_array_equal(data.arrays["status"], status)


def test_unfinished_sweep_skips_foreign_chunks_and_places_later_chunks_on_the_grid(folders, tmp_path):
    import shutil

    done, partial = folders
    copy = tmp_path / "copy"
    shutil.copytree(partial, copy)
    os.remove(copy / "chunks" / "chunk_000000.npz")  # chunks 1 and 2 done: runs 4..11
    with open(copy / "manifest.json") as fh:
        fingerprint = json.load(fh)["fingerprint"]
    with np.load(done / "results.npz") as f:
        rows = {k: f[k][8:12] for k in f.files}
    np.savez(copy / "chunks" / "chunk_000002.npz", fingerprint=np.array(fingerprint), **rows)
    np.savez(copy / "chunks" / "chunk_000003.npz", fingerprint=np.array("another sweep's"), **rows)
    data = plots.load_sweep(copy)
    assert (data.runs, data.total) == (8, 16) and np.array_equal(data.run, np.arange(4, 12))
    with np.load(done / "results.npz") as f:
        np.testing.assert_array_equal(data.arrays["theta0"], f["theta0"][4:12])
    ax = _named(plots.sweep(copy))["sweep_basin_status"].axes[0]
    shown = np.asarray(ax.images[0].get_array(), dtype=float).T
    # columns theta1(0) = 1/3 and 5/3 of the whole 4 x 4 grid
    assert shown.shape == (4, 4) and np.isfinite(shown[1:3]).all() and np.isnan(shown[[0, 3]]).all()
    np.testing.assert_allclose(ax.images[0].get_extent(), [-5 / 3, 11 / 3, -1.5, 2.5], rtol=1e-12)


def test_a_folder_of_chunks_is_read_without_the_last_chunks_padding(tmp_path):
    """The files of an unfinished sweep, written here by hand: the manifest and
    chunk files of sideq.sweep (the last chunk padded to the chunk size)."""
    folder = tmp_path / "s"
    (folder / "chunks").mkdir(parents=True)
    manifest = dict(
        format="sideq-sweep-2",
        fingerprint="abc",
        chunk=4,
        n_chunks=2,
        settings=dict(model="sigmoid", kind="single_index", bias=False, xi=[2.0], runs=6, epochs=10),
    )
    (folder / "manifest.json").write_text(json.dumps(manifest))
    theta = np.arange(16.0).reshape(8, 2)
    for i in range(2):
        rows = slice(4 * i, 4 * i + 4)  # rows 6, 7: padding
        np.savez(
            folder / "chunks" / f"chunk_{i:06d}.npz",
            fingerprint=np.array("abc"),
            theta_final=theta[rows],
            status=np.zeros(4, np.int32),
            steps=np.full(4, 10, np.int32),
        )
    data = plots.load_sweep(folder)
    assert (data.runs, data.total) == (6, 6)
    np.testing.assert_array_equal(data.arrays["theta_final"], theta[:6])
    np.testing.assert_array_equal(data.run, np.arange(6))


def test_png_and_pdf_are_written(tmp_path):
    arrays = dict(theta_final=np.random.default_rng(3).normal(size=(20, 2)), status=np.zeros(20, np.int32))
    paths = plots.sweep(arrays, out=tmp_path / "figs", formats=("png", "pdf"))
    assert paths == [str(tmp_path / "figs" / f"sweep_theta_final.{e}") for e in ("png", "pdf")]
    with open(paths[0], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(paths[1], "rb") as fh:
        assert fh.read(5) == b"%PDF-"


def test_bad_sources_and_arguments_are_one_line_errors(tmp_path, folders):
    done, _ = folders
    (tmp_path / "empty").mkdir()
    cases = [
        (lambda: plots.sweep(tmp_path / "empty"), "is empty"),
        (lambda: plots.sweep(tmp_path / "missing"), "does not exist"),
        (lambda: plots.sweep({"status": np.zeros(3)}), "theta_final"),
        (lambda: plots.sweep({"theta_final": np.zeros((3, 2)), "status": np.zeros(4)}), "(N, p)"),
        (lambda: plots.sweep(done, pair=(0, 0)), "pair"),
        (lambda: plots.sweep(done, pair=(0, 2)), "p = 2"),
        (lambda: plots.sweep(done, formats=("jpg",)), "formats"),
        (lambda: plots.run({"theta_final": np.zeros((3, 2))}), "sweep"),
    ]
    for call, words in cases:
        with pytest.raises(SideqInputError) as err:
            call()
        assert words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "missing").exists()


# ----------------------------------------------------------------------------
# Saved runs


def test_run_draws_the_saved_arrays_and_finds_the_target_from_the_distances(tmp_path):
    """A file with the fields `sideq descent --save` writes (a Trajectory's), the
    distance being the library's own distance_to_target along a curved path."""
    from sideq.dynamics import Trajectory, distance_to_target

    t = np.linspace(0.0, 3.0, 41)
    theta = np.stack([XI - 1.9 * np.exp(-t), 0.6 * t * np.exp(-t)], axis=1)
    sig = sideq.single_index("sigmoid")
    dist = np.array([float(distance_to_target(sig, row, np.array([XI]))) for row in theta])
    arrays = {k: np.zeros(()) for k in Trajectory._fields}
    arrays.update(
        theta=theta,
        loss=np.exp(-3 * t),
        distance=dist,
        status=np.int32(Status.MAX_STEPS),
        t=np.arange(41, dtype=np.int32) * 5,
    )  # the rows: every 5th epoch of 200
    np.savez(tmp_path / "r.npz", **arrays)
    figs = _named(plots.run(tmp_path / "r.npz"))
    assert list(figs) == ["r_loss", "r_distance", "r_trajectory"]
    (line,) = figs["r_loss"].axes[0].lines
    np.testing.assert_array_equal(line.get_ydata(), arrays["loss"])
    np.testing.assert_array_equal(line.get_xdata(), np.arange(0, 201, 5))
    assert figs["r_loss"].axes[0].get_xlim() == (0, 200) and figs["r_loss"].axes[0].get_xlabel() == "epoch $t$"
    assert figs["r_loss"].axes[0].get_title() == "descent, 200 epochs: max steps"
    (line,) = figs["r_distance"].axes[0].lines
    np.testing.assert_array_equal(line.get_ydata(), dist)
    ax = figs["r_trajectory"].axes[0]
    segs = ax.collections[0].get_segments()
    np.testing.assert_array_equal(np.r_[[s[0] for s in segs], [segs[-1][1]]], theta)
    (star,) = [ln for ln in ax.lines if ln.get_marker() == "*"]
    assert star.get_xdata()[0] == pytest.approx(XI, abs=1e-9) and star.get_ydata()[0] == 0
    # the linear DEQ's distance (to the solution line) gives its line instead
    dist = np.array([float(distance_to_target(LIN, row, np.array([XI]))) for row in theta])
    ax = _named(plots.run(dict(arrays, distance=dist)))["run_trajectory"].axes[0]
    (line,) = [ln for ln in ax.lines if ln.get_label().startswith("solutions")]
    np.testing.assert_allclose(np.asarray(line.get_ydata()), 1 - np.asarray(line.get_xdata()) / XI, atol=1e-6)


def test_the_target_is_recovered_from_distances_for_both_models():
    rng = np.random.default_rng(4)
    theta = np.cumsum(rng.normal(scale=0.1, size=(30, 3)), axis=0)
    xi = np.array([1.5, -0.7])
    # single-index: ||theta - (xi, 0)||, numpy
    d_point = np.linalg.norm(theta - np.r_[xi, 0.0], axis=1)
    # linear: distance to {(alpha xi, 1 - alpha)}, by minimising over alpha in closed form
    v, c = np.r_[xi, -1.0], np.r_[0.0, 0.0, 1.0]
    alpha = (theta - c) @ v / (v @ v)
    d_line = np.linalg.norm(theta - c - alpha[:, None] * v, axis=1)
    for dist, linear in ((d_point, False), (d_line, True)):
        ax = _named(plots.run(dict(theta=theta, loss=np.ones(30), distance=dist)))["run_trajectory"].axes[0]
        labels = [ln.get_label() for ln in ax.lines]
        if linear:
            (line,) = [ln for ln in ax.lines if ln.get_label().startswith("solutions")]
            xs, ys = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
            np.testing.assert_allclose(ys, 1 - xs / xi[0], atol=1e-6)
        else:
            (star,) = [ln for ln in ax.lines if ln.get_marker() == "*"]
            assert star.get_xdata()[0] == pytest.approx(xi[0], abs=1e-9)
            assert not any(lbl.startswith("solutions") for lbl in labels)
    # distances that no point fits, mirror-symmetric in theta2 (so that the least-squares
    # point has theta2 = 0 and only the check of every row refuses it): no target
    half = np.stack([np.linspace(0.2, 2.0, 10), np.linspace(0.3, 1.0, 10) ** 2], axis=1)
    mirrored = np.r_[half, half * [1, -1]]
    d = np.linalg.norm(mirrored - [XI, 0.0], axis=1) * (1 + 0.2 * np.r_[np.arange(10) % 2, np.arange(10) % 2])
    ax = _named(plots.run(dict(theta=mirrored, loss=np.ones(20), distance=d)))["run_trajectory"].axes[0]
    assert not [ln for ln in ax.lines if ln.get_marker() in ("*", "X")]
    # distances of neither kind: no target drawn, the rest still is
    ax = _named(plots.run(dict(theta=theta, loss=np.ones(30), distance=d_point + 0.1)))["run_trajectory"].axes[0]
    assert not [ln for ln in ax.lines if ln.get_marker() in ("*", "X")]


def test_a_flow_is_drawn_against_time():
    t = np.r_[np.linspace(0.0, 5.0, 11), 6.5]
    theta = np.stack([np.linspace(0, 1, 12), np.linspace(0, 0.5, 12)], axis=1)
    figs = _named(plots.run(dict(theta=theta, loss=np.exp(-t), distance=np.exp(-t), ts=t, status=np.int32(0))))
    ax = figs["run_loss"].axes[0]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), t)
    assert ax.get_xlabel() == "time $t$" and ax.get_xlim() == (0.0, 6.5)
    assert "converged" in ax.get_title()
    assert figs["run_trajectory"].axes[1].get_ylabel() == "time $t$"  # the colour bar


# ----------------------------------------------------------------------------
# The command line


def test_cli_plot_prints_the_paths_it_wrote(capsys, tmp_path):
    folder = tmp_path / "sw"
    folder.mkdir()
    rng = np.random.default_rng(5)
    np.savez(folder / "results.npz", theta_final=rng.normal(size=(10, 2)), status=np.zeros(10, np.int32))
    code, out, err = run_cli(capsys, "plot", str(folder))
    assert code == 0, err
    assert out.splitlines() == [str(folder / "plots" / "sweep_theta_final.png")]
    assert os.path.exists(out.splitlines()[0])
    code, out, err = run_cli(
        capsys, "plot", str(folder), "--out", str(tmp_path / "o"), "--format", "pdf", "--pair", "-1,0", "--json"
    )
    assert code == 0, err
    assert json.loads(out) == [str(tmp_path / "o" / "sweep_theta_final.pdf")]


def test_cli_plot_errors_are_one_line_with_status_2(capsys, tmp_path, folders):
    done, _ = folders
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    cases = [
        ((str(tmp_path / "nowhere"),), "PATH: "),
        ((str(tmp_path / "empty"),), "is empty"),
        ((str(tmp_path / "notes.txt"),), "neither a sweep's folder nor a saved run"),
        ((str(tmp_path / "other.npz"),), "neither a saved run"),
        ((str(done), "--pair", "0"), "--pair: expected two indices"),
        ((str(done), "--pair", "0,7"), "--pair: "),
        ((str(done), "--format", "png,gif"), "--format: "),
    ]
    for argv, words in cases:
        code, out, err = run_cli(capsys, "plot", *argv)
        assert code == 2 and out == "", (argv, out)
        assert err.startswith("sideq plot: error: ") and words in err and err.count("\n") == 1, (argv, err)
    assert os.listdir(tmp_path / "empty") == []  # nothing written beside a bad source
