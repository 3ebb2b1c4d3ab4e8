r"""One chunk of a sweep's runs, compiled once: ``jax.vmap`` over the runs,
the run axis split over the devices of a 1-D mesh (axis ``"runs"``), and
``jax.jit`` with :func:`sideq.xla.compiler_options`.

* The paper's scalar models: one run is :func:`sideq.dynamics.gradient_descent`
  with ``history=False`` (Section 2), split over the devices with
  ``shard_map`` (each device runs its share with no communication).
* A :class:`~sideq.general.DEQ`: one run is :func:`sideq.general.descent` on
  the empirical risk, or on the population risk of
  :func:`sideq.general_risk.population_objective`, split over the devices
  with ``shard_map`` too (each device iterates its own runs' solves; under
  ``jit`` with shardings XLA's partitioner would reduce every solver loop's
  test over all the devices, one all-reduce per iteration).

Each chunk function is built once per (model, epochs, solver, mesh, compiler
options) and called chunk after chunk on arrays of the same shape, so
nothing recompiles.  :func:`default_chunk` sizes the chunks.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sideq.dynamics import gradient_descent
from sideq.general import descent as deq_descent
from sideq.general_risk import population_objective as deq_population_objective
from sideq.risk import default_y0, empirical_objective, initial_nodes_y0, population_objective
from sideq.status import Status
from sideq.xla import compiler_options

if not hasattr(jax, "shard_map"):  # jax < 0.7
    from jax.experimental.shard_map import shard_map as _experimental_shard_map

__all__ = [
    "default_chunk",
    "chunk_fn",
    "deq_chunk_fn",
    "deq_population_chunk_fn",
    "scalar_call",
    "deq_call",
    "deq_population_call",
    "run_chunk",
]

_DEQ_DIVERGENCE = 1e8  # a parameter beyond this counts as DIVERGED (sideq.general.descent's default)


def default_chunk(n_eq: int, n_devices: int = 1, platform: str = "cpu") -> int:
    """Runs per chunk: about 2¹⁶ equilibria per device on CPU, at least 8 and
    at most 4096 runs per device; on accelerators about 2²⁵, at most 32768 runs
    per device; times the number of devices.

    On CPU a larger chunk buys little speed, and the chunk is also the unit
    of progress and of resume, so it is kept modest there.  On an
    accelerator each epoch has a fixed cost (kernel launches, the test of the
    solver's loop) that a larger chunk spreads (the measurements are in
    BENCHMARKS.md).

    Args:
      n_eq: the number of equilibria per risk evaluation (samples n, or
        quadrature nodes).
      n_devices: the number of devices the runs are split over.
      platform: ``"cpu"``, or an accelerator's platform name.

    Returns:
      The chunk size, a multiple of ``n_devices``.
    """
    if platform == "cpu":
        budget, most = 2**16, 4096
    else:
        budget, most = 2**25, 32768
    per_device = int(min(most, max(8, budget // max(int(n_eq), 1))))
    return per_device * int(n_devices)


def _shard_map(f, mesh, in_specs, out_specs):
    """``shard_map`` of ``f`` without its replication checks (jax.shard_map,
    or jax.experimental's before jax 0.7)."""
    if hasattr(jax, "shard_map"):
        return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    return _experimental_shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


def _one_run(model, risk, epochs, backend, maxiter, theta0, eta, data, xi, tols):
    """Summary of one run of gradient descent (no history; Section 2)."""
    if risk == "empirical":
        x, y = data
        objective = empirical_objective(model, x, y, backend=backend, maxiter=maxiter)
        y0 = default_y0(model, theta0, x)
    else:
        objective = population_objective(model, xi, data, backend=backend, maxiter=maxiter)
        y0 = initial_nodes_y0(model, theta0, xi, data)
    traj = gradient_descent(
        model,
        objective,
        theta0,
        y0,
        xi,
        epochs=epochs,
        optimizer=optax.sgd(eta),
        gtol=tols[0],
        ltol=tols[1],
        dtol=tols[2],
        history=False,
    )
    return dict(
        theta_final=traj.theta[-1],
        loss_final=traj.loss[-1],
        grad_norm_final=traj.grad_norm[-1],
        distance_final=traj.distance[-1],
        status=traj.status,
        fail_step=traj.fail_step,
        steps=traj.steps,
        non_unique_epochs=traj.non_unique_epochs,
        non_unique_first=traj.non_unique_first,
        non_unique_last=traj.non_unique_last,
    )


def chunk_fn(model, risk, epochs, backend, maxiter, mesh):
    """The jitted chunk: (theta0 (C, p), eta (C,), data, xi, tols) -> per-run dict,
    compiled with :func:`sideq.xla.compiler_options` for the mesh's platform.

    One run is :func:`sideq.dynamics.gradient_descent` without history; the
    function is cached per (model, risk, epochs, backend, maxiter, mesh,
    compiler options).

    Args:
      model: a scalar :class:`~sideq.model.Model`.
      risk: ``"empirical"`` (data ``(x, y)``) or ``"population"`` (a law).
      epochs: T.
      backend: the equilibrium solver.
      maxiter: the solver's iteration limit.
      mesh: a 1-D ``jax.sharding.Mesh`` with axis ``"runs"``.

    Returns:
      The jitted, shard-mapped function; its dict holds ``theta_final``,
      ``loss_final``, ``grad_norm_final``, ``distance_final``, ``status``,
      ``fail_step``, ``steps`` and the non-unique counts, one row per run.
    """
    options = compiler_options(mesh.devices.flat[0].platform)
    return _chunk_fn_cached(model, risk, epochs, backend, maxiter, mesh, tuple(sorted((options or {}).items())))


@functools.lru_cache(maxsize=32)
def _chunk_fn_cached(model, risk, epochs, backend, maxiter, mesh, options):
    def local(theta0, eta, data, xi, tols):
        one = functools.partial(_one_run, model, risk, epochs, backend, maxiter)
        return jax.vmap(one, in_axes=(0, 0, None, None, None))(theta0, eta, data, xi, tols)

    runs = P("runs")
    sharded = _shard_map(local, mesh, (runs, runs, P(), P(), P()), runs)
    return jax.jit(sharded, compiler_options=dict(options) or None)


def _one_deq_run(model, epochs, params0, eta, data, tols):
    """Summary of one run of :func:`sideq.general.descent` (Section 2, the
    gradient by Eq. (1)): its last row."""
    x, y, xi = data
    traj = deq_descent(model, params0, x=x, y=y, xi=xi, eta=eta, epochs=epochs, gtol=tols[0], ltol=tols[1])
    return dict(
        theta_final=jax.tree_util.tree_map(lambda a: a[-1], traj.params),
        loss_final=traj.loss[-1],
        grad_norm_final=traj.grad_norm[-1],
        residual_final=traj.residual[-1],
        status=traj.status,
        fail_step=traj.fail_step,
        steps=traj.steps,
    )


def deq_chunk_fn(model, epochs, mesh):
    """The jitted chunk of a DEQ sweep: (params0 pytree of (C, ...), eta (C,),
    (x, y, xi), tols) -> per-run dict, the run axis sharded over the mesh.

    One run is :func:`sideq.general.descent` on the empirical risk, its last
    row kept.

    Args:
      model: a :class:`~sideq.general.DEQ`.
      epochs: T.
      mesh: a 1-D ``jax.sharding.Mesh`` with axis ``"runs"``.

    Returns:
      The jitted function (cached); its dict holds ``theta_final`` (a
      pytree), ``loss_final``, ``grad_norm_final``, ``residual_final``,
      ``status``, ``fail_step`` and ``steps``.
    """
    options = compiler_options(mesh.devices.flat[0].platform)
    return _deq_chunk_fn_cached(model, epochs, mesh, tuple(sorted((options or {}).items())))


@functools.lru_cache(maxsize=32)
def _deq_chunk_fn_cached(model, epochs, mesh, options):
    one = jax.vmap(functools.partial(_one_deq_run, model, epochs), in_axes=(0, 0, None, None))
    runs = P("runs")
    return jax.jit(_shard_map(one, mesh, (runs, runs, P(), P()), runs), compiler_options=dict(options) or None)


def _one_deq_population_run(model, epochs, params0, eta, xi, dist, tols):
    r"""Summary of one run of θ(t+1) = θ(t) − η∇R(θ(t)) on the population risk
    R(θ) = E‖y_θ(X) − f(X)‖² of :func:`sideq.general_risk.population_objective`
    (Section 2; Eq. (5) for multi_linear), run as :func:`sideq.general.descent`
    runs (a failure freezes the run; the status is the run's end).

    The risk is one number: a failed solve at one node makes it NaN, which
    cannot be told from an overflow.  A failure is SINGULAR where
    :meth:`~sideq.general.DEQ.proof` says so, else for a non-finite R or ∇R
    DIVERGED (multi_linear: the closed form solves nothing) or SOLVER_FAILURE
    (multi_index: a solve at a node failed), and DIVERGED for params past 1e8."""
    objective = deq_population_objective(model, xi, dist)
    value_and_grad = jax.value_and_grad(objective)
    opt = optax.sgd(eta)
    gtol, ltol = tols[0], tols[1]
    no_root = jnp.int32(Status.DIVERGED if model.kind == "multi_linear" else Status.SOLVER_FAILURE)
    ok = jnp.int32(Status.CONVERGED)

    def step(carry, t):
        params, opt_state, fail_code, fail_step, hit, _ = carry
        loss, grad = value_and_grad(params)
        gnorm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grad)))
        proof = model.proof(params)
        reached = ((gtol > 0) & (gnorm <= gtol)) | ((ltol > 0) & (loss <= ltol))
        hit = jnp.where((hit < 0) & (fail_step < 0) & reached, t, hit)
        code = jnp.where(
            proof == Status.SINGULAR,
            jnp.int32(Status.SINGULAR),
            jnp.where(jnp.isfinite(loss) & jnp.isfinite(gnorm), ok, no_root),
        )
        failed_now = (fail_step < 0) & (code != ok)
        fail_code = jnp.where(failed_now, code, fail_code)
        fail_step = jnp.where(failed_now, t, fail_step)
        last = t == epochs  # (the pass at t = T measures θ(T) and takes no step)
        updates, new_state = opt.update(grad, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        blown = ~jnp.all(
            jnp.stack(
                [
                    jnp.all(jnp.isfinite(v) & (jnp.abs(v) <= _DEQ_DIVERGENCE))
                    for v in jax.tree_util.tree_leaves(new_params)
                ]
            )
        )
        blown_now = (fail_step < 0) & blown & ~last
        fail_code = jnp.where(blown_now, jnp.int32(Status.DIVERGED), fail_code)
        fail_step = jnp.where(blown_now, t + 1, fail_step)
        frozen = (fail_step >= 0) | last
        keep = lambda old, new: jnp.where(frozen, old, new)  # noqa: E731
        new_params = jax.tree_util.tree_map(keep, params, new_params)
        new_state = jax.tree_util.tree_map(keep, opt_state, new_state)
        unproven = jnp.stack([proof == Status.NON_UNIQUE, proof == Status.UNVERIFIED])
        return (new_params, new_state, fail_code, fail_step, hit, unproven), (loss, gnorm)

    init = (params0, opt.init(params0), ok, jnp.int32(-1), jnp.int32(-1), jnp.zeros(2, bool))
    (params, _, fail_code, fail_step, hit, unproven), (loss, gnorm) = jax.lax.scan(
        step, init, jnp.arange(epochs + 1, dtype=jnp.int32)
    )
    status = jnp.where(
        fail_step >= 0,
        fail_code,
        jnp.where(
            unproven[0],
            jnp.int32(Status.NON_UNIQUE),
            jnp.where(unproven[1], jnp.int32(Status.UNVERIFIED), jnp.where(hit >= 0, ok, jnp.int32(Status.MAX_STEPS))),
        ),
    )
    return dict(
        theta_final=params,
        loss_final=loss[-1],
        grad_norm_final=gnorm[-1],
        status=status,
        fail_step=fail_step,
        steps=jnp.where(hit >= 0, hit, epochs).astype(jnp.int32),
    )


def deq_population_chunk_fn(model, epochs, mesh):
    """The jitted chunk of a DEQ sweep on the population risk: (params0, eta,
    xi, dist, tols) -> per-run dict, the run axis sharded over the mesh (as
    :func:`deq_chunk_fn`).

    Args:
      model: a :class:`~sideq.general.DEQ` (multi_linear or multi_index).
      epochs: T.
      mesh: a 1-D ``jax.sharding.Mesh`` with axis ``"runs"``.

    Returns:
      The jitted function (cached); its dict holds ``theta_final``,
      ``loss_final``, ``grad_norm_final``, ``status``, ``fail_step`` and
      ``steps`` (no residual).
    """
    options = compiler_options(mesh.devices.flat[0].platform)
    return _deq_population_chunk_fn_cached(model, epochs, mesh, tuple(sorted((options or {}).items())))


@functools.lru_cache(maxsize=32)
def _deq_population_chunk_fn_cached(model, epochs, mesh, options):
    one = jax.vmap(functools.partial(_one_deq_population_run, model, epochs), in_axes=(0, 0, None, None, None))
    runs = P("runs")
    return jax.jit(_shard_map(one, mesh, (runs, runs, P(), P(), P()), runs), compiler_options=dict(options) or None)


# ----------------------------------------------------------------------------
# Calling a chunk: the problem's arrays on every device, the runs split.


def _replicated(tree, mesh):
    """Each array of ``tree`` as a global array held whole by every device of
    ``mesh`` (also across hosts)."""
    replicated = NamedSharding(mesh, P())

    def one(a):
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, replicated, lambda idx: a[idx])

    return jax.tree_util.tree_map(one, tree)


def scalar_call(model, risk, epochs, backend, maxiter, data, xi, tols, dtype, mesh):
    """``call(theta0, eta)`` for a chunk of a scalar model's sweep on ``mesh``:
    :func:`chunk_fn` with the data (``(x, y)``, or the law for the population
    risk), ξ and the tolerances (gtol, ltol, dtol) replicated on every device.

    Args:
      model: a scalar :class:`~sideq.model.Model`.
      risk: ``"empirical"`` or ``"population"``.
      epochs: T.
      backend: the equilibrium solver.
      maxiter: the solver's iteration limit.
      data: ``(x, y)``, or the law.
      xi: ξ, shape (d,).
      tols: (gtol, ltol, dtol).
      dtype: the float dtype of the tolerances.
      mesh: a 1-D ``jax.sharding.Mesh`` with axis ``"runs"``.

    Returns:
      ``call(theta0, eta)``, for :func:`run_chunk`.
    """
    fn = chunk_fn(model, risk, epochs, backend, maxiter, mesh)
    data, xi, tols = _replicated((data, xi, np.asarray(tols, dtype)), mesh)
    return lambda theta0, eta: fn(theta0, eta, data, xi, tols)


def deq_call(model, epochs, x, y, xi, tols, dtype, mesh):
    """``call(params0, eta)`` for a chunk of a DEQ sweep on the empirical risk
    (:func:`deq_chunk_fn`): x, y or ξ, and (gtol, ltol) replicated.

    Args:
      model: a :class:`~sideq.general.DEQ`.
      epochs: T.
      x: inputs (n, d).
      y: targets (n, k), or None with ``xi``.
      xi: Ξ (k, d), or None with ``y``.
      tols: (gtol, ltol[, dtol]); the first two are used.
      dtype: the float dtype of the tolerances.
      mesh: a 1-D ``jax.sharding.Mesh`` with axis ``"runs"``.

    Returns:
      ``call(params0, eta)``, for :func:`run_chunk`.
    """
    fn = deq_chunk_fn(model, epochs, mesh)
    data, tols = _replicated(((x, y, xi), np.asarray(tols[:2], dtype)), mesh)
    return lambda params0, eta: fn(params0, eta, data, tols)


def deq_population_call(model, epochs, xi, dist, tols, dtype, mesh):
    """``call(params0, eta)`` for a chunk of a DEQ sweep on the population risk
    of ``dist`` (:func:`deq_population_chunk_fn`): ξ, the law and (gtol, ltol)
    replicated.

    Args:
      model: a :class:`~sideq.general.DEQ` (multi_linear or multi_index).
      epochs: T.
      xi: Ξ (k, d).
      dist: a law of X.
      tols: (gtol, ltol[, dtol]); the first two are used.
      dtype: the float dtype of the tolerances.
      mesh: a 1-D ``jax.sharding.Mesh`` with axis ``"runs"``.

    Returns:
      ``call(params0, eta)``, for :func:`run_chunk`.
    """
    fn = deq_population_chunk_fn(model, epochs, mesh)
    xi, dist, tols = _replicated((xi, dist, np.asarray(tols[:2], dtype)), mesh)
    return lambda params0, eta: fn(params0, eta, xi, dist, tols)


def run_chunk(call, mesh, theta0, eta):
    """One chunk's runs: ``theta0`` (a pytree of (C, ...) numpy arrays) and
    ``eta`` (C,) split over the devices of ``mesh`` along the run axis, the
    ``call`` of :func:`scalar_call`, :func:`deq_call` or
    :func:`deq_population_call` on them, and its per-run dict gathered as
    numpy on every process (C runs each).

    Args:
      call: the chunk's ``call(theta0, eta)``.
      mesh: the 1-D mesh the runs are split over.
      theta0: the chunk's θ(0), a pytree of (C, ...) numpy arrays.
      eta: the chunk's step sizes, a numpy array (C,).

    Returns:
      The per-run dict, numpy arrays of C rows.
    """
    runs = NamedSharding(mesh, P("runs"))

    def to_global(a):
        return jax.make_array_from_callback(a.shape, runs, lambda idx: a[idx])

    out = call(jax.tree_util.tree_map(to_global, theta0), to_global(eta))
    if jax.process_count() > 1:
        out = multihost_utils.process_allgather(out, tiled=True)
    return jax.tree_util.tree_map(np.asarray, out)
