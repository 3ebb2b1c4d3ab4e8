"""General DEQs y = g(params, x, y), y ∈ ℝ^k (sideq.deq), each number against a
second route: the closed form (I − W2)⁻¹(W1x + b) of the linear DEQ, an
unrolled fixed-point solve differentiated by autodiff, central finite
differences, the scalar library's solve and risk; statuses and failures as
data under vmap; bad input at the boundary.

The compiled functions are shared at module level (one per model), so the
file compiles each solver's path a few times only.
"""

import dataclasses
import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core as jax_core

import sideq
from sideq import SideqInputError, Status

# (the module itself: a top-level re-export of the function deq would rebind
# the attribute sideq.deq, and `from sideq import deq` would give the function)
D = importlib.import_module("sideq.general")

D_IN, N = 3, 4
SOLVERS = D.SOLVERS
# The test-side jits compile at XLA's -O0: these programs run in milliseconds,
# and compiling them is most of the file's time.
FAST = {"xla_backend_optimization_level": 0}


def _random_w2(k, norm, rng):
    """A k×k matrix of spectral norm ``norm``."""
    w = rng.normal(size=(k, k))
    return w * (norm / np.linalg.norm(w, 2))


def _w2_with_eigenvalues(eigs, rng):
    """Q diag(eigs) Qᵀ for a random orthogonal Q (symmetric: its spectral norm
    and radius are max |eig|)."""
    q = np.linalg.qr(rng.normal(size=(len(eigs), len(eigs))))[0]
    return q @ np.diag(eigs) @ q.T


def _flat(tree):
    return np.concatenate([np.ravel(v) for v in jax.tree_util.tree_leaves(tree)])


def _rel(a, b):
    a, b = _flat(a), _flat(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ---------------------------------------------------------------------------
# multi_linear against (I − W2)⁻¹(W1x + b); failures per run under vmap
# ---------------------------------------------------------------------------

_K_LIN = 4
_rng = np.random.default_rng(0)
_LIN_W1 = _rng.normal(size=(_K_LIN, D_IN))
_LIN_B = _rng.normal(size=_K_LIN)
_LIN_X = _rng.normal(size=(N, D_IN))
# rows: contractive (ρ = 0.5); ρ(W2) = 1.5 (I − W2 nonsingular, fixed-point
# iteration diverges); an eigenvalue exactly 1 (I − W2 singular); contractive.
_LIN_W2 = np.stack(
    [
        _w2_with_eigenvalues([0.5, 0.3, -0.2, 0.1], _rng),
        _w2_with_eigenvalues([1.5, 0.3, -0.2, 0.1], _rng),
        _w2_with_eigenvalues([1.0, 0.3, -0.2, 0.1], _rng),
        _random_w2(_K_LIN, 0.7, _rng),
    ]
)
_CONTRACTIVE = np.array([True, False, False, True])


@functools.lru_cache(maxsize=None)
def _linear_rows(solver):
    """solve over the four W2 rows (vmap over params), one compile per solver."""
    model = D.multi_linear(_K_LIN, bias=True, solver=solver)
    run = jax.vmap(lambda w2: D.solve(model, {"W1": _LIN_W1, "W2": w2, "b": _LIN_B}, _LIN_X))
    return jax.tree_util.tree_map(np.asarray, jax.jit(run, compiler_options=FAST)(jnp.asarray(_LIN_W2)))


def _closed_form(w2):
    return np.linalg.solve(np.eye(_K_LIN) - w2, _LIN_W1 @ _LIN_X.T + _LIN_B[:, None]).T


@pytest.mark.parametrize("solver", ["newton", "broyden", "fixed_point"])  # (anderson: the gradient tests)
def test_multi_linear_matches_closed_form_and_fails_per_run(solver):
    sol = _linear_rows(solver)
    assert sol.y.shape == (4, N, _K_LIN) and sol.status.dtype == np.int32
    for r in range(4):
        y, status = sol.y[r], sol.status[r]
        if r == 2:  # I − W2 singular: SINGULAR and NaN, whatever the solver
            assert np.all(status == Status.SINGULAR) and np.all(np.isnan(y))
            continue
        success = np.isin(status, [Status.CONVERGED])
        if _CONTRACTIVE[r] or solver in ("newton", "broyden"):
            assert success.all(), (r, status)
        if solver == "fixed_point" and not _CONTRACTIVE[r]:
            assert not success.any()  # ρ(W2) = 1.5: y ← W2 y + c diverges
        # a success is the closed form; a failure is NaN, never a finite non-root
        ref = _closed_form(_LIN_W2[r])
        np.testing.assert_allclose(y[success], ref[success], rtol=1e-12, atol=1e-12)
        assert np.all(np.isnan(y[~success]))
        assert np.all(sol.residual[r][success] <= D.default_tol(np.float64) * (1 + np.abs(y[success]).max(-1)))
    # the IFT margin: σ_min(I − W2), the same for every x
    margin = np.linalg.svd(np.eye(_K_LIN) - _LIN_W2[0], compute_uv=False)[-1]
    np.testing.assert_allclose(sol.margin[0], margin, rtol=1e-12)


def test_non_contractive_row_fails_alone_under_fixed_point():
    sol = _linear_rows("fixed_point")
    assert set(sol.status[1]) <= {Status.MAX_STEPS, Status.DIVERGED}
    assert np.all(sol.status[[0, 3]] == Status.CONVERGED)
    assert np.all(np.isnan(sol.y[1])) and np.all(np.isfinite(sol.y[[0, 3]]))
    assert np.all((sol.iterations[1] == D.multi_linear(_K_LIN).maxiter) | (sol.status[1] == Status.DIVERGED))


# ---------------------------------------------------------------------------
# Exact gradients: Eq. (1) against an unrolled solve differentiated by autodiff
# and a central difference of the unrolled solve
# ---------------------------------------------------------------------------

_UNROLL = 150  # fixed-point iterations at contraction ≤ 0.7: 0.7^150 ≈ 5e-24
_FD_STEP = 1e-3
_SHIFTS = np.array([-2.0, -1.0, 1.0, 2.0]) * _FD_STEP


def _unrolled(model, params, x):
    y0 = jnp.zeros(model.dim, x.dtype)
    return jax.lax.fori_loop(0, _UNROLL, lambda _, y: model.g(params, x, y), y0)


def _shifted(params, v, s):
    return jax.tree_util.tree_map(lambda a, b: a + s * b, params, v)


def _central_difference(values):
    """f'(0) from f(−2h), f(−h), f(h), f(2h): fourth order, error ~h⁴ + eps/h."""
    return (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * _FD_STEP)


@functools.partial(jax.jit, static_argnums=0, compiler_options=FAST)
def _gradient_routes(model, params, x, c, v):
    """y and ∇ of L = Σᵢ cᵢ·y(xᵢ) in params and x by the library (Eq. (1)) and
    by an unrolled solve; L along v for a central difference; for optimistix
    solvers the forward-mode derivative along v too."""

    def loss(p, x):
        return jnp.sum(D.equilibrium(model, p, x) * c)

    def y_unrolled(p, x):
        return jax.vmap(lambda xi: _unrolled(model, p, xi))(x)

    def loss_unrolled(p, x):
        return jnp.sum(y_unrolled(p, x) * c)

    out = {
        "y": D.equilibrium(model, params, x),
        "y_unrolled": y_unrolled(params, x),
        "grad": jax.grad(loss, argnums=(0, 1))(params, x),
        "grad_unrolled": jax.grad(loss_unrolled, argnums=(0, 1))(params, x),
        "along": jax.vmap(lambda s: loss_unrolled(_shifted(params, v, s), x))(_SHIFTS),
    }
    if model.solver in ("newton", "broyden"):  # (a custom_jvp: forward mode works)
        out["jvp"] = jax.jvp(lambda p: loss(p, x), (params,), (v,))[1]
    return out


def _unit_direction(params, rng):
    v = jax.tree_util.tree_map(lambda a: rng.normal(size=np.shape(a)), params)
    scale = np.linalg.norm(_flat(v))
    return jax.tree_util.tree_map(lambda a: a / scale, v)


# jaxopt's route at k = 32 (where its default CG solve is off by 1e-5) and
# optimistix's at k = 4; k = 1 with every solver below
@pytest.mark.parametrize("k,solver", [(4, "newton"), (32, "anderson")])
def test_gradient_matches_unrolled_and_finite_differences(k, solver):
    rng = np.random.default_rng(k)
    params = {"W1": rng.normal(size=(k, D_IN)), "W2": _random_w2(k, 0.6, rng)}
    x = rng.normal(size=(N, D_IN))
    c = rng.normal(size=(N, k))
    v = _unit_direction(params, rng)
    out = _gradient_routes(D.multi_index("tanh", k, solver=solver), params, x, c, v)
    np.testing.assert_allclose(out["y"], out["y_unrolled"], rtol=1e-13, atol=1e-15)
    (g_params, g_x), (u_params, u_x) = out["grad"], out["grad_unrolled"]
    assert _rel(g_params, u_params) <= 1e-10
    assert _rel(g_x, u_x) <= 1e-10
    fd = _central_difference(out["along"])
    directional = _flat(g_params) @ _flat(v)
    assert abs(directional - fd) <= 1e-10 * abs(fd)
    if "jvp" in out:
        assert abs(out["jvp"] - directional) <= 1e-13 * abs(directional)


# ---------------------------------------------------------------------------
# The general route reproduces the scalar library (k = 1), every solver
# ---------------------------------------------------------------------------

_FAMILIES = ("linear", "sigmoid", "tanh")
_SCALAR_MODELS = {
    "linear": sideq.linear(),
    "sigmoid": sideq.single_index("sigmoid"),
    "tanh": sideq.single_index("tanh"),
}


def _scalar_g(p, x, y):
    """The three scalar maps of Eqs. (2) and (10), z, σ(z) or tanh(z) with
    z = θ1ᵀx + θ2 y, picked by the one-hot p["pick"]: 1·v + 0·u is v exactly,
    in value and derivative, so one compiled solve covers the three families."""
    z = p["theta1"] @ x + p["theta2"] * y
    return p["pick"] @ jnp.stack([z, jax.nn.sigmoid(z), jnp.tanh(z)])


# (family, θ2, contractive: |θ2|·Lip(σ) < 1); θ2 beyond the contraction only
# where the root is unique (θ2 ≠ 1 linear, θ2 < 0 monotone σ)
_ROWS = [
    ("linear", 0.6, True),
    ("linear", -0.5, True),
    ("linear", 1.5, False),
    ("linear", -3.0, False),
    ("sigmoid", 2.5, True),
    ("sigmoid", -6.0, False),
    ("tanh", -0.7, True),
    ("tanh", -2.5, False),
]
_rng_s = np.random.default_rng(7)
_S_X = _rng_s.normal(size=(5, D_IN))
_S_Y = _rng_s.normal(size=5)
_S_PARAMS = {
    "theta1": _rng_s.normal(size=(len(_ROWS), D_IN)),
    "theta2": np.array([t for _, t, _ in _ROWS]),
    "pick": np.eye(3)[[_FAMILIES.index(f) for f, _, _ in _ROWS]],
}
_S_V = _unit_direction(_S_PARAMS, _rng_s)


@functools.lru_cache(maxsize=None)
def _scalar_reference():
    """y, R̂ and ∇R̂ from sideq.solve / sideq.empirical_risk, per row."""
    ys, risks, grads = np.zeros((len(_ROWS), len(_S_X))), np.zeros(len(_ROWS)), np.zeros((len(_ROWS), D_IN + 1))
    for family, model in _SCALAR_MODELS.items():
        rows = [r for r, (f, _, _) in enumerate(_ROWS) if f == family]
        theta = np.column_stack([_S_PARAMS["theta1"][rows], _S_PARAMS["theta2"][rows]])

        def one(theta):
            risk, grad = jax.value_and_grad(lambda t: sideq.empirical_risk(model, t, _S_X, _S_Y))(theta)
            return sideq.solve(model, theta, _S_X).y, risk, grad

        ys[rows], risks[rows], grads[rows] = jax.jit(jax.vmap(one), compiler_options=FAST)(theta)
    return ys, risks, grads


@functools.partial(jax.jit, static_argnums=0, compiler_options=FAST)
def _scalar_rows(model, params, v):
    def risk_unrolled(p):
        y = jax.vmap(lambda x: _unrolled(model, p, x))(_S_X)
        return jnp.mean((y[:, 0] - _S_Y) ** 2)

    def one(p, v):
        sol = D.solve(model, p, _S_X, margin=False)
        risk, grad = jax.value_and_grad(lambda p: D.empirical_risk(model, p, _S_X, _S_Y))(p)
        along = jax.vmap(lambda s: risk_unrolled(_shifted(p, v, s)))(_SHIFTS)
        return sol, risk, grad, jax.grad(risk_unrolled)(p), along

    return jax.vmap(one)(params, v)


@pytest.mark.slow
@pytest.mark.parametrize("solver", SOLVERS)
def test_k1_deq_reproduces_the_scalar_path_unrolled_and_finite_differences(solver):
    sol, risk, grad, grad_unrolled, along = _scalar_rows(D.deq(_scalar_g, 1, solver=solver), _S_PARAMS, _S_V)
    y_ref, risk_ref, grad_ref = _scalar_reference()
    for r, (family, theta2, contractive) in enumerate(_ROWS):
        g_r = jax.tree_util.tree_map(lambda a: np.asarray(a)[r], grad)
        success = np.asarray(sol.status[r] == Status.UNVERIFIED)  # (a general g proves nothing)
        if contractive or solver in ("newton", "broyden"):
            assert success.all(), (family, theta2, sol.status[r])
        # a failure is NaN, never a finite non-root; one NaN makes the risk's gradient NaN
        assert np.all(np.isnan(sol.y[r][~success]))
        if not success.all():
            assert np.all(np.isnan(_flat(g_r)))
            continue
        np.testing.assert_allclose(sol.y[r][:, 0], y_ref[r], rtol=1e-10, atol=0)
        np.testing.assert_allclose(risk[r], risk_ref[r], rtol=1e-10)
        g_theta = np.append(g_r["theta1"], g_r["theta2"])
        assert np.linalg.norm(g_theta - grad_ref[r]) <= 1e-10 * np.linalg.norm(grad_ref[r])
        if contractive:  # (the unrolled solve converges)
            u_r = jax.tree_util.tree_map(lambda a: np.asarray(a)[r], grad_unrolled)
            assert _rel(g_r, u_r) <= 1e-10
            fd = _central_difference(np.asarray(along[r]))
            directional = _flat(g_r) @ _flat(jax.tree_util.tree_map(lambda a: a[r], _S_V))
            assert abs(directional - fd) <= 1e-10 * abs(fd)


# ---------------------------------------------------------------------------
# Statuses: what is proven, and the margin
# ---------------------------------------------------------------------------


def test_multi_index_status_is_converged_only_inside_the_contraction():
    rng = np.random.default_rng(11)
    k = 4
    w1 = rng.normal(size=(k, D_IN))
    # ‖W2‖₂ = 0.6 (contraction, CONVERGED); W2 = −1.5 Q Qᵀ-like (‖W2‖₂·L ≥ 1: NON_UNIQUE)
    w2s = np.stack([_random_w2(k, 0.6, rng), _w2_with_eigenvalues([-1.5, -1.2, -0.5, 0.2], rng)])
    model = D.multi_index("tanh", k, solver="newton")
    run = jax.vmap(lambda w2: D.solve(model, {"W1": w1, "W2": w2}, _LIN_X))
    sol = jax.jit(run, compiler_options=FAST)(jnp.asarray(w2s))
    assert np.all(sol.status[0] == Status.CONVERGED)
    assert np.all(sol.status[1] == Status.NON_UNIQUE)
    y = np.asarray(sol.y)
    for r in range(2):  # a root either way, to the documented tolerance
        resid = np.abs(y[r] - np.tanh(_LIN_X @ w1.T + y[r] @ w2s[r].T)).max(-1)
        np.testing.assert_allclose(sol.residual[r], resid, rtol=0, atol=1e-15)
        assert np.all(resid <= D.default_tol(np.float64) * (1 + np.abs(y[r]).max(-1)))
        # margin: σ_min(I − diag(tanh'(z)) W2) at the root
        z = _LIN_X @ w1.T + y[r] @ w2s[r].T
        for i in range(N):
            jac = (1 - np.tanh(z[i]) ** 2)[:, None] * w2s[r]
            np.testing.assert_allclose(
                sol.margin[r, i], np.linalg.svd(np.eye(k) - jac, compute_uv=False)[-1], rtol=1e-12
            )


def test_proofs_of_uniqueness():
    rng = np.random.default_rng(12)
    w = {"W1": rng.normal(size=(3, D_IN)), "W2": _random_w2(3, 0.9, rng)}
    # sigmoid: Lip = 1/4, so ‖W2‖₂ = 0.9·… up to 4 is still a contraction
    assert D.multi_index("sigmoid", 3).proof(w) == Status.CONVERGED
    assert D.multi_index("sigmoid", 3).proof({**w, "W2": 4.1 * w["W2"] / 0.9}) == Status.NON_UNIQUE
    assert D.multi_index("tanh", 3).proof({**w, "W2": 1.1 * w["W2"] / 0.9}) == Status.NON_UNIQUE
    # slope bounds estimated on a grid (sideq.activation without slope_bounds) prove nothing
    estimated = dataclasses.replace(sideq.get_activation("tanh"), name="tanh_estimated", estimated=True)
    assert D.multi_index(estimated, 3).proof(w) == Status.UNVERIFIED
    general = D.deq(lambda p, x, y: jnp.tanh(p["W2"] @ y), 3)
    assert general.proof(w) == Status.UNVERIFIED
    certified = D.deq(lambda p, x, y: jnp.tanh(p["W2"] @ y), 3, certify=lambda p: jnp.linalg.norm(p["W2"], 2) < 1)
    assert certified.proof(w) == Status.CONVERGED
    assert D.multi_linear(3).proof(w) == Status.CONVERGED
    xi = rng.normal(size=(3, D_IN))
    np.testing.assert_allclose(D.target(D.multi_linear(3), xi, _LIN_X), _LIN_X @ xi.T, rtol=1e-15)
    singular = _w2_with_eigenvalues([1.0, 0.5, 0.2], rng)
    assert D.multi_linear(3).proof({**w, "W2": singular}) == Status.SINGULAR


# ---------------------------------------------------------------------------
# Training: empirical risk and gradient descent
# ---------------------------------------------------------------------------

_T = 6
_TR_K = 2
_rng_t = np.random.default_rng(21)
_TR_X = _rng_t.normal(size=(6, D_IN))
_TR_XI = _rng_t.normal(size=(_TR_K, D_IN))
_TR_P0 = {"W1": 0.3 * _rng_t.normal(size=(_TR_K, D_IN)), "W2": _random_w2(_TR_K, 0.3, _rng_t)}
_TR_MODEL = D.multi_index("tanh", _TR_K, solver="fixed_point")


@functools.lru_cache(maxsize=None)
def _risk_at_start():
    def at(p):
        f = D.target(_TR_MODEL, _TR_XI, _TR_X)
        risk, grad = jax.value_and_grad(lambda p: D.empirical_risk(_TR_MODEL, p, _TR_X, xi=_TR_XI))(p)
        return D.equilibrium(_TR_MODEL, p, _TR_X), f, risk, grad

    return jax.jit(at, compiler_options=FAST)(_TR_P0)


def test_empirical_risk_is_the_mean_squared_error_of_the_equilibria():
    y, f, risk, _ = _risk_at_start()
    np.testing.assert_allclose(f, np.tanh(_TR_X @ _TR_XI.T), rtol=1e-15)
    np.testing.assert_allclose(risk, np.mean(np.sum((np.asarray(y) - f) ** 2, axis=1)), rtol=1e-13)


@functools.lru_cache(maxsize=None)
def _descent_runs():
    run = jax.vmap(lambda eta: D.descent(_TR_MODEL, _TR_P0, x=_TR_X, xi=_TR_XI, eta=eta, epochs=_T, ltol=_TR_LTOL))
    return jax.jit(run, compiler_options=FAST)(_TR_ETAS)


_TR_ETAS = jnp.array([0.2, 1e12, 0.05])
_TR_LTOL = 0.05


def test_descent_steps_are_sgd_and_a_diverging_run_stays_alone():
    runs = _descent_runs()
    assert runs.params["W1"].shape == (3, _T + 1, _TR_K, D_IN)
    assert runs.loss.shape == (3, _T + 1)
    # η = 1e12 throws θ past the divergence bound at its first step: frozen there, DIVERGED
    assert runs.fail_step[1] == 1 and runs.status[1] == Status.DIVERGED
    assert np.all(np.isfinite(runs.params["W1"][1])) and np.all(runs.params["W1"][1, 1:] == runs.params["W1"][1, 0])
    assert runs.fail_step[0] == -1 and runs.fail_step[2] == -1
    # η = 0.2 meets ltol (CONVERGED at the first epoch below it); η = 0.05 does not
    assert runs.status[0] == Status.CONVERGED and runs.status[2] == Status.MAX_STEPS
    hit = int(runs.steps[0])
    assert 0 < hit < _T and runs.loss[0, hit] <= _TR_LTOL < runs.loss[0, hit - 1] and runs.steps[2] == _T
    # second route: θ(1) = θ(0) − η ∇R̂(θ(0)), and the recorded loss is R̂(θ(0))
    _, _, loss0, grad0 = _risk_at_start()
    for i in (0, 2):
        step = jax.tree_util.tree_map(lambda a, g: a - _TR_ETAS[i] * g, _TR_P0, grad0)
        one = jax.tree_util.tree_map(lambda a: a[i, 1], runs.params)
        assert _rel(one, step) <= 1e-12
        np.testing.assert_allclose(runs.loss[i, 0], loss0, rtol=1e-13)
        assert runs.loss[i, -1] < 0.5 * runs.loss[i, 0]
    assert "status=['converged', 'diverged', 'max_steps']" in repr(runs)


# ---------------------------------------------------------------------------
# Descent's own solver (warm-started Newton on the whole batch): every route
# against a second one; the bound it certifies roots with
# ---------------------------------------------------------------------------

_RT_T = 4
_rng_r = np.random.default_rng(41)
# "certified" route (tanh, bias, multilinear Newton steps), 301 samples: three
# tiles of 101, the last padded; second route: an unrolled fixed-point solve
# (contraction 0.6) differentiated by autodiff
_RT_CERT = D.multi_index("tanh", 3, bias=True, solver="fixed_point")  # (the cheapest fallback to compile)
_RT_XC, _RT_FC = _rng_r.normal(size=(301, D_IN)), _rng_r.normal(size=(301, 3))
_RT_PC = {"W1": _rng_r.normal(size=(3, D_IN)), "W2": _random_w2(3, 0.6, _rng_r), "b": 0.3 * _rng_r.normal(size=3)}
# "linear" route, two runs under vmap: ρ(W2) = 1.5 (fixed-point iteration
# diverges; Newton's one step is the root) and I − W2 singular (SINGULAR at
# epoch 0, frozen); second route: GD in closed form, y = (I − W2)⁻¹(W1x + b)
_RT_LIN = D.multi_linear(3, bias=True, solver="fixed_point")  # (never entered: Newton is exact)
_RT_XL, _RT_FL = _rng_r.normal(size=(7, D_IN)), _rng_r.normal(size=(7, 3))
_RT_PL = {
    "W1": np.stack([_rng_r.normal(size=(3, D_IN))] * 2),
    "W2": np.stack([_w2_with_eigenvalues([1.5, 0.3, -0.2], _rng_r), np.diag([1.0, 0.5, 0.2])]),
    "b": np.stack([0.3 * _rng_r.normal(size=3)] * 2),
}


# "general" route: F(y) = ½ atan(y − Px) is bounded, so Newton's iteration
# from y = 0 overshoots and diverges where |Px| > 1.4 (it would reach a y so
# large that ‖F‖ ≤ tol·(1 + ‖y‖)); the model's fixed-point iteration
# (contraction ½ near the root) takes over.  The root is y = Px: GD is least
# squares in closed form.
def _g_atan(p, x, y):
    return y - 0.5 * jnp.arctan(y - p["P"] @ x)


_RT_GEN = D.deq(_g_atan, 2, solver="fixed_point", maxiter=400)
_RT_XG, _RT_FG = 2.5 * _rng_r.normal(size=(7, D_IN)), _rng_r.normal(size=(7, 2))
_RT_PG = {"P": _rng_r.normal(size=(2, D_IN))}
_RT_ETA = {"cert": 0.3, "lin": 0.05, "gen": 0.05}


@functools.lru_cache(maxsize=None)
def _route_runs():
    def unrolled_risk(p):
        y = jax.vmap(lambda x: _unrolled(_RT_CERT, p, x))(jnp.asarray(_RT_XC))
        return jnp.mean(jnp.sum((y - _RT_FC) ** 2, axis=1))

    def sgd(q, _):
        loss, g = jax.value_and_grad(unrolled_risk)(q)
        return jax.tree_util.tree_map(lambda a, b: a - _RT_ETA["cert"] * b, q, g), (q, loss)

    def everything(pc, pl, pg):
        cert = D.descent(_RT_CERT, pc, x=_RT_XC, y=_RT_FC, eta=_RT_ETA["cert"], epochs=_RT_T)
        lin = jax.vmap(lambda p: D.descent(_RT_LIN, p, x=_RT_XL, y=_RT_FL, eta=_RT_ETA["lin"], epochs=_RT_T))(pl)
        gen = D.descent(_RT_GEN, pg, x=_RT_XG, y=_RT_FG, eta=_RT_ETA["gen"], epochs=_RT_T)
        return cert, jax.lax.scan(sgd, pc, None, length=_RT_T + 1)[1], lin, gen

    out = jax.jit(everything, compiler_options=FAST)(_RT_PC, _RT_PL, _RT_PG)
    return jax.tree_util.tree_map(np.asarray, out)


def test_descent_routes_match_a_second_route():
    cert, (ref_params, ref_loss), lin, gen = _route_runs()
    assert [D.descent_route(m) for m in (_RT_CERT, _RT_LIN, _RT_GEN)] == ["certified", "linear", "general"]
    # certified, tiled: every epoch's θ and R̂ against autodiff of an unrolled solve
    assert D._tiles(301) == (3, 101)
    for key in ref_params:
        np.testing.assert_allclose(cert.params[key], ref_params[key], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(cert.loss, ref_loss, rtol=1e-10)
    assert cert.status == Status.MAX_STEPS and cert.fail_step == -1  # (‖W2‖₂ = 0.6: unique, no tolerance set)
    assert np.all(cert.residual <= D.default_tol(np.float64) * 2)  # (roots in (−1, 1): the bound below 2 tol)
    # linear: closed-form GD for the first run; the singular one fails at epoch 0 alone
    W1, W2, b = (_RT_PL[key][0].copy() for key in ("W1", "W2", "b"))
    for t in range(_RT_T + 1):
        M = np.linalg.inv(np.eye(3) - W2)
        y = (_RT_XL @ W1.T + b) @ M.T
        r = y - _RT_FL
        for key, ref in (("W1", W1), ("W2", W2), ("b", b)):
            np.testing.assert_allclose(lin.params[key][0, t], ref, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(lin.loss[0, t], np.mean(np.sum(r**2, axis=1)), rtol=1e-11)
        G = M.T @ ((2 / len(r)) * r).T
        W1, W2, b = W1 - _RT_ETA["lin"] * G @ _RT_XL, W2 - _RT_ETA["lin"] * G @ y, b - _RT_ETA["lin"] * G.sum(1)
    assert lin.status.tolist() == [Status.MAX_STEPS, Status.SINGULAR] and lin.fail_step.tolist() == [-1, 0]
    assert np.all(lin.params["W2"][1] == _RT_PL["W2"][1]) and np.all(np.isnan(lin.loss[1]))
    # general: least squares in closed form, through the fallback to the model's solver at epoch 0
    assert np.max(np.abs(_RT_XG @ _RT_PG["P"].T)) > 3  # (Newton from 0 diverges for these samples)
    P = _RT_PG["P"].copy()
    for t in range(_RT_T + 1):
        np.testing.assert_allclose(gen.params["P"][t], P, rtol=1e-11, atol=1e-13)
        r = _RT_XG @ P.T - _RT_FG
        np.testing.assert_allclose(gen.loss[t], np.mean(np.sum(r**2, axis=1)), rtol=1e-11)
        P = P - _RT_ETA["gen"] * (2 / len(r)) * r.T @ _RT_XG
    assert gen.status == Status.UNVERIFIED and gen.fail_step == -1


# "contraction" route (k > 8): the whole batch as rows, fixed-point iteration
# forward and on the adjoint of Eq. (1).  Runs under vmap: ‖W2‖₂ = 0.6 (the
# iterations), 0.95 (ρ > 0.9: Newton steps and the dense solve), a NaN in W1
# (DIVERGED at epoch 0, alone); and with maxiter = 12 (both iterations stop
# short: the fallbacks finish).  Second route: GD in numpy, roots by
# fixed-point iteration in float64, the adjoint by np.linalg.solve.
_CT_K, _CT_T, _CT_ETA = 12, 3, 0.2
_rng_c = np.random.default_rng(43)
_CT_X, _CT_F = _rng_c.normal(size=(40, D_IN)), np.tanh(_rng_c.normal(size=(40, _CT_K)))
_CT_P = {
    "W1": np.stack([_rng_c.normal(size=(_CT_K, D_IN)) / 2] * 3),
    "W2": np.stack([_random_w2(_CT_K, 0.6, _rng_c), _random_w2(_CT_K, 0.95, _rng_c), np.zeros((_CT_K, _CT_K))]),
    "b": np.stack([0.2 * _rng_c.normal(size=_CT_K)] * 3),
}
_CT_P["W1"][2, 0, 0] = np.nan
_CT_MODELS = (
    D.multi_index("tanh", _CT_K, bias=True, solver="fixed_point"),
    D.multi_index("tanh", _CT_K, bias=True, solver="fixed_point", maxiter=12),
)


@functools.lru_cache(maxsize=None)
def _contraction_runs():
    def everything(p):
        run = lambda m, q: D.descent(m, q, x=_CT_X, y=_CT_F, eta=_CT_ETA, epochs=_CT_T)  # noqa: E731
        first = jax.tree_util.tree_map(lambda a: a[0], p)
        return jax.vmap(lambda q: run(_CT_MODELS[0], q))(p), run(_CT_MODELS[1], first)

    return jax.tree_util.tree_map(np.asarray, jax.jit(everything, compiler_options=FAST)(_CT_P))


def _numpy_descent(p, T):
    """Rows θ(0..T) and R̂ of GD on y = tanh(W1x + W2y + b), in float64 numpy."""
    W1, W2, b = (p[key].copy() for key in ("W1", "W2", "b"))
    out = []
    for _ in range(T + 1):
        y = np.zeros_like(_CT_F)
        for _ in range(2000):
            y = np.tanh(_CT_X @ W1.T + y @ W2.T + b)
        r = y - _CT_F
        out.append(({"W1": W1, "W2": W2, "b": b}, np.mean(np.sum(r**2, axis=1))))
        s = 1 - y * y
        u = np.stack([np.linalg.solve((np.eye(_CT_K) - s[i][:, None] * W2).T, r[i]) for i in range(len(r))])
        w = (2 / len(r)) * s * u
        W1, W2, b = W1 - _CT_ETA * w.T @ _CT_X, W2 - _CT_ETA * w.T @ y, b - _CT_ETA * w.sum(0)
    return out


def test_contraction_route_matches_numpy_and_isolates_failures():
    assert [D.descent_route(m) for m in _CT_MODELS] == ["contraction"] * 2
    assert D.descent_route(D.multi_index("tanh", 8)) == "certified"  # (k ≤ 8: Newton steps)
    runs, short = _contraction_runs()
    for i, tr in (
        (0, jax.tree_util.tree_map(lambda a: a[0], runs)),
        (1, jax.tree_util.tree_map(lambda a: a[1], runs)),
        (0, short),
    ):
        ref = _numpy_descent({key: v[i] for key, v in _CT_P.items()}, _CT_T)
        for t, (params, loss) in enumerate(ref):
            for key in params:
                np.testing.assert_allclose(tr.params[key][t], params[key], rtol=1e-11, atol=1e-13)
            np.testing.assert_allclose(tr.loss[t], loss, rtol=1e-11)
        assert tr.fail_step == -1 and np.all(tr.residual <= D.default_tol(np.float64) * 2)
    assert runs.status.tolist()[2] == Status.DIVERGED and runs.fail_step.tolist() == [-1, -1, 0]


def test_contraction_route_predicts_from_the_last_three_epochs_in_order():
    """The ring of iterates the "contraction" route keeps across epochs: after
    pushes of p(0), p(1), ... its prediction is p(t) where p is the constant,
    line, then quadratic through what was pushed (a wrong order would only
    cost iterations, which the route's results cannot show)."""
    p = lambda t: np.array([1.0, -2.0]) + t * np.array([0.5, 3.0]) - t * t * np.array([0.25, 1.0])  # noqa: E731
    H, newest = jnp.full((3, 2), jnp.nan), 0
    for t in range(6):
        predicted = np.asarray(D._predict(D._ring(H, newest)))
        if t == 0:
            assert np.all(np.isnan(predicted))
        else:
            expect = {1: p(0), 2: 2 * p(1) - p(0)}.get(t, p(t))
            np.testing.assert_allclose(predicted, expect, rtol=1e-13, atol=1e-13)
        H, newest = D._ring_push(H, newest, jnp.asarray(p(t))), (newest + 1) % 3


_CB_X = 2.0 * np.random.default_rng(52).normal(size=(D_IN, 6000))


@functools.partial(jax.jit, static_argnums=0, compiler_options=FAST)
def _certified_steps(model, params, y_start):
    """The "certified" route's Newton step from y_start, its end and the bound."""
    x = D._rows(jnp.asarray(_CB_X))
    y_start = D._rows(y_start)
    F, _, slope = D._evaluate(model, params, x, y_start, "certified")
    step = D._multilinear_solve(D._multilinear_coefficients(params["W2"]), slope, F)
    y = tuple(a - c for a, c in zip(y_start, step))
    taken = tuple(a - c for a, c in zip(y_start, y))
    return jnp.stack(y), D._certified_residual(model, params, x, y_start, F, slope, taken, y)


@pytest.mark.parametrize("name,norm", [("tanh", 0.8), ("sigmoid", 3.0)])
def test_certified_bound_holds_measured_and_in_extended_precision(name, norm):
    """The bound on ‖y − g(y)‖∞ after a Newton step (no σ evaluated at y)
    against the residual measured in float64 and computed in numpy's long
    double (64-bit mantissa), from starts 1e-12 to 1e-1 off the root."""
    rng = np.random.default_rng(53)
    k, n = 3, _CB_X.shape[1]
    model = D.multi_index(name, k, bias=True)
    sigma = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[name]
    params = {"W1": rng.normal(size=(k, D_IN)), "W2": _random_w2(k, norm, rng), "b": rng.normal(size=k)}
    root = np.zeros((k, n))
    for _ in range(400):  # (float64 fixed-point iteration: contraction 0.8)
        root = sigma(params["W1"] @ _CB_X + params["W2"] @ root + params["b"][:, None])
    offset = 10.0 ** rng.uniform(-12, -1, size=n)
    y_start = root + offset * rng.choice([-1.0, 1.0], size=(k, n)) * rng.uniform(0.5, 1, size=(k, n))
    y, bound = (np.asarray(v) for v in _certified_steps(model, params, y_start))

    def residual(p, x, y):
        return np.max(np.abs(y - sigma(p["W1"] @ x + p["W2"] @ y + p["b"][:, None])), axis=0)

    measured = residual(params, _CB_X, y)
    ld = {key: v.astype(np.longdouble) for key, v in params.items()}
    exact = residual(ld, _CB_X.astype(np.longdouble), y.astype(np.longdouble)).astype(np.float64)
    assert np.all(measured <= bound) and np.all(exact <= bound)
    tol = D.default_tol(np.float64) * (1 + np.abs(y).max(axis=0))
    small = offset < 1e-8  # (a step that small is certified: the bound is a few eps)
    assert np.mean(bound[small] <= tol[small]) > 0.99
    assert np.all(bound[offset > 1e-3] > tol[offset > 1e-3])  # (and a long one is not)


def test_reciprocal_from_multiplications():
    x = np.concatenate([np.random.default_rng(54).lognormal(0, 20, 2000) * np.repeat([1, -1], 1000), [3.0, -7.5]])
    reciprocal = jax.jit(D._reciprocal)
    r = np.asarray(reciprocal(jnp.asarray(x)))
    exact = 1 / x.astype(np.longdouble)
    assert np.all(np.abs(r - exact) <= 2 * np.spacing(np.abs(r)))  # (0.83 ulp: within two spacings of r)
    special = np.asarray(reciprocal(jnp.array([0.0, -0.0, np.inf, -np.inf, np.nan])))
    assert special[0] == np.inf and special[1] == -np.inf and special[2] == 0 and special[3] == 0
    assert np.signbit(special[3]) and np.isnan(special[4])
    r32 = np.asarray(reciprocal(jnp.asarray(x[:1000], np.float32)))
    assert r32.dtype == np.float32
    assert np.all(np.abs(r32 - 1 / x[:1000].astype(np.float32)) <= 2 * np.spacing(np.abs(r32)))


# ---------------------------------------------------------------------------
# Precision, jit, the spec
# ---------------------------------------------------------------------------


def test_float32_stays_float32():
    rng = np.random.default_rng(31)
    k = 4
    p64 = {"W1": rng.normal(size=(k, D_IN)), "W2": _random_w2(k, 0.6, rng)}
    p32 = jax.tree_util.tree_map(lambda a: a.astype(np.float32), p64)
    model = D.multi_index("tanh", k)  # Anderson: jaxopt's Gram matrix in the default dtype
    sol = jax.jit(lambda p, x: D.solve(model, p, x), compiler_options=FAST)(p32, _LIN_X.astype(np.float32))
    assert sol.y.dtype == np.float32 and sol.residual.dtype == np.float32
    assert np.all(sol.status == Status.CONVERGED)
    assert np.all(sol.residual <= D.default_tol(np.float32) * (1 + np.abs(sol.y).max(-1)))
    ref = np.zeros((N, k))
    for _ in range(200):  # float64 fixed-point iteration, contraction 0.6
        ref = np.tanh(_LIN_X @ p64["W1"].T + ref @ p64["W2"].T)
    np.testing.assert_allclose(sol.y, ref, rtol=0, atol=1e-5)


def _equations(jaxpr):
    """Every equation of ``jaxpr`` and of the jaxprs inside it."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if isinstance(inner, jax_core.Jaxpr):
                    yield from _equations(inner)


@pytest.mark.parametrize("solver", ["anderson", "fixed_point"])
def test_jaxopt_solvers_stop_when_the_batch_has_converged(solver):
    """Without its own implicit differentiation jaxopt's loop defaults to a
    scan of maxiter steps (so that autodiff can go through it), which under
    vmap does every step's work for every sample: the batched solve must be a
    while loop, and no scan may run maxiter steps."""
    model = D.multi_index("tanh", 4, solver=solver)
    rng = np.random.default_rng(5)
    params = {"W1": rng.normal(size=(4, D_IN)), "W2": _random_w2(4, 0.5, rng)}
    jaxpr = jax.make_jaxpr(lambda p, x: D.solve(model, p, x))(params, _LIN_X).jaxpr
    equations = list(_equations(jaxpr))
    assert any(e.primitive.name == "while" for e in equations)
    assert not [e for e in equations if e.primitive.name == "scan" and e.params["length"] >= model.maxiter - 1]


def test_spec_is_hashable_static_and_equal_by_value():
    a, b = D.multi_index("tanh", 4), D.multi_index("tanh", 4)
    assert a == b and hash(a) == hash(b) and a != D.multi_index("tanh", 4, solver="newton")
    assert D.multi_index("tanh", 4, ridge=1e-12).options == (("ridge", 1e-12),)
    assert "multi_index(tanh, k=4)" in repr(a)
    sol = _linear_rows("newton")
    text = repr(D.DEQEquilibrium(*(np.asarray(v)[0, 0] for v in sol)))
    assert "status='converged'" in text and text.startswith("DEQEquilibrium(")


# ---------------------------------------------------------------------------
# Bad input: one line, naming the argument
# ---------------------------------------------------------------------------

_OK = {"W1": np.ones((2, D_IN)), "W2": 0.1 * np.eye(2)}
_XI2 = np.ones((2, D_IN))


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: D.solve(D.multi_linear(2), {"W1": _OK["W1"]}, _LIN_X), "missing key 'W2'"),
        (
            lambda: D.solve(D.multi_linear(2), {**_OK, "W2": np.ones((2, 3))}, _LIN_X),
            "params['W2']: expected shape (2, 2)",
        ),
        (
            lambda: D.solve(D.multi_linear(2), {**_OK, "W1": np.ones((2, 5))}, _LIN_X),
            "params['W1']: expected shape (2, 3)",
        ),
        (lambda: D.solve(D.multi_linear(2, bias=True), _OK, _LIN_X), "missing key 'b'"),
        (lambda: D.solve(D.multi_linear(2), {**_OK, "c": 1.0}, _LIN_X), "unexpected key 'c'"),
        (lambda: D.solve(D.multi_linear(2), {**_OK, "W2": np.ones((3, 2, 2))}, _LIN_X), "jax.vmap"),
        (lambda: D.solve(D.multi_linear(2), [1.0], _LIN_X), "expected a dict"),
        (lambda: D.solve(D.multi_linear(2), {**_OK, "W2": np.full((2, 2), np.nan)}, _LIN_X), "NaN"),
        (lambda: D.solve(D.multi_linear(2), _OK, np.ones((2, 2, 3))), "x: expected one input"),
        (lambda: D.solve(D.multi_linear(2), _OK, _LIN_X, y0=np.ones(3)), "y0:"),
        (lambda: D.solve(D.deq(lambda p, x, y: p @ x, 2), np.ones((3, D_IN)), _LIN_X), "it must return shape (2,)"),
        (lambda: D.solve(D.deq(lambda p, x, y: p @ y, 2), np.ones((2, 5)), _LIN_X), "g: g(params, x, y) failed"),
        (lambda: D.solve("tanh", _OK, _LIN_X), "model: expected a sideq.general.DEQ"),
        (lambda: D.deq(lambda p, x, y: y, 2, solver="gmres"), "solver: expected one of"),
        (lambda: D.deq(lambda p, x, y: y, 0), "dim:"),
        (lambda: D.multi_index("tanh", 2, solver="newton", ridge=1.0), "ridge: not a setting of the 'newton'"),
        (lambda: D.multi_index("tanh", 2, history_size=1), "history_size"),
        (lambda: D.multi_index("tanh", 2, tol=-1.0), "tol:"),
        (lambda: D.multi_index("nope", 2), "activation: unknown name"),
        (lambda: D.empirical_risk(D.multi_linear(2), _OK, _LIN_X, np.ones((N, 3))), "y: expected shape (4, 2)"),
        (lambda: D.empirical_risk(D.multi_linear(2), _OK, _LIN_X), "y: no targets"),
        (lambda: D.empirical_risk(D.multi_linear(2), _OK, _LIN_X, xi=np.ones(D_IN)), "xi: expected shape (2, 3)"),
        (lambda: D.target(D.deq(lambda p, x, y: y, 2), np.ones((2, D_IN)), _LIN_X), "no target"),
        (lambda: D.descent(D.multi_linear(2), _OK, x=_LIN_X, xi=np.ones((2, D_IN)), epochs=-1), "epochs:"),
        (lambda: D.descent(D.multi_linear(2), _OK, x=_LIN_X, xi=np.ones((2, D_IN)), epochs=2, eta=0.0), "eta:"),
        # params0 of the built-in families: the key and the shape expected
        (
            lambda: D.descent(D.multi_index("tanh", 2), {"W2": _OK["W2"]}, x=_LIN_X, xi=_XI2, epochs=2),
            "params: missing key 'W1' of shape (2, 3)",
        ),
        (
            lambda: D.descent(D.multi_index("tanh", 2, bias=True), _OK, x=_LIN_X, xi=_XI2, epochs=2),
            "params: missing key 'b' of shape (2,)",
        ),
        (
            lambda: D.descent(D.multi_index("tanh", 2), {**_OK, "W3": np.eye(2)}, x=_LIN_X, xi=_XI2, epochs=2),
            "params: unexpected key 'W3'; multi_index(tanh, k=2) takes {'W1': (2, 3), 'W2': (2, 2)}",
        ),
        (
            lambda: D.descent(
                D.multi_index("tanh", 2, bias=True), {**_OK, "b": np.ones(3)}, x=_LIN_X, xi=_XI2, epochs=2
            ),
            "params['b']: expected shape (2,)",
        ),
        (
            lambda: D.descent(D.multi_linear(2), {**_OK, "W2": np.diag([1.0, 0.3])}, x=_LIN_X, xi=_XI2, epochs=2),
            "params['W2']: I - W2 is singular (smallest singular value 0)",
        ),
        (
            lambda: D.solve(D.multi_linear(2), {**_OK, "W2": np.array([[0.5, 0.5], [0.5, 0.5]])}, _LIN_X),
            "pass a W2 of shape (2, 2) without the eigenvalue 1",
        ),
    ],
)
def test_bad_input_is_a_one_line_error(call, needle):
    with pytest.raises(SideqInputError) as err:
        call()
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("solver", ["anderson", "fixed_point"])
def test_float32_gradient_under_x64_matches_float64(solver):
    """jax.grad of a float32 solve with x64 on (as in a float64 program that
    trains one model in float32): jaxopt's solver is traced again under grad,
    and must keep float32 (its mixing step makes constants at the default
    width).  Second route: the float64 gradient."""
    model = D.multi_index("tanh", 2, solver=solver)
    rng = np.random.default_rng(61)
    params = {"W1": rng.normal(size=(2, D_IN)), "W2": _random_w2(2, 0.5, rng)}
    x = rng.normal(size=(3, D_IN))

    def loss(p, x):
        return jnp.sum(D.solve(model, p, x, margin=False).y ** 2)

    p32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    g32 = jax.grad(loss)(p32, jnp.asarray(x, jnp.float32))
    g64 = jax.grad(loss)(params, x)
    assert all(v.dtype == jnp.float32 for v in jax.tree_util.tree_leaves(g32))
    assert _rel(g32, g64) < 1e-4  # (float32 solve to 7.6e-6)
