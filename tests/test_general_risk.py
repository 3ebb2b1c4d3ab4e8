"""Population risk of the multi-neuron DEQs (sideq.general_risk), each number
against a second route: numpy (Eq. (5) expanded, Monte Carlo with its error
bar), the other routes of the module, the scalar library at k = 1, and
central differences for gradients.

The solved routes share compiled programs: the quadrature and Monte Carlo
routes run one program per (model, number of points), and both laws enter it
as the same two arrays, so the tests below pick equal sizes on purpose.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sideq
from sideq import general, general_risk
from sideq.errors import SideqInputError, SingularModelError

K, D = 2, 2
_rng = np.random.default_rng(7)
W1 = _rng.normal(size=(K, D))
W2 = 0.3 * _rng.normal(size=(K, K))
B = _rng.normal(size=(K,)) * 0.5
XI = _rng.normal(size=(K, D))
PARAMS = {"W1": W1, "W2": W2}
PARAMS_B = {"W1": W1, "W2": W2, "b": B}
MEAN, COV = np.array([0.2, -0.1]), np.array([[1.0, 0.3], [0.3, 0.5]])
LAWS = {
    "uniform": lambda **kw: sideq.uniform([-1.0, 0.0], [1.0, 2.0], **kw),
    "gaussian": lambda **kw: sideq.gaussian(MEAN, COV, **kw),
}

LINEAR = general.multi_linear(K, bias=True)
# the same DEQ as a multi_index with σ = identity: the solved routes' code path
IDENTITY = general.multi_index("identity", K, bias=True, solver="fixed_point")
TANH = general.multi_index("tanh", K, solver="fixed_point")


def _numpy_draws(name, n, seed):
    rng = np.random.default_rng(seed)
    if name == "uniform":
        return rng.uniform([-1.0, 0.0], [1.0, 2.0], size=(n, D))
    return rng.multivariate_normal(MEAN, COV, size=n)


def _numpy_linear_errors(params, x):
    """‖y(x) − Ξx‖² with y = (I − W2)⁻¹(W1 x + b), numpy."""
    y = np.linalg.solve(np.eye(K) - params["W2"], (x @ params["W1"].T + params.get("b", 0)).T).T
    return np.sum((y - x @ XI.T) ** 2, axis=1)


@pytest.mark.parametrize("law", ["uniform", "gaussian"])
@pytest.mark.parametrize("params", [PARAMS, PARAMS_B], ids=["no_bias", "bias"])
def test_linear_closed_form_against_eq5_and_numpy_monte_carlo(law, params):
    model = LINEAR if "b" in params else general.multi_linear(K)
    dist = LAWS[law]()
    est = general_risk.population_risk_estimate(model, params, XI, dist)
    assert est.route == "closed_form" and est.n_nodes == 0 and float(est.stderr) == 0.0
    # Eq. (5) expanded with E[XXᵀ] = sideq.second_moment and E[X], numpy
    A = np.linalg.solve(np.eye(K) - params["W2"], params["W1"])
    beta = np.linalg.solve(np.eye(K) - params["W2"], params.get("b", np.zeros(K)))
    E, M = A - XI, sideq.second_moment(dist)
    mu = (dist.low + dist.high) / 2 if law == "uniform" else MEAN
    eq5 = np.trace(E @ M @ E.T) + 2 * beta @ E @ mu + beta @ beta
    assert float(est.value) == pytest.approx(eq5, rel=1e-12)
    if "b" not in params:
        return
    # numpy Monte Carlo on 2e5 samples, within 4 standard errors
    r = _numpy_linear_errors(params, _numpy_draws(law, 200_000, 1))
    se = r.std(ddof=1) / np.sqrt(r.size)
    assert abs(float(est.value) - r.mean()) < 4 * se


# 96² = 9216 nodes and samples: one compiled program per model below
_N = 96


def _jax_draws(law, n, key):
    """The Monte Carlo route's inputs as its docstring defines them."""
    if law == "uniform":
        u = np.asarray(jax.random.uniform(jax.random.PRNGKey(key), (n, D), jnp.float64))
        return np.array([-1.0, 0.0]) + u * 2.0  # (the box [-1, 1] x [0, 2])
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(key), (n, D), jnp.float64))
    return MEAN + z @ LAWS["gaussian"]().cov_sqrt.T


@pytest.mark.parametrize("law", ["uniform", "gaussian"])
def test_linear_closed_form_against_quadrature_and_solved_monte_carlo(law):
    closed = general_risk.population_risk(LINEAR, PARAMS_B, XI, LAWS[law]())
    quad = general_risk.population_risk_estimate(IDENTITY, PARAMS_B, XI, LAWS[law](nodes=_N))
    assert quad.route == "quadrature" and quad.n_nodes == _N**2
    assert float(quad.value) == pytest.approx(float(closed), rel=1e-10)
    mc = general_risk.population_risk_estimate(IDENTITY, PARAMS_B, XI, LAWS[law](), samples=_N**2, key=4)
    assert mc.route == "monte_carlo" and mc.n_nodes == _N**2
    assert abs(float(mc.value) - float(closed)) < 4 * float(mc.stderr)
    # the estimator and its standard error, recomputed in numpy on the same inputs
    r = _numpy_linear_errors(PARAMS_B, _jax_draws(law, _N**2, 4))
    assert float(mc.value) == pytest.approx(r.mean(), rel=1e-10)
    assert float(mc.stderr) == pytest.approx(r.std(ddof=1) / np.sqrt(r.size), rel=1e-8)


@pytest.mark.parametrize("law", ["uniform", "gaussian"])
def test_index_quadrature_against_monte_carlo(law):
    quad = general_risk.population_risk_estimate(TANH, PARAMS, XI, LAWS[law](nodes=_N))
    mc = general_risk.population_risk_estimate(TANH, PARAMS, XI, LAWS[law](), samples=_N**2, key=3)
    assert quad.route == "quadrature" and quad.n_nodes == _N**2 and float(quad.stderr) == 0.0
    assert 0 < float(mc.stderr) < 0.02 * float(quad.value)
    assert abs(float(mc.value) - float(quad.value)) < 4 * float(mc.stderr)


def test_default_uniform_rule_is_converged():
    """The default 64 nodes per axis in d = 2 against 96 (Gauss–Legendre in
    both; the 96-node value is checked against Monte Carlo above)."""
    default = general_risk.population_risk_estimate(TANH, PARAMS, XI, LAWS["uniform"]())
    assert default.n_nodes == 64**2
    fine = general_risk.population_risk(TANH, PARAMS, XI, LAWS["uniform"](nodes=_N))
    assert float(default.value) == pytest.approx(float(fine), rel=1e-12)


def test_k1_matches_the_scalar_single_index_risk():
    """k = 1: W1 = θ1ᵀ, W2 = θ2 against sideq.population_risk(single_index);
    the scalar Gaussian rule runs in the (θ1ᵀx, ξᵀx) plane, this one in x
    (the default 144 nodes per axis)."""
    theta1, theta2, xi = np.array([0.7, -0.4]), 0.35, np.array([0.9, 0.5])
    dist = LAWS["gaussian"]()
    scalar = sideq.population_risk(sideq.single_index("tanh"), np.r_[theta1, theta2], xi, dist)
    one = general.multi_index("tanh", 1, solver="fixed_point")
    params = {"W1": theta1[None, :], "W2": np.array([[theta2]])}
    value = general_risk.population_risk_estimate(one, params, xi[None, :], dist)
    assert value.n_nodes == 144**2
    assert float(value.value) == pytest.approx(float(scalar), rel=1e-10)


def _direction(seed):
    rng = np.random.default_rng(seed)
    return {key: rng.normal(size=np.shape(v)) for key, v in PARAMS.items()}


def _shift(params, v, h):
    return {key: params[key] + h * v[key] for key in params}


def test_quadrature_gradient_against_central_differences():
    dist = LAWS["uniform"](nodes=_N)
    grad = jax.grad(lambda p: general_risk.population_risk(TANH, p, XI, dist))(PARAMS)
    for seed in (0, 1):
        v = _direction(seed)
        h = 1e-5
        fd = (
            general_risk.population_risk(TANH, _shift(PARAMS, v, h), XI, dist)
            - general_risk.population_risk(TANH, _shift(PARAMS, v, -h), XI, dist)
        ) / (2 * h)
        ad = sum(float(jnp.sum(grad[key] * v[key])) for key in PARAMS)
        assert ad == pytest.approx(float(fd), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("law", ["uniform", "gaussian"])
def test_closed_form_gradient_against_central_differences(law):
    dist = LAWS[law]()
    objective = general_risk.population_objective(LINEAR, XI, dist)
    assert objective.route == "closed_form" and objective.n_nodes == 0
    value, grad = jax.value_and_grad(objective)(PARAMS_B)
    assert float(value) == pytest.approx(float(general_risk.population_risk(LINEAR, PARAMS_B, XI, dist)), rel=1e-14)
    h = 1e-6
    for key in PARAMS_B:
        for idx in np.ndindex(np.shape(PARAMS_B[key])):
            up = {k: np.array(v, float) for k, v in PARAMS_B.items()}
            down = {k: np.array(v, float) for k, v in PARAMS_B.items()}
            up[key][idx] += h
            down[key][idx] -= h
            fd = (float(objective(up)) - float(objective(down))) / (2 * h)
            assert float(grad[key][idx]) == pytest.approx(fd, rel=1e-7, abs=1e-9)


def test_failed_solve_and_singular_model_give_nan():
    # W2 = −3I: fixed-point iteration on y = tanh(W1 x − 3y) falls into a
    # 2-cycle (numpy below, at one node) and stops at maxiter above tolerance
    params = {"W1": W1, "W2": -3.0 * np.eye(K)}
    x, y = np.array([0.3, 0.7]), np.zeros(K)
    for _ in range(TANH.maxiter):
        y = np.tanh(W1 @ x - 3.0 * y)
    assert np.max(np.abs(y - np.tanh(W1 @ x - 3.0 * y))) > 0.1
    assert np.isnan(float(general_risk.population_risk(TANH, params, XI, LAWS["uniform"]())))
    # I − W2 singular: one line at the boundary, NaN (value and gradient) under jit
    singular = {"W1": W1, "W2": np.array([[1.0, 0.0], [0.0, 0.2]])}
    with pytest.raises(SingularModelError, match=r"params\['W2'\]"):
        general_risk.population_risk(LINEAR, {**singular, "b": B}, XI, LAWS["uniform"]())
    objective = general_risk.population_objective(LINEAR, XI, LAWS["gaussian"]())
    value, grad = jax.jit(jax.value_and_grad(objective))({**singular, "b": B})
    assert np.isnan(float(value)) and np.all(np.isnan(np.asarray(grad["W1"])))


def test_routes_chosen():
    assert general_risk.route_for(LINEAR, LAWS["uniform"]()) == "closed_form"
    assert general_risk.route_for(TANH, LAWS["gaussian"]()) == "quadrature"
    assert general_risk.n_nodes(TANH, LAWS["gaussian"]()) == 144**2
    assert general_risk.n_nodes(TANH, sideq.uniform(0, 1, 3)) == 24**3
    assert general_risk.route_for(TANH, sideq.gaussian(0.0, 1.0, 4)) == "monte_carlo"
    assert general_risk.n_nodes(TANH, sideq.gaussian(0.0, 1.0, 4)) == general_risk.DEFAULT_SAMPLES
    assert general_risk.route_for(TANH, LAWS["uniform"](), samples=100) == "monte_carlo"
    assert general_risk.route_for(LINEAR, LAWS["uniform"](), route="quadrature") == "quadrature"
    # a forced quadrature takes the law's own rule where it has one (Unif: 12 per axis
    # in d = 4), and where it has none is refused in one line naming the law
    assert general_risk.n_nodes(TANH, sideq.uniform(0, 1, 4), route="quadrature") == 12**4
    assert general_risk.n_nodes(TANH, sideq.gaussian(0.0, 1.0, 4, nodes=5), route="quadrature") == 12**4
    with pytest.raises(SideqInputError) as err:
        general_risk.route_for(TANH, sideq.gaussian(0.0, 1.0, 4), route="quadrature")
    assert "Gaussian has no tensor rule in d = 4" in _one_line(err, "dist:")


def test_sideq_risks_dispatch_a_deq():
    dist = LAWS["gaussian"]()
    assert float(sideq.population_risk(LINEAR, PARAMS_B, XI, dist)) == float(
        general_risk.population_risk(LINEAR, PARAMS_B, XI, dist)
    )
    x = _numpy_draws("uniform", 5, 2)
    value = sideq.empirical_risk(IDENTITY, PARAMS_B, x, xi=XI)
    assert float(value) == pytest.approx(_numpy_linear_errors(PARAMS_B, x).mean(), rel=1e-12)
    with pytest.raises(SideqInputError, match="backend/tol/maxiter"):
        sideq.population_risk(LINEAR, PARAMS_B, XI, dist, tol=1e-3)


def _one_line(excinfo, start):
    msg = str(excinfo.value)
    assert "\n" not in msg and msg.startswith(start), msg
    return msg


def test_bad_inputs_are_one_line_errors():
    dist = LAWS["uniform"]()
    with pytest.raises(SideqInputError) as err:
        general_risk.population_risk(TANH, PARAMS, XI.T[:, :1], dist)
    assert "(2, 2)" in _one_line(err, "xi:")
    with pytest.raises(SideqInputError) as err:
        general_risk.population_risk(TANH, PARAMS, XI, sideq.uniform(0, 1, 3))
    assert "d = 2" in _one_line(err, "dist:")
    with pytest.raises(SideqInputError) as err:
        sideq.population_risk(TANH, PARAMS, np.ones((K, 3)), dist)
    assert "(2, 2)" in _one_line(err, "xi:")
    with pytest.raises(SideqInputError) as err:
        general_risk.population_risk(TANH, {"W1": W1}, XI, dist)
    assert "'W2'" in _one_line(err, "params:")
    with pytest.raises(SideqInputError) as err:
        general_risk.population_risk(TANH, {"W1": W1, "W2": np.ones(K)}, XI, dist)
    assert "(2, 2)" in _one_line(err, "params['W2']:")
    with pytest.raises(SideqInputError) as err:
        general_risk.population_risk(general.deq(lambda p, x, y: y / 2, 2), PARAMS, XI, dist)
    _one_line(err, "model:")
    with pytest.raises(SideqInputError) as err:
        general_risk.population_risk(TANH, PARAMS, XI, dist, route="exact")
    _one_line(err, "route:")
    with pytest.raises(SideqInputError) as err:
        general_risk.population_risk(TANH, PARAMS, XI, dist, route="closed_form")
    _one_line(err, "route:")
    with pytest.raises(SideqInputError) as err:
        general_risk.population_risk(TANH, PARAMS, XI, dist, samples=1)
    _one_line(err, "samples:")
    with pytest.raises(SideqInputError) as err:
        general_risk.population_risk(TANH, PARAMS, XI, sideq.uniform(0, 1, 2, nodes=1024))
    _one_line(err, "dist:")
