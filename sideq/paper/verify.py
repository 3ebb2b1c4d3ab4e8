r"""Check every result of Section 3 against simulation (``sideq verify``).

:func:`run` returns one record per (claim, variant, setting)::

    claim       "Theorem 3.3", "Eq. (8)", ...
    variant     "printed" / "corrected" / "as printed" (statements not in
                ERRATA.md) / "outside" (beyond the assumptions: informational)
    setting     model, law of X, ξ, inits, step size
    predicted   the prediction (number or short text)
    observed    the observed counterpart (worst case over the inits)
    worst       the init (θ(0)) realising the worst case
    tolerance   what "holds" allows
    tightness   for bounds: observed/predicted (≥ 1 when the bound holds;
                how loose it is), None otherwise
    holds       did the simulation satisfy the prediction
    should_hold False for printed statements known wrong (they are shown failing
                with their counterexample), None for "outside" records

Bounds of the form r(t) ≤ P r(0) e^{−λt} are judged through the best rate the
data supports, λ_emp = min_t −log(r(t)/(P r(0)))/t over the recorded times
(rows below a noise floor 1e-14 r(0) are skipped); the bound holds iff
λ_emp ≥ λ (1 − 1e-6) and tightness = λ_emp/λ.  Discrete bounds
r(t) ≤ P q^t r(0) likewise use q_emp = max_t (r(t)/(P r(0)))^{1/t} and
tightness = log q_emp / log q.

Simulation: gradient flows are ``jax.vmap`` over
:func:`sideq.gradient_flow.gradient_flow` (Dopri8, rtol = atol = 1e-12, population
risk by quadrature); gradient-descent trajectories are ``jax.vmap`` over
:func:`sideq.dynamics.gradient_descent`; the step-size scan of Theorem 3.9
uses :func:`sideq.sweep.run_sweep`; the step-size scan above η0 of Lemma 3.7
(:func:`eta0_scan`) vmaps descent over (start, η) pairs.  Every check takes
``perturb``: the prediction is multiplied by it (tests use it to show each
check can fail).  :func:`plots` draws the VERIFY.md figures from the same
(cached) simulations: ``sideq verify --plots DIR``.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import sideq
import sideq.sweep
from sideq.data import second_moment
from sideq.dynamics import gradient_descent
from sideq.errors import SideqInputError
from sideq.general import empirical_risk as deq_empirical_risk
from sideq.general import equilibrium as deq_equilibrium
from sideq.gradient_flow import gradient_flow, reached_rows
from sideq.paper import multi as MU
from sideq.paper import theory as T
from sideq.paper import verify_markdown as VM
from sideq.progress import advance, bar
from sideq.risk import initial_nodes_y0, population_objective

__all__ = ["format_table", "main", "run", "run_multi", "run_parameters"]

NOISE = 1e-14
# Starts per setting and points per axis of the rho grid: `--quick` and the full run.
QUICK_STARTS, FULL_STARTS = 8, 24
QUICK_GRID, FULL_GRID = 31, 61


# ---------------------------------------------------------------------------
# Settings.


def _uniform(d, hi=1.0):
    return sideq.uniform(0.0, hi, d)


LINEAR_SETTINGS = {
    "unif1": {"desc": "linear, X~Unif[0,1], xi=2", "dist": lambda: _uniform(1), "xi": (2.0,)},
    "gauss3": {
        "desc": "linear, X~N(0, diag(10,1,0.1)) (cond 100), xi=(1,-0.5,0.8)",
        "dist": lambda: sideq.gaussian(0.0, np.array([10.0, 1.0, 0.1]), nodes=48),
        "xi": (1.0, -0.5, 0.8),
    },
    "unif0.1": {"desc": "linear, X~Unif[0,0.1], xi=2", "dist": lambda: _uniform(1, 0.1), "xi": (2.0,)},
    "gauss2": {
        "desc": "linear, X~N(0.3, I_2), xi=(1,1)",
        "dist": lambda: sideq.gaussian(0.3, 1.0, 2, nodes=48),
        "xi": (1.0, 1.0),
    },
}

SI_SETTINGS = {
    "tanh-unif1": {"act": "tanh", "dist": lambda: _uniform(1), "xi": (1.0,), "r0": 0.5},
    "sigmoid-unif1": {"act": "sigmoid", "dist": lambda: _uniform(1), "xi": (1.0,), "r0": 0.5},
    "softplus-unif1": {"act": "softplus", "dist": lambda: _uniform(1), "xi": (1.0,), "r0": 0.5},
    "tanh-unif2": {"act": "tanh", "dist": lambda: _uniform(2), "xi": (1.0, 0.5), "r0": 0.5},
    "tanh-gauss1": {"act": "tanh", "dist": lambda: sideq.gaussian(0.0, 1.0, 1, nodes=72), "xi": (1.0,), "r0": 0.5},
    "softplus-gauss2": {
        "act": "softplus",
        "dist": lambda: sideq.gaussian(0.0, np.array([1.0, 0.01]), nodes=72),
        "xi": (1.0, 2.0),
        "r0": 0.5,
    },
    "softplus-gauss2iso": {
        "act": "softplus",
        "dist": lambda: sideq.gaussian(0.0, 1.0, 2, nodes=72),
        "xi": (1.0, 0.5),
        "r0": 0.5,
    },
}


def _dist_desc(dist):
    if isinstance(dist, sideq.Uniform):
        return f"Unif[{dist.low[0]:g},{dist.high[0]:g}]^{dist.d}"
    ev = np.linalg.eigvalsh(np.asarray(dist.cov))
    return f"N({np.asarray(dist.mean)[0]:g}, cov eig {ev.min():g}..{ev.max():g})^{dist.d}"


def linear_inits(d, K, seed=0):
    """K starts for the linear DEQ: half near θ2 = 1 (|1 − θ2| in [0.02, 0.2]),
    half far (|1 − θ2| in [0.5, 3]), both sides; plus θ1 = 0 starts (the
    counterexample of the printed Theorem 3.4)."""
    rng = np.random.default_rng(seed)
    k_near = K // 2
    side = np.where(np.arange(K) % 2 == 0, 1.0, -1.0)
    gap = np.concatenate([rng.uniform(0.02, 0.2, k_near), rng.uniform(0.5, 3.0, K - k_near)])
    th1 = rng.normal(0, 0.7, (K, d))
    th1[-2:] = 0.0  # φ(0) = 0 starts
    gap[-2:] = [3.0, 2.0]
    side[-2:] = [1.0, -1.0]
    return np.concatenate([th1, (1 - side * gap)[:, None]], 1)


def ball_inits(center, radius, K, seed=0, frac_sphere=0.5):
    """K starts in the closed ball B(center, radius): a fraction on the sphere."""
    rng = np.random.default_rng(seed)
    p = len(center)
    z = rng.standard_normal((K, p))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    r = radius * rng.uniform(0, 1, K) ** (1 / p)
    r[: int(K * frac_sphere)] = radius
    return np.asarray(center) + r[:, None] * z


# ---------------------------------------------------------------------------
# Simulation (jitted once per model and shapes; laws and ξ are traced).


@functools.partial(jax.jit, static_argnames=("model", "max_steps"))
def _flow_batch(model, inits, xi, dist, ts, gtol, max_steps=4096):
    obj = population_objective(model, xi, dist)
    cold = lambda th: initial_nodes_y0(model, th, xi, dist)
    return jax.vmap(
        lambda th0: gradient_flow(
            model, obj, th0, xi, cold_start=cold, t1=ts[-1], saveat_ts=ts, gtol=gtol, max_steps=max_steps
        )
    )(inits)


@functools.partial(jax.jit, static_argnames=("model", "epochs"))
def _gd_batch(model, inits, xi, dist, eta, epochs):
    obj = population_objective(model, xi, dist)
    return jax.vmap(
        lambda th0: gradient_descent(
            model, obj, th0, initial_nodes_y0(model, th0, xi, dist), xi, epochs=epochs, eta=eta
        )
    )(inits)


_CACHE: dict = {}


def _memo(key, fn):
    if key not in _CACHE:
        _CACHE[key] = fn()
    return _CACHE[key]


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def linear_flow(name, K):
    s = LINEAR_SETTINGS[name]

    def go():
        dist, xi = s["dist"](), np.array(s["xi"])
        inits = linear_inits(len(xi), K)
        ts = np.concatenate([[0.0], np.geomspace(1e-4, 3000.0, 120)])
        tr = _np(
            _flow_batch(sideq.linear(), jnp.asarray(inits), jnp.asarray(xi), dist, jnp.asarray(ts), jnp.asarray(1e-12))
        )
        return {
            "dist": dist,
            "xi": xi,
            "inits": inits,
            "traj": tr,
            "desc": f"{s['desc']}, {K} inits (near/far theta2=1)",
        }

    return _memo(("lflow", name, K), go)


def si_flow(name, K, *, act=None, radius=None, t1=60.0, tag="", max_steps=4096):
    s = SI_SETTINGS[name]
    act = act or s["act"]

    def go():
        model = sideq.single_index(act)
        dist, xi = s["dist"](), np.array(s["xi"])
        r = s["r0"] if radius is None else radius
        inits = ball_inits(np.append(xi, 0.0), r, K, seed=1)
        ts = np.concatenate([[0.0], np.geomspace(1e-3, t1, 80)])
        tr = _np(
            _flow_batch(
                model, jnp.asarray(inits), jnp.asarray(xi), dist, jnp.asarray(ts), jnp.asarray(0.0), max_steps=max_steps
            )
        )
        desc = f"{act}, X~{_dist_desc(dist)}, xi={xi.tolist()}, {K} inits in B((xi,0),{r:g})"
        return {"model": model, "dist": dist, "xi": xi, "inits": inits, "traj": tr, "r0": r, "desc": desc}

    return _memo(("siflow", name, K, act, radius, t1, tag, max_steps), go)


# ---------------------------------------------------------------------------
# Judging helpers.


def _lam_emp(ts, r, r0, prefactor=1.0):
    """Best λ with r(t) ≤ P r0 e^{−λt} on the recorded rows (per run); +∞ when every
    row past t = 0 is below the noise floor, NaN (a failed check) when a row the
    flow reached is not finite.  Rows past the stop time (a flow's requested times
    after ``t_final``, its last row) are not data and are skipped."""
    ts = np.asarray(ts)
    out = np.full(r.shape[0], np.inf)
    for i in range(r.shape[0]):
        reached = reached_rows(ts[i])
        if not np.all(np.isfinite(r[i][reached])):
            out[i] = np.nan
            continue
        ok = reached & (ts[i] > 0) & (r[i] > NOISE * r0[i])
        if np.any(ok):
            out[i] = np.min(-np.log(r[i][ok] / (prefactor * r0[i])) / ts[i][ok])
    return out


def _q_emp(r, r0, prefactor=1.0):
    """log of the best q with r(t) ≤ P q^t r0 (per run), t = 1..T; −∞ when every
    step is below the noise floor, NaN (a failed check) when a step is not finite."""
    t = np.arange(r.shape[1])
    out = np.full(r.shape[0], -np.inf)
    for i in range(r.shape[0]):
        if not np.all(np.isfinite(r[i])):
            out[i] = np.nan
            continue
        ok = (t > 0) & (r[i] > NOISE * r0[i])
        if np.any(ok):
            out[i] = np.max(np.log(r[i][ok] / (prefactor * r0[i])) / t[ok])
    return out


def _rec(claim, variant, setting, predicted, observed, worst, tolerance, holds, should_hold, tightness=None, note=""):
    def clean(v):
        if isinstance(v, (np.floating, np.integer)):
            return v.item()
        if isinstance(v, np.ndarray):
            return [clean(x) for x in v.tolist()]
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return {
        "claim": claim,
        "variant": variant,
        "setting": setting,
        "predicted": clean(predicted),
        "observed": clean(observed),
        "worst": clean(worst),
        "tolerance": tolerance,
        "tightness": clean(tightness),
        "holds": bool(holds),
        "should_hold": should_hold,
        "note": note,
    }


def _phi_err(theta, xi):
    phi = theta[..., :-1] / (1 - theta[..., -1:])
    return np.sum((phi - xi) ** 2, -1)


# ---------------------------------------------------------------------------
# Section 3.1: linear flow.


def check_theorem_3_1(name="unif1", K=8, perturb=1.0):
    """Theorem 3.1: w(t) = w(0) along the flow (predicted drift 0; perturb scales w(0))."""
    s = linear_flow(name, K)
    tr = s["traj"]
    w0 = T.conserved_w(s["inits"]) * perturb
    rel = np.max(np.abs(tr.w - w0[:, None]), 1) / w0
    i = int(np.argmax(rel))
    return _rec(
        "Theorem 3.1",
        "as printed",
        s["desc"],
        "w(t) = ||theta(0)-e||^2 for all t",
        f"max_t |w(t)-w(0)|/w(0) = {rel[i]:.2e}",
        s["inits"][i],
        "1e-9 relative",
        rel[i] <= 1e-9,
        True,
    )


def check_lemma_3_2(name="unif1", K=8, perturb=1.0):
    """Lemma 3.2: sign(1 − θ2(t)) = sign(1 − θ2(0)) (perturb = −1 predicts the other side)."""
    s = linear_flow(name, K)
    tr = s["traj"]
    side = np.array([T.lemma_3_2_side(th0) for th0 in s["inits"]]) * perturb
    margin = np.min(side[:, None] * (1 - tr.theta[..., -1]), 1)
    i = int(np.argmin(margin))
    ok = bool(np.all(tr.status == 0)) and margin[i] > 0
    return _rec(
        "Lemma 3.2",
        "as printed",
        s["desc"],
        "theta2(t) != 1, same side as theta2(0), flow defined",
        f"min_t side*(1-theta2(t)) = {margin[i]:.3g}; statuses {sorted(set(tr.status.tolist()))}",
        s["inits"][i],
        "> 0, all runs converged",
        ok,
        True,
    )


def check_theorem_3_3(name="unif1", K=8, variant="corrected", perturb=1.0):
    """Theorem 3.3: θ(∞) = (αξ, 1 − α) (perturb scales the predicted α)."""
    s = linear_flow(name, K)
    fn = T.theorem_3_3_limit_corrected if variant == "corrected" else T.theorem_3_3_limit_printed
    pred = np.stack([fn(th0, s["xi"]) for th0 in s["inits"]])
    if perturb != 1.0:
        a = (1 - pred[:, -1]) * perturb
        pred = np.concatenate([a[:, None] * s["xi"], (1 - a)[:, None]], 1)
    err = np.linalg.norm(s["traj"].theta[:, -1] - pred, axis=1)
    i = int(np.argmax(err))
    return _rec(
        "Theorem 3.3",
        variant,
        s["desc"],
        f"limit {np.round(pred[i], 4).tolist()}",
        f"theta(T) = {np.round(s['traj'].theta[i, -1], 4).tolist()}, max error {err[i]:.2e}",
        s["inits"][i],
        "1e-6",
        err[i] <= 1e-6 and np.all(s["traj"].status == 0),
        variant == "corrected",
    )


def check_theorem_3_4(name="unif1", K=8, variant="corrected", perturb=1.0):
    """Theorem 3.4: ‖φ(t) − ξ‖² ≤ P ‖φ(0) − ξ‖² e^{−λt}.
    printed: P = 1, λ = 4λ_min/β², β = inf_t |1 − θ2(t)| (the best admissible lower bound);
    corrected: P = κ, λ = 4λ_min/w(0)."""
    s = linear_flow(name, K)
    tr, xi = s["traj"], s["xi"]
    r = _phi_err(tr.theta, xi)
    r0 = r[:, 0]
    lam, P = np.zeros(K), np.ones(K)
    for i, th0 in enumerate(s["inits"]):
        if variant == "printed":
            beta = np.min(np.abs(1 - tr.theta[i, :, -1]))
            P[i], lam[i] = T.theorem_3_4_rate_printed(s["dist"], beta)
        else:
            P[i], lam[i] = T.theorem_3_4_rate_corrected(s["dist"], th0)
    lam = lam * perturb
    emp = np.array([_lam_emp(tr.ts[i : i + 1], r[i : i + 1], r0[i : i + 1], P[i])[0] for i in range(K)])
    tight = emp / lam
    i = int(np.argmin(tight))
    return _rec(
        "Theorem 3.4",
        variant,
        s["desc"],
        f"rate {lam[i]:.4g} (prefactor {P[i]:.3g})",
        f"best supported rate {emp[i]:.4g}",
        s["inits"][i],
        "rate_emp >= rate (1 - 1e-6)",
        tight[i] >= 1 - 1e-6,
        variant == "corrected",
        tightness=tight[i],
        note=f"tightness over inits: min {tight.min():.3g}, median {np.median(tight):.3g}",
    )


# ---------------------------------------------------------------------------
# Section 3.1.2: linear gradient descent.


def linear_gd(name, K, eta_scale=1.0, epochs=400):
    s = LINEAR_SETTINGS[name]

    def go():
        dist = s["dist"]()
        xi = np.array(s["xi"])
        inits = linear_inits(len(xi), K, seed=3)
        # step: the partial eta0 of Lemma 3.7's proof (beta/2, beta^2/(4 R0)), times eta_scale
        c = [T.lemma_3_7(sideq.linear(), th0, xi, dist) for th0 in inits]
        eta = eta_scale * min(cc["eta0_partial"] for cc in c)
        tr = _np(_gd_batch(sideq.linear(), jnp.asarray(inits), jnp.asarray(xi), dist, jnp.asarray(eta), epochs))
        desc = f"linear GD, X~{_dist_desc(dist)}, xi={xi.tolist()}, {K} inits, eta={eta:.3g}, {epochs} steps"
        return {"dist": dist, "xi": xi, "inits": inits, "traj": tr, "eta": eta, "c": c, "desc": desc}

    return _memo(("lgd", name, K, eta_scale, epochs), go)


def check_eq_8(name="unif1", K=8, perturb=1.0):
    """Eq. (8): w(t+1) = w(t) + η²‖∇R(θ(t))‖² (perturb scales the η² term)."""
    s = linear_gd(name, K)
    tr, eta = s["traj"], s["eta"]
    pred = T.eq_8_next_w(tr.w[:, :-1], eta, tr.grad_norm[:, :-1] ** 2 * perturb)
    incr = np.maximum(np.abs(tr.w[:, 1:] - tr.w[:, :-1]), 1e-300)
    err = np.max(np.abs(tr.w[:, 1:] - pred) / np.maximum(incr, 1e-12 * tr.w[:, :-1]), 1)
    i = int(np.argmax(err))
    return _rec(
        "Eq. (8)",
        "as printed",
        s["desc"],
        "w(t+1) - w(t) = eta^2 ||grad R||^2",
        f"max relative error of the increment {err[i]:.2e}",
        s["inits"][i],
        "1e-3 of the increment (or 1e-12 w)",
        err[i] <= 1e-3,
        True,
    )


def _secant_L(tr):
    dth = np.linalg.norm(np.diff(tr.theta, axis=1), axis=-1)
    # ‖∇R(t+1) − ∇R(t)‖ is not stored; use |‖g(t+1)‖ − ‖g(t)‖| ≤ it: a lower bound on L
    dg = np.abs(np.diff(tr.grad_norm, axis=1))
    return np.nanmax(np.where(dth > 0, dg / np.maximum(dth, 1e-300), 0))


def check_lemma_3_5(name="unif1", K=8, perturb=1.0):
    """Lemma 3.5 on the linear risk along GD: R(t+1) ≤ R(t) − (η/2)‖∇R(t)‖²
    (perturb scales the guaranteed decrease η/2), judged on the decrease
    R(t) − R(t+1) itself (forming the right-hand side would lose the tiny
    decrease to rounding)."""
    s = linear_gd(name, K)
    tr, eta = s["traj"], s["eta"]
    Lsec = _secant_L(tr)
    dec = tr.loss[:, :-1] - tr.loss[:, 1:]
    need = 0.5 * eta * perturb * tr.grad_norm[:, :-1] ** 2
    ok = need > 1e-13 * tr.loss[:, :-1]
    ratio = np.where(ok, dec / np.where(ok, need, 1), np.inf)
    worst = np.min(ratio, 1)
    i = int(np.argmin(worst))
    return _rec(
        "Lemma 3.5",
        "as printed",
        s["desc"] + f", eta*L_secant = {eta * Lsec:.3g}",
        "R(t+1) <= R(t) - (eta/2)||grad R(t)||^2",
        f"min decrease/(eta/2 g^2) = {worst[i]:.4g}",
        s["inits"][i],
        ">= 1 - 1e-9",
        worst[i] >= 1 - 1e-9,
        True,
        tightness=worst[i],
        note="eta is the Lemma 3.7 step (beta/2, beta^2/(4R0)); L estimated by secants along the run",
    )


def check_lemma_3_7(name="unif1", K=8, perturb=1.0):
    """Lemma 3.7: GD iterates stay in Θ (perturb scales β; the upper bounds by 1/perturb)."""
    s = linear_gd(name, K)
    tr = s["traj"]
    margins = []
    for i, c in enumerate(s["c"]):
        gap = np.abs(1 - tr.theta[i, :, -1])
        n1 = np.linalg.norm(tr.theta[i, :, :-1], axis=-1)
        m = min(
            np.min(gap) / (c["beta"] * perturb), c["upper"] / perturb / np.max(gap), c["upper"] / perturb / np.max(n1)
        )
        margins.append(m)
    margins = np.array(margins)
    i = int(np.argmin(margins))
    c = s["c"][i]
    return _rec(
        "Lemma 3.7",
        "as printed",
        s["desc"],
        f"theta(t) in Theta: beta={c['beta']:.3g} <= |1-theta2| <= {c['upper']:.3g}, ||theta1|| <= {c['upper']:.3g}",
        f"min slack ratio {margins[i]:.4g}",
        s["inits"][i],
        ">= 1",
        margins[i] >= 1,
        True,
        tightness=margins[i],
        note=f"c0={c['c0']:.3g}",
    )


def check_theorem_3_6(name="unif1", K=8, variant="corrected", perturb=1.0, epochs=400):
    """Theorem 3.6: ‖φ(t) − ξ‖² ≤ κ q^t ‖φ(0) − ξ‖² (perturb scales 1 − q)."""
    s = linear_gd(name, K, epochs=epochs)
    tr, xi, eta = s["traj"], s["xi"], s["eta"]
    r = _phi_err(tr.theta, xi)
    fn = T.theorem_3_6_rate_corrected if variant == "corrected" else T.theorem_3_6_rate_printed
    tight, qs, qe = [], [], []
    for i, th0 in enumerate(s["inits"]):
        P, q = fn(s["dist"], th0, eta)
        logq = math.log1p(-(1 - q) * perturb)
        e = _q_emp(r[i : i + 1], r[i : i + 1, 0], P)[0]  # log q_emp
        tight.append(e / logq)
        qs.append(-logq)
        qe.append(-e)
    tight = np.array(tight)
    i = int(np.argmin(tight))
    return _rec(
        "Theorem 3.6",
        variant,
        s["desc"],
        f"-log q = {qs[i]:.4g} per step (prefactor kappa)",
        f"best supported -log q = {qe[i]:.4g}",
        s["inits"][i],
        "log q_emp / log q >= 1 - 1e-6",
        tight[i] >= 1 - 1e-6,
        variant == "corrected",
        tightness=tight[i],
        note=f"tightness over inits: min {tight.min():.3g}, median {np.median(tight):.3g}",
    )


@functools.partial(jax.jit, static_argnames=("model", "epochs", "history"))
def _gd_pairs(model, inits, etas, xi, dist, epochs, history=True):
    """Gradient descent from inits[k] with step etas[k] (vmapped; one compile per shape)."""
    obj = population_objective(model, xi, dist)
    return jax.vmap(
        lambda th0, eta: gradient_descent(
            model, obj, th0, initial_nodes_y0(model, th0, xi, dist), xi, epochs=epochs, eta=eta, history=history
        )
    )(inits, etas)


def check_theorem_3_6_eta0(name="unif1", K=8, perturb=1.0, variant="corrected", octaves=40, epochs=1000):
    """Theorem 3.6 and Lemma 3.7 (θ(t) ∈ Θ) at the step η = η0(θ(0)) computed
    by :func:`sideq.paper.theory.theorem_3_6_eta0`, from each start (the k = 0 runs
    of :func:`eta0_scan`, with its ``octaves`` and ``epochs``), so within the
    theorem's hypotheses; the corrected rate (ERRATA.md §4) or the printed one.
    perturb scales −log q."""
    sc = eta0_scan(name, K, octaves=octaves, epochs=epochs)
    tr, xi = sc["at_eta0"], sc["xi"]
    r = _phi_err(tr.theta, xi)
    tight, qs, qe, inside = [], [], [], []
    for i, th0 in enumerate(sc["inits"]):
        rate = T.theorem_3_6_log_rate_printed if variant == "printed" else T.theorem_3_6_log_rate_corrected
        P, mlogq = rate(sc["dist"], th0, sc["eta0"][i])
        logq = -mlogq * perturb
        e = _q_emp(r[i : i + 1], r[i : i + 1, 0], P)[0]
        tight.append(e / logq)
        qs.append(-logq)
        qe.append(-e)
        inside.append(bool(np.all(T.in_theta_3_7(tr.theta[i], sc["e"][i]))))
    tight = np.array(tight)
    i = int(np.argmin(tight))
    e = sc["e"][i]
    return _rec(
        "Theorem 3.6 (eta0)",
        variant,
        f"linear GD, X~{_dist_desc(sc['dist'])}, xi={xi.tolist()}, {K} inits, eta = eta0(theta(0)) in "
        f"{sc['eta0'].min():.3g}..{sc['eta0'].max():.3g}, {sc['epochs']} steps",
        f"at eta0 = {sc['eta0'][i]:.3g} (binding {e['binding']}; L_Theta <= {e['L_bound']:.3g}, "
        f"attained {e['L_attained']:.3g}): -log q = {qs[i]:.4g}, theta(t) in Theta",
        f"best supported -log q = {qe[i]:.4g}; in Theta: {sum(inside)}/{len(inside)}",
        sc["inits"][i],
        "log q_emp / log q >= 1 - 1e-6 and theta(t) in Theta",
        tight[i] >= 1 - 1e-6 and all(inside),
        variant == "corrected",
        tightness=tight[i],
        note=f"L_bound/L_attained <= {max(x['L_bound'] / x['L_attained'] for x in sc['e']):.4g} over the starts; "
        f"binding term: {_counts(x['binding'] for x in sc['e'])}; eta0 printed/corrected per start: "
        + ", ".join(f"{x['eta0_printed'] / x['eta0']:.3g}" for x in sc["e"]),
    )


def _counts(values):
    """'a on n/N starts, b on m/N' for the distinct values, most frequent first."""
    values = list(values)
    seen = {v: values.count(v) for v in dict.fromkeys(values)}
    return ", ".join(f"{v} on {n}/{len(values)}" for v, n in sorted(seen.items(), key=lambda kv: -kv[1]))


def _top_of_first_run(ok, mult):
    """Per row: the largest mult[j] of the first contiguous run of True (0 if none)."""
    out = np.zeros(ok.shape[0])
    for k in range(ok.shape[0]):
        good = np.flatnonzero(ok[k])
        if len(good):
            j = good[0]
            while j + 1 < ok.shape[1] and ok[k, j + 1]:
                j += 1
            out[k] = mult[j]
    return out


# The Theorem 3.6 counterexample (X ~ Unif[0, 0.1]): each start at its own η0, 2000 steps.
COUNTEREXAMPLE_3_6 = {"octaves": 0, "epochs": 2000}


def eta0_scan(name="unif1", K=8, octaves=40, epochs=1000):
    """Steps η = η0·2^k (k = 0..octaves) from each start, GD for ``epochs`` steps.

    Two observed counterparts of η0, per start, as multiples of η0 (the top of
    the first contiguous range of grid values that pass):
    ``keeps``: θ(t) stays in Lemma 3.7's Θ and R(θ(t)) is nonincreasing, i.e.
    what η ≤ η0 guarantees; ``converges``: R(θ(T)) ≤ 1e-8 R(θ(0)), finite
    (0 when no grid η converges within ``epochs`` steps: from starts near
    θ2 = 1 small steps are too slow and large ones throw θ onto a huge sphere,
    Eq. (8), where progress stalls)."""
    s = LINEAR_SETTINGS[name]

    def go():
        dist, xi = s["dist"](), np.array(s["xi"])
        inits = linear_inits(len(xi), K, seed=3)
        es = [T.theorem_3_6_eta0(th0, xi, dist) for th0 in inits]
        eta0 = np.array([e["eta0"] for e in es])
        mult = 2.0 ** np.arange(octaves + 1)
        n = len(mult)
        th = np.repeat(inits, n, axis=0)
        etas = (eta0[:, None] * mult[None]).ravel()
        tr = _np(_gd_pairs(sideq.linear(), jnp.asarray(th), jnp.asarray(etas), jnp.asarray(xi), dist, epochs))
        beta = np.repeat([e["beta"] for e in es], n)[:, None]
        upper = np.repeat([e["upper"] for e in es], n)[:, None]
        gap = np.abs(1 - tr.theta[..., -1])
        n1 = np.linalg.norm(tr.theta[..., :-1], axis=-1)
        fin = np.all(np.isfinite(tr.loss), 1)
        inside = np.all((gap >= beta) & (gap <= upper) & (n1 <= upper), 1)
        mono = np.all(np.diff(tr.loss, axis=1) <= 1e-13 * tr.loss[:, :1], 1)
        keeps = (fin & inside & mono).reshape(K, n)
        conv = (fin & (tr.loss[:, -1] <= 1e-8 * tr.loss[:, 0])).reshape(K, n)
        at_eta0 = jax.tree_util.tree_map(lambda a: a.reshape((K, n) + a.shape[1:])[:, 0], tr)
        return {
            "keeps": _top_of_first_run(keeps, mult),
            "converges": _top_of_first_run(conv, mult),
            "eta0": eta0,
            "e": es,
            "at_eta0": at_eta0,
            "inits": inits,
            "dist": dist,
            "xi": xi,
            "epochs": epochs,
        }

    return _memo(("eta0scan", name, K, octaves, epochs), go)


def check_eta0_tightness(name="unif1", K=8):
    """Informational: how conservative η0 is (largest η keeping Lemma 3.7's
    conclusions / η0, and largest convergent η / η0)."""
    sc = eta0_scan(name, K)
    keeps, conv, eta0 = sc["keeps"], sc["converges"], sc["eta0"]
    i = int(np.argmin(keeps))
    cv = conv[conv > 0]
    return _rec(
        "Theorem 3.6 (eta0 tightness)",
        "corrected",
        f"linear GD, X~{_dist_desc(sc['dist'])}, xi={sc['xi'].tolist()}, {K} inits, eta = eta0 * 2^k, "
        f"{sc['epochs']} steps",
        f"eta0 per start {eta0.min():.3g}..{eta0.max():.3g}",
        f"largest eta keeping theta in Theta and R nonincreasing / eta0: min {keeps.min():.3g}, "
        f"median {np.median(keeps):.3g}; largest convergent eta / eta0: "
        + (
            f"{cv.min():.3g}..{cv.max():.3g} ({len(cv)}/{K} starts converge for some eta)"
            if len(cv)
            else f"none converges within {sc['epochs']} steps"
        ),
        sc["inits"][i],
        "informational",
        bool(np.all(keeps >= 1)),
        None,
        tightness=keeps[i],
        note="tightness = min over starts of (largest eta keeping Lemma 3.7's conclusions)/eta0",
    )


# ---------------------------------------------------------------------------
# Section 3.2: single-index flow and descent.


def _t38(name, region, grid):
    s = SI_SETTINGS[name]
    return _memo(
        ("t38", name, region, grid),
        lambda: T.theorem_3_8(
            sideq.single_index(s["act"]), s["xi"], s["dist"](), delta2=s["r0"], grid=grid, region=region
        ),
    )


def _sigma0(act):
    return float(T.sigma(sideq.single_index(act), 0.0)[0])


def _rho_should_be_positive(variant, act):
    """ρ > 0 (so λ1 > 0 and Theorem 3.9 has a step size) is expected over the ball
    (corrected), and over the printed Θ unless σ(0) = 0 (ERRATA.md §6)."""
    return bool(variant == "corrected" or _sigma0(act) != 0)


def check_rho_positive(name="tanh-unif1", variant="printed", grid=41, perturb=1.0):
    """Theorem 3.8: ρ > 0 (assumption 3 / Remark 3.1).  Printed Θ contains θ1 = 0."""
    t = _t38(name, variant, grid)
    s = SI_SETTINGS[name]
    rho = t.rho * perturb
    return _rec(
        "Theorem 3.8 (rho > 0)",
        variant,
        f"{s['act']}, X~{_dist_desc(s['dist']())}, xi={s['xi']}, delta2=r0={s['r0']}, alpha={t.alpha:.3g}",
        "rho > 0",
        f"rho = {rho:.4g} at theta={np.round(t.rho_info['arg'], 4).tolist()}",
        t.rho_info["arg"],
        f"> 1e-12 (grid {t.rho_info['grid_points']} pts, refinement {t.rho_info['rel_refinement']:.2g})",
        rho > 1e-12,
        _rho_should_be_positive(variant, s["act"]),
        note="printed Theta contains theta1 = 0, where y = 0 when sigma(0) = 0 (ERRATA.md §6)",
    )


def check_theorem_3_8(name="tanh-unif1", K=8, variant="corrected", grid=41, perturb=1.0):
    """Theorem 3.8: r(t) ≤ r(0) exp(−cργ²/(1 + Lδ2) t) for starts in B((ξ,0), δ2): c = 2
    as printed, 4 corrected (ERRATA.md §8, with ρ over the ball, §6)."""
    t = _t38(name, variant, grid)
    s = si_flow(name, K)
    tr = s["traj"]
    r = np.sum((tr.theta - np.append(s["xi"], 0.0)) ** 2, -1)
    lam = t.rate * perturb
    emp = _lam_emp(tr.ts, r, r[:, 0])
    i = int(np.argmin(emp))
    if lam <= 0:  # no rate to check (rho = 0): monotone decrease, informational
        holds, tight = bool(np.all(np.diff(r, axis=1) <= 1e-12)), None
    else:  # a NaN rate or run fails the check
        holds, tight = emp[i] >= lam * (1 - 1e-6), emp[i] / lam
    return _rec(
        "Theorem 3.8",
        variant,
        s["desc"],
        f"rate {2 if variant == 'printed' else 4} rho gamma^2/(1+L delta2) = {lam:.4g} (rho={t.rho:.3g}, "
        f"gamma={t.gamma:.3g}, "
        f"M={t.M:.3g}, L={t.L:g})",
        f"best supported rate {emp[i]:.4g}",
        s["inits"][i],
        "rate_emp >= rate (1 - 1e-6)",
        holds,
        None if lam <= 0 else True,
        tightness=tight,
        note="rho over " + ("Theta as printed" if variant == "printed" else "B((xi,0), r0)"),
    )


def check_corollary_3_1(name="tanh-unif1", K=8, frac=0.99, perturb=1.0, act=None, t1=60.0):
    """Corollary 3.1: from θ(0) ∈ B((ξ,0), 1/L) the flow converges exponentially:
    some λ > 0 with r(t) ≤ r(0)e^{−λt}.  Observed: λ_emp and r(T)/r(0).
    ``frac`` > 1 puts the starts outside the ball (informational).  perturb:
    demands λ ≥ (perturb − 1)·λ_emp_min·10, i.e. perturb > 1 must fail."""
    act0 = act or SI_SETTINGS[name]["act"]
    m = sideq.single_index(act0)
    Linv = T.corollary_3_1_radius(m)
    inside = frac < 1 and m.activation.meets_corollary_3_1
    # outside the assumptions flows may stall at a non-finite region: cap the steps
    s = si_flow(name, K, act=act0, radius=frac * Linv, t1=t1, max_steps=4096 if inside else 1024)
    tr = s["traj"]
    r = np.sum((tr.theta - np.append(s["xi"], 0.0)) ** 2, -1)
    emp = _lam_emp(tr.ts, r, r[:, 0])
    emp = np.where(np.isfinite(emp), emp, np.nan)
    fin = r[:, -1] / r[:, 0]
    i = int(np.nanargmin(emp)) if np.any(np.isfinite(emp)) else 0
    lam_req = 0.0 if perturb == 1.0 else (perturb - 1) * 10 * np.nanmin(emp)
    ok = bool(np.all(np.isfinite(emp))) and np.nanmin(emp) > lam_req and np.all(fin < 1)
    return _rec(
        "Corollary 3.1",
        "as printed" if inside else "outside",
        s["desc"] + f" (1/L={Linv:g})",
        "some lambda > 0: r(t) <= r(0) e^{-lambda t}",
        f"min lambda_emp = {np.nanmin(emp) if np.any(np.isfinite(emp)) else float('nan'):.4g}, "
        f"max r(T)/r(0) = {np.nanmax(fin):.3g}, statuses {sorted(set(tr.status.tolist()))}",
        s["inits"][i],
        "lambda_emp > 0 and r(T) < r(0)",
        ok,
        True if inside else None,
    )


# Theorem 3.9 is checked at these multiples of its largest step λ1/(2λ2).
THEOREM_3_9_ETA_FRACTIONS = (1.0, 0.125)


def check_theorem_3_9(
    name="tanh-unif1", K=8, variant="corrected", grid=41, perturb=1.0, epochs=200, fractions=THEOREM_3_9_ETA_FRACTIONS
):
    """Theorem 3.9: for η ≤ λ1/(2λ2), r(t) ≤ (1 − ηλ1/2)^t r(0), checked at η =
    f·λ1/(2λ2) for each f in ``fractions`` (perturb scales ηλ1/2); corrected:
    λ1 = 4ργ²/(1 + Lδ2) and ρ, λ2 over the ball (ERRATA.md §6, §8)."""
    s = SI_SETTINGS[name]
    model, dist, xi = sideq.single_index(s["act"]), s["dist"](), np.array(s["xi"])
    t9 = _memo(
        ("t39", name, variant, grid),
        lambda: T.theorem_3_9(
            model, xi, dist, delta2=s["r0"], grid=grid, t38=_t38(name, variant, grid), region=variant
        ),
    )
    if not t9.threshold > 0:
        return _rec(
            "Theorem 3.9",
            variant,
            f"{s['act']} GD, X~{_dist_desc(dist)}, xi={xi.tolist()}",
            "eta <= lambda1/(2 lambda2) with lambda1 > 0",
            f"lambda1 = {t9.lambda1:.3g}: no admissible step size (rho = 0, ERRATA.md §6)",
            None,
            "lambda1 > 0",
            False,
            _rho_should_be_positive(variant, s["act"]),
        )
    fractions = np.asarray(fractions, float)
    etas = t9.threshold * fractions
    inits = ball_inits(np.append(xi, 0.0), s["r0"], K, seed=2)
    tr = _memo(
        ("t39gd", name, variant, grid, K, epochs, tuple(fractions)),
        lambda: _np(
            _gd_pairs(
                model,
                jnp.asarray(np.tile(inits, (len(etas), 1))),
                jnp.asarray(np.repeat(etas, K)),
                jnp.asarray(xi),
                dist,
                epochs,
            )
        ),
    )
    r = np.sum((tr.theta - np.append(xi, 0.0)) ** 2, -1)
    c = np.repeat(etas, K) * t9.lambda1 / 2 * perturb
    logq = np.where(c < 1, np.log1p(-np.where(c < 1, c, 0.0)), -np.inf)
    qe = _q_emp(r, r[:, 0])  # log q_emp
    tight = qe / logq
    i = int(np.argmin(tight))
    per = ", ".join(f"{f:g}: {np.min(tight.reshape(len(etas), K)[j]):.3g}" for j, f in enumerate(fractions))
    return _rec(
        "Theorem 3.9",
        variant,
        f"{s['act']} GD, X~{_dist_desc(dist)}, xi={xi.tolist()}, {K} inits in B((xi,0),{s['r0']}), "
        f"eta = ({', '.join(f'{f:g}' for f in fractions)}) x eta_max, {epochs} steps",
        f"-log q = -log(1 - eta lambda1/2) = {-logq[i]:.3g} at eta = {np.repeat(etas, K)[i]:.3g} "
        f"(lambda1={t9.lambda1:.3g}, lambda2={t9.lambda2:.3g})",
        f"best supported -log q = {-qe[i]:.3g}",
        inits[i % K],
        "log q_emp / log q >= 1 - 1e-6 at every eta",
        tight[i] >= 1 - 1e-6,
        True,
        tightness=tight[i],
        note=f"eta_max = lambda1/(2 lambda2) = {t9.threshold:.3g}; min tightness per f: {per}",
    )


def eta_scan(name="tanh-unif1", K=8, etas=None, epochs=300):
    """Largest η (of a geometric grid) for which GD from all K starts on the
    sphere ‖θ(0) − (ξ,0)‖ = r0 ends closer to (ξ,0) (distance < 0.99 r0) after
    ``epochs`` steps without diverging (run_sweep)."""
    s = SI_SETTINGS[name]
    model, dist, xi = sideq.single_index(s["act"]), s["dist"](), np.array(s["xi"])
    etas = np.geomspace(0.25, 256, 11) if etas is None else np.asarray(etas)
    inits = ball_inits(np.append(xi, 0.0), s["r0"], K, seed=4, frac_sphere=1.0)

    def go():
        res = sideq.sweep.run_sweep(model, xi=xi, inits=inits, eta=etas, epochs=epochs, dist=dist, progress=False)
        a = res.arrays
        d = np.asarray(a["distance_final"]).reshape(K, len(etas))
        st = np.asarray(a["status"]).reshape(K, len(etas))
        return d, st

    d, st = _memo(("scan", name, K, tuple(etas), epochs), go)
    good = np.all((d < 0.99 * s["r0"]) & np.isfinite(d) & np.isin(st, [0, 1]), axis=0)
    largest = float(etas[good].max()) if np.any(good) else 0.0
    first_bad = float(etas[~good & (etas > largest)].min()) if np.any(~good & (etas > largest)) else math.inf
    return largest, first_bad, etas, good, st


def check_threshold_tightness(name="tanh-unif1", K=8, variant="corrected", grid=41):
    s = SI_SETTINGS[name]
    largest, first_bad, etas, _good, _st = eta_scan(name, K)
    t9 = _CACHE.get(("t39", name, variant, grid))
    if t9 is None:
        t9 = T.theorem_3_9(
            sideq.single_index(s["act"]), s["xi"], s["dist"](), delta2=s["r0"], grid=grid, region=variant
        )
    return _rec(
        "Theorem 3.9 (threshold tightness)",
        variant,
        f"{s['act']} GD, X~{_dist_desc(s['dist']())}, {K} starts on the sphere of radius {s['r0']}, "
        f"eta grid {etas.min():g}..{etas.max():g}",
        f"eta <= lambda1/(2 lambda2) = {t9.threshold:.3g}",
        f"largest converging eta in grid = {largest:g}; first failing {first_bad:g}",
        None,
        "informational",
        largest >= t9.threshold,
        None,
        tightness=largest / t9.threshold if t9.threshold > 0 else None,
        note="above the threshold up to the largest grid value GD still converges",
    )


# ---------------------------------------------------------------------------
# The numbered equations that the checks above do not already judge
# (Eq. (8) is :func:`check_eq_8`): each against a route that does not use it.


@functools.partial(jax.jit, static_argnames=("model",))
def _risk_fd(model, theta, xi, dist):
    """R(θ) by quadrature and ∇R(θ) by central differences of it (steps
    h_i = 1e-6 max(1, |θ_i|)), for θ (K, p): no gradient formula, no implicit
    differentiation."""
    # (quadrature also for the linear DEQ, whose risk is otherwise Eq. (5) in
    # closed form: the checks of Eqs. (3) and (5) compare the formulas with it)
    risk = lambda th: sideq.population_risk(model, th, xi, dist, quadrature=True)  # noqa: E731
    return jax.vmap(lambda th: (risk(th), _central_differences(risk, th, 1e-6)))(theta)


@functools.partial(jax.jit, static_argnames=("model",))
def _y_fd(model, theta, x):
    """y_θ(x) and ∇_θ y_θ(x) by central differences of solved equilibria (steps
    1e-5 max(1, |θ_i|)), for θ (K, p), x (K, d)."""

    def one(th, x_):
        y = lambda t: sideq.equilibrium(model, t, x_)  # noqa: E731
        return y(th), _central_differences(y, th, 1e-5)

    return jax.vmap(one)(theta, x)


def _central_differences(fn, th, rel):
    """∇fn(θ) by central differences, steps h_i = rel·max(1, |θ_i|)."""
    h = rel * jnp.maximum(1.0, jnp.abs(th))
    e = jnp.diag(h)
    return (jax.vmap(fn)(th + e) - jax.vmap(fn)(th - e)) / (2 * h)


EQ_1_MODELS = ("linear", "sigmoid", "tanh", "softplus")


def check_eq_1(K=8, perturb=1.0):
    """Eq. (1), the implicit gradient: ∇_θ y_θ(x) = ∇_θ g/(1 − ∂g/∂y); for
    g = σ(θ1ᵀx + θ2 y), σ'(ω)/(1 − θ2σ'(ω))·(x, y) (σ' = 1 for the linear DEQ).
    Against central differences of solved equilibria, at K random (θ, x) per
    model, d = 2, θ2 ∈ [−1.5, 0.8] (a unique root).  perturb scales the formula."""
    rng = np.random.default_rng(7)
    worst, where = 0.0, None
    for name in EQ_1_MODELS:
        model = sideq.linear() if name == "linear" else sideq.single_index(name)
        x = rng.uniform(-1.0, 1.0, (K, 2))
        theta = np.concatenate([rng.normal(0.0, 1.0, (K, 2)), rng.uniform(-1.5, 0.8, (K, 1))], 1)
        y, fd = _np(_y_fd(model, jnp.asarray(theta), jnp.asarray(x)))
        ds = T.sigma(model, np.sum(theta[:, :-1] * x, 1) + theta[:, -1] * y)[1]
        pred = (ds / (1 - theta[:, -1] * ds))[:, None] * np.concatenate([x, y[:, None]], 1) * perturb
        err = np.nan_to_num(np.linalg.norm(pred - fd, axis=1) / np.linalg.norm(fd, axis=1), nan=np.inf)
        i = int(np.argmax(err))
        if where is None or err[i] > worst:
            worst, where = float(err[i]), (name, theta[i], x[i])
    return _rec(
        "Eq. (1)",
        "as printed",
        f"{', '.join(EQ_1_MODELS)} DEQ, d=2, {K} random (theta, x) each, theta2 in [-1.5, 0.8]",
        "grad_theta y = sigma'(omega)/(1 - theta2 sigma'(omega)) (x, y)",
        f"max relative error against central differences of y: {worst:.2e} ({where[0]})",
        where[1],
        "1e-6",
        worst <= 1e-6,
        True,
        note=f"x = {np.round(where[2], 4).tolist()}",
    )


def _linear_fd(name, K):
    s = LINEAR_SETTINGS[name]

    def go():
        dist, xi = s["dist"](), np.array(s["xi"])
        inits = linear_inits(len(xi), K, seed=5)
        R, g = _np(_risk_fd(sideq.linear(), jnp.asarray(inits), jnp.asarray(xi), dist))
        return {
            "dist": dist,
            "xi": xi,
            "inits": inits,
            "R": R,
            "grad": g,
            "desc": f"{s['desc']}, {K} points (near/far theta2=1)",
        }

    return _memo(("lfd", name, K), go)


def check_eq_3(name="unif1", K=8, variant="corrected", perturb=1.0):
    """Eq. (3), ∇R of the linear DEQ, against central differences of the
    quadrature risk.  printed: the θ1 block of the printed formula (it has no
    θ2 component); corrected: ERRATA.md §1 (:func:`sideq.paper.theory.linear_grad`).
    perturb scales the formula."""
    s = _linear_fd(name, K)
    if variant == "printed":
        pred, ref = T.eq_3_grad_printed(s["inits"], s["xi"], s["dist"]), s["grad"][:, :-1]
    else:
        pred, ref = T.linear_grad(s["inits"], s["xi"], s["dist"]), s["grad"]
    err = np.linalg.norm(pred * perturb - ref, axis=1) / np.linalg.norm(ref, axis=1)
    i = int(np.argmax(err))
    return _rec(
        "Eq. (3)",
        variant,
        s["desc"],
        "grad R = 2 Sigma2 (theta1/(1-theta2)^2 - xi/(1-theta2))/(1-theta2)^2 (theta1 block only)"
        if variant == "printed"
        else "grad R = (2/(1-theta2)) (Sigma2 v, phi' Sigma2 v), v = phi - xi",
        f"max relative error against central differences of R: {err[i]:.3g}",
        s["inits"][i],
        "1e-6",
        err[i] <= 1e-6,
        variant == "corrected",
        note="the printed formula has no theta2 component; its theta1 block is compared"
        if variant == "printed"
        else "",
    )


def check_eq_5(name="unif1", K=8, perturb=1.0):
    """Eq. (5): R(θ) = (φ − ξ)ᵀΣ₂(φ − ξ) for the linear DEQ, against the
    quadrature risk (:func:`sideq.population_risk`).  perturb scales Eq. (5)."""
    s = _linear_fd(name, K)
    pred = T.linear_risk(s["inits"], s["xi"], s["dist"]) * perturb
    err = np.abs(pred - s["R"]) / s["R"]
    i = int(np.argmax(err))
    return _rec(
        "Eq. (5)",
        "as printed",
        s["desc"],
        "R = (phi - xi)' E[XX'] (phi - xi)",
        f"max relative error against the quadrature risk: {err[i]:.2e}",
        s["inits"][i],
        "1e-10",
        err[i] <= 1e-10,
        True,
    )


def check_eq_7(name="unif1", K=8, perturb=1.0):
    """Eq. (7): Σ_{s ≤ t} ‖∇R(θ(s))‖² ≤ 2R(θ(0))/η along linear GD at the step
    η = η0(θ(0)) of each start (:func:`eta0_scan`; η0 ≤ min{1/L_Θ, β/2} as the
    proof needs).  perturb divides the bound."""
    sc = eta0_scan(name, K)
    tr = sc["at_eta0"]
    ratio = sc["eta0"] * np.sum(tr.grad_norm[:, :-1] ** 2, 1) / (2 * tr.loss[:, 0]) * perturb
    i = int(np.argmax(ratio))
    return _rec(
        "Eq. (7)",
        "as printed",
        f"linear GD, X~{_dist_desc(sc['dist'])}, xi={sc['xi'].tolist()}, {K} inits, "
        f"eta = eta0(theta(0)), {sc['epochs']} steps",
        "sum_s ||grad R(theta(s))||^2 <= 2 R(theta(0))/eta",
        f"max eta sum ||grad R||^2 / (2 R(0)) = {ratio[i]:.4g}",
        sc["inits"][i],
        "<= 1",
        ratio[i] <= 1.0,
        True,
        tightness=1 / ratio[i],
    )


def check_eq_9(name="unif1", K=8, perturb=1.0):
    """Eq. (9): λ_min(Σ₂)‖φ − ξ‖² ≤ R(θ) ≤ λ_max(Σ₂)‖φ − ξ‖² along the linear
    flows of :func:`linear_flow` (R by quadrature).  perturb scales λ_min up
    and λ_max down.  Rows where ‖φ − ξ‖² has fallen below 1e-8 of its start are
    skipped: there R is a mean of squared differences of O(1) numbers, with
    relative rounding error ~eps/√(R/R(0)) (2e-9 was seen near 1e-14)."""
    s = linear_flow(name, K)
    tr = s["traj"]
    ev = np.linalg.eigvalsh(T.second_moment_np(s["dist"]))
    v2 = _phi_err(tr.theta, s["xi"])
    ok = v2 > 1e-8 * v2[:, :1]
    lo = np.where(ok, tr.loss / np.where(ok, ev[0] * perturb * v2, 1), np.inf)
    hi = np.where(ok, ev[-1] / perturb * v2 / np.where(ok, tr.loss, 1), np.inf)
    m = np.minimum(lo.min(1), hi.min(1))
    i = int(np.argmin(m))
    return _rec(
        "Eq. (9)",
        "as printed",
        s["desc"],
        f"lambda_min ||phi - xi||^2 <= R <= lambda_max ||phi - xi||^2 (lambda {ev[0]:.3g}..{ev[-1]:.3g})",
        f"min over the flow of R/(lambda_min ||v||^2) and lambda_max ||v||^2/R: {m[i]:.10g}",
        s["inits"][i],
        ">= 1 - 1e-9",
        m[i] >= 1 - 1e-9,
        True,
        tightness=m[i],
    )


def _si_points(name, K):
    """K points of the ball B((ξ, 0), r0) of a single-index setting, with R and
    ∇R by central differences (:func:`_risk_fd`)."""
    s = SI_SETTINGS[name]

    def go():
        model, dist, xi = sideq.single_index(s["act"]), s["dist"](), np.array(s["xi"])
        theta = ball_inits(np.append(xi, 0.0), s["r0"], K, seed=6)
        R, g = _np(_risk_fd(model, jnp.asarray(theta), jnp.asarray(xi), dist))
        return {
            "model": model,
            "dist": dist,
            "xi": xi,
            "theta": theta,
            "R": R,
            "grad": g,
            "r0": s["r0"],
            "desc": f"{s['act']}, X~{_dist_desc(dist)}, xi={xi.tolist()}, {K} points in B((xi,0),{s['r0']:g})",
        }

    return _memo(("sifd", name, K), go)


def check_eq_13(name="tanh-unif1", K=8, perturb=1.0):
    """Eq. (13): |y_θ(x)| ≤ (|σ(0)| + L‖θ1‖‖x‖)/(1 − L|θ2|) at the quadrature
    nodes, for K² points of Θ as printed (‖θ1‖ ≤ (1 + δ1)‖ξ‖ with δ1 = δ2/‖ξ‖,
    |θ2| ≤ δ2 = r0, half of them on its edges).  perturb divides the bound."""
    s = SI_SETTINGS[name]
    model, dist, xi = sideq.single_index(s["act"]), s["dist"](), np.array(s["xi"])
    n, d, delta2 = K * K, len(xi), s["r0"]
    a = (1 + delta2 / np.linalg.norm(xi)) * np.linalg.norm(xi)
    theta1 = ball_inits(np.zeros(d), a, n, seed=8)
    rng = np.random.default_rng(9)
    t2 = rng.uniform(-delta2, delta2, n)
    t2[: n // 4] = delta2 * np.sign(rng.standard_normal(n // 4))
    theta = np.concatenate([theta1, t2[:, None]], 1)
    x, _ = T.expectation_nodes(dist)
    y = np.abs(T.equilibria(model, theta[:, :-1], theta[:, -1], x))
    bound = T.eq_13_bound(model, theta, x) / perturb
    ratio = np.max(np.where(bound > 0, y / np.where(bound > 0, bound, 1.0), np.where(y > 0, np.inf, 0.0)), 1)
    i = int(np.argmax(ratio))
    return _rec(
        "Eq. (13)",
        "as printed",
        f"{s['act']}, X~{_dist_desc(dist)}, xi={xi.tolist()}, {n} points of Theta (delta2={delta2})",
        "|y(x)| <= (|sigma(0)| + L ||theta1|| ||x||)/(1 - L |theta2|)",
        f"max |y|/bound over the nodes = {ratio[i]:.4g}",
        theta[i],
        "<= 1",
        ratio[i] <= 1.0,
        True,
        tightness=1 / ratio[i],
    )


def check_eq_15(name="sigmoid-unif1", K=8, variant="corrected", perturb=1.0):
    """Eq. (15): r'(θ) = −c E[(y − f) s (ω − ξᵀX)], r = ‖θ − (ξ, 0)‖², against
    r' = −2(θ − (ξ, 0))ᵀ∇R with ∇R by central differences of the risk.
    printed: c = 2; corrected: c = 4 (ERRATA.md §8).  perturb scales c."""
    s = _si_points(name, K)
    pred = T.eq_15_rdot(s["model"], s["theta"], s["xi"], s["dist"], variant=variant) * perturb
    ref = -2 * np.sum((s["theta"] - np.append(s["xi"], 0.0)) * s["grad"], 1)
    err = np.abs(pred - ref) / np.abs(ref)
    i = int(np.argmax(err))
    c = 2 if variant == "printed" else 4
    return _rec(
        "Eq. (15)",
        variant,
        s["desc"],
        f"r' = -{c} E[(y - f) s (omega - xi'X)]",
        f"max relative error against -2 (theta - theta*)' grad R (central differences): {err[i]:.3g}; "
        f"observed/predicted {ref[i] / pred[i]:.6g}",
        s["theta"][i],
        "1e-6",
        err[i] <= 1e-6,
        variant == "corrected",
    )


def check_eq_18(name="sigmoid-unif1", K=8, perturb=1.0):
    """Eq. (18) and the bound after it (proof of Theorem 3.9):
    ‖∇R‖² ≤ 4E[(y − f)² s² ‖(X, y)‖²] ≤ 4L²(L/(1 − Lδ2))² E‖(X, y)‖⁴ r, with
    ∇R by central differences of the risk, at points of the ball (|θ2| ≤ δ2).
    perturb divides the last bound."""
    s = _si_points(name, K)
    b = T.eq_18_bounds(s["model"], s["theta"], s["xi"], s["dist"], delta2=s["r0"])
    g2 = np.sum(s["grad"] ** 2, 1)
    jensen = np.min(b["jensen"] / g2)
    tight = b["chain"] / perturb / g2
    i = int(np.argmin(tight))
    return _rec(
        "Eq. (18)",
        "as printed",
        s["desc"],
        "||grad R||^2 <= 4 E[(y-f)^2 s^2 ||(X,y)||^2] <= 4 L^2 (L/(1-L delta2))^2 E||(X,y)||^4 r",
        f"min (last bound)/||grad R||^2 = {tight[i]:.4g}; min (Eq. (18) bound)/||grad R||^2 = {jensen:.4g}",
        s["theta"][i],
        ">= 1 each",
        jensen >= 1 - 1e-9 and tight[i] >= 1 - 1e-9,
        True,
        tightness=tight[i],
    )


# ---------------------------------------------------------------------------
# Multi-neuron DEQs (the paper's Section 5; MULTI_NEURON.md): `sideq verify --multi`.

MULTI_K = (2, 3, 5)
# Steady state of the linear flows: ‖∇R‖ ≤ 1e-10.  Rounding puts a floor under ‖∇R‖ of about
# eps‖M‖‖A‖/σ_min(I − W2)² (1e-12 at σ_min = 0.025), which a smaller gtol would sit on
# for the rest of the step budget; at 1e-10, ‖A − Ξ‖ ≤ σ_max(B) gtol/(2λ_min(M)) ≲ 2e-9.
MULTI_GTOL = 1e-10
MULTI_INDEX_GAUSS3 = np.array([2.0, 1.0, 0.25])  # multi_index's d = 3 Gaussian: cond 8 (quadrature accuracy)
MULTI_INDEX_RADIUS = 0.25  # starts in the ball ||(W1 - Xi, W2)||_F <= 0.25 (so ||W2||_2 Lip(tanh) <= 0.25 < 1)
MULTI_INDEX_T = 150.0
MULTI_INDEX_NODES = {1: 24, 3: 5}  # nodes per axis of the flows' quadrature law
MULTI_INDEX_FINE = {("unif", 1): 64, ("unif", 3): 12, ("gauss", 1): 288, ("gauss", 3): 36}


def multi_law(law, d, *, index=False):
    """The laws of X of the multi-neuron checks (MULTI_NEURON.md): Unif[0, 1]^d, or N(0.5, 2) for
    d = 1 and N((0.3, −0.2, 0.1), diag(4, 1, 0.1)) for d = 3 (cond E[XXᵀ] = 37; diag(2, 1, 0.25) for
    multi_index, whose quadrature needs a milder law)."""
    if law == "unif":
        return sideq.uniform(0.0, 1.0, d)
    if d == 1:
        return sideq.gaussian(0.5, 2.0, 1)
    return sideq.gaussian(np.array([0.3, -0.2, 0.1]), MULTI_INDEX_GAUSS3 if index else np.array([4.0, 1.0, 0.1]))


def multi_xi(k, d, seed=0):
    """Ξ (k, d) of the multi-neuron checks: N(0, 1.5²/d) entries, a fixed seed per (k, d, seed);
    the settings use seed 0 for the uniform law and 1 for the Gaussian."""
    return np.random.default_rng(1000 + 10 * k + d + 7919 * seed).normal(size=(k, d)) * 1.5 / math.sqrt(d)


def _law_seed(law):
    return 0 if law == "unif" else 1


def _fro(a):
    return np.sqrt(np.sum(a * a, axis=(-2, -1)))


def multi_linear_flow(k, d, law, K):
    """Gradient flows of the multi-output linear DEQ from K starts (:func:`multi.linear_starts`),
    recorded at 0 and 100 times in [1e-5, 1e4], stopped at ‖∇R‖ ≤ :data:`MULTI_GTOL`; one compiled flow for
    every (k, d) (padded to (5, 3))."""

    def go():
        # (in d = 1 the law enters only through the scalar M, a time scale: the laws get
        # their own starts and Ξ so that the Gaussian runs are not the uniform ones rescaled)
        dist, xi = multi_law(law, d), multi_xi(k, d, _law_seed(law))
        M = second_moment(dist)
        W1, W2 = MU.linear_starts(k, d, K, seed=10 * k + d + 500 * _law_seed(law))
        ts = np.concatenate([[0.0], np.geomspace(1e-5, 1e4, 100)])
        fl = MU.linear_flows(W1, W2, xi, M, ts, gtol=MULTI_GTOL, pad_to=(5, 3))
        desc = f"multi_linear(k={k}), X~{_dist_desc(dist)}, {K} starts (half with sigma_min(I-W2(0)) in [0.02,0.2])"
        return {
            "k": k,
            "d": d,
            "dist": dist,
            "M": M,
            "xi": xi,
            "W1": W1,
            "W2": W2,
            "flows": fl,
            "C0": MU.conserved(W1, W2),
            "desc": desc,
        }

    return _memo(("mlflow", k, d, law, K), go)


def check_multi_conservation(k, d, law, K, variant="derived", perturb=1.0):
    """Proposition M1: C(t) = W1W1ᵀ + (I − W2)(I − W2)ᵀ is constant (perturb scales C(0));
    variant "naive": W1W1ᵀ − (I − W2)(I − W2)ᵀ, which is not."""
    s = multi_linear_flow(k, d, law, K)
    fl = s["flows"]
    fn = MU.conserved if variant == "derived" else MU.naive_conserved
    C = fn(fl.W1, fl.W2)
    C0 = C[:, :1] * perturb
    rel = np.max(_fro(C - C0), 1) / _fro(C[:, 0])
    i = int(np.argmax(rel))
    what = "W1W1'+(I-W2)(I-W2)'" if variant == "derived" else "W1W1'-(I-W2)(I-W2)'"
    return _rec(
        "Proposition M1",
        variant,
        s["desc"],
        f"{what} constant in t",
        f"max_t ||C(t)-C(0)||_F/||C(0)||_F = {rel[i]:.2e}",
        [s["W1"][i], s["W2"][i]],
        "1e-9 relative",
        rel[i] <= 1e-9,
        variant == "derived",
        note=f"median drift over starts {np.median(rel):.2e}",
    )


def check_multi_singular(k, d, law, K, perturb=1.0):
    """Proposition M2: det(I − W2(t)) keeps its sign and σ_min(I − W2(t))² ≥ β² =
    λ_min(C)/(1 + a0²) (perturb scales β²); every flow reaches its steady state."""
    s = multi_linear_flow(k, d, law, K)
    fl = s["flows"]
    B = np.eye(k) - fl.W2
    sign = np.sign(np.linalg.det(B))
    same = np.all(sign == sign[:, :1], axis=1)
    smin2 = np.linalg.svd(B, compute_uv=False)[..., -1] ** 2
    beta2 = MU.singular_floor(s["W1"], s["W2"], s["xi"], s["M"]) * perturb
    slack = np.min(smin2, 1) / beta2
    pointwise = np.min(MU.singular_ratio(fl.W1, fl.W2, s["C0"][:, None]), 1)
    i = int(np.argmin(slack))
    ok = bool(np.all(same) and np.all(fl.steady) and slack[i] >= 1 - 1e-9 and np.min(pointwise) >= 1 - 1e-9)
    return _rec(
        "Proposition M2",
        "derived",
        s["desc"],
        "sign det(I-W2(t)) fixed; sigma_min(I-W2(t))^2 >= lambda_min(C)/(1+a0^2)",
        f"min_t sigma_min^2/beta^2 = {slack[i]:.3g} (sigma_min(t) >= {np.sqrt(np.min(smin2)):.3g}); "
        f"pointwise sigma_min^2(1+||A||^2)/lambda_min(C) >= {np.min(pointwise):.6f}; "
        f"det sign kept {int(np.sum(same))}/{K}; steady {int(np.sum(fl.steady))}/{K}",
        [s["W1"][i], s["W2"][i]],
        ">= 1, signs kept, all converged",
        ok,
        True,
        tightness=slack[i],
    )


def check_multi_limit(k, d, law, K, perturb=1.0):
    """Proposition M3: θ(∞) has A = Ξ and B(I + ΞΞᵀ)Bᵀ = C(0), sign det B = sign det B(0)
    (perturb scales the Ξ the limit is predicted at)."""
    s = multi_linear_flow(k, d, law, K)
    fl = s["flows"]
    xi = s["xi"] * perturb
    a_err, on_err, sign = MU.limit_residuals(fl.W1[:, -1], fl.W2[:, -1], xi, s["C0"])
    sign0 = np.sign(np.linalg.det(np.eye(k) - s["W2"]))
    err = np.maximum(a_err, on_err)
    i = int(np.argmax(err))
    ok = bool(err[i] <= 1e-8 and np.all(sign == sign0) and np.all(fl.steady))
    return _rec(
        "Proposition M3",
        "derived",
        s["desc"],
        "A(T) = Xi, B(T)(I+Xi Xi')B(T)' = C(0), det sign kept",
        f"max ||A-Xi||/||Xi|| = {np.max(a_err):.1e}, max ||B P B'-C0||/||C0|| = {np.max(on_err):.1e}, "
        f"t_final <= {np.max(fl.t_final):.3g}",
        [s["W1"][i], s["W2"][i]],
        "1e-8 relative",
        ok,
        True,
    )


def check_multi_limit_frozen(k, d, law, K):
    """A guess for the limit that fails for k ≥ 2 (MULTI_NEURON.md, Proposition M3): the rotation
    Q of B = C^{1/2} Q (I + AAᵀ)^{−1/2} frozen at its start value."""
    s = multi_linear_flow(k, d, law, K)
    fl = s["flows"]
    g1, g2 = MU.limit_frozen_rotation(s["W1"], s["W2"], s["xi"])
    err = np.sqrt(_fro(fl.W1[:, -1] - g1) ** 2 + _fro(fl.W2[:, -1] - g2) ** 2)
    scale = np.sqrt(_fro(fl.W1[:, -1]) ** 2 + _fro(fl.W2[:, -1]) ** 2)
    rel = err / scale
    i = int(np.argmax(rel))
    return _rec(
        "Proposition M3",
        "naive",
        s["desc"],
        "limit = C^(1/2) Q(0) (I+Xi Xi')^(-1/2): rotation frozen",
        f"max relative error {rel[i]:.3g} (median {np.median(rel):.3g})",
        [s["W1"][i], s["W2"][i]],
        "1e-6 relative",
        rel[i] <= 1e-6,
        k == 1,
    )


def check_multi_rate(k, d, law, K, perturb=1.0):
    """Proposition M4: R(t) ≤ R(0) exp(−4 λ_min(M) t / λ_max(C)) (perturb scales the rate)."""
    s = multi_linear_flow(k, d, law, K)
    fl = s["flows"]
    R = MU.linear_risk(fl.W1, fl.W2, s["xi"], s["M"])
    lam = MU.linear_rate(s["W1"], s["W2"], s["M"]) * perturb
    emp = _lam_emp(fl.ts, R, R[:, 0])
    tight = emp / lam
    i = int(np.nanargmin(np.where(np.isnan(tight), -np.inf, tight)))
    return _rec(
        "Proposition M4",
        "derived",
        s["desc"],
        f"rate {lam[i]:.4g} = 4 lambda_min(M)/lambda_max(C)",
        f"best supported rate {emp[i]:.4g}",
        [s["W1"][i], s["W2"][i]],
        "rate_emp >= rate (1 - 1e-6)",
        tight[i] >= 1 - 1e-6,
        True,
        tightness=tight[i],
        note=f"tightness over starts: min {np.nanmin(tight):.3g}, median {np.nanmedian(tight):.3g}",
    )


def check_multi_gradient(settings, n=64, starts=4):
    """Eqs. (M1), (M2) against the library: the empirical risk of ``sideq.general.multi_linear`` on
    n samples and its jax.grad (implicit differentiation through the solved equilibria), compared
    with the closed forms at M̂ = XᵀX/n, at ``starts`` starts of each setting."""
    worst, where = 0.0, None
    for k, d, law in settings:
        model = sideq.multi_linear(k)
        xi = multi_xi(k, d, _law_seed(law))
        x = np.asarray(sideq.sample(multi_law(law, d), jax.random.PRNGKey(k * 10 + d), n), float)
        Mhat = x.T @ x / n
        W1, W2 = MU.linear_starts(k, d, starts, seed=10 * k + d)
        risk_grad = jax.value_and_grad(lambda p: deq_empirical_risk(model, p, x, xi=xi))
        for i in range(starts):
            R, g = risk_grad({"W1": jnp.asarray(W1[i]), "W2": jnp.asarray(W2[i])})
            h1, h2 = MU.linear_grad(W1[i], W2[i], xi, Mhat)
            gn = math.sqrt(np.sum(h1**2) + np.sum(h2**2))
            e = max(
                abs(float(R) - float(MU.linear_risk(W1[i], W2[i], xi, Mhat))) / float(R),
                math.sqrt(np.sum((np.asarray(g["W1"]) - h1) ** 2) + np.sum((np.asarray(g["W2"]) - h2) ** 2)) / gn,
            )
            if e >= worst:
                worst, where = e, (k, d, law, [W1[i], W2[i]])
    names = ", ".join(f"k{k}-d{d}-{law}" for k, d, law in settings)
    return _rec(
        "Eq. (M2)",
        "derived",
        f"multi_linear, {n} samples, {starts} starts each of {names}",
        "R and grad R in closed form (Eqs. (M1), (M2)) at M = X'X/n",
        f"max relative error against sideq.general.empirical_risk and jax.grad: {worst:.2e} (at k={where[0]}, "
        f"d={where[1]}, {where[2]})",
        where[3],
        "1e-10",
        worst <= 1e-10,
        True,
    )


def check_multi_library_flow(settings, starts=2):
    """Second route for the flows: ``sideq.flow`` on ``sideq.multi_linear(k)`` (population risk of
    ``sideq.general_risk``, autodiff of its closed form) from the first starts of each setting,
    against :func:`multi.linear_flows` (Eq. (M2)'s field): the end points and C's drift."""
    worst, drift, where = 0.0, 0.0, None
    for k, d, law in settings:
        s = multi_linear_flow(k, d, law, max(starts, 8))
        for i in range(starts):
            p0 = {"W1": jnp.asarray(s["W1"][i]), "W2": jnp.asarray(s["W2"][i])}
            tr = sideq.flow(
                sideq.multi_linear(k), p0, xi=s["xi"], dist=s["dist"], t1=1e4, gtol=MULTI_GTOL, max_steps=65536
            )
            P1, P2 = np.asarray(tr.params["W1"][-1]), np.asarray(tr.params["W2"][-1])
            ours = s["flows"]
            e = math.sqrt(_fro(P1 - ours.W1[i, -1]) ** 2 + _fro(P2 - ours.W2[i, -1]) ** 2)
            C = MU.conserved(np.asarray(tr.params["W1"]), np.asarray(tr.params["W2"]))
            drift = max(drift, float(np.max(_fro(C - C[:1])) / _fro(C[0])))
            if e >= worst:
                worst, where = e, (k, d, law, [s["W1"][i], s["W2"][i]])
    names = ", ".join(f"k{k}-d{d}-{law}" for k, d, law in settings)
    return _rec(
        "Proposition M3",
        "second route",
        f"sideq.flow(multi_linear(k)) from {starts} starts of {names}",
        "same limit as the closed-form flow; C conserved",
        f"max ||theta_lib(T) - theta(T)|| = {worst:.1e}; C drift along sideq.flow {drift:.1e}",
        where[3],
        "1e-7, drift 1e-9",
        worst <= 1e-7 and drift <= 1e-9,
        True,
    )


def check_multi_k1(name="unif1", K=8, perturb=1.0):
    """k = 1: Propositions M1 and M3 reduce to Theorem 3.1 (C = w) and ERRATA.md §2's corrected
    Theorem 3.3.  The multi flow (k = 1) from the scalar checks' starts, against
    ``theory.conserved_w`` and ``theory.theorem_3_3_limit_corrected`` (perturb scales α)."""
    st = LINEAR_SETTINGS[name]
    dist, xi = st["dist"](), np.array(st["xi"])
    d = len(xi)
    th0 = linear_inits(d, K)
    W1, W2 = th0[:, None, :-1], th0[:, -1:, None]
    ts = np.concatenate([[0.0], np.geomspace(1e-5, 1e4, 100)])
    fl = _memo(("mlk1", name, K), lambda: MU.linear_flows(W1, W2, xi[None], second_moment(dist), ts, pad_to=(5, 3)))
    c_err = np.max(np.abs(MU.conserved(W1, W2)[:, 0, 0] - T.conserved_w(th0)) / T.conserved_w(th0))
    pred = np.stack([T.theorem_3_3_limit_corrected(t, xi) for t in th0])
    mine = np.stack([MU.limit_k1(t, xi) for t in th0])
    a = (1 - pred[:, -1]) * perturb
    pred = np.concatenate([a[:, None] * xi, (1 - a)[:, None]], 1)
    end = np.concatenate([fl.W1[:, -1, 0, :], fl.W2[:, -1, 0, :]], 1)  # theta = (theta1, theta2)
    err = np.linalg.norm(end - pred, axis=1)
    i = int(np.argmax(err))
    formula = float(np.max(np.abs(mine - np.stack([T.theorem_3_3_limit_corrected(t, xi) for t in th0]))))
    ok = err[i] <= 1e-8 and c_err <= 1e-14 and formula <= 1e-14 and bool(np.all(fl.steady))
    return _rec(
        "Proposition M3",
        "k = 1",
        f"multi_linear(k=1) on the starts of '{name}' ({LINEAR_SETTINGS[name]['desc']})",
        "C = w (Theorem 3.1); limit = ERRATA.md section 2's corrected Theorem 3.3",
        f"max ||theta(T) - corrected Theorem 3.3|| = {err[i]:.1e}; |C - w|/w <= {c_err:.0e}; "
        f"limit_k1 vs theory: {formula:.0e}",
        th0[i],
        "1e-8",
        ok,
        True,
    )


# multi_index: tanh, starts near (Xi, 0)


def multi_index_flow(k, d, law, K, radius=MULTI_INDEX_RADIUS, seed=0, rtol=1e-10):
    """Gradient flows of the multi-output single-index DEQ (tanh) on the quadrature law of
    :data:`MULTI_INDEX_NODES`, from K starts in the ball of ``radius`` around (Ξ, 0), to T = 150."""

    def go():
        dist, xi = multi_law(law, d, index=True), multi_xi(k, d, _law_seed(law))
        x, w = MU.quadrature(dist, MULTI_INDEX_NODES[d])
        W1, W2 = MU.index_starts(xi, radius, K, seed=100 * k + d + seed)
        ts = np.concatenate([[0.0], np.geomspace(1e-3, MULTI_INDEX_T, 60)])
        fl = MU.index_flows("tanh", W1, W2, xi, x, w, ts, rtol=rtol, atol=min(rtol, 1e-12))
        desc = (
            f"multi_index(tanh, k={k}), d={d}, X~{_dist_desc(dist)} on {len(w)} nodes, {K} starts in "
            f"B((Xi,0),{radius:g}), T={MULTI_INDEX_T:g}"
        )
        return {"k": k, "d": d, "dist": dist, "xi": xi, "x": x, "w": w, "W1": W1, "W2": W2, "flows": fl, "desc": desc}

    return _memo(("miflow", k, d, law, K, radius, seed, rtol), go)


def _dist2(W1, W2, xi):
    return _fro(W1 - xi) ** 2 + _fro(W2) ** 2


def check_multi_index_local(k, d, law, K):
    """Conjecture M6 (Theorem 3.8 for k outputs): from the ball B((Ξ, 0), 0.25) the flow stays a
    contraction (‖W2(t)‖₂ < 1), r(t) = ‖θ(t) − (Ξ, 0)‖² never increases and R decreases."""
    s = multi_index_flow(k, d, law, K)
    fl, xi = s["flows"], s["xi"]
    r = _dist2(fl.W1, fl.W2, xi)
    rise = np.max(np.diff(r, axis=1), 1) / r[:, 0]
    n2 = np.max(np.linalg.norm(fl.W2, 2, axis=(-2, -1)), 1)
    R0 = np.array([MU.index_risk("tanh", a, b, xi, s["x"], s["w"]) for a, b in zip(s["W1"], s["W2"])])
    RT = np.array([MU.index_risk("tanh", a, b, xi, s["x"], s["w"]) for a, b in zip(fl.W1[:, -1], fl.W2[:, -1])])
    i = int(np.argmax(rise))
    ok = bool(np.all(fl.ok) and np.all(np.isfinite(r)) and rise[i] <= 1e-12 and np.max(n2) < 1 and np.all(RT < R0))
    return _rec(
        "Conjecture M6",
        "observed",
        s["desc"],
        "r(t) nonincreasing, ||W2(t)||_2 < 1, R(T) < R(0)",
        f"max rise of r {max(rise[i], 0):.1e} r(0); max ||W2||_2 {np.max(n2):.3f}; r(T)/r(0) in "
        f"[{np.min(r[:, -1] / r[:, 0]):.2g}, {np.max(r[:, -1] / r[:, 0]):.2g}]; R(T)/R(0) in "
        f"[{np.min(RT / R0):.1e}, {np.max(RT / R0):.1e}]",
        [s["W1"][i], s["W2"][i]],
        "rise <= 1e-12 r(0)",
        ok,
        True,
        note=f"local rate 2 lambda_min(H) = {MU.index_local_rate('tanh', xi, s['x'], s['w']):.3g} on this law",
    )


def check_multi_index_gradient(settings, starts=2):
    """Eq. (1) for k outputs, the field of the multi_index flows (:func:`multi.index_grad`: Newton
    solves and the adjoint (I − DW2)ᵀu = r per node) against ``jax.grad`` of the same quadrature
    risk through the library's ``sideq.general.equilibrium`` (``multi_index``, its Newton solver
    and implicit differentiation), at starts in the ball of radius 0.25."""
    worst, where = 0.0, None
    for k, d, law in settings:
        dist, xi = multi_law(law, d, index=True), multi_xi(k, d, _law_seed(law))
        x, w = MU.quadrature(dist, MULTI_INDEX_NODES[d])
        model = sideq.multi_index("tanh", k, solver="newton")
        xj, wj, target = jnp.asarray(x), jnp.asarray(w), jnp.tanh(jnp.asarray(x) @ jnp.asarray(xi).T)
        grad = jax.jit(jax.grad(lambda p: wj @ jnp.sum((deq_equilibrium(model, p, xj) - target) ** 2, axis=-1)))
        W1, W2 = MU.index_starts(xi, MULTI_INDEX_RADIUS, starts, seed=5)
        for i in range(starts):
            g = grad({"W1": jnp.asarray(W1[i]), "W2": jnp.asarray(W2[i])})
            h1, h2 = MU.index_grad("tanh", W1[i], W2[i], xi, x, w)
            e = math.sqrt(
                np.sum((np.asarray(g["W1"]) - h1) ** 2) + np.sum((np.asarray(g["W2"]) - h2) ** 2)
            ) / math.sqrt(np.sum(h1**2) + np.sum(h2**2))
            if e >= worst:
                worst, where = e, (k, d, law, [W1[i], W2[i]])
    names = ", ".join(f"k{k}-d{d}-{law}" for k, d, law in settings)
    return _rec(
        "Eq. (1), k outputs",
        "as printed",
        f"multi_index(tanh), quadrature laws, {starts} starts each of {names}",
        "grad R = 2 sum w v (x, y)', v = D (I - D W2)^(-T) (y - sigma(Xi x))",
        f"max relative error against jax.grad through sideq.general.equilibrium: {worst:.1e} "
        f"(k={where[0]}, d={where[1]}, {where[2]})",
        where[3],
        "1e-10",
        worst <= 1e-10,
        True,
    )


def check_multi_index_hessian(k, d, law):
    """Proposition M5: the block-diagonal Hessian at (Ξ, 0) against forward-mode differentiation of
    the implicit gradient; the local rate 2λ_min on the flows' law and on a fine rule."""
    dist, xi = multi_law(law, d, index=True), multi_xi(k, d, _law_seed(law))
    x, w = MU.quadrature(dist, MULTI_INDEX_NODES[d])
    full = MU.index_hessian("tanh", xi, x, w)
    auto = MU.index_hessian_autodiff("tanh", xi, x, w)
    err = float(np.max(np.abs(full - auto)) / np.max(np.abs(auto)))
    rate = MU.index_local_rate("tanh", xi, x, w)
    fine = MU.index_local_rate("tanh", xi, *MU.quadrature(dist, MULTI_INDEX_FINE[(law, d)]))
    return _rec(
        "Proposition M5",
        "derived",
        f"multi_index(tanh, k={k}), d={d}, X~{_dist_desc(dist)}, Xi fixed",
        "Hessian at (Xi,0) = blockdiag 2E[tanh'(xi_i'X)^2 z z'], z = (X, tanh(Xi X))",
        f"max |blocks - jacfwd(grad)| / max|H| = {err:.1e}; local rate 2 lambda_min = {rate:.3g} "
        f"({len(w)} nodes), {fine:.3g} (fine rule)",
        None,
        "1e-10",
        err <= 1e-10,
        True,
    )


def check_multi_index_linearized(k, d, law, K=1, perturb=1.0):
    """Proposition M5 along flows from starts 1e-5 from (Ξ, 0) (rtol 1e-12): r(t) against
    ‖e^{−Ht}δ(0)‖² over t ≤ 150 (perturb scales H).  The nonlinear terms move r by
    O(‖δ‖ c/λ) relative (1.4e-3 at 1e-4 for tanh, k = 1, d = 3), the integration by
    ~1e-12/‖δ(t)‖."""
    s = multi_index_flow(k, d, law, K, radius=1e-5, seed=1, rtol=1e-12)
    fl = s["flows"]
    worst, i_w = 0.0, 0
    for i in range(K):
        pred = MU.index_linearized_r("tanh", s["W1"][i], s["W2"][i], s["xi"], s["x"], s["w"], fl.ts[i], scale=perturb)
        obs = _dist2(fl.W1[i], fl.W2[i], s["xi"])
        e = float(np.max(np.abs(obs / pred - 1)))
        if not e <= worst:
            worst, i_w = e, i
    return _rec(
        "Proposition M5",
        "linearized",
        s["desc"],
        "r(t) = ||exp(-Ht) delta(0)||^2 (to O(|delta|))",
        f"max_t |r/r_lin - 1| = {worst:.1e}; r(T)/r(0) = "
        f"{_dist2(fl.W1[i_w, -1], fl.W2[i_w, -1], s['xi']) / _dist2(s['W1'][i_w], s['W2'][i_w], s['xi']):.3g}",
        [s["W1"][i_w], s["W2"][i_w]],
        "1e-3",
        worst <= 1e-3,
        True,
    )


def multi_index_rates(draws=20, ks=(1, 2, 3, 5)):
    """Proposition M5's local rate 2λ_min(∇²R(Ξ, 0)) against k: the median and range over
    ``draws`` draws of Ξ (N(0, 1.5²/d) entries), tanh, on the fine rules, per (d, law)."""
    out = {}
    for law in ("unif", "gauss"):
        for d in (1, 3):
            dist = multi_law(law, d, index=True)
            x, w = MU.quadrature(dist, MULTI_INDEX_FINE[(law, d)])
            for k in ks:
                rates = [MU.index_local_rate("tanh", multi_xi(k, d, seed=j), x, w) for j in range(draws)]
                out[(law, d, k)] = (float(np.median(rates)), float(np.min(rates)), float(np.max(rates)))
    return out


def check_multi_index_rates(draws=20):
    """Informational: the local rate against k (Proposition M5), medians over Ξ draws."""
    rates = _memo(("mirates", draws), lambda: multi_index_rates(draws))

    def fmt(v):  # below ~1e-15 the Hessian is singular to rounding (its λ_min may even come out < 0)
        return f"{v:.1e}" if v > 1e-15 else "<1e-15"

    text = "; ".join(
        f"{law} d={d}: " + ", ".join(f"k={k} {fmt(rates[(law, d, k)][0])}" for k in (1, 2, 3, 5))
        for law in ("unif", "gauss")
        for d in (1, 3)
    )
    return _rec(
        "Proposition M5",
        "rate vs k",
        f"multi_index(tanh), median over {draws} draws of Xi, fine rules",
        "asymptotic rate of r(t): 2 lambda_min(Hessian at (Xi,0))",
        text,
        None,
        "-",
        True,
        None,
    )


def run_multi(quick: bool = True, log=None) -> list[dict]:
    """The multi-neuron group (``sideq verify --multi``, MULTI_NEURON.md): Eq. (M2) against the
    library's DEQ; Propositions M1–M4 for multi_linear from 50 starts per (k, d, law),
    k ∈ {2, 3, 5}, d ∈ {1, 3}, X uniform and Gaussian (anisotropic for d = 3), with the
    naive guesses shown failing; ``sideq.flow`` as a second route; the k = 1 reduction to
    Theorem 3.1 and ERRATA.md §2; for multi_index (tanh, k ∈ {1, 2, 3, 5}) Eq. (1) against
    the library, Proposition M5 and Conjecture M6 from 13 starts per setting.  126 records.
    ``quick``: 3 linear settings of 8 starts, 2 single-index settings of 3 (32 records).
    ``log``: optional callable receiving a progress line per record."""
    recs = _Recs(log)
    K = 8 if quick else 50
    lin = (
        [(2, 1, "unif"), (3, 3, "gauss"), (5, 3, "unif")]
        if quick
        else [(k, d, law) for law in ("unif", "gauss") for d in (1, 3) for k in MULTI_K]
    )
    recs.append(check_multi_gradient(lin))
    for k, d, law in lin:
        recs += [
            check_multi_conservation(k, d, law, K),
            check_multi_conservation(k, d, law, K, "naive"),
            check_multi_singular(k, d, law, K),
            check_multi_limit(k, d, law, K),
            check_multi_limit_frozen(k, d, law, K),
            check_multi_rate(k, d, law, K),
        ]
    recs.append(check_multi_library_flow(lin[:1] if quick else [lin[0], lin[-1]], starts=1 if quick else 2))
    for name in ["unif1"] if quick else ["unif1", "gauss3"]:
        recs.append(check_multi_k1(name, K))
    KI = 3 if quick else 13  # 13 starts per (d, law): 52 per k
    mi = (
        [(2, 3, "unif"), (3, 1, "gauss")]
        if quick
        else [(k, d, law) for law in ("unif", "gauss") for d in (1, 3) for k in (1, *MULTI_K)]
    )
    recs.append(check_multi_index_gradient(mi[:1] if quick else [mi[1], mi[-1]]))
    for k, d, law in mi:
        recs += [
            check_multi_index_hessian(k, d, law),
            check_multi_index_local(k, d, law, KI),
            check_multi_index_linearized(k, d, law),
        ]
    recs.append(check_multi_index_rates(5 if quick else 20))
    return list(recs)


# ---------------------------------------------------------------------------


class _Recs(list):
    """A list that reports each appended record (claim, variant, seconds) to ``log``."""

    def __init__(self, log):
        super().__init__()
        self.log, self.t0 = log, time.perf_counter()

    def append(self, r):
        super().append(r)
        if self.log:
            self.log(
                f"[{time.perf_counter() - self.t0:7.1f} s] {r['claim']} ({r['variant']}): "
                f"{'holds' if r['holds'] else 'fails'}"
            )

    def __iadd__(self, rs):
        for r in rs:
            self.append(r)
        return self


def run(quick: bool = True, log=None) -> list[dict]:
    """All checks; ``quick`` uses fewer settings/inits (< 1 min on 2 cores).
    ``log``: optional callable receiving a progress line per record."""
    K = QUICK_STARTS if quick else FULL_STARTS
    grid = QUICK_GRID if quick else FULL_GRID
    recs = _Recs(log)
    recs.append(check_eq_1(K))
    lin = ["unif1", "gauss3"] if quick else ["unif1", "gauss3", "gauss2"]
    for n in lin:
        recs += [
            check_eq_3(n, K, "printed"),
            check_eq_3(n, K, "corrected"),
            check_eq_5(n, K),
            check_theorem_3_1(n, K),
            check_lemma_3_2(n, K),
            check_theorem_3_3(n, K, "printed"),
            check_theorem_3_3(n, K, "corrected"),
            check_theorem_3_4(n, K, "printed"),
            check_theorem_3_4(n, K, "corrected"),
            check_eq_9(n, K),
        ]
    gd = ["unif1"] if quick else ["unif1", "gauss3"]
    for n in gd:
        recs += [
            check_eq_8(n, K),
            check_lemma_3_5(n, K),
            check_lemma_3_7(n, K),
            check_theorem_3_6(n, K, "printed"),
            check_theorem_3_6(n, K, "corrected"),
        ]
    for n in gd:  # the step eta0 of Lemma 3.7, computed (sideq.paper.theory.theorem_3_6_eta0)
        recs += [check_theorem_3_6_eta0(n, K), check_eq_7(n, K), check_eta0_tightness(n, K)]
    # Theorem 3.6 counterexample: a law with small E[XX^T] (X ~ Unif[0, 0.1]), every start at its
    # own certified step eta0(theta(0)), so within the theorem's hypotheses
    recs += [check_theorem_3_6_eta0("unif0.1", K, variant=v, **COUNTEREXAMPLE_3_6) for v in ("printed", "corrected")]
    si = ["tanh-unif1", "sigmoid-unif1"] if quick else [n for n in SI_SETTINGS if "gauss2" not in n]
    for n in si:
        recs += [check_rho_positive(n, "printed", grid), check_rho_positive(n, "corrected", grid)]
        recs += [check_theorem_3_8(n, K, "printed", grid), check_theorem_3_8(n, K, "corrected", grid)]
        # the proofs' identities and bounds at points of Theta (expectations over the risk's nodes)
        recs += [check_eq_13(n, K), check_eq_15(n, K, "printed"), check_eq_15(n, K, "corrected"), check_eq_18(n, K)]
    # Gaussian X in d = 2 (rho by the quadrature of sideq.paper.theory.gaussian_block): cond 100, isotropic
    # (full run only: ~5 s for rho, ~40 s for the flows; tests/test_verify.py checks the rho rows)
    for n in [] if quick else ["softplus-gauss2", "softplus-gauss2iso"]:
        recs += [
            check_rho_positive(n, "printed", grid),
            check_rho_positive(n, "corrected", grid),
            check_theorem_3_8(n, K, "printed", grid),
            check_theorem_3_8(n, K, "corrected", grid),
        ]
    cor = (
        ["tanh-unif1"] if quick else ["tanh-unif1", "sigmoid-unif1", "softplus-unif1", "tanh-unif2", "softplus-gauss2"]
    )
    for n in cor:
        recs.append(check_corollary_3_1(n, K))
    t39 = ["tanh-unif1"] if quick else ["tanh-unif1", "softplus-unif1", "sigmoid-unif1"]
    for n in t39:
        recs.append(check_theorem_3_9(n, K, "corrected", grid))
        if not quick:
            recs.append(check_theorem_3_9(n, K, "printed", grid))
        recs.append(check_threshold_tightness(n, K, "corrected", grid))
    if not quick:
        # outside the assumptions
        recs.append(check_corollary_3_1("tanh-unif1", K, frac=1.5))
        recs.append(check_corollary_3_1("softplus-unif1", K, frac=1.5))
        recs.append(check_corollary_3_1("tanh-unif1", K, act="relu"))
        recs.append(check_corollary_3_1("tanh-unif1", K, act="gelu"))
    return list(recs)


# ---------------------------------------------------------------------------
# Figures for VERIFY.md (``sideq verify --plots DIR``).


def _axes(ncols, width=3.6, height=3.0):
    from sideq.plots import use_headless_backend

    use_headless_backend()
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, ncols, figsize=(width * ncols, height), constrained_layout=True, squeeze=False)
    for ax in axs[0]:
        ax.grid(True, alpha=0.3, lw=0.5)
    return fig, axs[0]


def _running_ratio(r, P, mlogq):
    """(log(r(t)/(P r(0)))/t) / log q for t = 1..T: the decay observed up to t in units of
    the predicted one; the bound r(t) ≤ P q^t r(0) holds iff it is ≥ 1 at every t."""
    t = np.arange(1, len(r))
    return np.log(r[1:] / (P * r[0])) / (-mlogq * t), t


def plot_theorem_3_6(K=8, grid=31):
    """Theorem 3.6, observed/predicted decay of ‖φ(t) − ξ‖² along each descent run
    (the bound holds iff the curve stays ≥ 1): (a) at η = η0(θ(0)) of Lemma 3.7;
    (b) the X ~ Unif[0, 0.1] counterexample, printed and corrected bounds."""
    fig, (a, b) = _axes(2)
    sc = eta0_scan("unif1", K)
    r = _phi_err(sc["at_eta0"].theta, sc["xi"])
    for i, th0 in enumerate(sc["inits"]):
        q, t = _running_ratio(r[i], *T.theorem_3_6_log_rate_corrected(sc["dist"], th0, sc["eta0"][i]))
        a.loglog(t, q, lw=0.8, color="C0", alpha=0.8, label="corrected, one line per start" if i == 0 else None)
    a.axhline(1, color="k", ls="--", lw=1.2, label="bound attained")
    a.set_xlabel("step t")
    a.set_ylabel("observed / predicted decay up to t")
    a.set_title(f"(a) linear GD at $\\eta=\\eta_0(\\theta(0))$, X~Unif[0,1], {K} starts", fontsize=8)
    a.legend(fontsize=7)
    s = eta0_scan("unif0.1", K, **COUNTEREXAMPLE_3_6)
    r = _phi_err(s["at_eta0"].theta, s["xi"])
    lam = float(np.linalg.eigvalsh(T.second_moment_np(s["dist"]))[0])
    for i, th0 in enumerate(s["inits"]):
        q, t = _running_ratio(r[i], *T.theorem_3_6_log_rate_corrected(s["dist"], th0, s["eta0"][i]))
        b.loglog(t, q, lw=0.8, color="C0", alpha=0.8, label="corrected" if i == 0 else None)
        qp, _ = _running_ratio(r[i], *T.theorem_3_6_log_rate_printed(s["dist"], th0, s["eta0"][i]))
        b.loglog(t, qp, lw=0.8, color="C3", alpha=0.8, label="printed" if i == 0 else None)
    b.axhline(1, color="k", ls="--", lw=1.2, label="bound attained")
    b.set_xlabel("step t")
    b.set_title(
        f"(b) X~Unif[0,0.1], $\\lambda_{{min}}$={lam:.2g}, $\\eta=\\eta_0(\\theta(0))$: printed fails", fontsize=7.5
    )
    b.legend(fontsize=7)
    return fig


def plot_theorem_3_8(K=8, grid=31):
    """log(r(t)/r(0)), r = ‖θ(t) − (ξ, 0)‖², along gradient flows, with the rate
    4ργ²/(1 + Lδ2) of Theorem 3.8 corrected (ρ over the ball, ERRATA.md §6, §8) as a line."""
    fig, axs = _axes(2)
    for ax, name in zip(axs, ["sigmoid-unif1", "tanh-unif1"]):
        t = _t38(name, "corrected", grid)
        s = si_flow(name, K)
        tr = s["traj"]
        r = np.sum((tr.theta - np.append(s["xi"], 0.0)) ** 2, -1)
        for i in range(K):
            ok = r[i] > NOISE * r[i, 0]
            ax.plot(tr.ts[i][ok], np.log(r[i][ok] / r[i, 0]), lw=0.8, color="C0", alpha=0.7)
        ts = np.linspace(0, float(np.max(tr.ts)), 2)
        ax.plot(ts, -t.rate * ts, "k--", lw=1.2, label=f"Theorem 3.8: rate {t.rate:.2g}")
        emp = _lam_emp(tr.ts, r, r[:, 0])
        ax.plot(ts, -emp.min() * ts, "C1:", lw=1.2, label=f"best rate the data support: {emp.min():.2g}")
        ax.set_ylim(max(-40.0, float(np.nanmin(np.log(np.maximum(r / r[:, :1], 1e-300))))) - 1, 1)
        ax.set_xlabel("t (gradient flow)")
        ax.set_ylabel(r"$\log(\|\theta(t)-(\xi,0)\|^2/\|\theta(0)-(\xi,0)\|^2)$")
        ax.set_title(f"{SI_SETTINGS[name]['act']}, X~Unif[0,1], xi=1, {K} starts in B((xi,0),0.5)", fontsize=8)
        ax.legend(fontsize=7, loc="lower left")
    return fig


def plot_step_sizes(K=8, grid=31, names=("tanh-unif1",)):
    """Guaranteed step sizes against observed ones, log scale: (a) η0 of Lemma 3.7
    per start (linear DEQ) with the largest η that keeps its conclusions and the
    largest that converges; (b) Theorem 3.9's λ1/(2λ2) with the largest η that
    converges (:func:`eta_scan`)."""
    fig, (a, b) = _axes(2)
    sc = eta0_scan("unif1", K)
    idx = np.arange(K)
    a.semilogy(idx, sc["eta0"], "ko", ms=4, label=r"$\eta_0$ (certified)")
    a.semilogy(
        idx, sc["eta0"] * sc["keeps"], "C0^", ms=5, label=r"largest $\eta$ keeping $\theta\in\Theta$, R decreasing"
    )
    conv = np.where(sc["converges"] > 0, sc["eta0"] * sc["converges"], np.nan)
    a.semilogy(idx, conv, "C1s", ms=4, label=r"largest $\eta$ with $R(T)\leq 10^{-8}R(0)$")
    a.set_xlabel("start (linear DEQ, Unif[0,1], xi=2)")
    a.set_ylabel(r"step size $\eta$")
    a.set_title("(a) Lemma 3.7 / Theorem 3.6", fontsize=8)
    a.set_ylim(sc["eta0"].min() * 1e-4, None)  # room for the legend under the points
    a.legend(fontsize=6.5, loc="lower right")
    for j, name in enumerate(names):
        s = SI_SETTINGS[name]
        t9 = _memo(
            ("t39", name, "corrected", grid),
            lambda s=s, name=name: T.theorem_3_9(
                sideq.single_index(s["act"]),
                s["xi"],
                s["dist"](),
                delta2=s["r0"],
                grid=grid,
                t38=_t38(name, "corrected", grid),
                region="corrected",
            ),
        )
        largest, first_bad, *_ = eta_scan(name, K)
        b.semilogy([j], [t9.threshold], "ko", ms=5, label=r"$\lambda_1/(2\lambda_2)$" if j == 0 else None)
        b.semilogy([j], [largest], "C1s", ms=5, label="largest converging $\\eta$ (grid)" if j == 0 else None)
        b.semilogy([j], [first_bad], "rx", ms=6, label="first failing $\\eta$" if j == 0 else None)
        b.annotate(
            f"{largest / t9.threshold:.1g}x", (j, largest), textcoords="offset points", xytext=(6, -3), fontsize=7
        )
    b.set_xticks(range(len(names)), [SI_SETTINGS[n]["act"] for n in names])
    b.set_xlim(-0.5, len(names) - 0.5)
    b.set_ylabel(r"step size $\eta$")
    b.set_title("(b) Theorem 3.9, single-index DEQ, Unif[0,1], xi=1", fontsize=8)
    b.legend(fontsize=6.5, loc="center right")
    return fig


def plots(outdir, quick=True, K=None, grid=None):
    """Write the VERIFY.md figures as PNG into ``outdir``; returns their paths.
    ``K`` starts and ρ ``grid`` default to those of :func:`run` (so its simulations are reused)."""
    import os

    import matplotlib.pyplot as plt

    os.makedirs(outdir, exist_ok=True)
    out = []
    t39 = ("tanh-unif1",) if quick else ("tanh-unif1", "softplus-unif1", "sigmoid-unif1")  # as run()
    for name, fn in [
        ("theorem_3_6_rate", plot_theorem_3_6),
        ("theorem_3_8_rate", plot_theorem_3_8),
        ("step_sizes", functools.partial(plot_step_sizes, names=t39)),
    ]:
        fig = fn(K or (QUICK_STARTS if quick else FULL_STARTS), grid or (QUICK_GRID if quick else FULL_GRID))
        path = os.path.join(outdir, name + ".png")
        fig.savefig(path, dpi=130)
        plt.close(fig)
        out.append(path)
    return out


def _fmt(v, n=60):
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def format_table(recs) -> str:
    lines = [f"{'claim':<34} {'variant':<10} {'holds':<5} {'should':<6} {'tight':>9}  setting / predicted / observed"]
    for r in recs:
        tight = "" if r["tightness"] is None else f"{r['tightness']:.3g}"
        sh = {True: "yes", False: "no", None: "-"}[r["should_hold"]]
        lines.append(
            f"{r['claim']:<34} {r['variant']:<10} {str(r['holds']).lower():<5} {sh:<6} {tight:>9}  "
            f"{_fmt(r['setting'], 110)}"
        )
        lines.append(f"{'':<69}pred: {_fmt(r['predicted'], 110)}")
        lines.append(f"{'':<69}obs:  {_fmt(r['observed'], 110)}")
    return "\n".join(lines)


def failures(recs):
    """Records of claims that should hold (``should_hold`` True) and failed.  A printed
    statement that is wrong (``should_hold`` False) and holds in a run is shown, not counted."""
    return [r for r in recs if r["should_hold"] is True and not r["holds"]]


def run_parameters() -> dict:
    """The constants of the checks that VERIFY.md's prose quotes
    (:func:`sideq.paper.verify_markdown.markdown`): starts and ρ grid of ``--quick``
    and of the full run, the noise floor of the rate estimates, and the
    quadrature and grid sizes of :mod:`sideq.paper.theory`.

    Returns:
        A dict of the names the prose uses.
    """
    lip = inspect.signature(T.lemma_3_7_lipschitz).parameters
    return {
        "quick_starts": QUICK_STARTS,
        "full_starts": FULL_STARTS,
        "quick_grid": QUICK_GRID,
        "full_grid": FULL_GRID,
        "noise": NOISE,
        "gauss_block_nodes": T.GAUSS_BLOCK_NODES,
        "max_grid_high_dim": T.MAX_GRID_HIGH_DIM,
        "n_gap": lip["n_gap"].default,
        "n_gap_search": lip["n_gap_search"].default,
    }


def _command(quick, plots_dir, multi):
    """The ``sideq verify --markdown`` command line of a run, for the document's header."""
    return (
        "sideq verify --markdown"
        + (" --multi" if multi else "")
        + (" --quick" if quick else "")
        + (f" --plots {plots_dir}" if plots_dir else "")
    )


def main(
    quick: bool = False,
    as_json: bool = False,
    plots_dir: str | None = None,
    multi: bool = False,
    markdown: bool = False,
) -> int:
    """Entry point for ``sideq verify [--quick] [--json | --markdown] [--plots DIR] [--multi]``:
    exit 1 if a claim that should hold fails; ``plots_dir``: also write the VERIFY.md figures
    there (from the same simulations); ``multi``: the multi-neuron group
    (:func:`run_multi`, MULTI_NEURON.md) instead of Section 3's checks; ``markdown``: print
    the whole document (VERIFY.md, :func:`sideq.paper.verify_markdown.markdown`) made from
    this run's records, with the run's wall and CPU time and the machine's load.

    The checks need float64; it is switched on for this call only."""
    if multi and plots_dir:
        raise SideqInputError("--plots: the figures are Section 3's; run `sideq verify --plots DIR` without --multi")
    if as_json and markdown:
        raise SideqInputError("--markdown: prints the document, --json the records; give one of them")
    t0, c0, load0 = time.perf_counter(), time.process_time(), VM.machine()["load"]
    written = []
    with jax.enable_x64(True), bar(None, "verify", "check") as b:  # (a bar on a terminal only)
        log = (lambda line: advance(b, 1, line.split("] ", 1)[-1])) if b is not None else None
        recs = run_multi(quick, log=log) if multi else run(quick, log=log)
        if plots_dir:
            for path in plots(plots_dir, quick):
                written.append(path)
                print(f"wrote {path}", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    if markdown:
        info = {
            "wall_s": wall,
            "cpu_s": time.process_time() - c0,
            "machine": VM.machine(),
            "load_start": load0,
            "load_end": VM.machine()["load"],
        }
        doc = VM.markdown(
            recs,
            run_parameters(),
            quick=quick,
            multi=multi,
            command=_command(quick, plots_dir and os.path.normpath(plots_dir), multi),
            run_info=info,
            plots_written=written,
        )
        sys.stdout.write(doc)
    elif as_json:
        print(json.dumps(recs, indent=1))
    else:
        print(format_table(recs))
        bad = failures(recs)
        shown = [r for r in recs if r["should_hold"] is False and not r["holds"]]
        known = "naive guess(es)" if multi else "printed statement(s)"
        print(
            f"\n{len(recs)} records in {wall:.1f} s: {len(bad)} claim(s) that should hold failed; "
            f"{len(shown)} {known} shown failing."
        )
    return 1 if failures(recs) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(
        main(
            "--quick" in sys.argv, "--json" in sys.argv, multi="--multi" in sys.argv, markdown="--markdown" in sys.argv
        )
    )
