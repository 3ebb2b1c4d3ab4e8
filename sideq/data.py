r"""Laws of the input X and data sets.

* :func:`uniform` -- X ~ Unif([low, high]^d) (the paper's experiments: d = 1, [0, 1]).
* :func:`gaussian` -- X ~ N(μ, Σ) in any d.
* :func:`sample` draws from a law; :func:`second_moment` is E[XXᵀ] (Eq. (5));
  :func:`load_data` reads ``.npy``, ``.npz`` and ``.csv`` files.

Laws are frozen dataclasses registered as pytrees (arrays are leaves, the
quadrature sizes are static), so they can be passed to jitted functions.
Quadrature rules for the population risk live in :mod:`sideq.risk`.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from sideq.errors import SideqInputError

__all__ = [
    "Uniform", "Gaussian", "uniform", "gaussian", "sample", "seed_keys", "seeded_normal", "second_moment",
    "load_data",
]


@dataclasses.dataclass(frozen=True)
class Uniform:
    """X ~ Unif(∏ᵢ [lowᵢ, highᵢ]); ``nodes`` Gauss–Legendre nodes per axis."""

    low: np.ndarray  # (d,)
    high: np.ndarray  # (d,)
    nodes: int = 0  # 0: automatic, see sideq.risk

    @property
    def d(self) -> int:
        return int(np.shape(self.low)[0])


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """X ~ N(mean, cov); ``nodes`` quadrature nodes per axis of the 2-D rule (0: 144)."""

    mean: np.ndarray  # (d,)
    cov: np.ndarray  # (d, d)
    cov_sqrt: np.ndarray  # (d, d), S with S Sᵀ = cov
    nodes: int = 0

    @property
    def d(self) -> int:
        return int(np.shape(self.mean)[0])


jax.tree_util.register_dataclass(Uniform, data_fields=["low", "high"], meta_fields=["nodes"])
jax.tree_util.register_dataclass(
    Gaussian, data_fields=["mean", "cov", "cov_sqrt"], meta_fields=["nodes"]
)


def _as_vector(name, value, d):
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full((d,), float(arr))
    if arr.ndim != 1 or arr.shape[0] != d:
        raise SideqInputError(f"{name}: expected a scalar or shape ({d},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SideqInputError(f"{name}: contains non-finite values {arr.tolist()}")
    return arr


def _check_nodes(nodes):
    if isinstance(nodes, bool) or not isinstance(nodes, (int, np.integer)) or nodes < 0:
        raise SideqInputError(f"nodes: expected an integer >= 1 (or 0 for the default), got {nodes!r}")
    return int(nodes)


def uniform(low=0.0, high=1.0, d: int | None = None, *, nodes: int = 0) -> Uniform:
    """X ~ Unif([low, high]^d); ``low``/``high`` scalars or shape (d,).

    ``nodes``: Gauss–Legendre nodes per axis for the population risk (0: 128,
    64, 24, 12, 8 for d = 1..5)."""
    nodes = _check_nodes(nodes)
    if d is None:
        d = max(np.size(low), np.size(high))
    if int(d) < 1:
        raise SideqInputError(f"d: must be >= 1, got {d}")
    d = int(d)
    lo, hi = _as_vector("low", low, d), _as_vector("high", high, d)
    if not np.all(hi > lo):
        raise SideqInputError(f"high: must exceed low in every coordinate, got low={lo.tolist()} high={hi.tolist()}")
    return Uniform(lo, hi, int(nodes))


def gaussian(mean=0.0, cov=1.0, d: int | None = None, *, nodes: int = 0) -> Gaussian:
    """X ~ N(mean, cov) in any dimension; ``cov`` a scalar (isotropic), shape (d,)
    (diagonal) or (d, d) (symmetric positive semidefinite).

    ``nodes``: nodes per axis of the 2-D rule of the population risk (0: 144;
    raise it for steep targets, see :mod:`sideq.risk`)."""
    nodes = _check_nodes(nodes)
    cov_arr = np.asarray(cov, dtype=np.float64)
    if d is None:
        d = max(np.size(mean), cov_arr.shape[0] if cov_arr.ndim >= 1 else 1)
    d = int(d)
    if d < 1:
        raise SideqInputError(f"d: must be >= 1, got {d}")
    mu = _as_vector("mean", mean, d)
    if cov_arr.ndim == 0:
        cov_arr = float(cov_arr) * np.eye(d)
    elif cov_arr.ndim == 1:
        cov_arr = np.diag(_as_vector("cov", cov_arr, d))
    if cov_arr.shape != (d, d):
        raise SideqInputError(f"cov: expected a scalar, shape ({d},) or ({d}, {d}), got {cov_arr.shape}")
    if not np.all(np.isfinite(cov_arr)):
        raise SideqInputError("cov: contains non-finite values")
    if not np.allclose(cov_arr, cov_arr.T, rtol=1e-12, atol=1e-14 * np.abs(cov_arr).max()):
        raise SideqInputError("cov: must be symmetric; pass (C + C.T) / 2")
    lam, vec = np.linalg.eigh(cov_arr)
    if lam.min() < -1e-12 * max(lam.max(), 1e-300):
        raise SideqInputError(
            f"cov: must be positive semidefinite, smallest eigenvalue is {lam.min():.3g}"
        )
    sqrt = vec * np.sqrt(np.clip(lam, 0, None))  # S = V Λ^{1/2}, S Sᵀ = cov
    return Gaussian(mu, cov_arr, sqrt, int(nodes))


def sample(dist, key, n: int):
    """Draw ``n`` inputs, shape (n, d), in the default float dtype."""
    if int(n) < 1:
        raise SideqInputError(f"n: must be >= 1, got {n}")
    dtype = jnp.result_type(float)
    if isinstance(dist, Uniform):
        lo, hi = jnp.asarray(dist.low, dtype), jnp.asarray(dist.high, dtype)
        return jax.random.uniform(key, (int(n), dist.d), dtype, minval=lo, maxval=hi)
    if isinstance(dist, Gaussian):
        z = jax.random.normal(key, (int(n), dist.d), dtype)
        return jnp.asarray(dist.mean, dtype) + z @ jnp.asarray(dist.cov_sqrt, dtype).T
    raise SideqInputError(f"dist: expected sideq.uniform(...) or sideq.gaussian(...), got {type(dist).__name__}")


def seed_keys(seed: int):
    """(key_data, key_init): the two PRNG keys of one seeded run.

    The convention that ``sideq reproduce`` (a figure's run with ``--seed S``)
    and ``sideq descent``/``flow``/``sweep --seed S`` share: the data are
    ``sample(dist, key_data, n)`` and a ``normal:MEAN,STD`` start is
    :func:`seeded_normal`, so the same seed gives the same data and θ(0) in
    every entry point."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SideqInputError(f"seed: expected an integer >= 0, got {seed!r}")
    key_data, key_init = jax.random.split(jax.random.PRNGKey(int(seed)))
    return key_data, key_init


def seeded_normal(seed: int, mean, std, p: int) -> np.ndarray:
    """θ(0) = MEAN + STD·z, z = ``jax.random.normal(key_init, (p,))`` with the
    init key of :func:`seed_keys` (in the default float dtype): the ``normal:``
    start of ``sideq reproduce --seed`` and ``sideq descent --seed``."""
    z = jax.random.normal(seed_keys(seed)[1], (p,), jnp.result_type(float))
    return np.asarray(mean) + std * np.asarray(z)


def second_moment(dist) -> np.ndarray:
    """E[XXᵀ] (the matrix of Eq. (5) and Theorems 3.4, 3.6), float64 numpy."""
    if isinstance(dist, Uniform):
        m = (dist.low + dist.high) / 2
        var = (dist.high - dist.low) ** 2 / 12
        return np.outer(m, m) + np.diag(var)
    if isinstance(dist, Gaussian):
        return np.asarray(dist.cov) + np.outer(dist.mean, dist.mean)
    raise SideqInputError(f"dist: expected sideq.uniform(...) or sideq.gaussian(...), got {type(dist).__name__}")


def _read_csv(path):
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and not all(c.strip() == "" for c in r)]
    if not rows:
        return None, np.zeros((0, 0))
    header = None
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    width = len(header or rows[0])
    k = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if k is not None:
        raise SideqInputError(f"data: {path} has rows of different lengths (data row {k + 1} has {len(rows[k])} "
                              f"columns, expected {width}); fix the file")
    try:
        data = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError as err:
        raise SideqInputError(f"data: {path} has a non-numeric entry ({err}); fix the file") from None
    if data.size == 0:
        data = np.zeros((0, len(header) if header else 0))
    return header, data


def as_real(a, what):
    """``a`` as float64; complex numbers are refused (casting would drop the imaginary part)."""
    a = np.asarray(a)
    if np.iscomplexobj(a):
        raise SideqInputError(f"{what} holds complex numbers; give real numbers")
    try:
        return a.astype(np.float64)
    except (TypeError, ValueError):
        raise SideqInputError(f"{what} holds values that are not numbers; give real numbers") from None


def load_data(path, *, d: int | None = None):
    """Read a data set; returns ``(x, y)`` with x of shape (n, d) and y (n,) or None.

    * ``.npz``: arrays ``x`` ((n,) or (n, d)) and optionally ``y`` (n,).
    * ``.npy``: one array (n,) or (n, k).
    * ``.csv``: numbers, comma separated; with a header row a column named ``y``
      is the target and the others are x.
    Without named columns (npy, csv without header): all columns are x, unless
    ``d`` is given and the file has d + 1 columns, in which case the last is y.
    When y is absent the caller builds targets f(x) = σ(ξᵀx) (see
    :func:`sideq.risk.targets`).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SideqInputError(f"data: file {path!r} does not exist; check the path")
    ext = os.path.splitext(path)[1].lower()
    y = None
    named = False  # columns named by the file (npz arrays, csv header): no d + 1 rule
    try:
        if ext == ".npz":
            named = True
            with np.load(path) as f:
                if "x" not in f:
                    raise SideqInputError(
                        f"data: {path} has arrays {sorted(f.files)}; expected one named 'x' (and optionally 'y')"
                    )
                x = as_real(f["x"], f"data: x in {path}")
                y = as_real(f["y"], f"data: y in {path}") if "y" in f else None
        elif ext == ".npy":
            with open(path, "rb") as fh:
                if fh.read(6) != b"\x93NUMPY":
                    raise SideqInputError(f"data: {path} is not a .npy file (no NumPy header); write it with numpy.save")
            try:
                x = as_real(np.load(path), f"data: x in {path}")
            except ValueError as err:
                if "pickle" not in str(err):
                    raise
                raise SideqInputError(f"data: {path} holds Python objects, not numbers; save a float array") from None
        elif ext == ".csv":
            header, x = _read_csv(path)
            named = header is not None
            if header is not None and "y" in header:
                j = header.index("y")
                y, x = x[:, j], np.delete(x, j, axis=1)
        else:
            raise SideqInputError(f"data: unsupported file type {ext!r} for {path}; use .npy, .npz or .csv")
    except SideqInputError:
        raise
    except (OSError, EOFError, ValueError, TypeError) as err:
        raise SideqInputError(f"data: cannot read {path} as {ext} ({type(err).__name__}: {err}); check the file") from None
    except Exception as err:  # zipfile.BadZipFile and friends from np.load
        raise SideqInputError(f"data: cannot read {path} as {ext} ({type(err).__name__}); check the file") from None
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise SideqInputError(f"data: x in {path} must have shape (n,) or (n, d), got {x.shape}")
    if y is None and not named and d is not None and x.shape[1] == int(d) + 1:
        x, y = x[:, :-1], x[:, -1]
    if x.shape[0] == 0:
        raise SideqInputError(f"data: {path} holds no samples; give a file with at least one row")
    if d is not None and x.shape[1] != int(d):
        raise SideqInputError(
            f"data: {path} has x of dimension {x.shape[1]} but xi has length {d}; "
            "make them agree"
        )
    if not np.all(np.isfinite(x)):
        raise SideqInputError(f"data: x in {path} contains NaN or inf; remove those rows")
    if y is not None:
        y = np.ravel(y)
        if y.shape[0] != x.shape[0]:
            raise SideqInputError(f"data: y in {path} has {y.shape[0]} entries but x has {x.shape[0]} rows")
        if not np.all(np.isfinite(y)):
            raise SideqInputError(f"data: y in {path} contains NaN or inf; remove those rows")
    return x, y
