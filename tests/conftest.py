"""Shared test setup for sideq.

Tests choose their precision: float64 is switched on here, at import, before any
test module builds an array.  The library itself never touches the flag.  Float32
tests pass explicit float32 arrays (with x64 on they stay float32).

The helpers below are *independent* references: plain numpy/scipy, no sideq and no
jax, so a test comparing against them cannot pass by sharing a bug with the library.
"""

import atexit
import os
import shutil
import tempfile

import jax

jax.config.update("jax_enable_x64", True)

# One persistent compilation cache for the whole run, in a fresh folder that
# the first process to load this file (pytest itself, or its xdist
# controller) makes and removes at exit; the workers and the tests'
# subprocesses (the CLI, notebook kernels) inherit it through the
# environment.  Files running in different workers, and subprocesses, compile
# many of the same library programs: the second compile of a program is then
# a load (XLA keys an entry by the program and its options, so a different
# program never hits).  A test that needs a cache of its own sets it.
if "SIDEQ_TEST_JAX_CACHE" not in os.environ:
    os.environ["SIDEQ_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="sideq-test-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["SIDEQ_TEST_JAX_CACHE"], ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["SIDEQ_TEST_JAX_CACHE"])
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])

import math  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.optimize import brentq  # noqa: E402
from scipy.special import expit, ndtr  # noqa: E402

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu(z):
    return z * ndtr(z)


def _gelu_d(z):
    return ndtr(z) + z * _INV_SQRT_2PI * np.exp(-0.5 * z * z)


# name -> (sigma, sigma') in float64 numpy
NP_ACTIVATIONS = {
    "sigmoid": (expit, lambda z: expit(z) * expit(-z)),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "softplus": (lambda z: np.logaddexp(0.0, z), expit),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (np.asarray(z) > 0).astype(float)),
    "leaky_relu": (lambda z: np.where(z >= 0, z, 0.01 * z), lambda z: np.where(np.asarray(z) >= 0, 1.0, 0.01)),
    "gelu": (_gelu, _gelu_d),
    "identity": (lambda z: z, lambda z: np.ones_like(np.asarray(z, float))),
    "linear": (lambda z: z, lambda z: np.ones_like(np.asarray(z, float))),
}


def brent_root(sigma, a, theta2, lo=None, hi=None):
    """Root of F(y) = y - sigma(a + theta2*y) by scipy's brentq (float64).

    Without a bracket, [-1, 1] is doubled until F changes sign (fine when F is
    monotone, which is where the tests use it)."""
    a, theta2 = float(a), float(theta2)

    def F(y):
        return y - float(sigma(a + theta2 * y))

    if lo is None:
        lo, hi = -1.0, 1.0
        while F(lo) * F(hi) > 0:
            lo, hi = 2 * lo, 2 * hi
            assert hi < 1e12, "no sign change found"
    return brentq(F, lo, hi, xtol=1e-20, rtol=4 * np.finfo(float).eps, maxiter=1000)


def closed_form_grads(dsigma, theta, x, y, bias):
    """Eq. (1) for the single-index DEQ:  with w = a + theta2*y and s = sigma'(w),
    dy/dtheta = s/(1 - theta2 s) * (x, [1,] y),  dy/dx = s/(1 - theta2 s) * theta1."""
    theta = np.asarray(theta, float)
    x = np.atleast_1d(np.asarray(x, float))
    d = x.shape[-1]
    theta1, theta2 = theta[:d], theta[-1]
    b = theta[d] if bias else 0.0
    w = theta1 @ x + b + theta2 * y
    s = float(dsigma(w))
    k = s / (1.0 - theta2 * s)
    g_theta = k * np.concatenate([x, [1.0] if bias else [], [y]])
    g_x = k * theta1
    return g_theta, g_x


@pytest.fixture(scope="session")
def ref():
    """Namespace of the independent numpy/scipy references above."""
    return types.SimpleNamespace(
        act=NP_ACTIVATIONS,
        brent_root=brent_root,
        closed_form_grads=closed_form_grads,
    )
