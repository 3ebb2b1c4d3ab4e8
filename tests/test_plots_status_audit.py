"""Tests from the mutation audit of sideq/{plots,status,errors}.py.

Every check goes by a second route: what a figure draws is read back from its
Axes / Line2D / collections and compared with the input arrays and the
module docstrings (the paper's symbols); status bits are decoded by hand; the
status order and meanings are parsed from the ``Status`` docstring and the
README's status table; folder checks run on real folders in ``tmp_path``.
"""

import os
import pathlib
import re

import jax.numpy as jnp
import numpy as np
import pytest

from sideq import errors, plots
from sideq import status as S
from sideq.status import Status

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# ---------------------------------------------------------------------------
# status.py


def _readme_status_table():
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.*) \|$", README, flags=re.M)
    return dict(rows)


def _docstring_order():
    """The order 'the worst wins' in, as the Status docstring lists it (worst first)."""
    m = re.search(r"the worst wins:(.*?)\(", " ".join(Status.__doc__.split()))
    return [Status[name.strip()] for name in m.group(1).split(",")]


def test_every_status_has_a_readme_row_and_the_message_says_what_the_row_says():
    table = _readme_status_table()
    assert set(table) == {s.name for s in Status}
    # hand-picked phrase of each README row, and how the ASCII message words it
    phrases = {
        "MAX_STEPS": ("iteration limit", "iteration limit"),
        "DIVERGED": ("non-finite or exploding", "non-finite or exploding"),
        "SINGULAR": ("θ2 = 1", "theta2 = 1"),
        "NON_UNIQUE": ("can reach 1", "can reach 1"),
        "SOLVER_FAILURE": ("no root found", "no root found"),
        "CONVERGED": ("root found to the tolerance", "converged"),
        "UNVERIFIED": ("uniqueness is not proven", "uniqueness is not proven"),
    }
    for s in Status:
        readme_phrase, message_phrase = phrases[s.name]
        assert readme_phrase in table[s.name], s
        assert message_phrase in s.message, s
        # describe() gives the message from any integer form of the code
        assert S.describe(int(s)) == s.message
        assert S.describe(np.int32(int(s))) == s.message
        assert S.describe(jnp.asarray(int(s), jnp.int32)) == s.message
        # a message names its own status, not another's
        for other, (_, other_phrase) in phrases.items():
            if other != s.name and other != "CONVERGED":
                assert other_phrase not in s.message, (s, other)


def test_codes_are_the_stable_ones_verify_md_records():
    """The codes are stable (sweeps store them on disk; VERIFY.md prints them raw):
    read them back from VERIFY.md's rows whose meaning is known without the enum."""
    text = (pathlib.Path(__file__).parent.parent / "VERIFY.md").read_text()
    recorded, header = [], None
    for line in text.splitlines():
        if line and not line[0].isspace():
            header = line
        m = re.search(r"statuses \[([0-9, ]*)\]$", line)
        if m and header:
            recorded.append((header, [int(c) for c in m.group(1).split(",")]))
    assert recorded and all(c in {int(s) for s in Status} for _, codes in recorded for c in codes)

    def codes_of(*words):
        rows = [codes for h, codes in recorded if all(w in h for w in words)]
        assert rows, words
        return rows

    # Lemma 3.2: every linear flow converged ("flow defined", all runs converged)
    assert all(codes == [int(Status.CONVERGED)] for codes in codes_of("Lemma 3.2"))
    # outside Corollary 3.1's assumptions, flows capped at max_steps: softplus meets
    # theta2 >= 1 with no root (README), tanh meets theta2 * sigma' >= 1
    assert codes_of("Corollary 3.1", "outside", "softplus") == [sorted([int(Status.MAX_STEPS),
                                                                        int(Status.SOLVER_FAILURE)])]
    assert codes_of("Corollary 3.1", "outside", "tanh") == [sorted([int(Status.MAX_STEPS),
                                                                    int(Status.NON_UNIQUE)])]


def test_worst_and_severity_follow_the_documented_order():
    order = _docstring_order()  # worst first
    assert sorted(order) == sorted(Status)
    ranks = [int(S.severity(jnp.int32(int(s)))) for s in order]
    assert all(a > b for a, b in zip(ranks, ranks[1:])), (order, ranks)
    for i, a in enumerate(order):
        for b in order[i:]:
            # the one listed first wins, whichever way round it is given
            assert int(S.worst(jnp.asarray([int(a), int(b)]))) == int(a), (a, b)
            assert int(S.worst(np.asarray([int(b), int(a), int(b)]))) == int(a), (a, b)
    # a 2-D numpy array, the worst anywhere in it
    grid = np.full((3, 4), int(Status.CONVERGED))
    grid[2, 1] = int(Status.NON_UNIQUE)
    assert int(S.worst(grid)) == int(Status.NON_UNIQUE)
    grid[0, 3] = int(Status.MAX_STEPS)
    assert int(S.worst(grid)) == int(Status.MAX_STEPS)


def test_first_status_takes_the_first_case_that_holds_elementwise():
    a = jnp.asarray([True, False, True, False])
    b = jnp.asarray([True, True, False, False])
    got = S.first_status([(a, Status.SINGULAR), (b, Status.DIVERGED)])
    # by hand: [a wins, b, a, neither -> default CONVERGED]
    np.testing.assert_array_equal(np.asarray(got), [int(Status.SINGULAR), int(Status.DIVERGED), int(Status.SINGULAR),
                                                    int(Status.CONVERGED)])
    got = S.first_status([(b, Status.NON_UNIQUE), (a, Status.SOLVER_FAILURE)], default=Status.MAX_STEPS)
    np.testing.assert_array_equal(np.asarray(got), [int(Status.NON_UNIQUE), int(Status.NON_UNIQUE),
                                                    int(Status.SOLVER_FAILURE), int(Status.MAX_STEPS)])
    assert np.asarray(got).dtype == np.int32
    assert int(S.first_status([], default=Status.DIVERGED)) == int(Status.DIVERGED)


def test_status_bits_flags_and_has_status_decoded_by_hand():
    codes = [int(s) for s in Status]
    np.testing.assert_array_equal(np.asarray(S.status_bit(jnp.asarray(codes))), [2 ** c for c in codes])
    sample = [int(Status.CONVERGED), int(Status.CONVERGED), int(Status.DIVERGED), int(Status.SOLVER_FAILURE),
              int(Status.DIVERGED), int(Status.CONVERGED)]
    flags = int(S.status_flags(jnp.asarray(sample).reshape(2, 3)))
    want = 0
    for c in set(sample):  # each code that occurs sets its bit once
        want += 2 ** c
    assert flags == want
    decoded = {s for s in Status if (flags // 2 ** int(s)) % 2 == 1}  # read the bits back by hand
    assert decoded == {Status(c) for c in sample}
    for s in Status:
        assert bool(S.has_status(flags, s)) == (s in decoded), s
    # any of several codes
    absent = [s for s in Status if s not in decoded]
    assert not bool(S.has_status(flags, *absent))
    assert bool(S.has_status(flags, absent[0], Status.DIVERGED))
    assert bool(S.has_status(flags, Status.DIVERGED, absent[0]))
    # also on an array of masks, as the descent step uses it
    masks = jnp.asarray([2 ** int(Status.SINGULAR), 2 ** int(Status.CONVERGED), 0])
    np.testing.assert_array_equal(np.asarray(S.has_status(masks, Status.SINGULAR, Status.MAX_STEPS)),
                                  [True, False, False])
    assert int(S.status_flags(jnp.asarray([int(Status.NON_UNIQUE)]))) == 2 ** int(Status.NON_UNIQUE)


# ---------------------------------------------------------------------------
# errors.py


def test_folder_that_exists_or_can_be_made_is_fine(tmp_path, monkeypatch):
    assert errors.unwritable_folder(str(tmp_path)) is None
    new = tmp_path / "a" / "b"
    assert errors.unwritable_folder(str(new)) is None and new.is_dir()
    assert list(new.iterdir()) == []  # the probe file is gone
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    assert errors.unwritable_folder("") is None  # the current folder
    assert errors.unwritable_folder(None) is None
    assert sorted(os.listdir(tmp_path)) == before


def test_a_file_is_refused_in_one_line_with_the_fix(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    msg = errors.unwritable_folder(str(afile))
    assert msg is not None and len(msg.splitlines()) == 1
    assert repr(str(afile)) in msg and "is a file, not a folder" in msg and "choose a folder" in msg
    below = str(afile / "figs")
    msg = errors.unwritable_folder(below)
    assert msg is not None and len(msg.splitlines()) == 1
    assert repr(below) in msg and "choose a writable folder" in msg
    assert afile.read_text() == "keep"


def test_a_folder_that_cannot_be_written_is_found_by_writing(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    msg = errors.unwritable_folder(str(tmp_path))
    assert msg is not None and len(msg.splitlines()) == 1
    assert repr(str(tmp_path)) in msg and "Permission denied" in msg and "choose a writable folder" in msg


def test_error_classes_are_value_errors():
    assert issubclass(errors.SingularModelError, errors.SideqInputError)
    assert issubclass(errors.SideqInputError, ValueError)


# ---------------------------------------------------------------------------
# plots.py


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
    fig = plots.learned_function(grid, 2 * grid + 0.1, 2 * grid, x_data=x[:, None], y_data=2 * x,
                                 true_label="true $f(x) = 2x$", title="Fig 1b")
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


@pytest.mark.parametrize("x_data,y_data", [
    (np.zeros((5, 2)), np.zeros(5)),  # two features: not a curve over one input
    (np.zeros(5), np.zeros(4)),  # one target short
    (np.zeros((5, 1, 1)), np.zeros(5)),
])
def test_learned_function_refuses_data_it_cannot_draw_in_one_line(x_data, y_data):
    grid = np.linspace(0.0, 1.0, 3)
    with pytest.raises(errors.SideqInputError, match=r"learned_function: x_data .*shape \(n,\) or \(n, 1\)") as e:
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
        np.testing.assert_array_equal(seg, theta[i:i + 2])
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
