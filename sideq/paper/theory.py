r"""Predictions and constants of Section 3 of the paper, as functions.

Every function cites the result it implements.  Where the printed statement is
wrong (see ERRATA.md) both the printed and the corrected prediction are given,
side by side, so that :mod:`sideq.paper.verify` can show the printed one failing.

Notation: e = (0, …, 0, 1) ∈ ℝ^{d+1}, Σ₂ = E[XXᵀ], φ = θ1/(1 − θ2),
w = ‖θ − e‖² (Theorem 3.1, Lemma 3.7), r = ‖θ − (ξ, 0)‖² (Theorem 3.8).

Results are float64 numpy numbers whatever the caller's ``jax_enable_x64``: the
JAX parts run under a scoped ``jax.enable_x64`` (the global flag is never
changed).  σ and σ' are :mod:`sideq.activations`' functions (σ' by
``jax.grad``); equilibria y_θ(x) come from the library's solver
:func:`sideq.scalar.solve` (safeguarded Newton on F(y) = y − σ(a + θ2 y), strictly
increasing when |θ2| L < 1, the set Θ of Theorem 3.8), jitted and vmapped over
θ; a grid search compiles once per shape (fixed-size chunks).  Expectations are
quadrature sums: uniform X, and Gaussian X in d = 1, over the nodes of
:func:`expectation_nodes` (the risk's tensor Gauss–Legendre rule; composite
Gauss–Legendre panels of :func:`sideq.data.normal_rule`, restricted to
[−α, α] when the indicator 1{‖X‖ ≤ α} of Theorem 3.8 is present); Gaussian X in
d > 1 by the reduction of :func:`gaussian_block` (one quadrature dimension along
θ1, the rest in closed form).  No Monte Carlo anywhere.

Constants defined as an inf/sup over the compact set Θ of Theorem 3.8
(ρ, and the sup in λ2 of Theorem 3.9) are computed by :func:`rho` /
:func:`moment4_sup`: an exhaustive grid over Θ (d = 1: (θ1, θ2) on a
``grid × grid`` lattice of the rectangle; d > 1: θ1 in polar/spherical
coordinates of the ball times θ2) followed by a bounded Nelder–Mead refinement
from the best grid points.  The result is an *estimate from above* of the
infimum (every value is attained at a point of Θ), and its accuracy is reported
as the relative change between the grid minimum and the refined minimum.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from sideq.data import Uniform, normal_rule, second_moment
from sideq.risk import quadrature_rule
from sideq.scalar import solve

__all__ = [
    "Theorem38",
    "Theorem39",
    "conserved_w",
    "corollary_3_1_radius",
    "eq_13_bound",
    "eq_15_rdot",
    "eq_18_bounds",
    "eq_3_grad_printed",
    "eq_8_next_w",
    "equilibria",
    "expectation_nodes",
    "gaussian_block",
    "lemma_3_2_side",
    "single_index_terms",
    "lemma_3_7",
    "moment4_sup",
    "rho",
    "second_moment_np",
    "sigma",
    "theorem_3_3_limit_corrected",
    "theorem_3_3_limit_printed",
    "theorem_3_4_rate_corrected",
    "theorem_3_4_rate_printed",
    "theorem_3_6_kappa",
    "theorem_3_6_rate_corrected",
    "theorem_3_6_rate_printed",
    "theorem_3_6_eta0",
    "theorem_3_6_log_rate_corrected",
    "theorem_3_6_log_rate_printed",
    "lemma_3_7_lipschitz",
    "linear_grad",
    "linear_hessian",
    "linear_risk",
    "theorem_3_8",
    "theorem_3_9",
]


# ---------------------------------------------------------------------------
# σ, σ' and the equilibria: the library's own JAX code (sideq.activations,
# sideq.solve), jitted once per (model, shapes), evaluated in float64.


def _x64():
    """float64 for the computations of this module, scoped (the global flag is untouched)."""
    return jax.enable_x64(True)


@functools.partial(jax.jit, static_argnames=("model",))
def _sigma_and_slope(model, z):
    """(σ(z), σ'(z)) elementwise, σ = ``model.activation`` (σ' by ``jax.grad``)."""
    fn = model.activation.fn
    flat = jnp.ravel(z)
    ds = jax.vmap(jax.grad(lambda t: fn(t)))(flat)
    return fn(z), ds.reshape(jnp.shape(z))


def sigma(model, z):
    """(σ(z), σ'(z)) as float64 numpy arrays, from :mod:`sideq.activations`."""
    with _x64():
        s, ds = _sigma_and_slope(model, jnp.asarray(z, jnp.float64))
        return np.asarray(s), np.asarray(ds)


@functools.partial(jax.jit, static_argnames=("model",))
def _equilibria(model, theta1, theta2, x):
    """y_θ(x) for θ1 (K, d), θ2 (K,), nodes x (N, d) -> (K, N): :func:`sideq.scalar.solve`
    vmapped over θ (it vmaps over x itself); NaN where the solve did not converge."""

    def one(t1, t2):
        return solve(model, jnp.append(t1, t2), x).y  # (NaN where the solve failed)

    return jax.vmap(one)(theta1, theta2)


def equilibria(model, theta1, theta2, x):
    """y_θ(x) (Eq. (10)) for a batch: θ1 (K, d), θ2 (K,), x (N, d) -> y (K, N), float64
    numpy, by the library's solver :func:`sideq.scalar.solve` (NaN where it fails)."""
    with _x64():
        return np.asarray(
            _equilibria(
                model, jnp.asarray(theta1, jnp.float64), jnp.asarray(theta2, jnp.float64), jnp.asarray(x, jnp.float64)
            )
        )


def _chunk_size(n_nodes, budget=32_768, cap=64):
    """θ's per jitted call: a power of two with chunk × nodes ≲ budget.  Every call
    (grid and Nelder–Mead's single points) is padded to it, so a search compiles
    once per (model, nodes); small enough that a padded single point costs
    ~0.3 ms (128 nodes), less than a second compile (~1 s)."""
    k = max(1, min(cap, budget // max(1, n_nodes)))
    return 1 << (k.bit_length() - 1)


def _padded(jfn, T1, T2, chunk):
    """Apply a jitted batch function to θ's in chunks of exactly ``chunk`` rows (the
    last one padded by repeating its final row), so every call has the same shape."""
    out = []
    for i in range(0, len(T2), chunk):
        a, b = T1[i : i + chunk], T2[i : i + chunk]
        m = len(b)
        if m < chunk:
            a = np.concatenate([a, np.repeat(a[-1:], chunk - m, 0)])
            b = np.concatenate([b, np.repeat(b[-1:], chunk - m, 0)])
        out.append(np.asarray(jfn(jnp.asarray(a), jnp.asarray(b)))[:m])
    return np.concatenate(out)


def lipschitz(model) -> float:
    """L = ‖σ‖_Lip (Section 3.2)."""
    return float(model.activation.lipschitz)


# ---------------------------------------------------------------------------
# Laws of X.


def second_moment_np(dist) -> np.ndarray:
    """Σ₂ = E[XXᵀ] (Eq. (5)) in closed form: :func:`sideq.data.second_moment`."""
    return second_moment(dist)


def max_norm(dist) -> float:
    """sup ‖X‖ over the support (inf for a Gaussian)."""
    if isinstance(dist, Uniform):
        c = np.maximum(np.abs(dist.low), np.abs(dist.high))
        return float(np.linalg.norm(c))
    return math.inf


def expectation_nodes(dist, alpha: float | None = None):
    """Nodes x (N, d) and weights w (N,) with Σ w h(x) = E[h(X) 1{‖X‖ ≤ α}] (to rounding
    for smooth h).

    ``alpha=None`` means no indicator.  Uniform: the tensor Gauss–Legendre rule
    of :func:`sideq.risk.quadrature_rule`; the indicator must then cover the
    box (α ≥ sup‖X‖), otherwise the integrand is discontinuous and the rule is
    not accurate (raises).  Gaussian, d = 1: composite Gauss–Legendre panels
    (the rule of :func:`sideq.risk.quadrature_rule`) mapped onto
    {|μ + s z| ≤ α} exactly.  Gaussian, d > 1: no fixed nodes serve every θ;
    use :func:`gaussian_block` (raises here).
    """
    if isinstance(dist, Uniform):
        x, w = quadrature_rule(dist)
        if alpha is not None and alpha < max_norm(dist) * (1 - 1e-12):
            raise ValueError("alpha < sup ||X||: use alpha >= the box's largest norm for the uniform law")
        return np.asarray(x, float), np.asarray(w, float)
    mu = np.asarray(dist.mean, float)
    S = np.asarray(dist.cov_sqrt, float)
    d = mu.shape[0]
    if d > 1:
        raise ValueError(
            f"expectation_nodes: Gaussian X in d = {d} > 1 has no theta-independent rule here; "
            "use sideq.paper.theory.gaussian_block (one quadrature axis along theta1, the rest exact)"
        )
    s = float(S[0, 0])
    if alpha is None:
        z, w = quadrature_rule(dist)
        return (mu[0] + s * z)[:, None], np.asarray(w, float)
    lo, hi = (-alpha - mu[0]) / s, (alpha - mu[0]) / s  # z-interval
    z, w = normal_rule(24 * 12, max(lo, -9.0), min(hi, 9.0))  # 24 panels of 12 nodes
    return (mu[0] + s * z)[:, None], w


GAUSS_BLOCK_NODES = 576  # 48 panels of 12 Gauss–Legendre nodes


def _gaussian_rule(n, truncated):
    """The outer 1-D rule of :func:`gaussian_block`: nodes and weights for
    E[h(Z)], Z ~ N(0, 1) (no indicator: :func:`sideq.data.normal_rule` on
    [−9, 9]); or, with the indicator, plain composite Gauss–Legendre on
    t ∈ [−π/2, π/2] (the same panels: ``normal_rule``'s weights divided by
    the density, which is ≥ 0.29 there)."""
    if not truncated:
        return normal_rule(n)
    t, w = normal_rule(n, -math.pi / 2, math.pi / 2)
    return t, w * math.sqrt(2 * math.pi) * np.exp(t**2 / 2)


def _ndtr_diff(a, b):
    """Φ(b) − Φ(a) for a ≤ b without cancellation in the upper tail."""
    ndtr = jax.scipy.special.ndtr
    return jnp.where(a > 0, ndtr(-a) - ndtr(-b), ndtr(b) - ndtr(a))


@functools.partial(jax.jit, static_argnames=("model", "truncated"))
def _gaussian_stats(model, theta1, theta2, mean, cov, alpha, z, wz, truncated):
    r"""For a batch of θ: M(θ) = E[(X, y_θ(X))(X, y_θ(X))ᵀ 1{‖X‖ ≤ α}] (K, d+1, d+1) and
    m4(θ) = E[‖(X, y_θ(X))‖⁴] (no indicator), X ~ N(μ, Σ); see :func:`gaussian_block`."""
    d = mean.shape[0]

    def one(t1, t2):
        n1 = jnp.sqrt(t1 @ t1)
        e = jnp.where(n1 > 0, t1 / jnp.where(n1 > 0, n1, 1), jnp.eye(d, dtype=t1.dtype)[0])
        ms, Se = e @ mean, cov @ e
        vs = e @ Se
        if truncated:  # d = 2: X = s e + W f, |s| ≤ α, |W| ≤ √(α² − s²)
            f = jnp.stack([-e[1], e[0]])
            s = alpha * jnp.sin(z)
            ps = jnp.exp(-0.5 * (s - ms) ** 2 / vs) / jnp.sqrt(2 * jnp.pi * vs)
            w = wz * ps * alpha * jnp.cos(z)
            mW = f @ mean + (f @ Se) * (s - ms) / vs
            c = f @ cov @ f - (f @ Se) ** 2 / vs
            sc = jnp.sqrt(c)
            h = alpha * jnp.abs(jnp.cos(z))
            a, b = (-h - mW) / sc, (h - mW) / sc
            P = _ndtr_diff(a, b)
            pa, pb = jnp.exp(-0.5 * a * a), jnp.exp(-0.5 * b * b)
            pa, pb = pa / jnp.sqrt(2 * jnp.pi), pb / jnp.sqrt(2 * jnp.pi)
            EW = mW * P + sc * (pa - pb)
            EW2 = mW**2 * P + 2 * mW * sc * (pa - pb) + c * (P + a * pa - b * pb)
            y = _equilibria(model, n1[None, None], t2[None], s[:, None])[0]
            ee, ef, ff = jnp.outer(e, e), jnp.outer(e, f) + jnp.outer(f, e), jnp.outer(f, f)
            Mxx = jnp.sum(w * s * s * P) * ee + jnp.sum(w * s * EW) * ef + jnp.sum(w * EW2) * ff
            Mxy = jnp.sum(w * y * s * P) * e + jnp.sum(w * y * EW) * f
            Myy = jnp.sum(w * y * y * P)
            m4 = jnp.nan
        else:  # any d: s = eᵀX ~ N(ms, vs); E[X | s] and Cov[X | s] in closed form
            s = ms + jnp.sqrt(vs) * z
            w = wz
            # vs = 0 (θ1 ⟂ the support of a singular Σ) forces Σe = 0: s is a point mass, E[X | s] = μ
            k = jnp.where(vs > 0, Se / jnp.where(vs > 0, vs, 1.0), 0.0)
            EX = mean[None, :] + (s - ms)[:, None] * k[None, :]  # (n, d)
            trC = jnp.trace(cov) - Se @ k
            y = _equilibria(model, n1[None, None], t2[None], s[:, None])[0]
            Mxx = cov + jnp.outer(mean, mean)
            Mxy = (w * y) @ EX
            Myy = jnp.sum(w * y * y)
            EX4 = (jnp.trace(cov) + mean @ mean) ** 2 + 2 * jnp.trace(cov @ cov) + 4 * mean @ cov @ mean
            EX2_s = jnp.sum(EX * EX, 1) + trC
            m4 = EX4 + 2 * jnp.sum(w * y * y * EX2_s) + jnp.sum(w * y**4)
        M = jnp.zeros((d + 1, d + 1), Mxx.dtype)
        M = M.at[:d, :d].set(Mxx).at[:d, d].set(Mxy).at[d, :d].set(Mxy).at[d, d].set(Myy)
        return M, m4

    return jax.vmap(one)(theta1, theta2)


def gaussian_block(model, theta1, theta2, dist, alpha=None, *, n=GAUSS_BLOCK_NODES):
    r"""Theorem 3.8's matrix M(θ) = E[(X, y_θ(X))(X, y_θ(X))ᵀ 1{‖X‖ ≤ α}] and Theorem 3.9's
    E[‖(X, y_θ(X))‖⁴] for Gaussian X ~ N(μ, Σ) in any d, without sampling.

    y_θ(X) = Y(‖θ1‖ s) depends on X only through s = eᵀX, e = θ1/‖θ1‖ (any unit e
    when θ1 = 0, where y is constant), and s ~ N(eᵀμ, eᵀΣe).  One quadrature
    axis, the rest in closed form:

    * no indicator (``alpha=None``), any d: X | s is Gaussian with
      E[X | s] = μ + Σe (s − eᵀμ)/eᵀΣe and Cov[X | s] = Σ − ΣeeᵀΣ/eᵀΣe, so
      E[XXᵀ] = Σ + μμᵀ, E[yX] = E[y E[X | s]], E[y²] and
      E[(‖X‖² + y²)²] (E‖X‖⁴ = (tr Σ + ‖μ‖²)² + 2 tr Σ² + 4μᵀΣμ,
      E[‖X‖² | s] = ‖E[X | s]‖² + tr Cov[X | s]) are 1-D integrals over s,
      done with :func:`sideq.data.normal_rule` (``n`` nodes on [−9, 9]);
    * with the indicator 1{‖X‖ ≤ α}, d = 2: X = s e + W f (f ⊥ e), the disk is
      |s| ≤ α, |W| ≤ √(α² − s²), and W | s is normal, so P, E[W 1], E[W² 1]
      given s are truncated-normal moments (Φ, φ).  s = α sin t removes the
      square-root endpoint singularity; composite Gauss–Legendre in t (``n``
      nodes, :func:`_gaussian_rule`).  d ≥ 3 or a singular Σ with an indicator:
      not covered (raises).  Without it a singular Σ is fine.

    Accuracy: rounding level; tests/test_theory.py compares n with 2n (≤ 1e-12
    relative) and with a 4·10⁶-sample Monte Carlo (within 4 standard errors).
    Returns ``(M (K, d+1, d+1), m4 (K,))`` as float64 numpy (m4 is NaN with an
    indicator)."""
    _check_indicator(dist, alpha)
    truncated = alpha is not None
    z, wz = _gaussian_rule(n, truncated)
    with _x64():
        args = [
            jnp.asarray(a, jnp.float64)
            for a in (theta1, theta2, dist.mean, dist.cov, 0.0 if alpha is None else alpha, z, wz)
        ]
        M, m4 = _gaussian_stats(model, *args, truncated=truncated)
        return np.asarray(M), np.asarray(m4)


def _check_indicator(dist, alpha):
    """The indicator 1{‖X‖ ≤ α} of :func:`gaussian_block` is exact for d = 2 and a
    positive definite Σ (its conditional law of W given s needs Var[W | s] > 0)."""
    if alpha is None:
        return
    if dist.d != 2:
        raise ValueError(
            f"Gaussian X in d = {dist.d}: the indicator 1{{|X| <= alpha}} is done exactly "
            "for d = 2 only; pass alpha=None (no indicator) or use d = 2"
        )
    if not np.linalg.eigvalsh(np.asarray(dist.cov, float))[0] > 0:
        raise ValueError(
            "Gaussian X with a singular cov: the indicator 1{|X| <= alpha} is done for a "
            "positive definite cov only; pass alpha=None (no indicator) or a positive definite cov"
        )


def _expectation_fun(model, dist, alpha, which):
    """``fun(θ1, θ2) -> (K,)``: λ_min of Theorem 3.8's matrix (``which="lmin"``) or
    Theorem 3.9's fourth moment (``"m4"``) for a batch of θ, by nodes
    (uniform, Gaussian d = 1) or by :func:`gaussian_block` (Gaussian d > 1)."""
    if isinstance(dist, Uniform) or dist.d == 1:
        x, w = expectation_nodes(dist, alpha)
        with _x64():
            xj, wj = jnp.asarray(x, jnp.float64), jnp.asarray(w, jnp.float64)
        k = 0 if which == "lmin" else 1
        return _batch_fun(lambda t1, t2: _node_stats(model, t1, t2, xj, wj)[k], len(w))
    _check_indicator(dist, alpha)
    truncated = alpha is not None
    z, wz = _gaussian_rule(GAUSS_BLOCK_NODES, truncated)
    with _x64():
        consts = [jnp.asarray(a, jnp.float64) for a in (dist.mean, dist.cov, 0.0 if alpha is None else alpha, z, wz)]

    def jfn(t1, t2):
        M, m4 = _gaussian_stats(model, t1, t2, *consts, truncated=truncated)
        return jnp.linalg.eigvalsh(M)[:, 0] if which == "lmin" else m4

    return _batch_fun(jfn, len(z))


# ---------------------------------------------------------------------------
# Section 3.1, linear DEQ.


def conserved_w(theta):
    """Theorem 3.1: w = ‖θ1‖² + (θ2 − 1)² = ‖θ − e‖² is constant along the flow."""
    theta = np.asarray(theta, float)
    return np.sum(theta[..., :-1] ** 2, -1) + (theta[..., -1] - 1) ** 2


def lemma_3_2_side(theta0):
    """Lemma 3.2: θ2(t) ≠ 1 for all t; the flow stays on the side sign(1 − θ2(0))."""
    return float(np.sign(1 - np.asarray(theta0, float)[-1]))


def theorem_3_3_limit_printed(theta0, xi):
    """Theorem 3.3 as printed: (αξ, 1 − α), α = sign(θ2(0)) ‖θ(0)‖/√(‖ξ‖² + 1),
    with the paper's sign(0) = +1 (Section 1.3)."""
    theta0, xi = np.asarray(theta0, float), np.atleast_1d(np.asarray(xi, float))
    a = (1.0 if theta0[-1] >= 0 else -1.0) * np.linalg.norm(theta0) / math.sqrt(xi @ xi + 1)
    return np.append(a * xi, 1 - a)


def theorem_3_3_limit_corrected(theta0, xi):
    """Theorem 3.3 corrected (ERRATA.md §2): α = sign(1 − θ2(0)) ‖θ(0) − e‖/√(‖ξ‖² + 1)."""
    theta0, xi = np.asarray(theta0, float), np.atleast_1d(np.asarray(xi, float))
    a = np.sign(1 - theta0[-1]) * math.sqrt(conserved_w(theta0)) / math.sqrt(xi @ xi + 1)
    return np.append(a * xi, 1 - a)


def theorem_3_4_rate_printed(dist, beta):
    """Theorem 3.4 as printed: ‖φ(t) − ξ‖² ≤ ‖φ(0) − ξ‖² exp(−(4/β²) λ_min(Σ₂) t),
    β a *lower* bound on |1 − θ2(t)|.  Returns (prefactor 1, rate 4λ_min/β²).
    The best (largest) admissible β is inf_t |1 − θ2(t)|, observed on the flow."""
    lam = float(np.linalg.eigvalsh(second_moment_np(dist))[0])
    return 1.0, 4 * lam / beta**2


def theorem_3_4_rate_corrected(dist, theta0):
    """Theorem 3.4 corrected (ERRATA.md §3): ‖φ(t) − ξ‖² ≤ κ ‖φ(0) − ξ‖² exp(−(4/β²) λ_min t)
    with β = ‖θ(0) − e‖ ≥ |1 − θ2(t)| (an upper bound, Theorem 3.1).
    Returns (prefactor κ, rate)."""
    ev = np.linalg.eigvalsh(second_moment_np(dist))
    return float(ev[-1] / ev[0]), 4 * float(ev[0]) / float(conserved_w(theta0))


def theorem_3_6_kappa(dist) -> float:
    """Theorem 3.6: κ = λ_max(Σ₂)/λ_min(Σ₂)."""
    ev = np.linalg.eigvalsh(second_moment_np(dist))
    return float(ev[-1] / ev[0])


def _theorem_3_6_decrement(dist, theta0, eta, variant):
    """(κ, c) with q = 1 − c the contraction of Theorem 3.6: c = η/(4κw(0)) as
    printed, ηλ_min/(2κw(0)) corrected (ERRATA.md §4)."""
    ev = np.linalg.eigvalsh(second_moment_np(dist))
    k = float(ev[-1] / ev[0])
    w0 = float(conserved_w(theta0))
    return k, (eta / (4 * k * w0) if variant == "printed" else eta * float(ev[0]) / (2 * k * w0))


def theorem_3_6_rate_printed(dist, theta0, eta):
    """Theorem 3.6 as printed: ‖φ(t) − ξ‖² ≤ κ (1 − η/(4κ w(0)))^t ‖φ(0) − ξ‖².
    Returns (prefactor κ, contraction factor q per step)."""
    k, c = _theorem_3_6_decrement(dist, theta0, eta, "printed")
    return k, 1 - c


def theorem_3_6_log_rate_printed(dist, theta0, eta):
    """(κ, −log q) of :func:`theorem_3_6_rate_printed`, −log q = −log1p(−η/(4κw(0)))
    computed without forming q."""
    k, c = _theorem_3_6_decrement(dist, theta0, eta, "printed")
    return k, -math.log1p(-c)


def theorem_3_6_rate_corrected(dist, theta0, eta):
    """Theorem 3.6 corrected (ERRATA.md §4): the PL inequality of the proof is
    ‖∇R‖² ≥ (4/α²)‖Σ₂v‖² ≥ (4 λ_min/(κα²)) R with α = 2√w(0), so
    ‖φ(t) − ξ‖² ≤ κ (1 − η λ_min/(2κ w(0)))^t ‖φ(0) − ξ‖² (η ≤ η0 of Lemma 3.7).
    Returns (prefactor κ, q)."""
    k, c = _theorem_3_6_decrement(dist, theta0, eta, "corrected")
    return k, 1 - c


def theorem_3_6_log_rate_corrected(dist, theta0, eta):
    """(κ, −log q) of :func:`theorem_3_6_rate_corrected`, with −log q = −log1p(−ηλ_min/(2κw(0)))
    computed without forming q (q rounds to 1 for the tiny η0 of Lemma 3.7)."""
    k, c = _theorem_3_6_decrement(dist, theta0, eta, "corrected")
    return k, -math.log1p(-c)


def lemma_3_7(model, theta0, xi, dist):
    """Lemma 3.7: c0 = √(R(θ(0))/λ_min), β = min{|1 − θ2(0)|, √w(0)/(√2 (c0 + ‖ξ‖ + 1))},
    Θ = {β ≤ |1 − θ2| ≤ 2√w(0), ‖θ1‖ ≤ 2√w(0)}, and the step-size conditions
    η ≤ β/2 and η ≤ β²/(4R(θ(0))) of the proof (the third, η ≤ 1/L_Θ, is
    not computed here).  Returns a dict."""
    theta0, xi = np.asarray(theta0, float), np.atleast_1d(np.asarray(xi, float))
    S = second_moment_np(dist)
    lam = float(np.linalg.eigvalsh(S)[0])
    phi = theta0[:-1] / (1 - theta0[-1])
    R0 = float((phi - xi) @ S @ (phi - xi))  # Eq. (5)
    w0 = float(conserved_w(theta0))
    c0 = math.sqrt(R0 / lam)
    beta = min(abs(1 - theta0[-1]), math.sqrt(w0) / (math.sqrt(2) * (c0 + np.linalg.norm(xi) + 1)))
    eta0 = min(beta / 2, beta**2 / (4 * R0)) if R0 > 0 else beta / 2
    return {"c0": c0, "beta": beta, "R0": R0, "w0": w0, "upper": 2 * math.sqrt(w0), "eta0_partial": eta0}


def linear_risk(theta, xi, dist):
    """Eq. (5): R(θ) = (φ − ξ)ᵀ Σ₂ (φ − ξ), φ = θ1/(1 − θ2) (linear DEQ, no bias).
    θ of shape (…, d+1)."""
    theta, xi = np.asarray(theta, float), np.atleast_1d(np.asarray(xi, float))
    v = theta[..., :-1] / (1 - theta[..., -1:]) - xi
    return np.einsum("...i,ij,...j->...", v, second_moment_np(dist), v)


def linear_grad(theta, xi, dist):
    """∇R of Eq. (5) (ERRATA.md §1): (2/g)(Σ₂v, φᵀΣ₂v), g = 1 − θ2, v = φ − ξ."""
    theta, xi = np.asarray(theta, float), np.atleast_1d(np.asarray(xi, float))
    g = 1 - theta[..., -1:]
    phi = theta[..., :-1] / g
    c = (phi - xi) @ second_moment_np(dist)
    return (2 / g) * np.concatenate([c, np.sum(phi * c, -1, keepdims=True)], -1)


def eq_3_grad_printed(theta, xi, dist):
    """Eq. (3) as printed: ∇R = 2 (Σ₂/(1 − θ2)²)(θ1/(1 − θ2)² − ξ/(1 − θ2)), a vector
    in ℝ^d: no θ2 component, and an extra 1/(1 − θ2)² (ERRATA.md §1; the
    corrected gradient is :func:`linear_grad`).  θ (…, d+1) -> (…, d)."""
    theta, xi = np.asarray(theta, float), np.atleast_1d(np.asarray(xi, float))
    g = 1 - theta[..., -1:]
    return 2 * ((theta[..., :-1] / g**2 - xi / g) @ second_moment_np(dist)) / g**2


def _hessian_A(phi, xi, S):
    """A(φ) with ∇²R(θ) = (2/g²) A(φ) (Eq. (5)): with q = Σ₂(2φ − ξ),
    A = [[Σ₂, q], [qᵀ, 3φᵀΣ₂φ − 2φᵀΣ₂ξ]].  φ of shape (…, d) -> (…, d+1, d+1)."""
    phi = np.asarray(phi, float)
    d = S.shape[0]
    A = np.empty(phi.shape[:-1] + (d + 1, d + 1))
    A[..., :d, :d] = S
    q = (2 * phi - xi) @ S
    A[..., :d, d] = q
    A[..., d, :d] = q
    A[..., d, d] = 3 * np.einsum("...i,ij,...j->...", phi, S, phi) - 2 * phi @ (S @ xi)
    return A


def linear_hessian(theta, xi, dist):
    r"""∇²R of Eq. (5) in closed form.  With g = 1 − θ2, φ = θ1/g, the Jacobian of φ is
    J = (1/g)[I, φ] and ∇²φ_k has entries 1/g² (θ1k, θ2) and 2φ_k/g² (θ2, θ2), so

        ∇²R = 2JᵀΣ₂J + 2 Σ_k (Σ₂(φ − ξ))_k ∇²φ_k = (2/g²) A(φ),
        A(φ) = [[Σ₂, Σ₂(2φ − ξ)], [(2φ − ξ)ᵀΣ₂, 3φᵀΣ₂φ − 2φᵀΣ₂ξ]].

    It depends on θ only through (g, φ).  Checked against ``jax.jacrev`` twice of
    :func:`sideq.population_risk` (tests/test_theory.py)."""
    theta, xi = np.asarray(theta, float), np.atleast_1d(np.asarray(xi, float))
    g = 1 - theta[..., -1]
    phi = theta[..., :-1] / g[..., None]
    return (2 / g**2)[..., None, None] * _hessian_A(phi, xi, second_moment_np(dist))


def _k_nmax(g, beta, upper):
    """Largest ‖θ1‖ at |1 − θ2| = g in K = Θ + B̄(0, β/2) (Lemma 3.7).  One side of
    Θ is, in the (‖θ1‖, |1 − θ2|) half-plane, the rectangle [0, U] × [β, U]
    (U = 2√w(0)); K is its (β/2)-neighbourhood, rotationally symmetric in θ1."""
    r = beta / 2
    g = np.asarray(g, float)
    below = upper + np.sqrt(np.maximum(0.0, r**2 - (beta - g) ** 2))
    above = upper + np.sqrt(np.maximum(0.0, r**2 - (g - upper) ** 2))
    return np.where(g < beta, below, np.where(g > upper, above, upper + r))


def _norm2(A):
    ev = np.linalg.eigvalsh(A)
    return np.maximum(ev[..., -1], -ev[..., 0])


def lemma_3_7_lipschitz(theta0, xi, dist, *, n_gap=4001, n_dir=400, n_rad=6, n_gap_search=161):
    r"""L_Θ of Lemma 3.7: the Lipschitz constant of ∇R on the component of
    K = Θ + B̄(0, β/2) on θ(0)'s side of θ2 = 1 (each component is convex, and
    gradient descent with steps ≤ β/2 moves along segments inside it, which is
    what the descent lemma needs), i.e. sup_K ‖∇²R‖₂.

    ‖∇²R‖₂ = (2/g²)‖A(φ)‖₂ (:func:`linear_hessian`) and at |1 − θ2| = g, φ ranges
    over the ball ‖φ‖ ≤ P(g) = n_max(g)/g (:func:`_k_nmax`).  Two numbers:

    * ``L_bound`` (certified upper bound, used for η0): with λ = λ_max(Σ₂),
      ‖A(φ)‖₂ ≤ ‖[[λ, λ(2P + ‖ξ‖)], [λ(2P + ‖ξ‖), 3λP² + 2P‖Σ₂ξ‖]]‖₂ =: B(P)
      (norm of a block matrix ≤ norm of its block norms), increasing in P;
      over each cell [g_i, g_{i+1}] of a geometric grid (``n_gap`` points) the
      bound uses 1/g_i and the cell's largest n_max, so
      sup_K ‖∇²R‖ ≤ max_i (2/g_i²) B(n_max,i/g_i) without any gap.
    * ``L_attained`` (a lower bound on sup_K ‖∇²R‖, attained at ``arg`` ∈ K):
      ‖∇²R‖₂ evaluated exactly at points of K: ``n_gap_search`` gaps ×
      (d = 1: 801 values of φ in [−P, P]; d > 1: ``n_dir`` quasi-random
      directions and ±ξ, ±eigenvectors of Σ₂ × ``n_rad`` radii up to P).
    L_bound/L_attained ≥ 1 measures how much the certificate costs.
    """
    theta0, xi = np.asarray(theta0, float), np.atleast_1d(np.asarray(xi, float))
    c = lemma_3_7(None, theta0, xi, dist)
    beta, U = c["beta"], c["upper"]
    S = second_moment_np(dist)
    lam = float(np.linalg.eigvalsh(S)[-1])
    nxi, nSxi = float(np.linalg.norm(xi)), float(np.linalg.norm(S @ xi))
    glo, ghi = beta / 2, U + beta / 2

    def B(P):  # ‖[[λ, off], [off, dd]]‖₂, the largest |eigenvalue| of a symmetric 2×2
        off = lam * (2 * P + nxi)
        dd = 3 * lam * P**2 + 2 * P * nSxi
        mid, disc = (lam + dd) / 2, np.sqrt((lam - dd) ** 2 / 4 + off**2)
        return np.maximum(np.abs(mid + disc), np.abs(mid - disc))

    g = np.geomspace(glo, ghi, n_gap)
    nm = _k_nmax(g, beta, U)
    cell_n = np.maximum(nm[:-1], nm[1:])
    cell_n = np.where((g[:-1] <= U) & (g[1:] >= beta), U + beta / 2, cell_n)  # plateau inside the cell
    L_bound = float(np.max(2 / g[:-1] ** 2 * B(cell_n / g[:-1])))

    d = xi.shape[0]
    gs = np.geomspace(glo, ghi, n_gap_search)
    P = _k_nmax(gs, beta, U) / gs
    if d == 1:
        u = np.linspace(-1, 1, 801)[:, None]
    else:
        rng = np.random.default_rng(7)
        ev = np.linalg.eigh(S)[1].T
        u = np.concatenate([rng.standard_normal((n_dir, d)), ev, -ev, xi[None], -xi[None]])
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        u = (np.linspace(0, 1, n_rad + 1)[1:, None, None] * u[None]).reshape(-1, d)
    phi = P[:, None, None] * u[None]  # (G, n, d)
    val = 2 / gs[:, None] ** 2 * _norm2(_hessian_A(phi, xi, S))
    i, j = np.unravel_index(np.argmax(val), val.shape)
    side = np.sign(1 - theta0[-1])
    arg = np.append(phi[i, j] * side * gs[i], 1 - side * gs[i])  # θ1 = gφ, θ2 = 1 − g on θ(0)'s side
    return {
        "L_bound": L_bound,
        "L_attained": float(val[i, j]),
        "arg": arg,
        "certificate_ratio": L_bound / float(val[i, j]),
    }


def theorem_3_6_eta0(theta0, xi, dist, **kw):
    r"""η0 of Theorem 3.6 / Lemma 3.7 for the linear DEQ, with its ingredients.

    The proof of Lemma 3.7 needs, for every step, (i) the descent lemma on the
    segment [θ(t), θ(t+1)] ⊂ K = Θ + B̄(0, β/2): η ≤ 1/L_Θ, L_Θ = sup_K ‖∇²R‖₂
    (:func:`lemma_3_7_lipschitz`, certified upper bound); (ii) the step stays in
    K: η‖∇R(θ(t))‖ ≤ β/2; (iii) η ≤ β²/(4R(θ(0))) (so that w(t+1) ≤ 2w(0)).

    *Printed* (ii) is η ≤ β/2, which keeps the step in K only if ‖∇R‖ ≤ 1
    (ERRATA.md §7).  *Corrected* (ii): η ≤ β/(2G) with G a bound on ‖∇R‖ over
    Θ ∩ {R ≤ R(θ(0))} (the iterates satisfy R(θ(t)) ≤ R(θ(0)) by the induction):
    ‖∇R‖² = (4/g²)(‖Σ₂v‖² + (φᵀΣ₂v)²) ≤ (4/β²)(1 + ‖φ‖²) λ_max R and
    ‖φ‖ ≤ ‖ξ‖ + ‖v‖ ≤ ‖ξ‖ + c0, so G = (2/β) √(λ_max R(θ(0)) (1 + (‖ξ‖ + c0)²)).

    Returns a dict: ``eta0`` (corrected), ``eta0_printed``, ``terms`` (each
    condition's bound), ``binding`` (the smallest), and L_bound, L_attained,
    G, β, R0, c0 of the lemma."""
    theta0, xi = np.asarray(theta0, float), np.atleast_1d(np.asarray(xi, float))
    c = lemma_3_7(None, theta0, xi, dist)
    lip = lemma_3_7_lipschitz(theta0, xi, dist, **kw)
    lam_max = float(np.linalg.eigvalsh(second_moment_np(dist))[-1])
    beta, R0 = c["beta"], c["R0"]
    G = 2 / beta * math.sqrt(lam_max * R0 * (1 + (np.linalg.norm(xi) + c["c0"]) ** 2))
    terms = {
        "1/L": 1 / lip["L_bound"],
        "beta/(2G)": beta / (2 * G) if G > 0 else math.inf,
        "beta^2/(4R0)": beta**2 / (4 * R0) if R0 > 0 else math.inf,
    }
    printed = dict(terms)
    printed.pop("beta/(2G)")
    printed["beta/2"] = beta / 2
    binding = min(terms, key=terms.get)
    return {
        **c,
        **lip,
        "G": G,
        "terms": terms,
        "binding": binding,
        "eta0": terms[binding],
        "eta0_printed": min(printed.values()),
        "binding_printed": min(printed, key=printed.get),
    }


def in_theta_3_7(theta, c):
    """Membership of θ (…, d+1) in the set Θ of Lemma 3.7 (c from :func:`lemma_3_7`)."""
    theta = np.asarray(theta, float)
    gap = np.abs(1 - theta[..., -1])
    n1 = np.linalg.norm(theta[..., :-1], axis=-1)
    return (gap >= c["beta"]) & (gap <= c["upper"]) & (n1 <= c["upper"])


def eq_8_next_w(w_t, eta, grad_sq):
    """Eq. (8): w(t+1) = w(t) + η²‖∇R(θ(t))‖² for gradient descent on the linear DEQ."""
    return w_t + eta**2 * grad_sq


# ---------------------------------------------------------------------------
# Section 3.2, single-index DEQ.


def _region_grid(region, grid):
    """Points of a compact region of θ-space: (θ1 (K, d), θ2 (K,)).

    ``region`` is ("box", d, R1, δ2) for Θ of Theorem 3.8,
    {‖θ1‖ ≤ R1, |θ2| ≤ δ2}, or ("ball", center (d+1,), radius) for the ball
    B((ξ, 0), r0) that the flow actually stays in (ERRATA.md §6)."""
    if region[0] == "box":
        _, d, R1, delta2 = region
        t2 = np.linspace(-delta2, delta2, grid)
        if d == 1:
            t1 = np.linspace(-R1, R1, grid)[:, None]
        else:
            u = _directions(d, grid * grid // 4)
            r = np.linspace(0, R1, max(3, grid // 2))
            t1 = np.concatenate([np.zeros((1, d)), (r[1:, None, None] * u[None]).reshape(-1, d)])
        return np.repeat(t1, len(t2), axis=0), np.tile(t2, len(t1))
    _, c, rad = region
    c = np.asarray(c, float)
    p = c.shape[0]
    if p == 2:
        ang = np.linspace(0, 2 * np.pi, 4 * grid, endpoint=False)
        u = np.stack([np.cos(ang), np.sin(ang)], 1)
    else:
        u = _directions(p, grid * grid // 2)
    r = np.linspace(0, rad, grid)
    pts = np.concatenate([c[None], (c + r[1:, None, None] * u[None]).reshape(-1, p)])
    return pts[:, :-1], pts[:, -1]


def _directions(p, n):
    rng = np.random.default_rng(1)
    u = np.concatenate([rng.standard_normal((n, p)), np.eye(p), -np.eye(p)])
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def _project(region, t1, t2):
    if region[0] == "box":
        _, _d, R1, delta2 = region
        n = np.linalg.norm(t1)
        return (t1 * (R1 / n) if n > R1 else t1), float(np.clip(t2, -delta2, delta2))
    _, c, rad = region
    p = np.append(t1, t2)
    v = p - c
    n = np.linalg.norm(v)
    if n > rad:
        p = c + v * (rad / n)
    return p[:-1], float(p[-1])


def _block(x, y, w):
    """E[(X, y)(X, y)ᵀ] as Σ w (x, y)(x, y)ᵀ for a batch: x (N, d), y (K, N) -> (K, d+1, d+1)."""
    xx = (x * w[:, None]).T @ x
    xy = (y * w) @ x  # (K, d)
    yy = (y * y) @ w
    K, d = y.shape[0], x.shape[1]
    M = jnp.zeros((K, d + 1, d + 1), y.dtype)
    return M.at[:, :d, :d].set(xx).at[:, :d, d].set(xy).at[:, d, :d].set(xy).at[:, d, d].set(yy)


@functools.partial(jax.jit, static_argnames=("model",))
def _node_stats(model, theta1, theta2, x, w):
    """For a batch of θ, over nodes (x, w): λ_min of the matrix of (17), E[(X, y)(X, y)ᵀ w],
    and the fourth moment E[‖(X, y_θ(X))‖⁴ w] of Theorem 3.9 (one compile serves both)."""
    y = _equilibria(model, theta1, theta2, x)  # (K, N)
    lmin = jnp.linalg.eigvalsh(_block(x, y, w))[:, 0]
    m4 = ((jnp.sum(x * x, 1)[None, :] + y * y) ** 2) @ w
    return lmin, m4


def _lmin_block(model, theta1, theta2, x, w):
    """λ_min(E[((X, y_θ(X))(X, y_θ(X))ᵀ) w]) for a batch of θ (the matrix of (17)),
    expectation as Σ w(x) h(x) over nodes x."""
    with _x64():
        args = (jnp.asarray(a, jnp.float64) for a in (theta1, theta2, x, w))
        return np.asarray(_node_stats(model, *args)[0])


MAX_GRID_HIGH_DIM = 15


def _batch_fun(jfn, n_nodes):
    """``fun(θ1 (K, d), θ2 (K,)) -> (K,)`` numpy float64 from a jitted batch function
    ``jfn(θ1, θ2)``: fixed-size chunks (one compile serves the grid and the
    single-θ calls of Nelder–Mead), evaluated with float64 scoped on."""
    chunk = _chunk_size(n_nodes)

    def fun(T1, T2):
        T1, T2 = np.asarray(T1, float), np.asarray(T2, float)
        with _x64():
            return _padded(jfn, T1, T2, chunk)

    return fun


def _extremum(fun, region, grid, sign, n_start=3):
    """sign=+1: inf, −1: sup of fun over the region: grid, then Nelder–Mead
    (on the projection onto the region) from the ``n_start`` best grid points."""
    # (scipy is not a dependency of sideq, and takes about a second to import:
    # loaded here, by the one search that needs it.)
    from scipy.optimize import minimize

    p = region[1] + 1 if region[0] == "box" else len(region[1])
    if p > 2:
        grid = min(grid, MAX_GRID_HIGH_DIM)  # d > 1: (grid²/4 directions × grid/2 radii × grid) points
    T1, T2 = _region_grid(region, grid)
    vals = fun(T1, T2)
    best = sign * vals
    order = np.argsort(best)[:n_start]
    out = (float(best[order[0]]), T1[order[0]], T2[order[0]])

    def obj(p):
        t1, t2 = _project(region, p[:-1], p[-1])
        return sign * float(fun(t1[None], np.array([t2]))[0])

    for i in order:
        res = minimize(
            obj, np.append(T1[i], T2[i]), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-14, "maxiter": 300}
        )
        if res.fun < out[0]:
            t1, t2 = _project(region, res.x[:-1], res.x[-1])
            out = (float(res.fun), t1, t2)
    grid_ext = float(sign * best[order[0]])
    value = sign * out[0]
    return value, {
        "arg": np.append(out[1], out[2]).tolist(),
        "grid_value": grid_ext,
        "rel_refinement": abs(grid_ext - value) / abs(value) if value != 0 else math.inf,
        "grid_points": len(T2),
    }


def _theta_region(xi, d, delta1, delta2, region, r0):
    """The set the infimum/supremum runs over: Θ as printed in Theorem 3.8 (a box in
    (‖θ1‖, θ2)) or the corrected ball B((ξ, 0), r0) (ERRATA.md §6)."""
    xi = np.atleast_1d(np.asarray(xi, float))
    if region == "printed":
        return ("box", d, (1 + delta1) * np.linalg.norm(xi), delta2)
    return ("ball", np.append(xi, 0.0), delta2 if r0 is None else r0)


def rho(model, xi, dist, delta1, delta2, alpha, *, grid=41, region="printed", r0=None):
    """Theorem 3.8: ρ = inf_{θ ∈ Θ} λ_min(E[(X, y_θ(X))(X, y_θ(X))ᵀ 1{‖X‖ ≤ α}]).

    ``region="printed"``: Θ = {‖θ1‖ ≤ (1 + δ1)‖ξ‖, |θ2| ≤ δ2} as printed.  This Θ
    contains θ1 = 0, where y_θ ≡ c with c = σ(θ2 c); when σ(0) = 0 (tanh) c = 0
    and ρ = 0 exactly, so the printed bound is vacuous (ERRATA.md §6).
    ``region="corrected"``: the ball B((ξ, 0), r0) (r0 = ‖θ(0) − (ξ,0)‖ ≤ δ2),
    which contains θ(t) for all t because the proof shows r(t) nonincreasing;
    the proof goes through verbatim with the inf over this smaller set.

    Method: grid over the region (d = 1 box: ``grid × grid``; ball: radii ×
    directions; d > 1: quasi-random directions, grid capped at
    ``MAX_GRID_HIGH_DIM`` = 15), then Nelder–Mead from the 3
    best grid points.  Returns ``(rho, info)``: info has the minimiser, the
    grid minimum and rel_refinement = |grid_min − rho|/rho (a measure of the
    grid's resolution; the value is attained at a point of the region, so it
    is an upper estimate of the infimum)."""
    reg = _theta_region(xi, dist.d, delta1, delta2, region, r0)
    return _extremum(_expectation_fun(model, dist, alpha, "lmin"), reg, grid, +1)


def moment4_sup(model, xi, dist, delta1, delta2, *, grid=41, region="printed", r0=None):
    """Theorem 3.9: sup_{θ ∈ Θ} E[‖(X, y_θ(X))‖⁴] (grid + Nelder–Mead, as :func:`rho`)."""
    reg = _theta_region(xi, dist.d, delta1, delta2, region, r0)
    return _extremum(_expectation_fun(model, dist, None, "m4"), reg, grid, -1)


def _gamma(model, zmax, n=4001):
    """inf{σ'(z) : |z| ≤ zmax} on a fine grid (σ' is smooth; for the built-in
    monotone activations σ' is unimodal so the inf is at ±zmax or on the grid)."""
    z = np.append(np.linspace(-zmax, zmax, n), [-zmax, zmax])
    return float(sigma(model, z)[1].min())


def eq_13_bound(model, theta, x):
    """Eq. (13): |y_θ(x)| ≤ (|σ(0)| + L‖θ1‖‖x‖)/(1 − L|θ2|), for L|θ2| < 1.
    θ (K, d+1), x (N, d) -> (K, N) (inf where L|θ2| ≥ 1)."""
    theta, x = np.atleast_2d(np.asarray(theta, float)), np.asarray(x, float)
    L = lipschitz(model)
    s0 = abs(float(sigma(model, 0.0)[0]))
    den = 1 - L * np.abs(theta[:, -1:])
    num = s0 + L * np.linalg.norm(theta[:, :-1], axis=1)[:, None] * np.linalg.norm(x, axis=1)[None]
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)


def single_index_terms(model, theta, xi, x):
    """The quantities of the proofs of Theorems 3.8 and 3.9 at nodes x (N, d), for
    θ (K, d+1): y = y_θ(x), f = σ(ξᵀx), ω = θ1ᵀx + θ2 y, s = σ'(ω)/(1 − θ2σ'(ω))
    (∇_θ y = s (x, y), Eq. (1)) and q = ‖(x, y)‖²; each (K, N)."""
    theta, x = np.atleast_2d(np.asarray(theta, float)), np.asarray(x, float)
    xi = np.atleast_1d(np.asarray(xi, float))
    y = equilibria(model, theta[:, :-1], theta[:, -1], x)
    omega = theta[:, :-1] @ x.T + theta[:, -1:] * y
    ds = sigma(model, omega)[1]
    return {
        "y": y,
        "f": sigma(model, x @ xi)[0][None],
        "omega": omega,
        "u": x @ xi,
        "s": ds / (1 - theta[:, -1:] * ds),
        "q": np.sum(x * x, 1)[None] + y * y,
    }


def eq_15_rdot(model, theta, xi, dist, *, variant="corrected"):
    """Eq. (15): r'(t) = −c E[(y_θ(X) − σ(ξᵀX)) s (ω − ξᵀX)] along the flow, at θ (K, d+1).

    As printed c = 2.  From r = ‖θ − (ξ, 0)‖², r' = −2(θ − (ξ, 0))ᵀ∇R (Eq. (11)),
    and ∇R = 2E[(y − f) s (X, y)] (Eq. (14) with Eq. (1)), so c = 4 (ERRATA.md §8).
    Expectations over the nodes of :func:`expectation_nodes`."""
    x, w = expectation_nodes(dist)
    t = single_index_terms(model, theta, xi, x)
    c = 2.0 if variant == "printed" else 4.0
    return -c * ((t["y"] - t["f"]) * t["s"] * (t["omega"] - t["u"])) @ w


def eq_18_bounds(model, theta, xi, dist, delta2):
    """Eq. (18) and the two bounds after it (proof of Theorem 3.9), at θ (K, d+1):
    ``jensen`` = 4E[(y − f)² s² ‖(X, y)‖²] ≥ ‖∇R‖², and
    ``chain`` = 4L²(L/(1 − Lδ2))² E[‖(X, y)‖⁴] r ≥ ``jensen`` (for |θ2| ≤ δ2), whose
    sup over Θ of the expectation makes λ2.  Returns a dict of (K,) arrays."""
    x, w = expectation_nodes(dist)
    theta = np.atleast_2d(np.asarray(theta, float))
    t = single_index_terms(model, theta, xi, x)
    L = lipschitz(model)
    r = np.sum((theta - np.append(np.atleast_1d(np.asarray(xi, float)), 0.0)) ** 2, 1)
    jensen = 4 * ((t["y"] - t["f"]) ** 2 * t["s"] ** 2 * t["q"]) @ w
    chain = 4 * L**2 * (L / (1 - L * delta2)) ** 2 * (t["q"] ** 2 @ w) * r
    return {"jensen": jensen, "chain": chain, "r": r}


@dataclasses.dataclass
class Theorem38:
    """Constants of Theorem 3.8 for one setting."""

    L: float
    delta1: float
    delta2: float
    alpha: float
    beta: float  # E[‖X‖² 1{‖X‖ ≤ α}] (assumption 1(ii))
    M: float  # (|σ(0)| + Lα(1+δ1)‖ξ‖)/(1 − Lδ2)
    zmax: float  # α(1+δ1)‖ξ‖ + Mδ2
    gamma: float  # inf σ' on [−zmax, zmax]
    rho: float
    rho_info: dict
    rate: float  # 2ργ²/(1 + Lδ2) printed; 4ργ²/(1 + Lδ2) corrected (ERRATA.md §8)
    radius: float  # the allowed ‖θ(0) − (ξ,0)‖: min{(1+δ1)‖ξ‖, δ2} printed, min{δ1‖ξ‖, δ2} corrected (§5)

    def bound(self, r0, t):
        """r(t) ≤ r(0) exp(−rate t)."""
        return r0 * np.exp(-self.rate * np.asarray(t))


def theorem_3_8(model, xi, dist, *, delta2, delta1=None, alpha=None, grid=41, region="printed"):
    """Constants of Theorem 3.8: L, M, γ, ρ, the rate and the allowed start radius.

    ``delta2`` < 1/L; ``delta1`` defaults to δ2/‖ξ‖, the smallest δ1 for which
    ‖θ(0) − (ξ,0)‖ ≤ δ2 keeps ‖θ1(t)‖ ≤ (1+δ1)‖ξ‖ along a flow with r(t)
    nonincreasing (see ERRATA.md §5); ``alpha`` defaults to sup‖X‖ for the
    uniform law (no truncation) and to 2·sqrt(tr Σ₂) for a Gaussian.
    ``region``: "printed" (the statement as printed: ρ over Θ, rate
    2ργ²/(1 + Lδ2), starts with ‖θ(0) − (ξ,0)‖ ≤ min{(1+δ1)‖ξ‖, δ2}) or
    "corrected": ρ over the ball B((ξ,0), δ2) (ERRATA.md §6), the rate
    4ργ²/(1 + Lδ2) that Eq. (15) with its factor 2 restored gives (§8), and
    starts with ‖θ(0) − (ξ,0)‖ ≤ min{δ1‖ξ‖, δ2} (§5).  γ and M are the printed
    ones in both cases (they remain valid on the ball, which lies in Θ)."""
    xi = np.atleast_1d(np.asarray(xi, float))
    L = lipschitz(model)
    if not delta2 * L < 1:
        raise ValueError(f"delta2 = {delta2} must be < 1/L = {1 / L}")
    nxi = float(np.linalg.norm(xi))
    delta1 = delta2 / nxi if delta1 is None else delta1
    if alpha is None:
        alpha = max_norm(dist) if isinstance(dist, Uniform) else 2 * math.sqrt(np.trace(second_moment_np(dist)))
    if isinstance(dist, Uniform) or dist.d == 1:
        x, w = expectation_nodes(dist, alpha)
        beta = float(np.sum(x * x, 1) @ w)
    else:  # E[‖X‖² 1{‖X‖ ≤ α}]: the trace of the X-block of Theorem 3.8's matrix (any θ)
        M, _ = gaussian_block(model, np.zeros((1, dist.d)), np.zeros(1), dist, alpha)
        beta = float(np.trace(M[0, :-1, :-1]))
    M = (abs(float(sigma(model, 0.0)[0])) + L * alpha * (1 + delta1) * nxi) / (1 - L * delta2)
    zmax = alpha * (1 + delta1) * nxi + M * delta2
    gamma = _gamma(model, zmax)
    r, info = rho(model, xi, dist, delta1, delta2, alpha, grid=grid, region=region)
    printed = region == "printed"
    rate = (2 if printed else 4) * r * gamma**2 / (1 + L * delta2)
    radius = min(((1 + delta1) if printed else delta1) * nxi, delta2)
    return Theorem38(L, delta1, delta2, alpha, beta, M, zmax, gamma, r, info, rate, radius)


def corollary_3_1_radius(model) -> float:
    """Corollary 3.1: exponential convergence from any θ(0) ∈ B((ξ, 0), 1/L)."""
    return 1.0 / lipschitz(model)


@dataclasses.dataclass
class Theorem39:
    """Constants of Theorem 3.9."""

    lambda1: float
    lambda2: float
    moment4: float
    threshold: float  # λ1/(2λ2)
    t38: Theorem38

    def factor(self, eta):
        """Per-step contraction 1 − ηλ1/2 of r(t) (valid for η ≤ threshold)."""
        return 1 - eta * self.lambda1 / 2


def theorem_3_9(model, xi, dist, *, delta2, delta1=None, alpha=None, grid=41, t38=None, region="printed"):
    """Theorem 3.9: λ1 = 2ργ²/(1 + Lδ2), λ2 = 4L²(L/(1 − Lδ2))² sup_Θ E‖(X, y_θ(X))‖⁴,
    step-size threshold λ1/(2λ2), rate r(t) ≤ (1 − ηλ1/2)^t r(0).

    ``region="corrected"``: λ1 is the corrected rate of :func:`theorem_3_8`,
    4ργ²/(1 + Lδ2) with ρ over the ball (ERRATA.md §6, §8: the proof's
    −2η(θ − θ*)ᵀ∇R is −η r'(θ) of the flow, ≤ −ηλ1 r with Eq. (15)'s factor
    restored), and the sup of λ2 is over the ball too; the proof then goes
    through as printed."""
    t38 = t38 or theorem_3_8(model, xi, dist, delta2=delta2, delta1=delta1, alpha=alpha, grid=grid, region=region)
    L = t38.L
    m4, _ = moment4_sup(model, xi, dist, t38.delta1, t38.delta2, grid=grid, region=region)
    lam2 = 4 * L**2 * (L / (1 - L * t38.delta2)) ** 2 * m4
    return Theorem39(t38.rate, lam2, m4, t38.rate / (2 * lam2), t38)
