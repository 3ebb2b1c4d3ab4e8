"""sideq.solve, sideq.equilibrium and sideq.descent given a sideq.general.DEQ:
the general module's results, each against a second route (the general
functions called directly; the scalar models' own path, for sideq.linear()
and sideq.single_index("tanh") written as sideq.deq); keywords of the scalar
path that mean nothing for a DEQ are one-line errors.

Sizes are small and each compiled function is shared, so the file compiles
each route once.
"""

import dataclasses
import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sideq
from sideq import SideqInputError

D = importlib.import_module("sideq.general")

_rng = np.random.default_rng(5)
_D_IN, _N, _K = 2, 6, 2
_X = _rng.normal(size=(_N, _D_IN))
_XI = _rng.normal(size=(_K, _D_IN))
_P = {"W1": 0.5 * _rng.normal(size=(_K, _D_IN)), "W2": np.array([[0.3, -0.2], [0.1, 0.4]])}
_MODEL = D.multi_index("tanh", _K, solver="fixed_point")  # (the cheapest to compile)


# The test-side jit compiles at XLA's -O0 (these programs run in milliseconds;
# compiling them is most of the file's time), and every route of the file is
# one program: the public functions take traced arguments.
FAST = {"xla_backend_optimization_level": 0}


def _g_linear(theta, x, y):  # Eq. (2): θ1ᵀx + θ2 y
    return theta[:-1] @ x + theta[-1] * y


def _g_tanh(theta, x, y):  # Eq. (10) with σ = tanh
    return jnp.tanh(theta[:-1] @ x + theta[-1] * y)


_PAIRS = {
    "linear": (sideq.linear(), sideq.deq(_g_linear, 1, solver="newton"), np.array([0.7, -0.4, 1.6])),
    "tanh": (sideq.single_index("tanh"), sideq.deq(_g_tanh, 1, solver="newton"), np.array([0.9, -0.5, -0.6])),
}
_C = _rng.normal(size=_N)


@functools.lru_cache(maxsize=None)
def _routes():
    def dispatched(p):  # sideq.* and sideq.general.* on the multi_index model
        return {
            "solve": (sideq.solve(_MODEL, p, _X), D.solve(_MODEL, p, _X)),
            "equilibrium": (sideq.equilibrium(_MODEL, p, _X), D.equilibrium(_MODEL, p, _X)),
            "descent": (
                sideq.descent(_MODEL, p, x=_X, xi=_XI, eta=0.3, epochs=3),
                D.descent(_MODEL, p, x=_X, xi=_XI, eta=0.3, epochs=3),
            ),
        }

    def family(scalar, general, theta):
        def grad(model):
            return jax.grad(lambda t: jnp.sum(_C * jnp.reshape(sideq.equilibrium(model, t, _X), (_N,))))(theta)

        return {
            "y": (
                jnp.reshape(sideq.solve(scalar, theta, _X).y, (_N,)),
                jnp.reshape(sideq.solve(general, theta, _X).y, (_N,)),
            ),
            "grad": (grad(scalar), grad(general)),
        }

    def everything(p, thetas):
        out = {"dispatched": dispatched(p)}
        for name, (scalar, general, _) in _PAIRS.items():
            out[name] = family(scalar, general, thetas[name])
        return out

    thetas = {name: pair[2] for name, pair in _PAIRS.items()}
    return jax.tree_util.tree_map(np.asarray, jax.jit(everything, compiler_options=FAST)(_P, thetas))


def _same(a, b):
    """Every leaf of a equals b's, bit for bit (NaN equal to NaN)."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb) > 0
    for u, v in zip(la, lb):
        np.testing.assert_array_equal(u, v)


def test_dispatched_calls_are_the_general_functions():
    out = _routes()["dispatched"]
    for name in ("solve", "equilibrium", "descent"):
        _same(*out[name])
    assert type(out["solve"][0]).__name__ == "DEQEquilibrium" and out["solve"][0].y.shape == (_N, _K)
    assert type(out["descent"][0]).__name__ == "DEQTrajectory"
    # tol and maxiter become the DEQ's settings; the scalar default maxiter keeps the DEQ's own
    assert D.from_scalar_api(_MODEL, entry="f", tol=1e-9, maxiter=7) == dataclasses.replace(_MODEL, tol=1e-9, maxiter=7)
    assert D.from_scalar_api(_MODEL, entry="f") is _MODEL and _MODEL.maxiter == 256


@pytest.mark.parametrize("family", list(_PAIRS))
def test_scalar_models_as_deq_agree_with_the_scalar_path(family):
    out = _routes()[family]
    (y_s, y_g), (g_s, g_g) = out["y"], out["grad"]
    theta = _PAIRS[family][2]
    if family == "linear":  # third route: the closed form y = θ1ᵀx / (1 − θ2)
        np.testing.assert_allclose(y_s, _X @ theta[:-1] / (1 - theta[-1]), rtol=1e-12)
    np.testing.assert_allclose(y_g, y_s, rtol=1e-10, atol=1e-14)
    assert np.linalg.norm(g_g - g_s) <= 1e-10 * np.linalg.norm(g_s)


# ---------------------------------------------------------------------------
# Scalar-only keywords: mapped or refused in one line
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: sideq.solve(_MODEL, _P, _X, backend="optimistix"), "backend: sideq.solve of a DEQ"),
        (lambda: sideq.equilibrium(_MODEL, _P, _X, backend="optimistix"), "backend: sideq.equilibrium"),
        (lambda: sideq.solve(_MODEL, _P, _X, tol=-1.0), "tol: expected a number > 0"),
        (lambda: sideq.solve(_MODEL, _P, _X, maxiter=0), "maxiter: expected an integer >= 1"),
        (lambda: sideq.descent(_MODEL, _P, x=_X, xi=_XI, epochs=2, dtol=0.1), "dtol: a DEQ has no target"),
        (lambda: sideq.descent(_MODEL, _P, x=_X, xi=_XI, epochs=2, save_every=2), "save_every:"),
        (lambda: sideq.descent(_MODEL, _P, xi=_XI, epochs=2), "x: no data given"),
        (lambda: sideq.descent(_MODEL, _P, x=_X, xi=_XI, epochs=2, backend="optimistix"), "backend: sideq.descent"),
        (lambda: sideq.descent(_MODEL, {"W1": _P["W1"]}, x=_X, xi=_XI, epochs=2), "missing key 'W2'"),
    ],
)
def test_scalar_keywords_without_meaning_for_a_deq_are_one_line_errors(call, needle):
    with pytest.raises(SideqInputError) as err:
        call()
    assert needle in str(err.value) and "\n" not in str(err.value)
