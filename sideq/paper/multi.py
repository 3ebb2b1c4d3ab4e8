r"""Section 3's laws for multi-neuron DEQs (the paper's Section 5), as functions (MULTI_NEURON.md).

The multi-output linear DEQ of :func:`sideq.general.multi_linear` is
y = W1 x + W2 y in ℝ^k, params ``{"W1": (k, d), "W2": (k, k)}``, target
f(x) = Ξx with Ξ = ``xi`` of shape (k, d).  Notation (MULTI_NEURON.md):

    B = I − W2,   A = B⁻¹W1 (the map x ↦ y),   M = E[XXᵀ],
    R = E‖AX − ΞX‖² = tr((A − Ξ) M (A − Ξ)ᵀ)                          (Eq. (M1))
    ∂R/∂W1 = B⁻ᵀG,  ∂R/∂W2 = B⁻ᵀG Aᵀ,  G = 2(A − Ξ)M                    (Eq. (M2))
    C = W1W1ᵀ + BBᵀ,  conserved by the flow                   (Proposition M1)

For k = 1, C = ‖θ1‖² + (1 − θ2)² is Theorem 3.1's w.  The other results:
Proposition M2 (Lemma 3.2: det B keeps its sign and σ_min(B)² ≥ λ_min(C)/(1 + ‖A‖₂²)),
Proposition M3 (Theorem 3.3: the flow converges to a point with A = Ξ and
B(I + ΞΞᵀ)Bᵀ = C; for k = 1 that point is ERRATA.md §2's; for k ≥ 2 a copy of
O(k)'s component, not fixed by C), Proposition M4 (Theorem 3.4 corrected:
R(t) ≤ R(0) exp(−4λ_min(M)t/λ_max(C))).

The multi-output single-index DEQ of :func:`sideq.general.multi_index` is
y = σ(W1 x + W2 y), target σ(Ξx); its population risk here is a tensor
quadrature rule (:func:`quadrature`), its gradient the implicit one of
Eq. (1) with k outputs (:func:`index_grad`), and its Hessian at (Ξ, 0) is
block diagonal (:func:`index_hessian_blocks`, Proposition M5).

Flows are diffrax's Dopri8 on these closed-form fields, one compiled flow run
from each start in turn (:func:`linear_flows`, :func:`index_flows`); nothing
is projected, so the drift of C measures the integration error.  Results are
float64 numpy whatever the caller's ``jax_enable_x64`` (the JAX parts run
under a scoped ``jax.enable_x64``).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from sideq.activations import get_activation
from sideq.data import Gaussian, Uniform

__all__ = [
    "Flows",
    "conserved",
    "naive_conserved",
    "linear_risk",
    "linear_grad",
    "singular_floor",
    "singular_ratio",
    "limit_residuals",
    "limit_k1",
    "limit_frozen_rotation",
    "polar_rotation",
    "linear_rate",
    "linear_starts",
    "linear_flows",
    "quadrature",
    "index_equilibrium",
    "index_risk",
    "index_grad",
    "index_hessian_blocks",
    "index_local_rate",
    "index_hessian",
    "index_hessian_autodiff",
    "index_linearized_r",
    "index_starts",
    "index_flows",
]


def _x64():
    """float64 for this module's JAX computations, scoped (the global flag is untouched)."""
    return jax.enable_x64(True)


def _f64(a):
    return np.asarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------
# Multi-output linear DEQ (multi_linear): closed forms, numpy.


def _split(W1, W2):
    W1, W2 = _f64(W1), _f64(W2)
    return W1, np.eye(W2.shape[-1]) - W2


def conserved(W1, W2):
    r"""Proposition M1 (Theorem 3.1 for k outputs): C = W1W1ᵀ + (I − W2)(I − W2)ᵀ.

    Args:
      W1: (..., k, d); W2: (..., k, k).

    Returns:
      C, (..., k, k): constant along the gradient flow of any risk that depends
      on (W1, W2) only through A = (I − W2)⁻¹W1.  For k = 1 it is
      ‖θ1‖² + (θ2 − 1)², Theorem 3.1's conserved quantity.
    """
    W1, B = _split(W1, W2)
    return W1 @ np.swapaxes(W1, -1, -2) + B @ np.swapaxes(B, -1, -2)


def naive_conserved(W1, W2):
    r"""W1W1ᵀ − (I − W2)(I − W2)ᵀ: a plausible-looking matrix analogue of Theorem 3.1
    with the wrong sign.  It is *not* conserved (MULTI_NEURON.md, Proposition M1):
    ``sideq verify --multi`` shows it drifting."""
    W1, B = _split(W1, W2)
    return W1 @ np.swapaxes(W1, -1, -2) - B @ np.swapaxes(B, -1, -2)


def linear_risk(W1, W2, xi, M):
    r"""Eq. (M1), Eq. (5) with k outputs: R = tr((A − Ξ) M (A − Ξ)ᵀ), A = (I − W2)⁻¹W1.

    Args:
      W1: (..., k, d); W2: (..., k, k); xi: Ξ, (k, d); M: E[XXᵀ], (d, d).

    Returns:
      R, shape (...).
    """
    W1, B = _split(W1, W2)
    E = np.linalg.solve(B, W1) - _f64(xi)
    return np.einsum("...ij,jl,...il->...", E, _f64(M), E)


def linear_grad(W1, W2, xi, M):
    r"""Eq. (M2): (∂R/∂W1, ∂R/∂W2) = (B⁻ᵀG, B⁻ᵀG Aᵀ), G = 2(A − Ξ)M, B = I − W2.

    Args and shapes as for :func:`linear_risk`.  Returns a pair of arrays shaped
    like W1 and W2.
    """
    W1, B = _split(W1, W2)
    A = np.linalg.solve(B, W1)
    G = 2 * (A - _f64(xi)) @ _f64(M)
    H = np.linalg.solve(np.swapaxes(B, -1, -2), G)
    return H, H @ np.swapaxes(A, -1, -2)


def singular_floor(W1, W2, xi, M):
    r"""Proposition M2's a-priori floor: along the flow from (W1, W2),

        σ_min(I − W2(t))² ≥ β² := λ_min(C) / (1 + a0²),
        a0 = ‖Ξ‖₂ + √(R(0)/λ_min(M))  (a bound on ‖A(t)‖₂),

    with C the conserved matrix (Proposition M1).  For k = 1 it keeps θ2 away
    from 1 (Lemma 3.2).  Returns β² (float, or (...) for a batch of starts).
    """
    C = conserved(W1, W2)
    lam_c = np.linalg.eigvalsh(C)[..., 0]
    lam_m = float(np.linalg.eigvalsh(_f64(M))[0])
    a0 = np.linalg.norm(_f64(xi), 2) + np.sqrt(linear_risk(W1, W2, xi, M) / lam_m)
    return lam_c / (1 + a0**2)


def singular_ratio(W1, W2, C0):
    r"""σ_min(B)² (1 + ‖A‖₂²) / λ_min(C0), B = I − W2, A = B⁻¹W1: ≥ 1 at every point with
    W1W1ᵀ + BBᵀ = C0 (the pointwise inequality behind Proposition M2)."""
    W1, B = _split(W1, W2)
    A = np.linalg.solve(B, W1)
    smin = np.linalg.svd(B, compute_uv=False)[..., -1]
    anorm = np.linalg.svd(A, compute_uv=False)[..., 0]
    return smin**2 * (1 + anorm**2) / np.linalg.eigvalsh(_f64(C0))[..., :1].squeeze(-1)


def limit_residuals(W1, W2, xi, C0):
    r"""How far (W1, W2) is from Proposition M3's limit set
    {A = Ξ, B(I + ΞΞᵀ)Bᵀ = C0}: returns (‖A − Ξ‖_F / ‖Ξ‖_F,
    ‖B(I + ΞΞᵀ)Bᵀ − C0‖_F / ‖C0‖_F, sign det B)."""
    W1, B = _split(W1, W2)
    xi, C0 = _f64(xi), _f64(C0)
    A = np.linalg.solve(B, W1)
    P = np.eye(xi.shape[0]) + xi @ xi.T
    on = B @ P @ np.swapaxes(B, -1, -2) - C0
    fro = lambda a: np.sqrt(np.sum(a * a, axis=(-2, -1)))  # noqa: E731
    return fro(A - xi) / fro(xi), fro(on) / fro(C0), np.sign(np.linalg.det(B))


def _sym_sqrt(S, inverse=False):
    lam, V = np.linalg.eigh(S)
    p = -0.5 if inverse else 0.5
    return (V * lam[..., None, :] ** p) @ np.swapaxes(V, -1, -2)


def limit_k1(theta0, xi):
    r"""Proposition M3 for k = 1: the limit (αξ, 1 − α),
    α = sign(1 − θ2(0)) √C / √(1 + ‖ξ‖²) with C = ‖θ1(0)‖² + (1 − θ2(0))²,
    i.e. ERRATA.md §2's corrected Theorem 3.3.  ``theta0`` = (θ1, θ2) flat
    (the scalar library's layout)."""
    theta0, xi = _f64(theta0), np.atleast_1d(_f64(xi)).ravel()
    c = float(conserved(theta0[None, :-1], theta0[None, -1:])[0, 0])
    a = np.sign(1 - theta0[-1]) * math.sqrt(c) / math.sqrt(1 + xi @ xi)
    return np.append(a * xi, 1 - a)


def polar_rotation(W1, W2, xi, C0):
    r"""The rotation Q in B = C0^{1/2} Q (I + AAᵀ)^{−1/2}, the decomposition that
    every point of the conserved set {W1W1ᵀ + BBᵀ = C0} has (MULTI_NEURON.md,
    Proposition M3): Q = polar factor of C0^{−1/2} B (I + AAᵀ)^{1/2}."""
    W1, B = _split(W1, W2)
    A = np.linalg.solve(B, W1)
    S = np.eye(B.shape[-1]) + A @ np.swapaxes(A, -1, -2)
    N = _sym_sqrt(_f64(C0), inverse=True) @ B @ _sym_sqrt(S)
    U, _, Vt = np.linalg.svd(N)
    return U @ Vt


def limit_frozen_rotation(W1, W2, xi):
    r"""A guess for the limit that is *false* for k ≥ 2 (MULTI_NEURON.md, Proposition M3):
    keep the start's rotation Q(0) of :func:`polar_rotation`, i.e.
    B(∞) = C^{1/2} Q(0) (I + ΞΞᵀ)^{−1/2}, W1(∞) = B(∞)Ξ.  Exact for k = 1
    (Q = ±1); ``sideq verify --multi`` shows it failing for k ≥ 2.
    Returns (W1(∞), W2(∞))."""
    W1, W2, xi = _f64(W1), _f64(W2), _f64(xi)
    C0 = conserved(W1, W2)
    Q = polar_rotation(W1, W2, xi, C0)
    P = np.eye(xi.shape[0]) + xi @ xi.T
    B = _sym_sqrt(C0) @ Q @ _sym_sqrt(P, inverse=True)
    return B @ xi, np.eye(xi.shape[0]) - B


def linear_rate(W1, W2, M):
    r"""Proposition M4 (Theorem 3.4 corrected, ERRATA.md §3, for k outputs): the rate λ of
    R(t) ≤ R(0) e^{−λt}, λ = 4 λ_min(M) / λ_max(C)."""
    C = conserved(W1, W2)
    return 4 * float(np.linalg.eigvalsh(_f64(M))[0]) / np.linalg.eigvalsh(C)[..., -1]


def _orthogonal(rng, k):
    q, r = np.linalg.qr(rng.standard_normal((k, k)))
    return q * np.sign(np.diag(r))


def linear_starts(k, d, K, seed=0):
    r"""K starts (W1 (K, k, d), W2 (K, k, k)) for the multi-output linear DEQ.

    I − W2 = U diag(s) Vᵀ with Haar U, V: for the first half σ_min ∈ [0.02, 0.2]
    (near the singular set det(I − W2) = 0) and the other singular values in
    [0.5, 2]; for the second half all of them in [0.5, 3].  det(I − W2) takes
    both signs (alternating).  W1 ~ N(0, 0.7²) entrywise, and the last two
    starts have W1 = 0 (A(0) = 0), as in ``sideq verify``'s scalar starts."""
    rng = np.random.default_rng(seed)
    W1 = rng.normal(0.0, 0.7, (K, k, d))
    W1[-2:] = 0.0
    W2 = np.empty((K, k, k))
    for i in range(K):
        if i < K // 2:
            s = np.concatenate([[rng.uniform(0.02, 0.2)], rng.uniform(0.5, 2.0, k - 1)])
        else:
            s = rng.uniform(0.5, 3.0, k)
        B = _orthogonal(rng, k) @ np.diag(s) @ _orthogonal(rng, k).T
        if np.sign(np.linalg.det(B)) != (1.0 if i % 2 == 0 else -1.0):
            B[0] = -B[0]
        W2[i] = np.eye(k) - B
    return W1, W2


# ---------------------------------------------------------------------------
# Flows (diffrax), shared by both families.


class Flows(NamedTuple):
    """Gradient flows from K starts, float64 numpy.

    Rows are the requested times, then the stop time (a steady state
    ‖∇R‖ ≤ gtol, or t1); requested times after the stop hold the final state.
    """

    ts: np.ndarray  # (K, T+1)
    W1: np.ndarray  # (K, T+1, k, d)
    W2: np.ndarray  # (K, T+1, k, k)
    t_final: np.ndarray  # (K,)
    steady: np.ndarray  # (K,) bool: stopped at a steady state
    ok: np.ndarray  # (K,) bool: diffrax ended without error (steady state or t1)
    steps: np.ndarray  # (K,) accepted steps


def _integrate(grad_fn, W1, W2, args, ts, rtol, atol, gtol, max_steps, stop=True):
    """One flow (W1, W2)' = −∇R from (W1, W2), recorded at ``ts``; ``grad_fn(W1, W2, *args)``."""

    def field(t, y, a):
        g1, g2 = grad_fn(y[0], y[1], *a)
        return (-g1, -g2)

    def steady(t, y, a, **kw):
        g1, g2 = grad_fn(y[0], y[1], *a)
        return jnp.sqrt(jnp.sum(g1 * g1) + jnp.sum(g2 * g2)) <= gtol

    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.4, icoeff=0.3, norm=optx.max_norm), step_ts=ts
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Dopri8(),
        ts[0],
        ts[-1],
        None,
        (W1, W2),
        args=args,
        saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True)]),
        stepsize_controller=controller,
        event=diffrax.Event(steady) if stop else None,
        max_steps=max_steps,
        throw=False,
    )
    (r1, r2), (f1, f2) = sol.ys
    t_final = sol.ts[1][0]
    reached = ts <= t_final
    r1 = jnp.where(reached[:, None, None], r1, f1)
    r2 = jnp.where(reached[:, None, None], r2, f2)
    W1s = jnp.concatenate([r1, f1], 0)
    W2s = jnp.concatenate([r2, f2], 0)
    event = sol.result == diffrax.RESULTS.event_occurred
    ok = event | (sol.result == diffrax.RESULTS.successful)
    return (jnp.concatenate([ts, t_final[None]]), W1s, W2s, t_final, event, ok, sol.stats["num_accepted_steps"])


def _small_inverse(B):
    """B⁻¹ for a small k×k matrix by Gauss–Jordan elimination with partial pivoting,
    unrolled over the k columns: elementwise operations that XLA fuses, where a
    LAPACK call per matrix (``jnp.linalg.solve``) costs more than the rest of a
    flow step for k ≤ 5 (especially under ``vmap``, a call per start)."""
    k = B.shape[-1]
    rows = jnp.arange(k)
    aug = jnp.concatenate([B, jnp.eye(k, dtype=B.dtype)], axis=-1)
    for j in range(k):
        p = jnp.argmax(jnp.where(rows >= j, jnp.abs(aug[:, j]), -1.0))
        row_j, row_p = aug[j], aug[p]
        aug = jnp.where((rows == p)[:, None], row_j[None], aug)
        aug = aug.at[j].set(row_p)
        pivot_row = aug[j] / aug[j, j]
        aug = aug - aug[:, j : j + 1] * pivot_row[None]
        aug = aug.at[j].set(pivot_row)
    return aug[:, k:]


def _jax_linear_grad(W1, W2, xi, M):
    P = _small_inverse(jnp.eye(W2.shape[-1], dtype=W2.dtype) - W2)
    A = P @ W1
    H = P.T @ (2 * (A - xi) @ M)
    return H, H @ A.T


@functools.partial(jax.jit, static_argnames=("max_steps", "stop"))
def _linear_flow_one(W1, W2, xi, M, ts, rtol, atol, gtol, max_steps, stop):
    return _integrate(_jax_linear_grad, W1, W2, (xi, M), ts, rtol, atol, gtol, max_steps, stop=stop)


def _run(one, W1, W2, log=None):
    """Flows from each start in turn (a Python loop over one compiled flow): under
    ``vmap`` every start would pay for the stiffest one's steps, and a start's
    step costs as much batched as alone at these sizes."""
    rows = []
    for i in range(W1.shape[0]):
        rows.append([np.asarray(v) for v in one(jnp.asarray(W1[i]), jnp.asarray(W2[i]))])
        if log is not None:
            log(i)
    return _flows([np.stack(c) for c in zip(*rows)])


def _pad(W1, W2, xi, M, shape):
    """Embed a (k, d) problem in a (k', d') one: I − W2 → diag(I − W2, I), W1 and Ξ with
    zero rows and columns, M → diag(M, I).  The added entries of W1, W2 have zero
    gradient (the blocks never mix, also in :func:`_small_inverse`'s pivoting), so
    the flow is the same; one compiled flow then serves every (k, d)."""
    K, k, d = W1.shape
    kp, dp = shape
    P1 = np.zeros((K, kp, dp))
    P1[:, :k, :d] = W1
    P2 = np.zeros((K, kp, kp))
    P2[:, :k, :k] = W2
    X = np.zeros((kp, dp))
    X[:k, :d] = xi
    Mp = np.eye(dp)
    Mp[:d, :d] = M
    return P1, P2, X, Mp


def _flows(out):
    ts, W1, W2, t_final, steady, ok, steps = (np.asarray(v) for v in out)
    return Flows(
        ts.astype(float),
        W1.astype(float),
        W2.astype(float),
        t_final.astype(float),
        steady.astype(bool),
        ok.astype(bool),
        steps.astype(int),
    )


def linear_flows(
    W1, W2, xi, M, ts, *, rtol=1e-12, atol=1e-12, gtol=1e-10, max_steps=2**18, pad_to=None, log=None
) -> Flows:
    r"""Gradient flows (W1, W2)' = −∇R of Eq. (M1) (Eq. (M2)'s field) from K starts.

    Args:
      W1: (K, k, d); W2: (K, k, k) starts.  xi: Ξ (k, d).  M: E[XXᵀ] (d, d).
      ts: times to record (increasing, from 0).
      rtol, atol: Dopri8's step-size controller (float64).
      gtol: stop at the first step with ‖∇R‖ ≤ gtol (0: never).
      max_steps: integrator step limit.
      pad_to: (k', d') to embed the problem in (:func:`_pad`), so that one
        compiled flow serves several sizes; None: its own size.
      log: optional callable, called with the index of each start when its flow ends.

    Returns:
      :class:`Flows`.
    """
    W1, W2, xi, M = _f64(W1), _f64(W2), _f64(xi), _f64(M)
    k, d = xi.shape
    shape = (k, d) if pad_to is None else (max(k, pad_to[0]), max(d, pad_to[1]))
    P1, P2, X, Mp = _pad(W1, W2, xi, M, shape)
    with _x64():
        j = lambda a: jnp.asarray(_f64(a))  # noqa: E731
        args = (j(X), j(Mp), j(ts), j(rtol), j(atol), j(gtol))
        out = _run(lambda a, b: _linear_flow_one(a, b, *args, int(max_steps), bool(gtol > 0)), P1, P2, log)
    return out._replace(W1=out.W1[..., :k, :d], W2=out.W2[..., :k, :k])


# ---------------------------------------------------------------------------
# Multi-output single-index DEQ (multi_index).

_PANEL = 12  # Gauss–Legendre nodes per panel of the composite normal rule
_HALF_WIDTH = 9.0  # the composite rule covers |z| ≤ 9: P(|Z| > 9) = 2e-19


def _normal_rule(n):
    """(z, w) with Σ w h(z) ≈ E[h(Z)], Z ~ N(0, 1): for n ≥ 12, ⌈n/12⌉ panels of 12
    Gauss–Legendre nodes on [−9, 9] with the density in the weights (geometric
    convergence also for steep σ(ξᵀx), whose poles near the real axis slow
    Gauss–Hermite down); for n < 12, the n-node Gauss–Hermite rule."""
    if n < _PANEL:
        z, w = np.polynomial.hermite_e.hermegauss(n)
        return z, w / math.sqrt(2 * math.pi)
    panels = math.ceil(n / _PANEL)
    t, wt = np.polynomial.legendre.leggauss(_PANEL)
    edges = np.linspace(-_HALF_WIDTH, _HALF_WIDTH, panels + 1)
    half, mid = (edges[1:] - edges[:-1]) / 2, (edges[1:] + edges[:-1]) / 2
    z = (mid[:, None] + half[:, None] * t[None, :]).ravel()
    w = (half[:, None] * wt[None, :]).ravel() * np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
    return z, w


def quadrature(dist, n):
    r"""A tensor rule (x (N, d), w (N,)) with Σ w h(x) ≈ E[h(X)]: n nodes per axis
    (N = n^d; for a Gaussian with n ≥ 12, n is rounded up to a multiple of 12).

    Unif(box): Gauss–Legendre per axis.  N(μ, Σ): x = μ + S z with S Sᵀ = Σ and z
    on the tensor grid of :func:`_normal_rule` (composite Gauss–Legendre panels
    for n ≥ 12, Gauss–Hermite below).  Both integrate E[XXᵀ] exactly (n ≥ 2);
    the flows of :func:`index_flows` run on such a rule as a law of its own."""
    if isinstance(dist, Uniform):
        t, w = np.polynomial.legendre.leggauss(n)
        t, w = (t + 1) / 2, w / 2
    elif isinstance(dist, Gaussian):
        t, w = _normal_rule(n)
    else:
        raise TypeError(f"dist: expected sideq.uniform(...) or sideq.gaussian(...), got {type(dist).__name__}")
    d = dist.d
    grids = np.meshgrid(*([t] * d), indexing="ij")
    z = np.stack([g.ravel() for g in grids], axis=1)
    weights = np.ones(1)
    for _ in range(d):
        weights = np.multiply.outer(weights, w).ravel()
    if isinstance(dist, Uniform):
        x = dist.low + z * (dist.high - dist.low)
    else:
        x = dist.mean + z @ np.asarray(dist.cov_sqrt).T
    return x, weights


_NEWTON_STEPS = 5  # after two sweeps (‖W2‖₂·Lip(σ) ≤ 0.25): error 0.06 -> 1e-3 -> 3e-7 -> 2e-14 -> rounding


def _value_and_slope(fn, z):
    """(σ(z), σ'(z)) elementwise, from one evaluation (a JVP with unit tangent)."""
    return jax.jvp(fn, (z,), (jnp.ones_like(z),))


def _solve_near_identity(J, b, transpose=False):
    """Solve J u = b (or Jᵀu = b) at every node, J (N, k, k), b (N, k), by Gaussian
    elimination unrolled over the k×k entries: elementwise operations on the node
    axis, which XLA fuses (a LAPACK call per node costs more than the rest of the
    field).  No pivoting: J = I − D W2 with ‖D W2‖₂ ≤ ‖W2‖₂·Lip(σ) < 1, so every
    leading block is I minus a contraction and its pivots stay ≥ 1 − ‖D W2‖₂."""
    k = b.shape[-1]
    a = [[(J[:, j, i] if transpose else J[:, i, j]) for j in range(k)] for i in range(k)]
    u = [b[:, i] for i in range(k)]
    for j in range(k):
        for i in range(j + 1, k):
            f = a[i][j] / a[j][j]
            a[i] = [a[i][m] - f * a[j][m] for m in range(k)]
            u[i] = u[i] - f * u[j]
    for i in reversed(range(k)):
        acc = u[i]
        for m in range(i + 1, k):
            acc = acc - a[i][m] * u[m]
        u[i] = acc / a[i][i]
    return jnp.stack(u, axis=-1)


def _jacobian(D, W2):
    """I − D W2 at every node, (N, k, k): ∂F/∂y of F(y) = y − σ(W1x + W2y)."""
    return jnp.eye(W2.shape[0], dtype=W2.dtype)[None] - D[:, :, None] * W2[None]


def _index_equilibrium(fn, W1, W2, x):
    """y = σ(W1x + W2y) at every node, (N, k): two fixed-point sweeps from σ(W1x),
    then ``_NEWTON_STEPS`` Newton steps y ← y − (I − DW2)⁻¹(y − σ(z)), all unrolled
    (XLA fuses them; a ``while_loop`` pays per-iteration overhead that dominates
    the flow's field).  Where ‖W2‖₂·Lip(σ) < 1 the root is unique (Banach).
    NaN unless the final residual ‖y − σ(W1x + W2y)‖∞ ≤ 64 eps (1 + ‖y‖∞)."""
    z0 = x @ W1.T
    y = fn(z0)
    y = fn(z0 + y @ W2.T)
    y = fn(z0 + y @ W2.T)
    for _ in range(_NEWTON_STEPS):
        s, D = _value_and_slope(fn, z0 + y @ W2.T)
        y = y - _solve_near_identity(_jacobian(D, W2), y - s)
    res = jnp.max(jnp.abs(y - fn(z0 + y @ W2.T)))
    settled = res <= 64 * jnp.finfo(x.dtype).eps * (1 + jnp.max(jnp.abs(y)))
    return jnp.where(settled, y, jnp.nan)


def _index_grad(fn, W1, W2, xi, x, w):
    r"""(∂R/∂W1, ∂R/∂W2) of R = Σ w ‖y(x) − σ(Ξx)‖² (Eq. (1) with k outputs)."""
    y = _index_equilibrium(fn, W1, W2, x)
    _, D = _value_and_slope(fn, x @ W1.T + y @ W2.T)
    r = y - fn(x @ xi.T)
    u = _solve_near_identity(_jacobian(D, W2), r, transpose=True)
    v = 2 * w[:, None] * D * u
    return v.T @ x, v.T @ y


def _slope(fn):
    return lambda z: _value_and_slope(fn, z)[1]


def _index_risk(fn, W1, W2, xi, x, w):
    y = _index_equilibrium(fn, W1, W2, x)
    return w @ jnp.sum((y - fn(x @ xi.T)) ** 2, axis=-1)


def _act(sigma):
    return get_activation(sigma).fn


_index_equilibrium_jit = jax.jit(_index_equilibrium, static_argnums=0)
_index_risk_jit = jax.jit(_index_risk, static_argnums=0)
_index_grad_jit = jax.jit(_index_grad, static_argnums=0)


def index_equilibrium(sigma, W1, W2, x):
    r"""y = σ(W1x + W2y) (Eq. (10) with k outputs) at inputs x (N, d) -> (N, k), by
    Newton's method (needs ‖W2‖₂·Lip(σ) < 1; NaN where it does not settle)."""
    with _x64():
        return np.asarray(_index_equilibrium_jit(_act(sigma), *(jnp.asarray(_f64(a)) for a in (W1, W2, x))))


def index_risk(sigma, W1, W2, xi, x, w):
    r"""R = Σₙ wₙ ‖y(xₙ) − σ(Ξxₙ)‖², the population risk of the quadrature law (x, w)."""
    with _x64():
        return float(_index_risk_jit(_act(sigma), *(jnp.asarray(_f64(a)) for a in (W1, W2, xi, x, w))))


def index_grad(sigma, W1, W2, xi, x, w):
    r"""(∂R/∂W1, ∂R/∂W2) of :func:`index_risk` by Eq. (1) with k outputs:
    with J = I − DW2, D = diag σ'(W1x + W2y) and r = y − σ(Ξx) at each node,
    v = D J⁻ᵀ r, ∂R/∂W1 = 2 Σ w v xᵀ and ∂R/∂W2 = 2 Σ w v yᵀ."""
    with _x64():
        g1, g2 = _index_grad_jit(_act(sigma), *(jnp.asarray(_f64(a)) for a in (W1, W2, xi, x, w)))
        return np.asarray(g1), np.asarray(g2)


def index_hessian_blocks(sigma, xi, x, w):
    r"""Proposition M5: the Hessian of R at (Ξ, 0) is block diagonal over the rows i
    of (W1, W2), with blocks

        H_i = 2 E[σ'(ξ_iᵀX)² z zᵀ],  z = (X, σ(ΞX)) ∈ ℝ^{d+k},

    (the residual vanishes there, so only the Gauss–Newton term remains).
    Returns the blocks (k, d+k, d+k) under the quadrature law (x, w)."""
    xi, x, w = _f64(xi), _f64(x), _f64(w)
    with _x64():
        fn = _act(sigma)
        zs = x @ xi.T
        s = np.asarray(fn(jnp.asarray(zs)))
        ds = np.asarray(_slope(fn)(jnp.asarray(zs)))
    z = np.concatenate([x, s], axis=1)
    return np.stack([2 * (w * ds[:, i] ** 2 * z.T) @ z for i in range(xi.shape[0])])


def index_local_rate(sigma, xi, x, w):
    r"""Proposition M5: the asymptotic rate of r(t) = ‖θ(t) − (Ξ, 0)‖², 2 λ_min(∇²R(Ξ, 0))
    (r ~ e^{−2λ_min t} along the slowest eigenvector of the Hessian)."""
    H = index_hessian_blocks(sigma, xi, x, w)
    return 2 * float(np.min(np.linalg.eigvalsh(H)[:, 0]))


def index_hessian(sigma, xi, x, w):
    r"""∇²R at (Ξ, 0) as a (p, p) matrix, p = k(d + k), in the order (W1, W2) row-major,
    assembled from the blocks of :func:`index_hessian_blocks` (Proposition M5)."""
    blocks = index_hessian_blocks(sigma, xi, x, w)
    k, d = np.shape(xi)
    H = np.zeros((k * (d + k),) * 2)
    for i in range(k):
        idx = np.r_[i * d : (i + 1) * d, k * d + i * k : k * d + (i + 1) * k]
        H[np.ix_(idx, idx)] = blocks[i]
    return H


def index_hessian_autodiff(sigma, xi, x, w):
    r"""∇²R at (Ξ, 0), (p, p) in the order (W1, W2) row-major: forward-mode differentiation
    of :func:`index_grad` (through the Newton solve), a second route to
    :func:`index_hessian_blocks`."""
    xi = _f64(xi)
    k, d = xi.shape
    fn = _act(sigma)
    with _x64():
        args = [jnp.asarray(_f64(a)) for a in (xi, x, w)]

        def g(p):
            g1, g2 = _index_grad(fn, p[: k * d].reshape(k, d), p[k * d :].reshape(k, k), *args)
            return jnp.concatenate([g1.ravel(), g2.ravel()])

        theta = jnp.concatenate([args[0].ravel(), jnp.zeros(k * k)])
        return np.asarray(jax.jit(jax.jacfwd(g))(theta))


def index_linearized_r(sigma, W1, W2, xi, x, w, ts, scale=1.0):
    r"""Proposition M5's prediction for r(t) = ‖θ(t) − (Ξ, 0)‖² from a start θ(0) close to
    (Ξ, 0): the linearized flow δ' = −Hδ, H = ∇²R(Ξ, 0), gives
    r(t) = ‖e^{−Ht}δ(0)‖² (H from :func:`index_hessian_blocks`, times ``scale``).

    Args:
      W1, W2: the start; xi, x, w: Ξ and the quadrature law; ts: times (T,).

    Returns:
      r at ``ts``, (T,).
    """
    xi = _f64(xi)
    k, d = xi.shape
    lam, V = np.linalg.eigh(scale * index_hessian_blocks(sigma, xi, x, w))
    delta = np.concatenate([_f64(W1) - xi, _f64(W2)], axis=1)  # row i: (W1[i] − ξ_i, W2[i])
    c = np.einsum("bpq,bp->bq", V, delta)  # coordinates in each block's eigenbasis
    ts = _f64(ts)
    return np.sum((c[None] * np.exp(-lam[None] * ts[:, None, None])) ** 2, axis=(1, 2))


def index_starts(xi, r0, K, seed=0, frac_sphere=0.5):
    r"""K starts (W1, W2) in the ball ‖(W1 − Ξ, W2)‖_F ≤ r0 around (Ξ, 0), a fraction of
    them on its sphere (Theorem 3.8's region, k outputs)."""
    xi = _f64(xi)
    k, d = xi.shape
    p = k * (d + k)
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((K, p))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    rad = r0 * rng.uniform(0, 1, K) ** (1 / p)
    rad[: int(K * frac_sphere)] = r0
    u = rad[:, None] * u
    return xi + u[:, : k * d].reshape(K, k, d), u[:, k * d :].reshape(K, k, k)


@functools.partial(jax.jit, static_argnames=("fn", "max_steps", "stop"))
def _index_flow_one(fn, W1, W2, xi, x, w, ts, rtol, atol, gtol, max_steps, stop):
    return _integrate(
        functools.partial(_index_grad, fn), W1, W2, (xi, x, w), ts, rtol, atol, gtol, max_steps, stop=stop
    )


def index_flows(sigma, W1, W2, xi, x, w, ts, *, rtol=1e-10, atol=1e-12, gtol=0.0, max_steps=65536, log=None) -> Flows:
    r"""Gradient flows for the multi-output single-index DEQ on the quadrature law (x, w),
    with :func:`index_grad`'s field; arguments as for :func:`linear_flows`."""
    fn = _act(sigma)
    with _x64():
        j = lambda a: jnp.asarray(_f64(a))  # noqa: E731
        args = (j(xi), j(x), j(w), j(ts), j(rtol), j(atol), j(gtol))
        return _run(
            lambda a, b: _index_flow_one(fn, a, b, *args, int(max_steps), bool(gtol > 0)), _f64(W1), _f64(W2), log
        )
