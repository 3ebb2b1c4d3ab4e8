"""Gradient descent against hand-written steps, Eq. (8), and failure as data."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sideq
from sideq.dynamics import distance_to_target, gradient_descent
from sideq.risk import empirical_objective, initial_nodes_y0, population_objective
from sideq.scalar import _one_evaluation, predict_start
from sideq.status import Status
from sideq.train import descent

X = np.asarray(sideq.sample(sideq.uniform(0.0, 1.0, 1), jax.random.PRNGKey(3), 64))
XI = np.array([2.0])
SIG = sideq.single_index("sigmoid")
LIN = sideq.linear()
# Every run of one model on X shares one compiled descent: the same epochs
# (and targets, optimizer, maxiter) wherever the check allows, since each new
# static configuration is a compilation of its own.
T_LIN = 40  # linear DEQ on X or on the uniform law
T_SIG = 5  # sigmoid on X


def _closed_linear_grad(theta, x, y):
    """∇R̂ for the linear DEQ written out by hand (y_θ = θ1 x / (1 − θ2))."""
    t1, t2 = theta
    pred = t1 * x[:, 0] / (1 - t2)
    r = pred - y
    return np.array([np.mean(2 * r * x[:, 0] / (1 - t2)), np.mean(2 * r * t1 * x[:, 0] / (1 - t2) ** 2)])


def test_descent_matches_hand_written_linear_steps():
    theta0 = np.array([0.3, -0.4])
    eta, T = 0.05, T_LIN
    traj = descent(LIN, theta0, xi=XI, x=X, eta=eta, epochs=T)
    y = 2.0 * X[:, 0]
    theta = theta0.copy()
    for t in range(T):
        np.testing.assert_allclose(np.asarray(traj.theta[t]), theta, rtol=1e-12, atol=1e-14)
        theta = theta - eta * _closed_linear_grad(theta, X, y)
    np.testing.assert_allclose(np.asarray(traj.theta[T]), theta, rtol=1e-12, atol=1e-14)


def test_descent_with_explicit_targets_matches_hand_written_steps(ref):
    """``y=`` replaces the default targets f(x): noisy targets, linear and sigmoid."""
    rng = np.random.default_rng(3)
    y = 2.0 * X[:, 0] + rng.normal(0.0, 0.3, X.shape[0])
    theta0, eta, T = np.array([0.3, -0.4]), 0.05, T_LIN
    traj = descent(LIN, theta0, xi=XI, x=X, y=y, eta=eta, epochs=T)
    theta = theta0.copy()
    for _ in range(T):
        theta = theta - eta * _closed_linear_grad(theta, X, y)
    np.testing.assert_allclose(np.asarray(traj.theta[T]), theta, rtol=1e-12, atol=1e-14)
    pred = theta[0] * X[:, 0] / (1 - theta[1])
    assert float(traj.loss[T]) == pytest.approx(np.mean((pred - y) ** 2), rel=1e-12)
    # and the sigmoid run differs from the one with the default targets
    ys = 1 / (1 + np.exp(-2 * X[:, 0])) + rng.normal(0.0, 0.05, X.shape[0])
    a = descent(SIG, np.array([0.1, -0.2]), xi=XI, x=X, y=ys, eta=0.1, epochs=T_SIG)
    b = descent(SIG, np.array([0.1, -0.2]), xi=XI, x=X, eta=0.1, epochs=T_SIG)
    # R̂(θ(0)) against the given targets, with brentq equilibria (no compiled risk of its own)
    y0 = np.array([ref.brent_root(ref.act["sigmoid"][0], 0.1 * v, -0.2) for v in X[:, 0]])
    assert float(a.loss[0]) == pytest.approx(np.mean((y0 - ys) ** 2), rel=1e-13)
    assert abs(float(a.loss[0]) - float(b.loss[0])) > 1e-4


def test_descent_with_bias_matches_hand_written_steps():
    """Linear DEQ with a bias, y = (θ1 x + b)/(1 − θ2): ∂y/∂(θ1, b, θ2) = (x, 1, y)/(1 − θ2)."""
    theta, eta, T = np.array([0.3, 0.1, -0.4]), 0.05, 20
    traj = descent(sideq.linear(bias=True), theta, xi=XI, x=X, eta=eta, epochs=T)
    x, t = X[:, 0], 2.0 * X[:, 0]
    for _ in range(T):
        g = 1 - theta[2]
        y = (theta[0] * x + theta[1]) / g
        r = 2 * (y - t) / g
        theta = theta - eta * np.array([np.mean(r * x), np.mean(r), np.mean(r * y)])
    np.testing.assert_allclose(np.asarray(traj.theta[T]), theta, rtol=1e-12, atol=1e-14)


def test_ltol_stops_counting_at_the_first_epoch_below_it():
    traj = descent(LIN, np.array([0.1, 0.2]), xi=XI, x=X, eta=0.05, epochs=T_LIN, ltol=1e-6)
    loss = np.asarray(traj.loss)
    assert np.any(loss <= 1e-6)  # (met within the run: around epoch 13)
    first = int(np.argmax(loss <= 1e-6))
    assert loss[first] <= 1e-6 and loss[first - 1] > 1e-6
    assert int(traj.steps) == first and int(traj.status) == Status.CONVERGED


def test_descent_matches_hand_written_sigmoid_steps():
    """Single-index steps with the IFT gradient σ'/(1 − θ2σ')·(x, y) and brentq equilibria."""
    from scipy.optimize import brentq

    def eq(theta, x):
        return brentq(lambda y: y - 1 / (1 + np.exp(-(theta[0] * x + theta[1] * y))), -1, 2, xtol=1e-15)

    theta0 = np.array([0.1, -0.2])
    eta, T = 0.1, T_SIG
    x = X[:, 0]  # (1-D: the samples of a (n, 1) array)
    y = 1 / (1 + np.exp(-2 * x))
    traj = descent(SIG, theta0, xi=XI, x=x, eta=eta, epochs=T)
    theta = theta0.copy()
    for t in range(T):
        ys = np.array([eq(theta, xx) for xx in x])
        om = theta[0] * x + theta[1] * ys
        s = 1 / (1 + np.exp(-om))
        ds = s * (1 - s)
        k = ds / (1 - theta[1] * ds)
        grad = np.array([np.mean(2 * (ys - y) * k * x), np.mean(2 * (ys - y) * k * ys)])
        theta = theta - eta * grad
    np.testing.assert_allclose(np.asarray(traj.theta[T]), theta, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("risk", ["empirical", "population"])
def test_eq8_exact_identity_linear(risk):
    """Eq. (8): w(t+1) − w(t) = η²‖∇R(θ(t))‖², to rounding, both sides of θ2 = 1."""
    for theta0 in ([0.2, 0.5], [-0.3, 1.4]):
        eta = 0.02
        kw = dict(x=X) if risk == "empirical" else dict(dist=sideq.uniform(0.0, 1.0, 1))
        traj = descent(LIN, np.array(theta0), xi=XI, eta=eta, epochs=T_LIN, **kw)
        w, g = np.asarray(traj.w), np.asarray(traj.grad_norm)
        lhs = np.diff(w)
        rhs = eta**2 * g[:-1] ** 2
        np.testing.assert_allclose(lhs, rhs, rtol=1e-6, atol=1e-14 * w.max())
        assert np.all(lhs >= -1e-14 * w.max()) and np.all(lhs[:10] > 0)  # away from (0, 1)


def test_linear_descent_lands_on_solution_line():
    traj = descent(
        LIN, np.array([0.1, 0.2]), xi=XI, dist=sideq.uniform(0.0, 1.0, 1), eta=0.05, epochs=T_LIN, gtol=1e-10
    )
    theta = np.asarray(traj.theta[-1])
    alpha = 1 - theta[1]
    np.testing.assert_allclose(theta[0], alpha * 2.0, rtol=1e-8)
    assert float(traj.distance[-1]) < 1e-8
    assert int(traj.status) == Status.CONVERGED
    assert int(traj.steps) < T_LIN


def test_distance_to_line_closed_form():
    theta = jnp.array([1.0, 2.0, 0.5])
    xi = jnp.array([1.0, -1.0])
    d = distance_to_target(sideq.linear(), theta, xi)
    # Brute force over alpha.
    alphas = np.linspace(-3, 3, 600001)
    pts = np.stack([alphas * 1.0, -alphas, 1 - alphas], axis=1)
    brute = np.min(np.linalg.norm(pts - np.asarray(theta), axis=1))
    np.testing.assert_allclose(float(d), brute, rtol=1e-8)


def test_optax_transformation_accepted():
    traj_sgd = descent(SIG, np.array([0.1, 0.1]), xi=XI, x=X, eta=0.1, epochs=T_SIG)
    traj_opt = descent(SIG, np.array([0.1, 0.1]), xi=XI, x=X, optimizer=optax.sgd(0.1), epochs=T_SIG)
    np.testing.assert_allclose(np.asarray(traj_sgd.theta), np.asarray(traj_opt.theta), rtol=1e-14)
    # Adam written out by hand (Kingma & Ba, optax's defaults) on the linear DEQ's closed-form gradient
    traj = descent(LIN, np.array([0.3, -0.4]), xi=XI, x=X, optimizer=optax.adam(0.02), epochs=30)
    theta, m, v = np.array([0.3, -0.4]), np.zeros(2), np.zeros(2)
    b1, b2, eps, y = 0.9, 0.999, 1e-8, 2.0 * X[:, 0]
    for t in range(1, 31):
        g = _closed_linear_grad(theta, X, y)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        theta = theta - 0.02 * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(np.asarray(traj.theta[-1]), theta, rtol=1e-12)


def test_vmapped_runs_equal_single_runs_and_divergence_is_isolated():
    x = jnp.asarray(X)
    y = sideq.targets(LIN, jnp.asarray(XI), x)
    objective = empirical_objective(LIN, x, y)

    def run(theta0, eta):
        return gradient_descent(
            LIN, objective, theta0, x[:, 0] * theta0[0], jnp.asarray(XI), epochs=30, optimizer=optax.sgd(eta)
        )

    thetas = jnp.array([[0.2, 0.3], [0.1, -0.5], [0.2, 0.3]])
    etas = jnp.array([0.02, 0.05, 1e8])  # the last one blows up
    batch = jax.jit(jax.vmap(run))(thetas, etas)
    for i in range(2):
        single = jax.jit(run)(thetas[i], etas[i])
        np.testing.assert_allclose(np.asarray(batch.theta[i]), np.asarray(single.theta), rtol=1e-13)
        assert np.all(np.isfinite(np.asarray(batch.theta[i])))
    assert int(batch.status[2]) == Status.DIVERGED
    assert int(batch.fail_step[2]) >= 1
    assert int(batch.status[0]) == Status.MAX_STEPS  # no tolerance asked: ran out of epochs
    # The frozen run keeps its last finite theta.
    assert np.all(np.isfinite(np.asarray(batch.theta[2])))


def test_nonunique_is_reported_not_hidden():
    # theta2 = 6 > 4 = 1/Lip(sigmoid): the equilibrium may not be unique.
    traj = descent(SIG, np.array([0.1, 6.0]), xi=XI, x=X, eta=0.01, epochs=T_SIG)
    assert int(traj.status) == Status.NON_UNIQUE
    # also when a tolerance is met: NON_UNIQUE comes before CONVERGED
    traj = descent(SIG, np.array([0.1, 6.0]), xi=XI, x=X, eta=0.01, epochs=T_SIG, ltol=1e9)
    assert int(traj.status) == Status.NON_UNIQUE and int(traj.steps) == 0


def test_equilibria_at_their_iteration_limit_fail_the_run():
    """maxiter = 2 from a cold start: the equilibria end at MAX_STEPS, which is a
    SOLVER_FAILURE of the run at epoch 0 (frozen there), not a healthy run."""
    x16 = np.linspace(0.03, 0.97, 16)[:, None]
    traj = descent(SIG, np.array([0.5, 0.5]), xi=XI, x=x16, eta=0.1, epochs=3, maxiter=2)
    assert int(traj.status) == Status.SOLVER_FAILURE and int(traj.fail_step) == 0
    np.testing.assert_array_equal(np.asarray(traj.theta[-1]), [0.5, 0.5])


def test_tolerance_met_only_at_the_last_epoch():
    """gtol met by θ(T) and by no earlier iterate: CONVERGED with steps = T."""
    theta0, T = np.array([0.1, 0.2]), T_LIN  # (η = 0.02: ‖∇R‖ still above its floor at T)
    free = descent(LIN, theta0, xi=XI, x=X, eta=0.02, epochs=T)
    g = np.asarray(free.grad_norm)
    assert np.all(g[:-1] > g[-1] * (1 + 1e-6))  # only theta(T) meets it
    traj = descent(LIN, theta0, xi=XI, x=X, eta=0.02, epochs=T, gtol=float(g[-1]) * (1 + 1e-9))
    assert int(traj.status) == Status.CONVERGED and int(traj.steps) == T


def test_population_descent_uses_warm_started_nodes():
    dist = sideq.gaussian(0.0, 1.0, 1)
    obj = population_objective(SIG, jnp.asarray(XI), dist)
    theta0 = jnp.array([0.5, 0.1])
    y0 = initial_nodes_y0(SIG, theta0, jnp.asarray(XI), dist)
    obj = jax.jit(obj)  # (one compilation for both calls)
    _, sol = obj(theta0, y0)  # (its value is population_risk's: tests/test_risk.py checks it against scipy)
    # warm start from the solution: at most two Newton iterations anywhere
    _, sol2 = obj(theta0, sol.y)
    assert int(jnp.max(sol2.iterations)) <= 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eta=-0.1), "eta"),
        (dict(eta=0.1, epochs=0), "epochs"),
        (dict(eta=0.1, theta0=np.array([0.1, 0.2, 0.3])), "theta0"),
        (dict(eta=0.1, theta0=np.array([0.1, np.nan])), "theta0"),
        (dict(eta=0.1, gtol=-1e-3), "gtol: a tolerance must be a number >= 0"),
        (dict(eta=0.1, dtol=np.nan), "dtol"),
        (dict(eta=0.1, ltol="small"), "ltol"),
    ],
)
def test_descent_bad_input(kwargs, match):
    args = dict(theta0=np.array([0.1, 0.2]), eta=0.1, epochs=5)
    args.update(kwargs)
    theta0 = args.pop("theta0")
    with pytest.raises(sideq.SideqInputError, match=f"^{match}"):
        descent(SIG, theta0, xi=XI, x=X, **args)


def test_descent_singular_start():
    with pytest.raises(sideq.SingularModelError, match="theta0"):
        descent(LIN, np.array([0.3, 1.0]), xi=XI, x=X, eta=0.1, epochs=5)


# The objectives of sideq.risk carry a closed-form gradient (Eq. (1), one pass over
# the samples) that gradient_descent uses; a plain callable is differentiated
# implicitly through jaxopt.  The two routes must agree.
CLOSED_FORM_CASES = [  # (model, d, bias, risk)
    ("sigmoid", 1, False, "empirical"),
    ("tanh", 3, True, "empirical"),
    ("linear", 2, True, "population"),
    ("softplus", 9, False, "empirical"),  # d > 8: ∂R/∂θ1 by a matvec, not in the one-pass reduction
    ("sigmoid", 1, True, "population"),
]


@pytest.mark.parametrize("name,d,bias,risk", CLOSED_FORM_CASES)
def test_closed_form_gradient_matches_implicit_differentiation(name, d, bias, risk):
    rng = np.random.default_rng(d)
    model = sideq.linear(bias) if name == "linear" else sideq.single_index(name, bias=bias)
    xi = jnp.asarray(rng.normal(size=d))
    theta = jnp.asarray(np.r_[rng.normal(0.0, 0.5, model.n_params(d) - 1), 0.3])
    if risk == "empirical":
        x = jnp.asarray(rng.uniform(0.0, 1.0, (24, d)))
        objective = empirical_objective(model, x, sideq.targets(model, xi, x))
        y0 = model.activation(x @ theta[:d])
    else:
        dist = sideq.uniform(0.0, 1.0, d)
        objective = population_objective(model, xi, dist)
        y0 = initial_nodes_y0(model, theta, xi, dist)
    both = jax.jit(lambda t, w: (jax.value_and_grad(objective, has_aux=True)(t, w), objective.value_and_grad(t, w)))
    ((loss_ad, _), grad_ad), ((loss_cf, sol), grad_cf) = both(theta, y0)  # (compiled: faster than op by op)
    assert np.all(np.asarray(sol.status) == Status.CONVERGED)
    np.testing.assert_allclose(float(loss_cf), float(loss_ad), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(grad_cf), np.asarray(grad_ad), rtol=1e-12, atol=1e-15)


def test_descent_on_a_plain_objective_uses_implicit_differentiation():
    """A callable without ``value_and_grad`` (here the same risk, wrapped) is
    differentiated through the equilibria; 50 steps land where the closed-form
    route does."""
    x = jnp.asarray(X[:32])
    y = sideq.targets(SIG, jnp.asarray(XI), x)
    objective = empirical_objective(SIG, x, y)

    def plain(theta, y0):
        return objective(theta, y0)

    theta0 = jnp.asarray([0.2, -0.3])
    y0 = SIG.activation(x[:, 0] * theta0[0])
    runs = jax.jit(lambda t, w: [gradient_descent(SIG, o, t, w, XI, epochs=50, eta=0.1) for o in (objective, plain)])(
        theta0, y0
    )
    np.testing.assert_allclose(np.asarray(runs[0].theta), np.asarray(runs[1].theta), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(runs[0].loss), np.asarray(runs[1].loss), rtol=1e-12)


# descent_terms: on CPU the solver's route, on GPU/TPU two Newton steps in
# straight-line code with a full solve of the batch where they do not settle;
# for the sigmoid and tanh, on request, one Newton step in straight-line code
# ("one") (sideq.risk._descent_terms).  Every route runs here and they must
# agree.
def _objectives(name, d, bias, risk, rng):
    model = sideq.linear(bias) if name == "linear" else sideq.single_index(name, bias=bias)
    xi = jnp.asarray(rng.normal(size=d))
    if risk == "empirical":
        x = jnp.asarray(rng.uniform(0.0, 1.0, (24, d)))
        make = lambda route: empirical_objective(model, x, sideq.targets(model, xi, x), route=route)  # noqa: E731
        nodes = x
    else:
        dist = sideq.uniform(0.0, 1.0, d)
        make = lambda route: population_objective(model, xi, dist, route=route)  # noqa: E731
        nodes = None
    one = make("one") if _one_evaluation(model) else None
    return model, xi, nodes, make("straight"), make("solve"), one, (dist if risk != "empirical" else None)


def _assert_same_terms(a, b):
    np.testing.assert_allclose(float(a.loss), float(b.loss), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(a.grad), np.asarray(b.grad), rtol=1e-12, atol=1e-15)
    assert int(a.flags) == int(b.flags)
    # (the worst residual: a bound of (|F'| + 4) eps plus the step's Taylor term
    # where σ gives one evaluation, a measurement where the fallback ran)
    np.testing.assert_allclose(float(a.residual), float(b.residual), atol=4e-15)
    for u, v in zip(a.warm, b.warm):
        assert (u is None) == (v is None)  # (no sensitivity kept with one σ evaluation)
        if u is not None:
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-13, atol=1e-15)


@pytest.mark.slow
@pytest.mark.parametrize("name,d,bias,risk", CLOSED_FORM_CASES)
def test_straight_line_route_matches_the_solver(name, d, bias, risk):
    """From a warm start at a nearby θ (two steps settle every equilibrium: the
    straight-line pass alone), from a cold start and from NaN (the batch is
    solved again), both routes give the same risk, gradient, statuses and warm
    start, and the same as value_and_grad."""
    from sideq.scalar import _solve_steps, warm_start

    rng = np.random.default_rng(10 + d)
    model, xi, x, straight, solve, one, dist = _objectives(name, d, bias, risk, rng)
    theta = jnp.asarray(np.r_[rng.normal(0.0, 0.5, model.n_params(d) - 1), 0.3])
    cold = model.activation(x @ theta[:d]) if dist is None else initial_nodes_y0(model, theta, xi, dist)
    near = theta + 1e-3 * jnp.asarray(rng.normal(size=theta.shape))
    (_, sol_near), _ = jax.jit(solve.value_and_grad)(near, cold)
    warm = warm_start(sol_near)
    terms = jax.jit(
        lambda y0: (
            straight.descent_terms(theta, y0),
            solve.descent_terms(theta, y0),
            solve.value_and_grad(theta, y0),
            None if one is None else one.descent_terms(theta, y0),
        )
    )
    for y0 in (warm, warm_start(cold), warm_start(jnp.full_like(cold, jnp.nan))):
        a, b, ((loss, _), grad), c = terms(y0)
        _assert_same_terms(a, b)
        if c is not None:
            _assert_same_terms(c, b)
        np.testing.assert_allclose(float(a.loss), float(loss), rtol=1e-13)
        np.testing.assert_allclose(np.asarray(a.grad), np.asarray(grad), rtol=1e-12, atol=1e-15)
    if dist is None:  # the first start exercises the straight-line pass alone
        tol = 64 * float(jnp.finfo(theta.dtype).eps)
        _, settled = jax.vmap(lambda a, w: _solve_steps(model, theta, a, w, tol))(x, warm)
        assert bool(jnp.all(settled))


def test_straight_line_route_solves_again_where_two_steps_do_not_settle():
    """sigmoid with θ2 = −50: F' is far from constant, two Newton steps from a
    cold start do not settle (the safe path's bisection is needed), so the
    straight-line route must fall back to the solver for the batch."""
    from sideq.scalar import _solve_steps, warm_start

    x = jnp.asarray(X[:32])
    y = sideq.targets(SIG, jnp.asarray(XI), x)
    theta = jnp.asarray([3.0, -50.0])
    y0 = warm_start(jnp.zeros(x.shape[0]))
    _, settled = jax.jit(jax.vmap(lambda a, w: _solve_steps(SIG, theta, a, w, 64 * 2.0**-52)))(x, y0)
    assert not bool(jnp.all(settled))
    routes = ("straight", "solve", "one")
    a, b, c = jax.jit(lambda w: [empirical_objective(SIG, x, y, route=r).descent_terms(theta, w) for r in routes])(y0)
    _assert_same_terms(a, b)
    _assert_same_terms(c, b)
    assert int(a.flags) == 1 << Status.CONVERGED


@pytest.mark.parametrize("risk", ["empirical", "population"])
def test_descent_by_every_route(risk):
    """200 steps of gradient descent, vmapped over three runs, one of which
    diverges (η = 1e12): by every route the same θ, statuses and failure step,
    and the good runs are untouched by the bad one."""
    x = jnp.asarray(X[:32])
    routes = ("straight", "solve", "one")
    if risk == "empirical":
        objs = [empirical_objective(SIG, x, sideq.targets(SIG, jnp.asarray(XI), x), route=r) for r in routes]
        y0 = lambda th: SIG.activation(x[:, 0] * th[0])  # noqa: E731
    else:
        dist = sideq.uniform(0.0, 1.0, 1)
        objs = [population_objective(SIG, XI, dist, route=r) for r in routes]
        y0 = lambda th: initial_nodes_y0(SIG, th, XI, dist)  # noqa: E731
    theta0 = jnp.asarray([[0.2, -0.3], [0.05, 0.1], [0.3, 0.2]])
    eta = jnp.asarray([0.1, 0.1, 1e12])

    compiled = [
        jax.jit(jax.vmap(lambda t, e, o=o: gradient_descent(SIG, o, t, y0(t), XI, epochs=200, eta=e, history=False)))
        for o in objs
    ]
    a, b, c = (run(theta0, eta) for run in compiled)
    for other in (a, c):
        np.testing.assert_allclose(np.asarray(other.theta), np.asarray(b.theta), rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(np.asarray(other.status), np.asarray(b.status))
        np.testing.assert_array_equal(np.asarray(other.fail_step), np.asarray(b.fail_step))
    assert int(a.status[2]) == Status.DIVERGED and np.all(np.asarray(a.status[:2]) != Status.DIVERGED)
    # the same runs with the third one healthy (the same compiled program): the
    # first two are what they were beside the diverging one
    healthy = compiled[0](theta0, jnp.asarray([0.1, 0.1, 0.1]))
    assert int(healthy.status[2]) != Status.DIVERGED
    np.testing.assert_allclose(np.asarray(a.theta[:2]), np.asarray(healthy.theta[:2]), rtol=1e-13, atol=1e-15)


def test_descent_carries_what_the_objective_takes():
    """The warm start's structure follows the objective, not the model passed
    for the diagnostics: a sigmoid objective (no sensitivity carried) under a
    softplus model for the diagnostics runs, with the sigmoid run's θ."""
    x = jnp.asarray(X[:16])
    objective = empirical_objective(SIG, x, sideq.targets(SIG, jnp.asarray(XI), x))
    assert not objective.descent_terms.carries_sensitivity
    theta0 = jnp.asarray([0.2, -0.3])
    y0 = SIG.activation(x[:, 0] * theta0[0])
    runs = jax.jit(
        lambda t, w: [
            gradient_descent(m, objective, t, w, XI, epochs=20, eta=0.1, history=False).theta
            for m in (SIG, sideq.single_index("softplus"))
        ]
    )(theta0, y0)
    np.testing.assert_array_equal(np.asarray(runs[0]), np.asarray(runs[1]))


def test_objective_route_is_checked():
    x = jnp.asarray(X[:8])
    with pytest.raises(sideq.SideqInputError, match="^route"):
        empirical_objective(SIG, x, sideq.targets(SIG, jnp.asarray(XI), x), route="fast")
    with pytest.raises(sideq.SideqInputError, match="^route"):
        population_objective(SIG, XI, sideq.uniform(0.0, 1.0, 1), route=None)
    softplus = sideq.single_index("softplus")  # (σ' is not a function of σ's value there)
    with pytest.raises(sideq.SideqInputError, match="^route: 'one' needs"):
        empirical_objective(softplus, x, sideq.targets(softplus, jnp.asarray(XI), x), route="one")


@pytest.mark.parametrize("name", ["softplus", "sigmoid"])
def test_descent_warm_start_is_the_solutions(name):
    """The solver's route of a descent step carries the solutions as the next
    warm start, with the step's θ.  softplus: g_θ(x, y*) = σ(θ1ᵀx + θ2 y*),
    the array the residual is measured from (no copy of y* per epoch): the
    solutions moved by at most their residual, with the sensitivities of
    Eq. (1).  sigmoid (one σ evaluation per solve): y* itself and no
    sensitivity, which the next prediction takes from y* and θ; it predicts
    what the kept sensitivities predict, to rounding."""
    from sideq.scalar import Continuation, continuation, warm_start

    model = sideq.single_index(name)
    x = jnp.asarray(X[:32])
    objective = empirical_objective(model, x, sideq.targets(model, jnp.asarray(XI), x), route="solve")
    theta = jnp.asarray([1.6, 0.27])
    cold = model.activation(x[:, 0] * theta[0])
    one = name == "sigmoid"
    ev = jax.jit(objective.descent_terms)(theta, continuation(cold, theta, sensitivity=not one))
    (_, sol), _ = jax.jit(objective.value_and_grad)(theta, warm_start(cold))
    np.testing.assert_array_equal(np.asarray(ev.warm.theta), np.asarray(theta))
    if one:
        np.testing.assert_allclose(np.asarray(ev.warm.y), np.asarray(sol.y), rtol=0, atol=2e-16)
        assert ev.warm.sensitivity is None
        nearby = theta + jnp.asarray([2e-3, -1e-3])
        kept = predict_start(model, nearby, x, Continuation(sol.y, sol.sensitivity, theta))
        taken = predict_start(model, nearby, x, ev.warm)
        np.testing.assert_allclose(np.asarray(taken), np.asarray(kept), rtol=0, atol=4e-16)
        assert float(jnp.max(jnp.abs(taken - sol.y))) > 1e-4  # (a prediction, not y* again)
        return
    g = model.activation(x[:, 0] * theta[0] + theta[1] * sol.y)
    np.testing.assert_allclose(np.asarray(ev.warm.y), np.asarray(g), rtol=3e-16, atol=2e-16)  # (an ulp)
    assert float(jnp.max(jnp.abs(ev.warm.y - sol.y))) <= float(jnp.max(sol.residual)) + 5e-16
    np.testing.assert_allclose(np.asarray(ev.warm.sensitivity), np.asarray(sol.sensitivity), rtol=1e-15)
