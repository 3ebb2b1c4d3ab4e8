"""A status never claims more than is proven.

* A solve is CONVERGED only for a root to tolerance that exact slope bounds
  prove unique; with bounds estimated on a grid it is at best UNVERIFIED; a
  failed solve returns NaN, never a finite non-root.  Checked on a family of
  user activations (steep parts outside the search interval, kinks, narrow
  steps between grid points) at θ with one and with three roots, against the
  roots found by sign changes on a fine grid refined by scipy's brentq.
* A training run's status describes its end; the epochs it spent in the
  non-unique regime are counted beside it, and recounted here from the run's
  own history (for tanh, NON_UNIQUE exactly where θ2 ≥ 1).
* ``sideq.Model`` cannot be subclassed into solving another map silently.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import sideq
from sideq.errors import EstimatedBoundsWarning
from sideq.status import SUCCESS, Status

EPS = float(np.finfo(np.float64).eps)
TOL = 64 * EPS


# -- user activations: (jax callable, numpy twin, exact slope bounds, range) ----


def _softsign(z):
    return z / (1 + jnp.abs(z))


def _np_softsign(z):
    return z / (1 + np.abs(z))


def _far_steep(z):  # gentle on [-20, 20], steep near z = 30
    return 0.1 * jnp.tanh(z) + 0.5 * (1 + jnp.tanh(z - 30.0))


def _np_far_steep(z):
    return 0.1 * np.tanh(z) + 0.5 * (1 + np.tanh(z - 30.0))


def _narrow_step(z):  # a step of width 1e-5 between two grid points (spacing 2e-4)
    return 0.2 * jnp.tanh(z) + 0.8 * jnp.clip(1e5 * (z - 3e-5), 0.0, 1.0)


def _np_narrow_step(z):
    return 0.2 * np.tanh(z) + 0.8 * np.clip(1e5 * (z - 3e-5), 0.0, 1.0)


def _hard_tanh(z):  # kinks at ±1
    return jnp.clip(z, -1.0, 1.0)


def _np_hard_tanh(z):
    return np.clip(z, -1.0, 1.0)


FAMILY = {
    # name: (fn, numpy fn, exact (inf σ', sup σ'), range of σ)
    "softsign": (_softsign, _np_softsign, (0.0, 1.0), (-1.0, 1.0)),
    "far_steep": (_far_steep, _np_far_steep, (0.0, 1.1), (-0.1, 1.1)),
    "narrow_step": (_narrow_step, _np_narrow_step, (0.0, 8e4 + 0.2), (-0.2, 1.0)),
    "hard_tanh": (_hard_tanh, _np_hard_tanh, (0.0, 1.0), (-1.0, 1.0)),
}

# (θ1, θ2) and inputs x: some with one root, some with three (checked below).
CASES = [(1.0, 500.0), (1.0, 0.5), (1.0, 3.0), (0.5, 1.0), (1.0, 8.0), (0.0, 1.2), (0.3, -4.0), (1.0, 40.0)]
XS = np.array([0.0, 0.1, -0.05, 0.7, -31.0, 30.0])


_ROOTS = {}


def _roots(np_fn, a, theta2, lo, hi):
    """Every root of F(y) = y − σ(a + θ2 y) in [lo, hi] (where all roots lie):
    sign changes on a grid refined near the narrow features, then brentq."""
    key = (np_fn, a, theta2)
    if key not in _ROOTS:
        _ROOTS[key] = _find_roots(np_fn, a, theta2, lo, hi)
    return _ROOTS[key]


def _find_roots(np_fn, a, theta2, lo, hi):
    grid = np.unique(
        np.concatenate(
            [
                np.linspace(lo, hi, 100_001),
                (np.linspace(2e-5, 5e-5, 3_001) - a) / theta2 if theta2 != 0 else [],
                (np.linspace(29.0, 31.0, 20_001) - a) / theta2 if theta2 != 0 else [],
            ]
        )
    )
    grid = grid[(grid >= lo) & (grid <= hi)]
    F = grid - np_fn(a + theta2 * grid)
    roots = list(grid[F == 0])
    change = np.nonzero(F[:-1] * F[1:] < 0)[0]
    for i in change:
        f = lambda y: y - np_fn(a + theta2 * y)  # noqa: E731
        roots.append(brentq(f, grid[i], grid[i + 1], xtol=1e-15, rtol=4 * EPS))
    return np.unique(np.round(np.array(roots), 12))


def _claims(model, np_fn, lo, hi):
    """(wrong claims, counts of statuses, count of cases with 3+ roots) over CASES × XS."""
    wrong, statuses, multi = [], {}, 0
    for theta1, theta2 in CASES:
        sol = sideq.solve(model, jnp.asarray([theta1, theta2]), jnp.asarray(XS))
        for x, y, status in zip(XS, np.asarray(sol.y), np.asarray(sol.status)):
            a = theta1 * x
            roots = _roots(np_fn, a, theta2, lo, hi)
            multi += len(roots) >= 3
            status = Status(int(status))
            statuses[status.name] = statuses.get(status.name, 0) + 1
            case = (theta1, theta2, x, status.name, y, roots)
            if status in SUCCESS:
                # a root to tolerance, measured in numpy
                if not abs(y - np_fn(a + theta2 * y)) <= math.sqrt(TOL) * (1 + abs(y) + abs(a)):
                    wrong.append(("not a root", case))
                if status == Status.CONVERGED and not (
                    len(roots) == 1 and abs(y - roots[0]) <= 1e-10 * (1 + abs(roots[0]))
                ):
                    wrong.append(("claimed unique", case))
                if model.activation.estimated and status == Status.CONVERGED:
                    wrong.append(("converged on estimated bounds", case))
            elif not np.isnan(y):
                wrong.append(("finite y for a failure", case))
    return wrong, statuses, multi


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILY))
def test_user_activations_make_no_wrong_claims(name):
    fn, np_fn, slopes, (r_lo, r_hi) = FAMILY[name]
    with pytest.warns(EstimatedBoundsWarning):
        estimated = sideq.activation(fn, name=name)
    exact = sideq.activation(fn, name=name, slope_bounds=slopes, range_bounds=(r_lo, r_hi))
    for act in (estimated, exact):
        wrong, statuses, multi = _claims(sideq.single_index(act), np_fn, r_lo, r_hi)
        assert not wrong, (act, wrong[:3])
        assert multi >= 3, "the family must include θ with three roots"
        assert sum(statuses.get(s.name, 0) for s in SUCCESS) >= len(CASES) * len(XS) // 2, statuses
        if act.estimated:
            assert statuses.get("UNVERIFIED", 0) > 0 and "CONVERGED" not in statuses, statuses
        else:
            assert statuses.get("CONVERGED", 0) > 0, statuses


def test_estimated_softsign_at_three_roots_claims_no_uniqueness():
    """softsign without bounds: its slope 1/(1 + |z|)² is 0.00227 at the grid's
    edge, so θ2 = 500 looked contractive-from-below; y = 0 and ±0.998 are roots."""
    with pytest.warns(EstimatedBoundsWarning):
        model = sideq.single_index(_softsign)
    theta = jnp.asarray([1.0, 500.0])
    at_zero = sideq.solve(model, theta, 0.0)
    assert int(at_zero.status) == Status.UNVERIFIED and float(at_zero.y) == 0.0
    moved = sideq.solve(model, theta, 0.1)
    if int(moved.status) in SUCCESS:
        y = float(moved.y)
        assert abs(y - _np_softsign(0.1 + 500 * y)) <= math.sqrt(TOL) * 2
    else:
        assert np.isnan(float(moved.y))
    exact = sideq.single_index(sideq.activation(_softsign, slope_bounds=(0.0, 1.0), range_bounds=(-1, 1)))
    sol = sideq.solve(exact, theta, 0.0)
    assert int(sol.status) == Status.NON_UNIQUE  # the exact bounds allow several roots


def test_estimated_bounds_warn_and_name_the_fix():
    with pytest.warns(EstimatedBoundsWarning) as record:
        sideq.activation(_softsign)
    message = str(record[0].message)
    assert "slope_bounds=" in message and "outside" in message and "kinks" in message
    assert record[0].filename == __file__  # points at the user's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sideq.activation(_softsign, slope_bounds=(0.0, 1.0))  # no warning with exact bounds


def test_failed_solve_is_nan_with_nan_gradient():
    """The iteration limit cut short (maxiter = 1, cold start far away): the
    status is a failure and y and its gradient are NaN, never finite."""
    model = sideq.single_index("sigmoid")
    theta = jnp.asarray([3.0, -50.0])
    sol = sideq.solve(model, theta, jnp.asarray([0.3]), y0=0.9, maxiter=1)
    assert int(sol.status) not in SUCCESS and np.isnan(float(sol.y))
    assert np.isfinite(float(sol.residual))  # kept as a diagnostic
    g = jax.jit(jax.grad(lambda t: sideq.solve(model, t, jnp.asarray([0.3]), y0=0.9, maxiter=1).y))(theta)
    assert np.all(np.isnan(np.asarray(g)))
    good = sideq.solve(model, theta, jnp.asarray([0.3]))
    assert int(good.status) == Status.CONVERGED and np.isfinite(float(good.y))
    # A public risk over failed solves is NaN too, with a NaN gradient.
    x = jnp.linspace(-1.0, 1.0, 5)
    # (risk and gradient compiled together, once per iteration limit)
    risk = jax.jit(
        jax.value_and_grad(lambda t, it: sideq.empirical_risk(model, t, x, xi=[1.0], maxiter=it)), static_argnums=1
    )
    value, grad = risk(theta, 1)
    assert np.isnan(float(value)) and np.all(np.isnan(np.asarray(grad)))
    value, grad = risk(theta, 100)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))


def test_model_cannot_be_subclassed_into_another_map():
    with pytest.raises(TypeError, match="cannot be subclassed.*sideq.activation.*sideq.deq"):

        class Squared(sideq.Model):  # noqa: F841
            def g(self, theta, x, y):
                return super().g(theta, x, y) + 0.3 * y * y


# -- runs: the status of the end, the non-unique epochs beside it ----------------

TANH_B = sideq.single_index("tanh", bias=True)
EPOCHS = 60  # (one compilation of the descent for every run below)


@pytest.fixture(scope="module")
def tanh_problem():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (64, 5))
    xi = np.array([0.5, -0.3, 0.8, 0.1, -0.6])
    inits = np.concatenate([rng.normal(0, 0.3, (12, 6)), np.zeros((12, 1))], axis=1)
    inits[::2, -1] = rng.uniform(1.05, 1.6, 6)  # half start non-unique (θ2 ≥ 1)
    return x, xi, inits


def test_descent_status_is_the_end_and_counts_non_unique_epochs(tanh_problem):
    from sideq.train import descent, summary

    x, xi, inits = tanh_problem
    traj = descent(TANH_B, inits[0], xi=xi, x=x, eta=0.5, epochs=EPOCHS, dtol=1e-12)
    theta2 = np.asarray(traj.theta[:, -1])
    # tanh: σ' ∈ [0, 1], so the bounds allow several roots exactly where θ2 ≥ 1
    nu = np.nonzero(theta2 >= 1)[0]
    assert 0 < nu.size < theta2.size, "the run must start non-unique and leave the regime"
    assert int(traj.non_unique_epochs) == nu.size
    assert (int(traj.non_unique_first), int(traj.non_unique_last)) == (nu[0], nu[-1])
    assert theta2[-1] < 1 and int(traj.status) == Status.MAX_STEPS  # the end, not the start
    out = summary(TANH_B, traj)
    assert out["status"] == "max_steps" and out["non_unique_epochs"] == nu.size
    assert "status='max_steps'" in repr(traj)
    # A run that ends in the regime ends NON_UNIQUE.
    stays = descent(TANH_B, np.r_[np.zeros(5), 0.0, 3.0], xi=xi, x=x, eta=1e-3, epochs=EPOCHS, dtol=1e-12)
    assert int(stays.status) == Status.NON_UNIQUE and int(stays.non_unique_epochs) == EPOCHS + 1


def test_sweep_keeps_non_unique_history_beside_final_status(tanh_problem, tmp_path):
    from sideq.sweep import load_results, run_sweep
    from sideq.train import descent

    x, xi, inits = tanh_problem
    res = run_sweep(TANH_B, xi=xi, x=x, inits=inits, eta=0.5, epochs=EPOCHS, out_dir=tmp_path, progress=False)
    arrays = load_results(tmp_path)
    nu = arrays["non_unique_epochs"]
    started = inits[:, -1] >= 1
    assert np.all((nu > 0) == started) and np.all(arrays["non_unique_first"][started] == 0)
    assert np.all(arrays["non_unique_first"][~started] == -1)
    # each run's fields equal the single run's, recounted from its history
    for i in (0, 1, 2):
        traj = descent(TANH_B, inits[i], xi=xi, x=x, eta=0.5, epochs=EPOCHS, dtol=1e-12)
        th2 = np.asarray(traj.theta[:, -1])
        assert nu[i] == np.sum(th2 >= 1) and arrays["status"][i] == int(traj.status)
    ended_unique = np.asarray(arrays["theta_final"])[:, -1] < 1
    assert np.all((arrays["status"] == Status.NON_UNIQUE) == ~ended_unique)
    history = res.summary["non_unique_history"]
    assert history["runs"] == int(started.sum())
    assert sum(history["final_status_counts"].values()) == history["runs"]
    assert set(res.summary["status_counts"]) == {s.name.lower() for s in Status}


def test_flow_status_is_the_end_and_counts_non_unique_rows():
    """Sigmoid (σ' ≤ 1/4): the bounds allow several roots where θ2 ≥ 4.  A
    flow from θ2(0) = 4.4 leaves that regime; its rows there are counted."""
    from sideq.gradient_flow import flow, flow_summary, reached_rows

    model = sideq.single_index("sigmoid")
    x = np.linspace(-1, 1, 16)[:, None]
    ts = np.linspace(0, 40, 9)
    traj = flow(model, [0.5, 4.4], xi=[2.0], x=x, t1=40.0, saveat_ts=ts, gtol=0.0)
    keep = reached_rows(traj.ts)
    theta2 = np.asarray(traj.theta[:, -1])[keep]
    times = np.asarray(traj.ts)[keep]
    nu = theta2 >= 4
    assert 0 < nu.sum() < nu.size and theta2[-1] < 4
    assert int(traj.non_unique_rows) == nu.sum()
    assert float(traj.non_unique_t_first) == times[nu].min()
    assert float(traj.non_unique_t_last) == times[nu].max()
    assert int(traj.status) != Status.NON_UNIQUE
    assert flow_summary(model, traj)["non_unique_rows"] == int(nu.sum())
    assert "status=" in repr(traj) and "non_unique_rows=" in repr(traj)
