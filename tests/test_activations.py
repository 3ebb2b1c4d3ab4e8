"""Activations: the constants each built-in claims (slopes, range, Lipschitz constant,
monotonicity, Theorem 3.8 assumptions) against a dense float64 grid of jax.grad,
name resolution errors, and user callables (bound estimation and end-to-end use)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import ndtr

import sideq
from sideq import ACTIVATIONS, SideqInputError, Status
from sideq.train import descent

BUILTINS = ["sigmoid", "tanh", "softplus", "relu", "leaky_relu", "gelu", "identity"]

# Dense grid, step 2e-4, containing 0 and the GELU slope extremes ±sqrt(2).
_Z = np.unique(np.concatenate([np.linspace(-40.0, 40.0, 400_001), [-math.sqrt(2), math.sqrt(2)]]))


@functools.lru_cache(maxsize=None)
def _grid(name):
    fn = ACTIVATIONS[name].fn
    z = jnp.asarray(_Z, jnp.float64)
    values = np.asarray(jax.vmap(fn)(z))
    slopes = np.asarray(jax.vmap(jax.grad(fn))(z))
    assert values.dtype == np.float64 and slopes.dtype == np.float64
    return values, slopes


def test_builtin_names():
    assert sorted(ACTIVATIONS) == sorted(BUILTINS)
    for name in BUILTINS:
        assert ACTIVATIONS[name].name == name
        assert sideq.get_activation(name) is ACTIVATIONS[name]


@pytest.mark.parametrize("name", BUILTINS)
def test_slope_bounds_match_dense_grid(name):
    act = ACTIVATIONS[name]
    _, s = _grid(name)
    # sound: the claimed bounds contain every derivative on the grid ...
    assert s.min() >= act.slope_min - 1e-12
    assert s.max() <= act.slope_max + 1e-12
    # ... and tight: the grid gets within 1e-7 of both (inf/sup approached at ±40)
    assert s.min() == pytest.approx(act.slope_min, abs=1e-7)
    assert s.max() == pytest.approx(act.slope_max, abs=1e-7)
    assert act.lipschitz == pytest.approx(np.abs(s).max(), abs=1e-7)
    assert act.lipschitz == max(abs(act.slope_min), abs(act.slope_max))
    assert act.monotone == bool(s.min() >= 0.0)


@pytest.mark.parametrize("name", BUILTINS)
def test_curvature_bound_matches_dense_grid(name):
    """sup |σ''| certifies the solver's one-evaluation stop: it must be sound
    (no second derivative on the grid exceeds it) and, where finite, tight."""
    act = ACTIVATIONS[name]
    fn = act.fn
    d2 = jax.vmap(jax.grad(jax.grad(lambda t: fn(t))))(jnp.asarray(_Z))
    d2 = np.asarray(d2)
    if not act.differentiable:  # σ' jumps at 0: no finite bound
        assert act.curvature_max == math.inf
        return
    assert np.abs(d2).max() <= act.curvature_max * (1 + 1e-12)
    assert np.abs(d2).max() == pytest.approx(act.curvature_max, abs=1e-6)


@pytest.mark.parametrize("name", BUILTINS)
def test_slope_of_value_is_the_slope(name):
    """Where a built-in gives h with σ' = h(σ) (sigmoid, tanh), h(σ(z)) is
    jax.grad's σ'(z) on the dense grid (gradient descent takes σ' at its
    solutions from it), to an ulp of σ absolutely: where σ saturates (σ → ±1)
    1 − σ loses σ''s relative accuracy, not its absolute; the others give none."""
    act = ACTIVATIONS[name]
    if name not in ("sigmoid", "tanh"):
        assert act.slope_of_value is None
        return
    values, slopes = _grid(name)
    np.testing.assert_allclose(np.asarray(act.slope_of_value(jnp.asarray(values))), slopes, rtol=1e-12, atol=2.3e-16)


def test_callable_slope_of_value_is_checked():
    """A user's h is checked against σ' before use, and a wrong one is refused
    with a one-line error; a right one makes descent take one σ evaluation
    per sample and reach the θ of the same callable without it."""
    from sideq.scalar import _one_evaluation

    right = sideq.activation(
        _tanh2,
        slope_bounds=(0.0, 2.0),
        range_bounds=(-1.0, 1.0),
        curvature_bound=8 / (3 * math.sqrt(3)),
        slope_of_value=lambda y: 2 * (1 - y * y),
    )
    plain = sideq.activation(
        _tanh2, slope_bounds=(0.0, 2.0), range_bounds=(-1.0, 1.0), curvature_bound=8 / (3 * math.sqrt(3))
    )
    assert _one_evaluation(sideq.single_index(right)) and not _one_evaluation(sideq.single_index(plain))
    with pytest.raises(SideqInputError, match="^activation: slope_of_value"):
        sideq.activation(_tanh2, slope_of_value=lambda y: 1 - y * y)  # tanh's, not tanh(2z)'s
    with pytest.raises(SideqInputError, match="^activation: slope_of_value"):
        sideq.activation(_tanh2, slope_of_value=0.5)
    x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (16, 1)))
    runs = [
        descent(sideq.single_index(act), [0.3, 0.2], xi=[0.8], x=x, eta=0.2, epochs=60).theta[-1]
        for act in (right, plain)
    ]
    np.testing.assert_allclose(np.asarray(runs[0]), np.asarray(runs[1]), rtol=1e-13, atol=1e-15)


def test_callable_curvature_is_given_not_guessed():
    guessed = sideq.activation(jnp.tanh)
    assert guessed.curvature_max == math.inf  # no certificate from an estimate
    given = sideq.activation(jnp.tanh, curvature_bound=0.7699)
    assert given.curvature_max == 0.7699
    assert sideq.activation(lambda z: 2 * z + 1, slope_bounds=(2.0, 2.0)).curvature_max == 0.0
    # Equal *estimated* bounds prove nothing: a grid sees no step between its
    # points, so σ is not taken for affine (nor certified by curvature 0).
    estimated = sideq.activation(lambda z: 2 * z + 1)
    assert estimated.curvature_max == math.inf and not estimated.affine
    with pytest.raises(SideqInputError, match="^activation:.*curvature_bound"):
        sideq.activation(jnp.tanh, curvature_bound=-1.0)


@pytest.mark.parametrize("name", BUILTINS)
def test_range_bounds_match_dense_grid(name, ref):
    act = ACTIVATIONS[name]
    v, s = _grid(name)
    np.testing.assert_allclose(v, ref.act[name][0](_Z), rtol=1e-14, atol=1e-15)
    assert v.min() >= act.range_min - 1e-12
    assert v.max() <= act.range_max + 1e-12
    if math.isfinite(act.range_min):
        assert v.min() == pytest.approx(act.range_min, abs=1e-7)
    else:  # claimed unbounded below: still falling at a slope bounded away from 0
        assert s[0] > 1e-3 and v[0] < v[1]
    if math.isfinite(act.range_max):
        assert v.max() == pytest.approx(act.range_max, abs=1e-7)
    else:
        assert s[-1] > 0.5 and v[-1] > v[-2]
    assert act.bounded == (math.isfinite(act.range_min) and math.isfinite(act.range_max))


def test_gelu_constants_closed_form():
    """GELU σ(z) = zΦ(z): σ'' = φ(z)(2 − z²) vanishes at ±√2; min σ by scipy."""
    gelu = ACTIVATIONS["gelu"]
    dg = jax.grad(gelu.fn)
    r2 = math.sqrt(2.0)
    assert float(dg(r2)) == pytest.approx(gelu.slope_max, rel=1e-15)
    assert float(dg(-r2)) == pytest.approx(gelu.slope_min, rel=1e-14)
    res = minimize_scalar(lambda z: z * ndtr(z), bounds=(-2.0, 0.0), method="bounded", options={"xatol": 1e-10})
    assert gelu.range_min == pytest.approx(res.fun, abs=1e-15)
    assert gelu.range_min <= res.fun  # a valid (not too high) lower bound


@pytest.mark.parametrize(
    "name, monotone, affine, meets",
    [
        ("sigmoid", True, False, True),
        ("tanh", True, False, True),
        ("softplus", True, False, True),
        ("relu", True, False, False),  # not differentiable at 0
        ("leaky_relu", True, False, False),  # not differentiable at 0
        ("gelu", False, False, False),  # σ' < 0 on z < -0.75...
        ("identity", True, True, False),  # affine: assumption 3 fails
    ],
)
def test_corollary_3_1_flags(name, monotone, affine, meets):
    act = ACTIVATIONS[name]
    assert act.monotone is monotone
    assert act.affine is affine
    assert act.meets_corollary_3_1 is meets


def test_unknown_name_lists_valid_names():
    with pytest.raises(SideqInputError) as exc:
        sideq.get_activation("nope")
    msg = str(exc.value)
    assert msg.startswith("activation:")
    assert "'nope'" in msg
    for name in BUILTINS:
        assert name in msg
    with pytest.raises(SideqInputError, match="^activation:"):
        sideq.single_index("nope")
    with pytest.raises(SideqInputError, match="^activation:"):
        sideq.get_activation(3.0)
    act = ACTIVATIONS["tanh"]
    assert sideq.get_activation(act) is act


def test_activation_estimates_bounds_of_callable():
    act = sideq.activation(lambda z: jnp.tanh(2 * z))
    assert act.estimated
    assert act.slope_max == pytest.approx(2.0, abs=1e-9)  # 2 sech²(0), 0 is on the grid
    assert act.slope_min == pytest.approx(0.0, abs=1e-12)
    assert act.lipschitz == pytest.approx(2.0, abs=1e-9)
    assert act.monotone and not act.affine and act.meets_corollary_3_1

    sin = sideq.activation(jnp.sin, name="sine")
    assert sin.name == "sine"
    assert sin.slope_min == pytest.approx(-1.0, abs=1e-8)
    assert sin.slope_max == pytest.approx(1.0, abs=1e-8)
    assert not sin.monotone and not sin.meets_corollary_3_1

    aff = sideq.activation(lambda z: 2 * z + 1, slope_bounds=(2.0, 2.0))
    assert aff.affine and not aff.meets_corollary_3_1 and aff.lipschitz == 2.0

    given = sideq.activation(jnp.tanh, slope_bounds=(0.0, 1.0), range_bounds=(-1.0, 1.0))
    assert not given.estimated and given.bounded and given.slope_max == 1.0


def test_activation_rejects_bad_callables():
    with pytest.raises(SideqInputError, match="^activation:"):
        sideq.activation("tanh")  # not callable
    with pytest.raises(SideqInputError, match="^activation:"):
        sideq.activation(jnp.tanh, slope_bounds=(1.0, 0.0))
    with pytest.raises(SideqInputError, match="^activation:.*slope_bounds"):
        sideq.activation(lambda z: jnp.sqrt(jnp.abs(z)))  # σ'(0) = inf


# -- a user callable end to end -------------------------------------------------


def _tanh2(z):
    return jnp.tanh(2 * z)


def _np_tanh2(z):
    return np.tanh(2 * z)


def _np_dtanh2(z):
    return 2.0 / np.cosh(2 * z) ** 2


@pytest.mark.parametrize("backend", sideq.BACKENDS)
def test_user_callable_end_to_end(backend, ref):
    act = sideq.activation(_tanh2, name="tanh2")
    model = sideq.single_index(act, bias=True)
    x = np.array([0.4, -1.3])
    theta = np.array([0.9, 0.2, -0.35, 0.3])  # |θ2|·L = 0.6 < 1: contraction
    a = theta[:2] @ x + theta[2]
    sol = sideq.solve(model, jnp.asarray(theta), jnp.asarray(x), backend=backend)
    # Estimated bounds: a root, but its uniqueness is not claimed.
    assert int(sol.status) == Status.UNVERIFIED
    y_ref = ref.brent_root(_np_tanh2, a, theta[-1])
    assert float(sol.y) == pytest.approx(y_ref, rel=1e-12, abs=1e-14)
    # The exact bounds of tanh(2z) prove it: CONVERGED, the same root.
    proven = sideq.single_index(sideq.activation(_tanh2, slope_bounds=(0.0, 2.0)), bias=True)
    sol_p = sideq.solve(proven, jnp.asarray(theta), jnp.asarray(x), backend=backend)
    assert int(sol_p.status) == Status.CONVERGED
    assert float(sol_p.y) == pytest.approx(y_ref, rel=1e-12, abs=1e-14)
    assert abs(y_ref - _np_tanh2(a + theta[-1] * float(sol.y))) <= 1e-12

    # Eq. (1) gradient through the user callable
    g = jax.grad(lambda t: sideq.equilibrium(model, t, jnp.asarray(x), backend=backend))(jnp.asarray(theta))
    g_ref, _ = ref.closed_form_grads(_np_dtanh2, theta, x, y_ref, bias=True)
    np.testing.assert_allclose(np.asarray(g), g_ref, rtol=1e-9, atol=1e-14)

    # a callable passed straight to single_index (bounds estimated there);
    # θ2·L = 1.2 > 1: the library cannot prove uniqueness and must say so.
    m2 = sideq.single_index(_tanh2)
    sol2 = sideq.solve(m2, jnp.array([0.3, 0.6]), 1.0, backend=backend)
    assert int(sol2.status) == Status.NON_UNIQUE
    assert abs(float(sol2.y) - _np_tanh2(0.3 + 0.6 * float(sol2.y))) <= 1e-12
