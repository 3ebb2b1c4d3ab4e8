r"""Experiments beyond the paper's Section 4 (``sideq reproduce --extended``).

Seven experiments, each a function ``exp_NAME(out_dir, quick=False) -> dict``
that draws its figure (PNG and PDF) into ``out_dir`` and returns a JSON-able
summary (settings, wall time, files, key numbers).  :func:`run_all` runs them
all; the scripts in ``experiments/`` run one each with the same code.

1. ``activations``: Figures 4–5 for tanh and softplus (ξ = 2, n = 1000,
   Unif[0, 1], θ(0) ~ N(0, 0.1²I), η = 0.1, 4000 epochs).
2. ``flow_vs_descent``: linear DEQ, gradient flow and gradient descent on the
   same (θ1, θ2) plane with Theorem 3.1's circles about (0, 1) and the limit
   points of the *corrected* Theorem 3.3 (ERRATA.md §2).
3. ``population_vs_empirical``: R(θ_n(t)) and R̂_n(θ_n(t)) along descent on
   n = 100, 1000, 10000 samples (sigmoid DEQ), against descent on R itself.
4. ``phase_portrait``: the field −∇R (streamlines, log-speed colour) for the
   linear DEQ (singular line θ2 = 1, solution line) and the sigmoid DEQ.
5. ``basin``: 100 × 100 grids of θ(0) (``sideq.sweep.run_sweep``): final
   distance to the target set and epochs to reach 1e-6, diverged and
   non-unique runs marked.
6. ``step_size``: final distance over a log grid of η for several θ(0) near
   (ξ, 0), against Theorem 3.9's sufficient step size λ1/(2λ2) and the local
   stability edge 2/λ_max(∇²R(ξ, 0)).
7. ``explicit_neuron``: the explicit neuron σ(θᵀx) trained by plain JAX
   gradient descent against the sigmoid DEQ on the same data.

Precision: the paper's numbers need float64.  Library code never flips the
global flag; :func:`run_all` and the ``exp_*`` functions run inside a scoped
``jax.enable_x64(True)`` (the caller's global setting is untouched), and the
scripts set ``jax_enable_x64`` at start-up anyway.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import sys
import time

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

import sideq
from sideq import general, general_risk, gradient_flow, sweep, train
from sideq.activations import get_activation
from sideq.errors import SideqInputError, unwritable_folder
from sideq.paper import theory
from sideq.paper.reproduce import EXPERIMENTS as PAPER
from sideq.paper.reproduce import draw
from sideq.paper.theory import theorem_3_3_limit_corrected
from sideq.plots import basin_map, use_headless_backend
from sideq.plots import cell_outline as _mask_outline  # noqa: F401  (the basin map's, shared)
from sideq.progress import advance, bar

__all__ = [
    "run_all",
    "run_one",
    "EXPERIMENTS",
    "explicit_neuron_descent",
    "explicit_neuron_loss",
    "linear_gradient_closed_form",
    "flow_field",
    "step_size_threshold",
    "limit_point",
]

XI = 2.0
FIG_DPI = 200
# Paper column: 3.4 in; a two-column-wide figure: 7.0 in.
COL_W, FULL_W = 3.4, 7.0


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _x64():
    if jax.config.jax_enable_x64:
        yield
    else:
        with jax.enable_x64(True):
            yield


def _rc():
    import matplotlib

    use_headless_backend()
    return matplotlib.rc_context(
        {
            "font.size": 8,
            "axes.labelsize": 8,
            "axes.titlesize": 8.5,
            "legend.fontsize": 6.5,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "lines.linewidth": 1.3,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "grid.linewidth": 0.5,
        }
    )


def _save(fig, out_dir, name):
    import matplotlib.pyplot as plt

    paths = []
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=FIG_DPI)
        paths.append(path)
    plt.close(fig)
    return paths


def _f(v):
    """float or None (JSON)."""
    v = float(v)
    return v if math.isfinite(v) else None


def _tex_sci(v, digits=1):
    r"""``v`` for a mathtext label: 4.0\times10^{-4} (not 4.0e-04, whose minus mathtext
    spaces as a binary operator: "4.0e − 04")."""
    v = float(v)
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    mant, exp = f"{v:.{digits}e}".split("e")
    return rf"{mant}\times10^{{{int(exp)}}}"


def _first_below(values, tol):
    idx = np.flatnonzero(np.asarray(values) <= tol)
    return int(idx[0]) if idx.size else None


def _configure(cfg, overrides, fixed=("xi",)):
    """The settings ``cfg`` with ``overrides`` applied.  A key the experiment does not
    have (a typo would otherwise be recorded and ignored), or one it records but
    does not let change (ξ = 2 and the descriptive entries, ``fixed`` and every
    string), is refused with a one-line error naming what can change."""
    frozen = set(fixed) | {k for k, v in cfg.items() if isinstance(v, str)}
    for key in overrides:
        if key not in cfg or key in frozen:
            free = ", ".join(k for k in cfg if k not in frozen)
            what = "is fixed in this experiment" if key in cfg else "is not a setting of this experiment"
            raise SideqInputError(f"{key}: {what}; the settings that can change are {free}")
    return {**cfg, **overrides}


def _sigmoid_data(seed=0, n=1000):
    """Data x (n, 1) ~ Unif[0, 1] and θ(0) ~ N(0, 0.1²I), as ``sideq reproduce`` draws them."""

    cfg = dict(PAPER["sigmoid"], n=n)
    return draw(cfg, seed)


def _trajectory_axes(ax, theta, *, cmap="viridis", cbar_fig=None, label_cbar=True, every=1):
    """θ(t) in the (θ1, θ2) plane coloured by epoch; returns the LineCollection."""
    from matplotlib.collections import LineCollection

    theta = np.asarray(theta)[::every]
    t = np.arange(len(theta)) * every
    pts = theta[:, :2].reshape(-1, 1, 2)
    segs = np.concatenate([pts[:-1], pts[1:]], axis=1)
    lc = LineCollection(segs, cmap=cmap, linewidths=1.6)
    lc.set_array(t[:-1].astype(float))
    ax.add_collection(lc)
    if cbar_fig is not None:
        cb = cbar_fig.colorbar(lc, ax=ax, pad=0.02)
        if label_cbar:
            cb.set_label("epoch $t$")
    ax.plot(theta[0, 0], theta[0, 1], "o", mfc="none", mec="k", ms=5, label=r"$\theta(0)$", zorder=4)
    return lc


# --------------------------------------------------------------------------- 1. activations


def exp_activations(out_dir, quick=False, **overrides):
    """Figures 4–5 with tanh and softplus in place of the sigmoid."""
    import matplotlib.pyplot as plt

    cfg = dict(
        xi=XI,
        n=1000,
        eta=0.1,
        epochs=1000 if quick else 4000,
        init="N(0, 0.1^2 I)",
        seed=0,
        activations=["tanh", "softplus", "sigmoid"],
    )
    cfg = _configure(cfg, overrides)
    if "sigmoid" not in cfg["activations"] or not set(cfg["activations"]) <= {"tanh", "softplus", "sigmoid"}:
        raise SideqInputError(
            f"activations: {cfg['activations']!r}; give some of tanh, softplus with sigmoid "
            "(the reference panel), e.g. ['tanh', 'sigmoid']"
        )
    x, theta0 = _sigmoid_data(cfg["seed"], cfg["n"])
    grid = np.linspace(0.0, 1.0, 201)
    t0 = time.perf_counter()
    out = {"settings": cfg, "theta_initial": theta0.tolist(), "runs": {}}
    trajs = {}
    for act in cfg["activations"]:
        model = sideq.single_index(act)
        traj = train.descent(model, theta0, xi=[XI], x=x, eta=cfg["eta"], epochs=cfg["epochs"])
        trajs[act] = (model, traj)
        dist = np.asarray(traj.distance)
        s = train.summary(model, traj)
        s.update(
            distance_initial=float(dist[0]),
            distance_monotone=bool(np.all(np.diff(dist) <= 1e-12)),
            largest_distance_increase=float(np.diff(dist).max()),
            epochs_to_distance_1e_1=_first_below(dist, 1e-1),
            epochs_to_distance_1e_2=_first_below(dist, 1e-2),
            epochs_to_loss_1e_6=_first_below(np.asarray(traj.loss), 1e-6),
        )
        out["runs"][act] = s
    files = []
    with _rc():
        for act in ("tanh", "softplus"):
            model, traj = trajs[act]
            theta = np.asarray(traj.theta)
            fig, axs = plt.subplots(2, 2, figsize=(FULL_W, 5.0), constrained_layout=True)
            ax = axs[0, 0]
            ax.semilogy(np.asarray(traj.loss), color="C0", label=act)
            _, st = trajs["sigmoid"]
            ax.semilogy(np.asarray(st.loss), color="0.6", ls="--", lw=1, label="sigmoid (Fig. 4a)")
            ax.set_xlabel("epoch $t$")
            ax.set_ylabel(r"$\hat R(\theta(t))$")
            ax.set_title(f"(a) training loss, $\\sigma$ = {act}")
            ax.legend()
            ax = axs[0, 1]
            learned = np.asarray(sideq.equilibrium(model, jnp.asarray(theta[-1]), jnp.asarray(grid)))
            true = np.asarray(sideq.targets(model, jnp.asarray([XI]), jnp.asarray(grid[:, None])))
            yd = np.asarray(sideq.targets(model, jnp.asarray([XI]), jnp.asarray(x)))
            ax.scatter(x[:, 0], yd, s=2, color="0.6", alpha=0.4, label="training data", zorder=1)
            ax.plot(grid, true, color="k", lw=2.2, label=rf"true $\mathrm{{{act}}}({XI:g}x)$", zorder=2)
            ax.plot(grid, learned, color="C3", ls="--", label=rf"learned $y_\theta(x)$, $t={cfg['epochs']}$", zorder=3)
            ax.set_xlabel("$x$")
            ax.set_ylabel("$y$")
            ax.set_title("(b) learned vs true function")
            ax.legend(loc="upper left")
            ax = axs[1, 0]
            _trajectory_axes(ax, theta, cbar_fig=fig, every=max(1, len(theta) // 2000))
            ax.plot(XI, 0, "*", color="C3", ms=10, ls="none", label=rf"target $(\xi, 0) = ({XI:g}, 0)$", zorder=5)
            lo = np.minimum(theta.min(0), [XI, 0]) - 0.15
            hi = np.maximum(theta.max(0), [XI, 0]) + 0.15
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_xlabel(r"$\theta_1$")
            ax.set_ylabel(r"$\theta_2$")
            ax.set_title(r"(c) trajectory in the $(\theta_1, \theta_2)$ plane")
            ax.legend(loc="best")
            ax = axs[1, 1]
            ax.semilogy(np.asarray(traj.distance), color="C0", label=act)
            ax.semilogy(np.asarray(st.distance), color="0.6", ls="--", lw=1, label="sigmoid (Fig. 5b)")
            ax.set_xlabel("epoch $t$")
            ax.set_ylabel(rf"$\|\theta(t) - ({XI:g}, 0)\|_2$")
            ax.set_title("(d) distance to the target")
            ax.legend()
            fig.suptitle(
                rf"Figures 4–5 with $\sigma$ = {act}: $\xi={XI:g}$, $n={cfg['n']}$, "
                rf"$\eta={cfg['eta']}$, {cfg['epochs']} epochs",
                fontsize=9,
            )
            files += _save(fig, out_dir, f"ext1_{act}")
    out["wall_s"] = time.perf_counter() - t0
    out["files"] = files
    return out


# --------------------------------------------------------------------------- 2. flow vs descent


def limit_point(theta0, xi):
    """Corrected Theorem 3.3 (ERRATA.md §2), from :mod:`sideq.paper.theory`: the limit
    (αξ, 1 − α) and α = sign(1 − θ2(0)) ‖θ(0) − (0, 1)‖ / √(‖ξ‖² + 1)."""

    lim = theorem_3_3_limit_corrected(theta0, xi)
    return lim, float(1 - lim[-1])


def _flow_vs_descent_figure(out_dir, runs, etas):
    """ext2's figure: each start's flow and its two descents in the (θ1, θ2)
    plane, with the solution line, the singular line and the circles about
    (0, 1) (``runs``: (θ(0), predicted limit, flow θ, {η: descent}, radius))."""
    import matplotlib.pyplot as plt

    with _rc():
        fig, ax = plt.subplots(figsize=(6.3, 3.3), constrained_layout=True)
        a = np.linspace(-3, 3, 2)
        ax.plot(a * XI, 1 - a, color="C3", lw=1, ls="--", label=r"solutions $(\alpha\xi, 1-\alpha)$", zorder=1)
        ax.axhline(1.0, color="k", lw=0.8, ls=":", label=r"singular line $\theta_2 = 1$")
        ax.plot(0, 1, "X", color="C1", ms=8, ls="none", label="trivial $(0, 1)$", zorder=6)
        phi = np.linspace(0, 2 * np.pi, 400)
        for i, (s, lim, ths, gds, r0) in enumerate(runs):
            ax.plot(
                r0 * np.cos(phi),
                1 + r0 * np.sin(phi),
                color="0.75",
                lw=0.7,
                zorder=0,
                label=r"circles $\|\theta-(0,1)\|=\|\theta(0)-(0,1)\|$" if i == 0 else None,
            )
            ax.plot(ths[:, 0], ths[:, 1], color="C0", lw=1.6, zorder=3, label="gradient flow" if i == 0 else None)
            g = np.asarray(gds[etas[0]].theta)
            ax.plot(
                g[::4, 0],
                g[::4, 1],
                ".",
                color="C2",
                ms=2.5,
                zorder=4,
                label=rf"descent $\eta={etas[0]:g}$ (every 4th)" if i == 0 else None,
            )
            g = np.asarray(gds[etas[1]].theta)
            ax.plot(
                g[:, 0],
                g[:, 1],
                "-",
                marker=".",
                color="C4",
                ms=3,
                lw=0.6,
                zorder=4,
                label=rf"descent $\eta={etas[1]:g}$" if i == 0 else None,
            )
            ax.plot(s[0], s[1], "o", mfc="none", mec="k", ms=5, zorder=5, label=r"$\theta(0)$" if i == 0 else None)
            ax.plot(
                lim[0],
                lim[1],
                "*",
                color="C3",
                ms=10,
                mec="k",
                mew=0.4,
                zorder=6,
                label="limit, corrected Thm 3.3" if i == 0 else None,
            )
        ax.set_aspect("equal")
        ax.set_xlim(-2.2, 2.2)
        ax.set_ylim(-0.8, 2.8)
        ax.set_xlabel(r"$\theta_1$")
        ax.set_ylabel(r"$\theta_2$")
        ax.set_title(rf"Linear DEQ, $\xi={XI:g}$, population risk on Unif[0,1]")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=6.5)
        return _save(fig, out_dir, "ext2_flow_vs_descent")


def exp_flow_vs_descent(out_dir, quick=False, **overrides):
    cfg = dict(
        model="linear",
        xi=XI,
        risk="population, X ~ Unif[0, 1] (128 Gauss-Legendre nodes)",
        starts=[(0.3, 0.2), (-0.6, 0.4), (0.9, -0.4), (0.25, 1.5), (-0.7, 1.6), (0.5, 2.3)],
        etas=[0.05, 0.2],
        epochs=200 if quick else 600,
        flow_t1=60.0,
        flow_gtol=1e-10,
    )
    cfg = _configure(cfg, overrides)
    if len(cfg["etas"]) != 2:
        raise SideqInputError(f"etas: {cfg['etas']!r}; the figure compares two step sizes, e.g. [0.05, 0.2]")
    starts = [tuple(s) for s in cfg["starts"]]
    model = sideq.linear()
    dist = sideq.uniform(0.0, 1.0, 1)
    t0 = time.perf_counter()
    rows = []
    runs = []
    for s in starts:
        lim, alpha = limit_point(s, [XI])
        fl = gradient_flow.flow(
            model,
            np.asarray(s),
            xi=[XI],
            dist=dist,
            t1=cfg["flow_t1"],
            saveat_ts=np.linspace(0, cfg["flow_t1"], 3001),
            gtol=cfg["flow_gtol"],
            max_steps=8192,
        )
        ths = np.asarray(fl.theta)
        gds = {}
        for eta in cfg["etas"]:
            gd = train.descent(model, np.asarray(s), xi=[XI], dist=dist, eta=eta, epochs=cfg["epochs"])
            gds[eta] = gd
        r0 = float(np.linalg.norm(np.asarray(s) - [0, 1]))
        row = dict(
            theta0=list(s),
            alpha=alpha,
            predicted_limit=lim.tolist(),
            flow_final=ths[-1].tolist(),
            flow_status=sideq.Status(int(fl.status)).name.lower(),
            flow_error_to_prediction=float(np.linalg.norm(ths[-1] - lim)),
            flow_max_drift_w=float(np.max(np.asarray(fl.drift))),
            t_final=float(fl.t_final),
        )
        for eta, gd in gds.items():
            th = np.asarray(gd.theta)
            radius = np.linalg.norm(th - [0, 1], axis=1)
            row[f"gd_eta{eta:g}_final"] = th[-1].tolist()
            row[f"gd_eta{eta:g}_error_to_prediction"] = _f(np.linalg.norm(th[-1] - lim))
            row[f"gd_eta{eta:g}_radius_growth"] = _f(radius[-1] - r0)
            row[f"gd_eta{eta:g}_status"] = sideq.Status(int(gd.status)).name.lower()
            row[f"gd_eta{eta:g}_distance_to_line_final"] = _f(np.asarray(gd.distance)[-1])
        rows.append(row)
        runs.append((s, lim, ths, gds, r0))
    files = _flow_vs_descent_figure(out_dir, runs, cfg["etas"])
    out = dict(
        settings=cfg,
        wall_s=time.perf_counter() - t0,
        files=files,
        runs=rows,
        max_flow_error_to_prediction=max(r["flow_error_to_prediction"] for r in rows),
        max_flow_drift_w=max(r["flow_max_drift_w"] for r in rows),
    )
    for eta in cfg["etas"]:
        errs = [r[f"gd_eta{eta:g}_error_to_prediction"] for r in rows]
        out[f"max_gd_eta{eta:g}_error_to_prediction"] = None if None in errs else max(errs)
    return out


# --------------------------------------------------------------------------- 3. population vs empirical


def exp_population_vs_empirical(out_dir, quick=False, **overrides):
    import matplotlib.pyplot as plt

    cfg = dict(
        model="sigmoid",
        xi=XI,
        ns=[100, 1000, 10000],
        eta=0.1,
        epochs=1000 if quick else 4000,
        init="theta(0) of reproduce seed 0 (N(0, 0.1^2 I))",
        data_seed=1,
        population_nodes=128,
        evaluated_epochs=200,
    )
    cfg = _configure(cfg, overrides, fixed=("xi", "population_nodes"))
    model = sideq.single_index("sigmoid")
    dist = sideq.uniform(0.0, 1.0, 1)
    _, theta0 = _sigmoid_data(0)
    t0 = time.perf_counter()
    T = cfg["epochs"]
    ev = np.unique(np.concatenate([np.arange(0, min(T, 50)), np.linspace(0, T, cfg["evaluated_epochs"]).astype(int)]))
    pop_risk = jax.jit(jax.vmap(lambda th: sideq.population_risk(model, th, jnp.asarray([XI]), dist)))
    curves = {}
    dists = {}
    res = {}
    pop = train.descent(model, theta0, xi=[XI], dist=dist, eta=cfg["eta"], epochs=T)
    th_pop = np.asarray(pop.theta)
    curves["population"] = (np.asarray(pop.loss), None)
    for i, n in enumerate(cfg["ns"]):
        key = jax.random.PRNGKey(cfg["data_seed"] + i)
        x = np.asarray(sideq.sample(dist, key, n))
        tr = train.descent(model, theta0, xi=[XI], x=x, eta=cfg["eta"], epochs=T)
        th = np.asarray(tr.theta)
        R = np.asarray(pop_risk(jnp.asarray(th[ev])))
        Rhat = np.asarray(tr.loss)
        curves[n] = (Rhat, R)
        dists[n] = np.linalg.norm(th - th_pop, axis=1)
        res[str(n)] = dict(
            empirical_final=_f(Rhat[-1]),
            population_final=_f(R[-1]),
            population_over_empirical_final=_f(R[-1] / Rhat[-1]),
            theta_final=th[-1].tolist(),
            distance_to_population_run_final=float(np.linalg.norm(th[-1] - th_pop[-1])),
            max_distance_to_population_run=float(np.max(np.linalg.norm(th - th_pop, axis=1))),
        )
    res["population_trained"] = dict(risk_final=_f(pop.loss[-1]), theta_final=th_pop[-1].tolist())
    files = []
    with _rc():
        fig, axs = plt.subplots(1, 3, figsize=(FULL_W, 2.7), constrained_layout=True)
        ax = axs[0]
        # dashed and on top (zorder): the curves nearly coincide, and a solid
        # line under them would be hidden
        ax.semilogy(
            curves["population"][0],
            color="k",
            lw=1.2,
            ls=(0, (3, 2)),
            zorder=5,
            label=r"trained on $R$: $R(\theta_{\mathrm{pop}}(t))$",
        )
        for i, n in enumerate(cfg["ns"]):
            Rhat, R = curves[n]
            ax.semilogy(
                np.arange(len(Rhat)), Rhat, color=f"C{i}", ls="--", lw=1.0, label=rf"$\hat R_n(\theta_n(t))$, $n={n}$"
            )
            ax.semilogy(ev, R, color=f"C{i}", lw=1.3, label=rf"$R(\theta_n(t))$, $n={n}$")
        ax.set_xlabel("epoch $t$")
        ax.set_ylabel("risk")
        ax.set_title("(a) risks along descent")
        ax.legend(ncol=1, fontsize=5.5)
        ax = axs[1]
        for i, n in enumerate(cfg["ns"]):
            Rhat, R = curves[n]
            ax.semilogx(ev[1:], R[1:] / Rhat[ev[1:]], color=f"C{i}", label=rf"$n={n}$")
        ax.axhline(1, color="k", lw=0.6)
        ax.set_xlabel("epoch $t$")
        ax.set_ylabel(r"$R(\theta_n(t))\,/\,\hat R_n(\theta_n(t))$")
        ax.set_title("(b) population / empirical")
        ax.legend()
        ax = axs[2]
        for i, n in enumerate(cfg["ns"]):
            ax.loglog(np.arange(1, len(dists[n])), dists[n][1:], color=f"C{i}", label=rf"$n={n}$")
        ax.set_xlabel("epoch $t$")
        ax.set_ylabel(r"$\|\theta_n(t) - \theta_{\mathrm{pop}}(t)\|_2$")
        ax.set_title("(c) distance to the run on $R$")
        ax.legend()
        fig.suptitle(rf"Sigmoid DEQ, $\xi={XI:g}$, $\eta={cfg['eta']}$, X ~ Unif[0,1], same $\theta(0)$", fontsize=9)
        files += _save(fig, out_dir, "ext3_population_vs_empirical")
    return dict(settings=cfg, wall_s=time.perf_counter() - t0, files=files, results=res)


# --------------------------------------------------------------------------- 4. phase portrait


def linear_gradient_closed_form(theta, xi, m2):
    """∇R of the linear DEQ, d = 1, from ERRATA.md §1 (Σ₂ = E[X²] = ``m2``):
    ∂θ1 R = 2Σ₂(φ − ξ)/(1 − θ2), ∂θ2 R = 2Σ₂ φ(φ − ξ)/(1 − θ2), φ = θ1/(1 − θ2)."""
    theta = np.asarray(theta, float)
    t1, t2 = theta[..., 0], theta[..., 1]
    phi = t1 / (1 - t2)
    g1 = 2 * m2 * (phi - xi) / (1 - t2)
    g2 = 2 * m2 * phi * (phi - xi) / (1 - t2)
    return np.stack([g1, g2], axis=-1)


def flow_field(model, thetas, xi=XI, dist=None):
    """−∇R(θ) at each row of ``thetas`` (K, 2), population risk: the gradient of
    Eq. (5) for the linear DEQ, implicit gradients otherwise."""

    dist = sideq.uniform(0.0, 1.0, 1) if dist is None else dist
    xi_a = jnp.asarray([xi])
    g = jax.jit(jax.vmap(jax.grad(lambda th: sideq.population_risk(model, th, xi_a, dist))))
    return -np.asarray(g(jnp.asarray(thetas)))


def exp_phase_portrait(out_dir, quick=False, **overrides):
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    cfg = dict(
        xi=XI,
        grid_points=60 if quick else 160,
        risk="population, Unif[0,1], 128 nodes",
        linear_box=[[-3, 3], [-2, 4]],
        sigmoid_box=[[-3, 7], [-4, 3.9]],
        singular_mask=0.04,
    )
    cfg = _configure(cfg, overrides)
    m = int(cfg["grid_points"])
    t0 = time.perf_counter()
    out = dict(settings=cfg)
    files = []
    panels = []
    for name, box in (("linear", cfg["linear_box"]), ("sigmoid", cfg["sigmoid_box"])):
        model = sideq.linear() if name == "linear" else sideq.single_index("sigmoid")
        g1 = np.linspace(*box[0], m)
        n2 = m + 1
        while np.min(np.abs(np.linspace(*box[1], n2) - 1.0)) < 1e-3:  # keep theta2 = 1 off the grid
            n2 += 1
        g2 = np.linspace(*box[1], n2)
        T1, T2 = np.meshgrid(g1, g2)
        th = np.stack([T1.ravel(), T2.ravel()], 1)
        F = flow_field(model, th).reshape(n2, m, 2)
        if name == "linear":
            ref = -linear_gradient_closed_form(th, XI, 1.0 / 3.0).reshape(n2, m, 2)
            nref = np.linalg.norm(ref, axis=-1)
            big = np.isfinite(nref) & (nref > 1e-8)  # the field vanishes on the solution line
            rel = np.linalg.norm(F - ref, axis=-1)[big] / nref[big]
            out["linear_field_max_rel_error_vs_closed_form"] = float(np.max(rel))
            mask = np.abs(1 - T2) < cfg["singular_mask"]
            F = np.where(mask[..., None], np.nan, F)
        speed = np.linalg.norm(F, axis=-1)
        out[f"{name}_speed_range"] = [float(np.nanmin(speed)), float(np.nanmax(speed))]
        out[f"{name}_nonfinite_points"] = int(np.sum(~np.isfinite(speed)))
        panels.append((name, g1, g2, F, speed))
    with _rc():
        fig, axs = plt.subplots(1, 2, figsize=(FULL_W, 3.3), constrained_layout=True)
        for ax, (name, g1, g2, F, speed) in zip(axs, panels):
            logs = np.log10(speed)
            finite = logs[np.isfinite(logs)]
            lo, hi = np.percentile(finite, 1), np.percentile(finite, 99)
            sp = ax.streamplot(
                g1,
                g2,
                F[..., 0],
                F[..., 1],
                color=logs,
                cmap="plasma",
                norm=Normalize(lo, hi),
                density=1.3,
                linewidth=0.8,
                arrowsize=0.7,
            )
            cb = fig.colorbar(sp.lines, ax=ax, pad=0.02)
            cb.set_label(r"$\log_{10}\|\nabla_\theta R\|_2$")
            if name == "linear":
                a = np.linspace(-5, 5, 2)
                ax.plot(a * XI, 1 - a, color="C2", lw=1.8, label=r"solutions $(\alpha\xi, 1-\alpha)$")
                ax.axhline(1, color="k", lw=1.4, ls="--", label=r"singular line $\theta_2=1$")
                ax.plot(0, 1, "X", color="C1", mec="k", mew=0.4, ms=8, ls="none", label="trivial $(0,1)$")
                ax.set_title(rf"(a) linear DEQ: $-\nabla R$, $\xi={XI:g}$")
            else:
                ax.plot(
                    XI, 0, "*", color="C2", mec="k", mew=0.4, ms=12, ls="none", label=rf"target $(\xi,0)=({XI:g},0)$"
                )
                ax.set_title(rf"(b) sigmoid DEQ: $-\nabla R$, $\xi={XI:g}$")
            ax.set_xlim(g1[0], g1[-1])
            ax.set_ylim(g2[0], g2[-1])
            ax.set_xlabel(r"$\theta_1$")
            ax.set_ylabel(r"$\theta_2$")
            ax.legend(loc="lower left", framealpha=0.85)
        files += _save(fig, out_dir, "ext4_phase_portrait")
    out.update(wall_s=time.perf_counter() - t0, files=files)
    return out


# --------------------------------------------------------------------------- 5. basin / rate maps


def _basin_runs(name, c, m, dist, dtol):
    """Experiment 5's sweep of one model over the m × m grid of θ(0) in
    ``c["box"]`` (population risk of ``dist``): ``(basin, stats)``, the maps
    the figure draws (final distance, epochs to ``dtol``, failed, non-unique
    at some epoch, reached) and the numbers of the summary."""
    model = sideq.linear() if name == "linear" else sideq.single_index("sigmoid")
    (a1, b1), (a2, b2) = c["box"]
    spec = f"grid:{a1}/{b1},{a2}/{b2}"
    inits = sweep.make_inits(spec, m * m, 2)  # theta2 = 1 is not a grid value for m = 30, 100
    ts = time.perf_counter()
    res = sweep.run_sweep(
        model, xi=[XI], inits=inits, eta=c["eta"], epochs=c["epochs"], dist=dist, dtol=dtol, progress=False
    )
    wall = time.perf_counter() - ts
    A = res.arrays
    status = np.asarray(A["status"])
    dfin = np.asarray(A["distance_final"])
    steps = np.asarray(A["steps"])
    names = {int(s): s.name.lower() for s in sideq.Status}
    counts = {names[int(k)]: int(v) for k, v in zip(*np.unique(status, return_counts=True))}
    failed = np.isin(status, [int(sideq.Status.DIVERGED), int(sideq.Status.SINGULAR), int(sideq.Status.SOLVER_FAILURE)])
    # The runs that passed through the non-unique regime at some epoch
    # (their status is that of their end, which may be CONVERGED).
    nonuniq = np.asarray(A["non_unique_epochs"]) > 0
    # Reached the target: ``steps`` is the first epoch with distance <= dtol
    # (= epochs if never), whatever the status.  A run that met dtol only
    # at theta(T) has steps = epochs, hence the distance_final test;
    # failed runs do not count.
    reached = ~failed & ((steps < c["epochs"]) | ((dtol > 0) & (dfin <= dtol)))
    basin = dict(
        D=dfin.reshape(m, m),
        S=steps.reshape(m, m),
        failed=failed.reshape(m, m),
        nonuniq=nonuniq.reshape(m, m),
        reached=reached.reshape(m, m),
        box=c["box"],
    )
    ok = reached
    stats = dict(
        runs=len(status),
        wall_s=wall,
        runs_per_s=len(status) / wall,
        status_counts=counts,
        reached_1e_6=int(reached.sum()),
        fraction_reached_1e_6=float(reached.mean()),
        non_unique_reached_1e_6=int((reached & nonuniq).sum()),
        epochs_to_1e_6_max_non_unique=(int(steps[reached & nonuniq].max()) if (reached & nonuniq).any() else None),
        not_reached_not_failed=int((~reached & ~failed).sum()),
        failed=int(failed.sum()),
        epochs_to_1e_6_quantiles=(np.quantile(steps[ok], [0, 0.05, 0.5, 0.95, 1]).tolist() if ok.any() else None),
        final_distance_quantiles_not_failed=(
            np.quantile(dfin[~failed & np.isfinite(dfin)], [0, 0.05, 0.5, 0.95, 1]).tolist()
        ),
    )
    if name == "linear":
        th2 = np.asarray(A["theta0"])[:, 1]
        for band in (0.05, 0.2, 0.5):
            near = np.abs(1 - th2) < band
            stats[f"fraction_failed_within_{band}_of_theta2_1"] = _f(failed[near].mean()) if near.any() else None
        stats["fraction_failed_farther_than_0.5"] = _f(failed[np.abs(1 - th2) >= 0.5].mean())
        e = np.array([0.0, 1.0])
        r0 = np.linalg.norm(np.asarray(A["theta0"]) - e, axis=1)
        rT = np.linalg.norm(np.asarray(A["theta_final"]) - e, axis=1)
        thrown = rT > 2 * r0
        stats["fraction_thrown_to_a_sphere_2x_larger"] = _f(thrown.mean())
        stats["theta2_0_range_of_thrown_runs"] = (
            [_f(th2[thrown].min()), _f(th2[thrown].max())] if thrown.any() else None
        )
        stats["fraction_not_reached_with_abs_1_minus_theta2_0_ge_0.5"] = _f((~reached)[np.abs(1 - th2) >= 0.5].mean())
    return basin, stats


def exp_basin(out_dir, quick=False, **overrides):
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    cfg = dict(
        grid_points=30 if quick else 100,
        xi=XI,
        risk="population, Unif[0,1], 32 Gauss-Legendre nodes",
        dtol=1e-6,
        linear=dict(box=[[-3, 3], [-2, 4]], eta=0.1, epochs=400 if quick else 1000),
        # eta = 20 is about 1/lambda_max of the Hessian at (xi, 0) (0.0486; experiment 6)
        sigmoid=dict(box=[[-4, 8], [-4, 3.9]], eta=20.0, epochs=600 if quick else 1000),
    )
    cfg = _configure(cfg, overrides)
    m = int(cfg["grid_points"])
    dist = sideq.uniform(0.0, 1.0, 1, nodes=32)
    t0 = time.perf_counter()
    out = dict(settings=cfg)
    maps = {}
    for name in ("linear", "sigmoid"):
        maps[name], out[name] = _basin_runs(name, cfg[name], m, dist, cfg["dtol"])
    files = []
    with _rc():
        fig, axs = plt.subplots(2, 2, figsize=(FULL_W, 5.6), constrained_layout=True)
        for col, name in enumerate(("linear", "sigmoid")):
            mp = maps[name]
            (a1, b1), (a2, b2) = mp["box"]
            # The starts are linspace(a, b, m) on each axis (make_inits "grid:"):
            # one cell per start (sideq.plots.basin_map).
            g1, g2 = np.linspace(a1, b1, m), np.linspace(a2, b2, m)
            target = "solution line" if name == "linear" else r"$(\xi,0)$"
            # (sigmoid: also the line theta2 = 1/L = 4 above which the equilibrium may not be unique)
            target_kw = (
                dict(linear=True, xi=XI)
                if name == "linear"
                else dict(linear=False, xi=XI, lipschitz=sideq.get_activation("sigmoid").lipschitz)
            )
            D = np.where(mp["failed"], np.nan, np.maximum(mp["D"], 1e-16))
            S = np.where(mp["reached"], mp["S"], np.nan).astype(float)
            k = int(mp["nonuniq"].sum())
            kr = int((mp["nonuniq"] & mp["reached"]).sum())
            rows = [
                (
                    D,
                    LogNorm(1e-16, max(1.0, np.nanmax(D))),
                    f"final distance to {target}",
                    f"({'a' if col == 0 else 'b'}) {name} DEQ, $\\eta={cfg[name]['eta']:g}$, "
                    f"{cfg[name]['epochs']} epochs",
                    f"non-unique at some epoch ({k})",
                ),
                (
                    S,
                    LogNorm(
                        max(1, np.nanmin(S)) if np.isfinite(S).any() else 1,
                        max(2, np.nanmax(S)) if np.isfinite(S).any() else 2,
                    ),
                    r"epochs to distance $\leq 10^{-6}$",
                    f"({'c' if col == 0 else 'd'}) epochs to reach $10^{{-6}}$ (white: not reached)",
                    f"non-unique at some epoch ({k}; {kr} reach)",
                ),
            ]
            for row, (values, norm, cbar_label, title, nonunique_label) in enumerate(rows):
                ax = axs[row, col]
                basin_map(
                    fig,
                    ax,
                    values,
                    g1,
                    g2,
                    norm=norm,
                    cbar_label=cbar_label,
                    failed=mp["failed"],
                    nonunique=mp["nonuniq"],
                    nonunique_label=nonunique_label,
                    target=target_kw,
                )
                ax.set_title(title)
        fig.suptitle(
            rf"Basins and rates over a {m}$\times${m} grid of $\theta(0)$ ($\xi={XI:g}$, population risk)", fontsize=9
        )
        files += _save(fig, out_dir, "ext5_basin")
    out.update(wall_s=time.perf_counter() - t0, files=files)
    return out


# --------------------------------------------------------------------------- 6. step-size map


def step_size_threshold(xi=XI, delta1=0.5, delta2=0.5, n_theta1=81, n_theta2=21, nodes=128):
    r"""Theorem 3.9's sufficient step size λ1/(2λ2), sigmoid DEQ, d = 1, X ~ Unif[0, 1].

    Method (an independent second route; :func:`exp_step_size` uses
    ``sideq.paper.theory.theorem_3_9`` and reports both):

    * Assumption 1(ii) holds with α = 1 (X ∈ [0, 1], the indicator is 1) and
      β = E[X²] = 1/3.  Sigmoid: L = 1/4, |σ(0)| = 1/2.
    * M = (|σ(0)| + Lα(1+δ1)|ξ|)/(1 − Lδ2);
      γ = inf σ' on |z| ≤ α(1+δ1)|ξ| + Mδ2 = σ'(α(1+δ1)|ξ| + Mδ2) (σ' is even, decreasing in |z|).
    * Θ = [−(1+δ1)|ξ|, (1+δ1)|ξ|] × [−δ2, δ2].  ρ = inf_Θ λ_min(E[(X, y_θ(X))(X, y_θ(X))ᵀ])
      and S = sup_Θ E[(X² + y_θ(X)²)²], each by Gauss–Legendre quadrature (``nodes``)
      on an n_theta1 × n_theta2 grid of Θ.  The grid min/max is an estimate, not
      a bound: ρ may be slightly smaller and S slightly larger, making the true
      threshold slightly smaller than reported.
    * λ1 = 2ργ²/(1 + Lδ2), λ2 = 4L²(L/(1 − Lδ2))² S; threshold λ1/(2λ2).

    These are the printed constants over Θ as printed; the corrected statement
    (ERRATA.md §8: Eq. (15) loses a factor 2) has λ1 and the threshold twice as
    large, which changes no conclusion of the experiment (the threshold stays
    orders of magnitude below the step sizes that converge).
    """

    L, s0 = 0.25, 0.5
    alpha = 1.0
    M = (s0 + L * alpha * (1 + delta1) * abs(xi)) / (1 - L * delta2)
    zmax = alpha * (1 + delta1) * abs(xi) + M * delta2
    sg = 1 / (1 + math.exp(-zmax))
    gamma = sg * (1 - sg)
    nodes_x, w = np.polynomial.legendre.leggauss(nodes)
    xq = jnp.asarray(0.5 * (nodes_x + 1))
    wq = jnp.asarray(0.5 * w)
    model = sideq.single_index("sigmoid")
    t1 = np.linspace(-(1 + delta1) * abs(xi), (1 + delta1) * abs(xi), n_theta1)
    t2 = np.linspace(-delta2, delta2, n_theta2)
    T1, T2 = np.meshgrid(t1, t2, indexing="ij")
    th = jnp.asarray(np.stack([T1.ravel(), T2.ravel()], 1))

    def moments(theta):
        y = sideq.equilibrium(model, theta, xq)
        m11 = wq @ (xq * xq)
        m12 = wq @ (xq * y)
        m22 = wq @ (y * y)
        tr, det = m11 + m22, m11 * m22 - m12**2
        lmin = tr / 2 - jnp.sqrt(jnp.maximum(tr**2 / 4 - det, 0.0))
        fourth = wq @ ((xq**2 + y**2) ** 2)
        return lmin, fourth

    lmin, fourth = jax.jit(jax.vmap(moments))(th)
    lmin, fourth = np.asarray(lmin), np.asarray(fourth)
    rho, S = float(lmin.min()), float(fourth.max())
    lam1 = 2 * rho * gamma**2 / (1 + L * delta2)
    lam2 = 4 * L**2 * (L / (1 - L * delta2)) ** 2 * S
    return dict(
        delta1=delta1,
        delta2=delta2,
        alpha=alpha,
        beta=1 / 3,
        L=L,
        M=M,
        z_max=zmax,
        gamma=gamma,
        rho=rho,
        rho_at=np.asarray(th)[int(lmin.argmin())].tolist(),
        sup_fourth_moment=S,
        lambda1=lam1,
        lambda2=lam2,
        threshold=lam1 / (2 * lam2),
        init_radius_allowed=min((1 + delta1) * abs(xi), delta2),  # as printed
        init_radius_allowed_corrected=min(delta1 * abs(xi), delta2),  # ERRATA.md §5
        method="grid over Theta (%dx%d), %d-node Gauss-Legendre; estimate, not a bound" % (n_theta1, n_theta2, nodes),
        source="sideq.paper.extended.step_size_threshold",
    )


def _step_size_figure(out_dir, etas, ratio, failed, thr, ev, radius, epochs):
    """ext6's figure: ‖θ(T) − (ξ, 0)‖/‖θ(0) − (ξ, 0)‖ against η, one line per
    start (``ratio``, ``failed``: (starts, etas)), with Theorem 3.9's
    threshold and bound (``thr``) and the stability edge 2/λ_max (``ev``: the
    Hessian's eigenvalues at the target)."""
    import matplotlib.pyplot as plt

    n_init = ratio.shape[0]
    with _rc():
        fig, ax = plt.subplots(figsize=(COL_W * 1.35, 3.0), constrained_layout=True)
        cmap = plt.get_cmap("viridis")
        for i in range(n_init):
            y = np.where(failed[i], np.nan, np.maximum(ratio[i], 1e-17))
            ax.loglog(
                etas,
                y,
                "-",
                marker=".",
                ms=3,
                lw=0.9,
                color=cmap(i / n_init),
            )
            bad = failed[i] | (ratio[i] >= 1)
            if bad.any():
                j = np.flatnonzero(bad)[0]
                ax.plot(etas[j], 1.0, "x", color="red", ms=5)
        ax.axvline(
            thr["threshold"],
            color="C3",
            ls="--",
            lw=1.2,
            label=rf"Thm 3.9: $\lambda_1/(2\lambda_2) = {_tex_sci(thr['threshold'])}$",
        )
        ax.axvline(
            2 / ev.max(),
            color="k",
            ls=":",
            lw=1.2,
            label=rf"$2/\lambda_{{\max}}(\nabla^2R(\xi,0)) = {2 / ev.max():.3g}$",
        )
        ax.axhline(1, color="0.5", lw=0.6)
        eb = etas[etas <= thr["threshold"]]
        ax.loglog(
            eb,
            (1 - eb * thr["lambda1"] / 2) ** (epochs / 2),
            color="C3",
            lw=2.2,
            alpha=0.6,
            label=r"Thm 3.9 bound $(1-\eta\lambda_1/2)^{T/2}$",
        )
        ax.plot([], [], "-", marker=".", color=cmap(0.5), label=r"one line per $\theta(0)$")
        ax.plot([], [], "x", color="red", label="first $\\eta$ with no contraction / divergence")
        ax.set_xlabel(r"step size $\eta$")
        ax.set_ylabel(r"$\|\theta(T)-(\xi,0)\| \,/\, \|\theta(0)-(\xi,0)\|$")
        ax.set_title(rf"Sigmoid DEQ, $\xi={XI:g}$: {n_init} starts at distance {radius}, T = {epochs}")
        ax.set_ylim(1e-17, 1e2)
        ax.legend(fontsize=6, loc="lower left")
        return _save(fig, out_dir, "ext6_step_size")


def exp_step_size(out_dir, quick=False, **overrides):
    cfg = dict(
        model="sigmoid",
        xi=XI,
        risk="population, Unif[0,1], 32 nodes",
        n_inits=6 if quick else 8,
        radius=0.5,
        n_eta=25 if quick else 49,
        eta_range=[1e-4, 1e2],
        epochs=500 if quick else 2000,
        delta1=0.5,
        delta2=0.5,
    )
    cfg = _configure(cfg, overrides)
    radius, n_init, n_eta = float(cfg["radius"]), int(cfg["n_inits"]), int(cfg["n_eta"])
    cfg["inits"] = f"{n_init} points on the circle of radius {radius} about (xi, 0)"
    t0 = time.perf_counter()
    # Theorem 3.9's threshold from sideq.paper.theory, and this module's own grid
    # estimate as a second route (they agree to ~1e-5).

    thr = step_size_threshold(
        XI, delta1=cfg["delta1"], delta2=cfg["delta2"], n_theta1=41 if quick else 81, n_theta2=11 if quick else 21
    )
    t39 = theory.theorem_3_9(
        sideq.single_index("sigmoid"),
        [XI],
        sideq.uniform(0.0, 1.0, 1),
        delta2=cfg["delta2"],
        delta1=cfg["delta1"],
        grid=21 if quick else 41,
    )
    thr["sideq_theory"] = dict(
        lambda1=float(t39.lambda1), lambda2=float(t39.lambda2), threshold=float(t39.threshold), rho=float(t39.t38.rho)
    )
    thr["own_vs_theory_threshold_rel_diff"] = abs(thr["threshold"] / float(t39.threshold) - 1)
    thr["own_estimate"] = dict(threshold=thr["threshold"], lambda1=thr["lambda1"], lambda2=thr["lambda2"])
    thr.update(
        lambda1=float(t39.lambda1),
        lambda2=float(t39.lambda2),
        threshold=float(t39.threshold),
        source="sideq.paper.theory.theorem_3_9 (grid + Nelder-Mead); own grid estimate in own_estimate",
    )
    dist = sideq.uniform(0.0, 1.0, 1, nodes=32)
    model = sideq.single_index("sigmoid")
    # local stability edge: 2 / lambda_max of the Hessian at the minimiser
    H = np.asarray(
        jax.jacrev(
            jax.grad(lambda th: sideq.population_risk(model, th, jnp.asarray([XI]), sideq.uniform(0.0, 1.0, 1)))
        )(jnp.asarray([XI, 0.0]))
    )
    ev = np.linalg.eigvalsh(H)
    phis = np.linspace(0, 2 * np.pi, n_init, endpoint=False)
    inits = np.stack([XI + radius * np.cos(phis), radius * np.sin(phis)], 1)
    etas = np.logspace(np.log10(cfg["eta_range"][0]), np.log10(cfg["eta_range"][1]), n_eta)
    res = sweep.run_sweep(model, xi=[XI], inits=inits, eta=etas, epochs=cfg["epochs"], dist=dist, progress=False)
    A = res.arrays
    D = np.asarray(A["distance_final"]).reshape(n_init, n_eta)
    st = np.asarray(A["status"]).reshape(n_init, n_eta)
    failed = np.isin(st, [int(sideq.Status.DIVERGED), int(sideq.Status.SINGULAR), int(sideq.Status.SOLVER_FAILURE)])
    ratio = D / radius
    conv = (~failed) & (ratio < 1e-3)
    # largest eta for which every init contracts (final/initial < 1) and none fails
    contracts = (~failed) & (ratio < 1)
    all_contract = contracts.all(axis=0)
    eta_max_contract = float(etas[all_contract].max()) if all_contract.any() else None
    first_fail = [
        float(etas[np.flatnonzero(failed[i] | (ratio[i] >= 1))[0]]) if (failed[i] | (ratio[i] >= 1)).any() else None
        for i in range(n_init)
    ]
    best = etas[np.nanargmin(np.where(failed, np.inf, D).max(axis=0))]
    all_conv = ((~failed) & (ratio < 1e-6)).all(axis=0)
    eta_max_conv = float(etas[all_conv].max()) if all_conv.any() else None
    small = etas <= thr["threshold"]
    bound = (1 - etas * thr["lambda1"] / 2) ** (cfg["epochs"] / 2)
    bound_holds = bool(np.all(ratio[:, small] <= bound[small] + 1e-12)) if small.any() else None
    files = _step_size_figure(out_dir, etas, ratio, failed, thr, ev, radius, cfg["epochs"])
    return dict(
        settings=cfg,
        wall_s=time.perf_counter() - t0,
        files=files,
        theorem_3_9=thr,
        hessian_eigenvalues_at_target=ev.tolist(),
        stability_edge_2_over_lmax=float(2 / ev.max()),
        largest_eta_all_contract=eta_max_contract,
        largest_eta_all_reach_ratio_1e_6=eta_max_conv,
        theorem_bound_holds_for_eta_below_threshold=bound_holds,
        ratio_eta_max_reach_1e_6_over_threshold=(eta_max_conv / thr["threshold"] if eta_max_conv else None),
        first_eta_without_contraction_per_init=first_fail,
        eta_with_smallest_worst_final_distance=float(best),
        fraction_converged_1e_3=float(conv.mean()),
        ratio_eta_max_contract_over_threshold=(eta_max_contract / thr["threshold"] if eta_max_contract else None),
    )


# --------------------------------------------------------------------------- 7. explicit neuron


def explicit_neuron_loss(theta, x, y, act="sigmoid"):
    """Mean squared error of the explicit neuron σ(θᵀx): (1/n) Σ (σ(θᵀxᵢ) − yᵢ)²."""

    s = get_activation(act)
    return jnp.mean((s(jnp.asarray(x) @ theta) - y) ** 2)


@functools.partial(__import__("jax").jit, static_argnames=("epochs", "act"))
def explicit_neuron_descent(theta0, x, y, eta, epochs, act="sigmoid"):
    """Plain JAX gradient descent θ ← θ − η∇L on :func:`explicit_neuron_loss`;
    returns (θ(t) for t = 0..T, L(θ(t)))."""

    vg = jax.value_and_grad(explicit_neuron_loss)

    def step(theta, _):
        loss, g = vg(theta, x, y, act)
        return theta - eta * g, (theta, loss)

    thetaT, (ths, losses) = jax.lax.scan(step, jnp.asarray(theta0), None, length=epochs)
    lastloss = explicit_neuron_loss(thetaT, x, y, act)
    return jnp.concatenate([ths, thetaT[None]]), jnp.concatenate([losses, lastloss[None]])


def exp_explicit_neuron(out_dir, quick=False, **overrides):
    import matplotlib.pyplot as plt

    cfg = dict(
        xi=XI,
        n=1000,
        eta=0.1,
        epochs=1000 if quick else 4000,
        seed=0,
        explicit_init="theta1(0) of the DEQ's theta(0)",
        activation="sigmoid",
    )
    cfg = _configure(cfg, overrides)
    x, theta0 = _sigmoid_data(cfg["seed"], cfg["n"])
    model = sideq.single_index("sigmoid")
    y = np.asarray(sideq.targets(model, jnp.asarray([XI]), jnp.asarray(x)))
    t0 = time.perf_counter()
    deq = train.descent(model, theta0, xi=[XI], x=x, eta=cfg["eta"], epochs=cfg["epochs"])
    ths_e, loss_e = explicit_neuron_descent(
        jnp.asarray(theta0[:1]), jnp.asarray(x), jnp.asarray(y), jnp.asarray(cfg["eta"]), cfg["epochs"]
    )
    ths_e, loss_e = np.asarray(ths_e), np.asarray(loss_e)
    loss_d = np.asarray(deq.loss)
    th_d = np.asarray(deq.theta)
    grid = np.linspace(0, 1, 201)
    y_deq = np.asarray(sideq.equilibrium(model, jnp.asarray(th_d[-1]), jnp.asarray(grid)))
    y_exp = 1 / (1 + np.exp(-ths_e[-1, 0] * grid))
    true = 1 / (1 + np.exp(-XI * grid))
    res = dict(
        deq=dict(
            loss_final=_f(loss_d[-1]),
            theta_final=th_d[-1].tolist(),
            epochs_to_loss_1e_4=_first_below(loss_d, 1e-4),
            epochs_to_loss_1e_6=_first_below(loss_d, 1e-6),
            sup_error_learned=float(np.abs(y_deq - true).max()),
        ),
        explicit=dict(
            loss_final=_f(loss_e[-1]),
            theta_final=ths_e[-1].tolist(),
            epochs_to_loss_1e_4=_first_below(loss_e, 1e-4),
            epochs_to_loss_1e_6=_first_below(loss_e, 1e-6),
            sup_error_learned=float(np.abs(y_exp - true).max()),
        ),
    )
    files = []
    with _rc():
        fig, axs = plt.subplots(1, 3, figsize=(FULL_W, 2.5), constrained_layout=True)
        ax = axs[0]
        ax.semilogy(loss_d, color="C0", label=r"DEQ $y=\sigma(\theta_1x+\theta_2y)$")
        ax.semilogy(np.where(loss_e > 0, loss_e, np.nan), color="C3", ls="--", label=r"explicit $\sigma(\theta x)$")
        ax.set_xlabel("epoch $t$")
        ax.set_ylabel(r"$\hat R(\theta(t))$")
        ax.set_title("(a) training loss")
        ax.legend()
        ax = axs[1]
        ax.plot(grid, true, color="k", lw=2.2, label=rf"true $\sigma({XI:g}x)$")
        ax.plot(grid, y_deq, color="C0", ls="-", lw=1.2, label="DEQ")
        ax.plot(grid, y_exp, color="C3", ls="--", label="explicit")
        ax.set_xlabel("$x$")
        ax.set_ylabel("$y$")
        ax.set_title(f"(b) learned functions, t = {cfg['epochs']}")
        ax.legend(loc="upper left")
        ax = axs[2]
        ax.semilogy(grid, np.maximum(np.abs(y_deq - true), 1e-17), color="C0", label="DEQ")
        ax.semilogy(grid, np.maximum(np.abs(y_exp - true), 1e-17), color="C3", ls="--", label="explicit")
        ax.set_ylim(bottom=1e-8)
        ax.set_xlabel("$x$")
        ax.set_ylabel(r"$|y(x) - \sigma(\xi x)|$")
        ax.set_title("(c) pointwise error")
        ax.legend()
        fig.suptitle(
            rf"Explicit neuron vs single-index DEQ, same data ($n={cfg['n']}$, $\eta={cfg['eta']}$)", fontsize=9
        )
        files += _save(fig, out_dir, "ext7_explicit_neuron")
    return dict(settings=cfg, wall_s=time.perf_counter() - t0, files=files, results=res)


# --------------------------------------------------------------------------- 8. multi-output linear basins


def multi_population_descent(model, params0, xi, dist, eta, epochs):
    r"""Gradient descent W(t+1) = W(t) − η∇R(W(t)) on the population risk of a
    multi-neuron DEQ (:func:`sideq.general_risk.population_objective`; Eq. (5)
    with k outputs for multi_linear).  Returns the final params, the loss at
    each epoch (T+1,) and the first epoch whose loss is not finite (−1 if
    none); a run whose loss stops being finite keeps its params from then on.
    Jit- and vmap-able over ``params0``."""
    objective = general_risk.population_objective(model, xi, dist)
    value_and_grad = jax.value_and_grad(objective)

    def step(carry, t):
        params, failed = carry
        loss, grad = value_and_grad(params)
        finite = [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grad)]
        bad = ~jnp.isfinite(loss) | ~jnp.all(jnp.stack(finite))
        failed = jnp.where((failed < 0) & bad, t, failed)
        moved = jax.tree_util.tree_map(lambda p, g: p - eta * g, params, grad)
        params = jax.tree_util.tree_map(lambda new, old: jnp.where(failed >= 0, old, new), moved, params)
        return (params, failed), loss

    (params, failed), loss = jax.lax.scan(step, (params0, jnp.asarray(-1)), jnp.arange(epochs))
    return params, jnp.append(loss, objective(params)), failed


def exp_multi_linear_basins(out_dir, quick=False, **overrides):
    r"""Basins of gradient descent for the multi-output linear DEQ y = W1x + W2y ∈ ℝ²
    (k = 2, d = 1, X ~ Unif[0, 1], target Ξx with Ξ = (2, 1)ᵀ), over a grid of
    W2(0) = diag(a, b) with W1(0) = (0.1, 0.1)ᵀ, on the population risk in
    closed form.

    The singular set {det(I − W2) = 0} is the lines a = 1 and b = 1 at t = 0.
    For k = 1 (Lemma 3.2) gradient flow never crosses θ2 = 1; the map shows
    where descent ends (the loss), whether det(I − W2) kept its sign from θ(0)
    to θ(T), and the runs that failed (I − W2 singular on the way, or a loss
    that stopped being finite).
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    cfg = dict(
        xi=[2.0, 1.0],
        w1_0=[0.1, 0.1],
        box=[[-1.0, 3.0], [-1.0, 3.0]],
        grid_points=24 if quick else 60,
        eta=0.05,
        epochs=1000 if quick else 2000,
    )
    cfg = _configure(cfg, overrides, fixed=())
    m = int(cfg["grid_points"])
    (a1, b1), (a2, b2) = cfg["box"]
    ga, gb = np.linspace(a1, b1, m), np.linspace(a2, b2, m)
    A, B = np.meshgrid(ga, gb, indexing="ij")
    k = 2
    model = sideq.multi_linear(k)
    xi = jnp.asarray(cfg["xi"], dtype=jnp.float64).reshape(k, 1)
    dist = sideq.uniform(0.0, 1.0, 1)
    W2 = np.zeros((m * m, k, k))
    W2[:, 0, 0], W2[:, 1, 1] = A.ravel(), B.ravel()
    W1 = np.broadcast_to(np.asarray(cfg["w1_0"], dtype=float).reshape(k, 1), (m * m, k, 1))
    p0 = {"W1": jnp.asarray(W1), "W2": jnp.asarray(W2)}
    t0 = time.perf_counter()
    run = jax.jit(jax.vmap(lambda p: multi_population_descent(model, p, xi, dist, cfg["eta"], cfg["epochs"])))
    params, loss, failed = run(p0)
    loss, failed = np.asarray(loss), np.asarray(failed)
    wall = time.perf_counter() - t0
    eye = np.eye(k)
    det0 = np.linalg.det(eye - W2)
    detT = np.linalg.det(eye - np.asarray(params["W2"]))
    bad = (failed >= 0) | ~np.isfinite(loss[:, -1])
    crossed = ~bad & (np.sign(detT) != np.sign(det0))
    final = np.where(bad, np.nan, np.maximum(loss[:, -1], 1e-16))
    reached = ~bad & (loss[:, -1] <= 1e-10)
    near_singular = np.min(np.abs(1 - np.stack([A.ravel(), B.ravel()])), axis=0) < 0.1
    res = dict(
        runs=m * m,
        wall_s=wall,
        failed=int(bad.sum()),
        crossed_singular_set=int(crossed.sum()),
        reached_loss_1e_10=int(reached.sum()),
        fraction_reached_1e_10=float(reached.mean()),
        final_loss_quantiles_not_failed=(
            np.quantile(loss[~bad, -1], [0, 0.05, 0.5, 0.95, 1]).tolist() if (~bad).any() else None
        ),
        # (None where the grid has no start within 0.1 of a = 1 or b = 1)
        fraction_failed_near_singular=_f(bad[near_singular].mean()) if near_singular.any() else None,
    )
    files = []
    with _rc():
        fig, axs = plt.subplots(1, 2, figsize=(FULL_W, 2.9), constrained_layout=True)
        labels = dict(xlabel=r"$a = (W_2(0))_{11}$", ylabel=r"$b = (W_2(0))_{22}$")
        ax = axs[0]
        basin_map(
            fig,
            ax,
            final.reshape(m, m),
            ga,
            gb,
            norm=LogNorm(1e-16, max(1.0, np.nanmax(final))),
            cbar_label=r"$R(W(T))$",
            failed=bad.reshape(m, m),
            **labels,
        )
        ax.set_title(f"(a) final population risk, {cfg['epochs']} epochs")
        if not bad.any() and ax.get_legend() is not None:  # (nothing failed: no marks to explain)
            ax.get_legend().remove()
        ax = axs[1]
        side = np.where(bad, np.nan, np.sign(detT)).reshape(m, m)
        basin_map(
            fig,
            ax,
            side,
            ga,
            gb,
            cmap="coolwarm",
            failed=bad.reshape(m, m),
            nonunique=crossed.reshape(m, m),
            nonunique_label=f"det changed sign ({int(crossed.sum())})",
            **labels,
        )
        ax.set_title(r"(b) sign of $\det(I - W_2(T))$ (blue $-$, red $+$)")
        for ax in axs:
            ax.axvline(1.0, color="k", ls="--", lw=0.8)
            ax.axhline(1.0, color="k", ls="--", lw=0.8)
        fig.suptitle(
            rf"Multi-output linear DEQ, $k=2$, $d=1$, $\Xi=({cfg['xi'][0]:g},{cfg['xi'][1]:g})^\top$, "
            rf"$W_1(0)=({cfg['w1_0'][0]:g},{cfg['w1_0'][1]:g})^\top$, $\eta={cfg['eta']:g}$; "
            r"dashed: $\det(I-W_2(0))=0$",
            fontsize=8,
        )
        files += _save(fig, out_dir, "ext8_multi_linear_basins")
    return dict(settings=cfg, wall_s=time.perf_counter() - t0, files=files, results=res)


# --------------------------------------------------------------------------- 9. multi-neuron rate against k


def _multi_target(k, d, scale, seed):
    """Ξ of shape (k, d) with N(0, scale²) entries, fixed by ``seed`` and k."""
    return scale * np.random.default_rng([seed, k]).standard_normal((k, d))


def _flat_hessian(fun, params):
    """The Hessian of ``fun`` at the pytree ``params``, over the flattened leaves."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    return jax.hessian(lambda v: fun(unravel(v)))(flat)


def _multi_index_rate_figure(out_dir, curves, rows, cfg):
    """ext9's figure: the median distance to (Ξ, 0) and loss over epochs for
    each k (``curves``), and the measured rates against the local rate at
    (Ξ, 0) (``rows``)."""
    import matplotlib.pyplot as plt

    d, n, eta, T = int(cfg["d"]), int(cfg["n"]), float(cfg["eta"]), int(cfg["epochs"])
    with _rc():
        fig, axs = plt.subplots(1, 3, figsize=(FULL_W, 2.5), constrained_layout=True)
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(curves)))
        for c, (k, (dist, loss)) in zip(colors, curves.items()):
            axs[0].semilogy(dist, color=c, label=f"k = {k}")
            axs[1].semilogy(np.maximum(loss, 1e-300), color=c, label=f"k = {k}")
        axs[0].set_xlabel("epoch $t$")
        axs[0].set_ylabel(r"$\|(W_1, W_2) - (\Xi, 0)\|$ (median)")
        axs[0].set_title("(a) distance to the target")
        axs[0].legend(ncol=2)
        axs[1].set_xlabel("epoch $t$")
        axs[1].set_ylabel(r"$\hat R$ (median)")
        axs[1].set_title("(b) training loss")
        ks = [row["k"] for row in rows]
        med = np.array([row["rate_median"] or np.nan for row in rows])
        lo = np.array([row["rate_min"] or np.nan for row in rows])
        hi = np.array([row["rate_max"] or np.nan for row in rows])
        ax = axs[2]
        ax.errorbar(
            ks,
            med,
            yerr=[med - lo, hi - med],
            fmt="o",
            color="C0",
            capsize=2,
            label=rf"measured, $-\Delta\log\hat R$ (min–max of {cfg['starts']})",
        )
        ax.plot(
            ks,
            [row["rate_predicted"] for row in rows],
            "s--",
            color="C3",
            mfc="none",
            label=r"$-2\log|1-\eta\lambda_{\min}(\nabla^2\hat R)|$ at $(\Xi,0)$",
        )
        ax.set_yscale("log")
        ax.set_xlabel("$k$ (neurons)")
        ax.set_ylabel("rate per epoch")
        ax.set_title("(c) rate against $k$")
        ax.legend(fontsize=5.5)
        fig.suptitle(
            rf"Multi-neuron DEQ $y=\tanh(W_1x+W_2y)$ near $(\Xi,0)$: $d={d}$, $n={n}$, "
            rf"$\eta={eta:g}$, {T} epochs",
            fontsize=9,
        )
        return _save(fig, out_dir, "ext9_multi_index_rate")


def exp_multi_index_rate(out_dir, quick=False, **overrides):
    r"""Gradient descent for the multi-neuron single-index DEQ y = tanh(W1x + W2y) ∈ ℝᵏ
    (Section 5's multi-neuron DEQ) from near its target (Ξ, 0), for several k.

    For each k: Ξ (k, d) drawn once, ``starts`` starts W1(0) = Ξ + r·N, W2(0) = r·N
    (r = ``radius``), full-batch descent on R̂ over n samples X ~ Unif[−1, 1]^d.
    Measured: the distance ‖(W1, W2) − (Ξ, 0)‖ and R̂ over epochs, the rate
    −Δlog R̂ per epoch over the last half, the final distance.  Second route:
    the local rate of descent at (Ξ, 0), −2 log|1 − ηλ_min(∇²R̂(Ξ, 0))| per epoch for
    the loss (a quadratic model of R̂ at its minimum), from the Hessian by autodiff
    through the Newton solver (jaxopt's Anderson differentiates in reverse mode only).
    """
    cfg = dict(
        activation="tanh",
        d=2,
        n=128 if quick else 256,
        ks=[1, 2, 4] if quick else [1, 2, 3, 4, 6, 8],
        starts=4 if quick else 8,
        radius=0.1,
        xi_scale=1.5,
        eta=0.5,
        epochs=400 if quick else 2000,
        seed=0,
    )
    cfg = _configure(cfg, overrides, fixed=())
    d, n, eta, T = int(cfg["d"]), int(cfg["n"]), float(cfg["eta"]), int(cfg["epochs"])
    x = jnp.asarray(sideq.sample(sideq.uniform(-1.0, 1.0, d), jax.random.PRNGKey(cfg["seed"]), n))
    t0 = time.perf_counter()
    rows, curves = [], {}
    for k in cfg["ks"]:
        k = int(k)
        model = sideq.multi_index(cfg["activation"], k)
        xi = jnp.asarray(_multi_target(k, d, cfg["xi_scale"], cfg["seed"]))
        rng = np.random.default_rng([cfg["seed"], k, 1])
        r = float(cfg["radius"])
        p0 = {
            "W1": xi + r * rng.standard_normal((cfg["starts"], k, d)),
            "W2": r * rng.standard_normal((cfg["starts"], k, k)),
        }
        tr = jax.vmap(lambda p: general.descent(model, p, x=x, xi=xi, eta=eta, epochs=T))(p0)
        dist = np.sqrt(
            np.sum((np.asarray(tr.params["W1"]) - np.asarray(xi)) ** 2, axis=(-1, -2))
            + np.sum(np.asarray(tr.params["W2"]) ** 2, axis=(-1, -2))
        )
        loss = np.asarray(tr.loss)
        half = T // 2
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = -(np.log(loss[:, -1]) - np.log(loss[:, half])) / (T - half)
        star = {"W1": xi, "W2": jnp.zeros((k, k), xi.dtype)}
        newton = sideq.multi_index(cfg["activation"], k, solver="newton")  # forward-mode differentiable
        H = np.asarray(_flat_hessian(lambda p: general.empirical_risk(newton, p, x, xi=xi), star))
        lam = np.linalg.eigvalsh(0.5 * (H + H.T))
        lam_min, lam_max = float(lam[0]), float(lam[-1])
        predicted = float(-2 * np.log(abs(1 - eta * lam_min))) if lam_min > 0 else 0.0
        status = np.asarray(tr.status)
        counts = {sideq.Status(int(v)).name.lower(): int(c) for v, c in zip(*np.unique(status, return_counts=True))}
        rows.append(
            dict(
                k=k,
                params=k * d + k * k,
                rate_median=_f(np.median(rate)),
                rate_min=_f(rate.min()),
                rate_max=_f(rate.max()),
                rate_predicted=_f(predicted),
                hessian_min=_f(lam_min),
                hessian_max=_f(lam_max),
                eta_times_hessian_max=_f(eta * lam_max),
                distance_0_median=_f(np.median(dist[:, 0])),
                distance_final_median=_f(np.median(dist[:, -1])),
                loss_final_median=_f(np.median(loss[:, -1])),
                status_counts=counts,
            )
        )
        curves[k] = (np.median(dist, axis=0), np.median(loss, axis=0))
    files = _multi_index_rate_figure(out_dir, curves, rows, cfg)
    return dict(settings=cfg, wall_s=time.perf_counter() - t0, files=files, results=rows)


# --------------------------------------------------------------------------- driver

EXPERIMENTS = {
    "activations": exp_activations,
    "flow_vs_descent": exp_flow_vs_descent,
    "population_vs_empirical": exp_population_vs_empirical,
    "phase_portrait": exp_phase_portrait,
    "basin": exp_basin,
    "step_size": exp_step_size,
    "explicit_neuron": exp_explicit_neuron,
    "multi_linear_basins": exp_multi_linear_basins,
    "multi_index_rate": exp_multi_index_rate,
}


def run_one(name, out_dir, quick=False, **overrides) -> dict:
    """One experiment by name (see :data:`EXPERIMENTS`); figures into ``out_dir``.
    ``overrides`` replace entries of the experiment's settings (its ``settings`` dict)."""
    os.makedirs(out_dir, exist_ok=True)
    with _x64():
        t0 = time.perf_counter()
        res = EXPERIMENTS[name](out_dir, quick=quick, **overrides)
        res["wall_s_total"] = time.perf_counter() - t0
        res["quick"] = bool(quick)
    return res


def run_all(out_dir, quick=False, only=None) -> dict:
    """Every experiment (or those named in ``only``); figures (PNG + PDF) and
    ``extended_summary.json`` into ``out_dir``; returns the summary dict."""
    os.makedirs(out_dir, exist_ok=True)
    names = list(EXPERIMENTS) if not only else list(only)
    t0 = time.perf_counter()
    out = {}
    with bar(len(names), "extended", "experiment") as b:  # (on a terminal only)
        for name in names:
            advance(b, 0, name)
            out[name] = run_one(name, out_dir, quick=quick)
            advance(b)
    out["wall_s"] = time.perf_counter() - t0
    with open(os.path.join(out_dir, "extended_summary.json"), "w") as fh:
        json.dump(out, fh, indent=2)
    return out


def script_main(name, argv=None, config=None):
    """``python experiments/NAME.py [--out DIR] [--quick]``: one experiment, JSON to stdout.
    ``config``: settings overrides (the script's CONFIG); ignored with ``--quick``."""

    p = argparse.ArgumentParser(description=f"sideq extended experiment: {name}")
    p.add_argument(
        "--out", default="figures/extended", help="folder for the figures (created if needed; default figures/extended)"
    )
    p.add_argument("--quick", action="store_true", help="smaller grids / fewer epochs")
    a = p.parse_args(argv)
    a.out = a.out or "."
    problem = unwritable_folder(a.out)
    if problem:  # before any work: one line, not a traceback after the run
        print(f"{p.prog}: error: --out: {problem}", file=sys.stderr)
        return 2
    try:
        res = run_one(name, a.out, quick=a.quick, **({} if a.quick else dict(config or {})))
    except SideqInputError as err:  # a CONFIG entry: one line, named as in CONFIG
        print(f"{p.prog}: error: CONFIG {err}", file=sys.stderr)
        return 2
    print(json.dumps(res, indent=2))
    return 0
