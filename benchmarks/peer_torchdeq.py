"""torchdeq's side of ``sideq bench``'s multi-neuron DEQ training step.

The problem (built by :func:`sideq.bench.deq_problem`, passed here as numpy
float32 arrays): y = tanh(W1 x + W2 y), y ∈ ℝ^k, params W1 (k, d) and W2
(k, k), n inputs x (n, d), targets t (n, k), loss R̂ = (1/n) Σᵢ ‖yᵢ − tᵢ‖².
One training step is what torchdeq's documentation does for a DEQ layer:

* the forward solve of the n fixed points as one batch (torchdeq's solvers
  treat the first axis as the batch: every sample has its own Anderson or
  Broyden history, and the batch stops when its worst sample meets the
  tolerance), without a graph, started from the previous step's fixed points
  (a warm start) — the injection W1 x is computed once per step, outside the
  solver, as torchdeq's examples do;
* the implicit backward: ``ift=True``, the adjoint fixed point
  u = Jᵀu + ∂R̂/∂y solved by the backward solver, one per sample, to the same
  tolerance;
* the update θ ← θ − η∇R̂ in place.

Tolerances are torchdeq's ``'rel'`` mode: the batch stops when
maxᵢ ‖f(zᵢ) − zᵢ‖₂ / ‖f(zᵢ)‖₂ < tol (forward) and the same for the adjoint.

Only ``sideq/bench.py`` imports this file (by path, when it exists); it needs
the optional ``peers`` extra (``pip install -e .[peers]``: torch 2.13.0 CPU,
torchdeq).  It imports torch lazily so that importing it costs nothing.
"""

from __future__ import annotations

import numpy as np

# torchdeq's solvers; "simple_fixed_point_iter" runs a fixed number of
# iterations with no stopping test (set by ``fixed_iterations``).
SOLVERS = ("anderson", "broyden", "fixed_point_iter", "simple_fixed_point_iter")


def available() -> str | None:
    """None where torch and torchdeq import and run here, else the reason, one line."""
    try:
        import torch
        import torchdeq
    except Exception as err:  # (ImportError, or a broken install: any reason, reported)
        return f"torch/torchdeq not importable ({type(err).__name__}: {str(err).strip().splitlines()[0]})"
    try:
        deq = torchdeq.get_deq(f_solver="fixed_point_iter", f_max_iter=8, f_tol=1e-3)
        z, _ = deq(lambda z: 0.5 * z + 1.0, torch.zeros(2, 1))
        assert abs(float(z[-1][0, 0]) - 2.0) < 0.1
    except Exception as err:
        return f"torchdeq does not run here ({type(err).__name__}: {str(err).strip().splitlines()[0]})"
    return None


def versions() -> dict:
    """torch and torchdeq versions and torch's thread count (CPU)."""
    import importlib.metadata as md

    import torch

    return {"torch": torch.__version__, "torchdeq": md.version("torchdeq"), "torch_threads": torch.get_num_threads()}


class TorchStep:
    """A torchdeq training loop on the problem: :meth:`step` takes one step.

    Args:
      problem: dict of numpy float32 arrays ``x`` (n, d), ``t`` (n, k),
        ``W1`` (k, d), ``W2`` (k, k) (θ(0); copied).
      f_solver, b_solver: torchdeq solvers (:data:`SOLVERS`) of the forward
        and the backward (adjoint) fixed point.
      eta: the step size.
      tol: the relative tolerance of both solves.
      maxiter: their iteration limit.
      f_kwargs: the forward solver's extra settings (Anderson's ``m``, ``lam``).
      fixed_iterations: (forward, backward) iteration counts for
        ``simple_fixed_point_iter``, which has no stopping test.
      warm: start each forward solve from the previous step's fixed points.
    """

    def __init__(
        self,
        problem: dict,
        *,
        f_solver: str,
        b_solver: str,
        eta: float,
        tol: float,
        maxiter: int = 256,
        f_kwargs: dict | None = None,
        fixed_iterations=(None, None),
        warm: bool = True,
    ):
        import torch
        import torchdeq

        self.torch = torch
        self.x = torch.from_numpy(np.ascontiguousarray(problem["x"], np.float32))
        self.t = torch.from_numpy(np.ascontiguousarray(problem["t"], np.float32))
        self.W1 = torch.tensor(np.asarray(problem["W1"], np.float32), requires_grad=True)
        self.W2 = torch.tensor(np.asarray(problem["W2"], np.float32), requires_grad=True)
        f_iter, b_iter = fixed_iterations
        self.deq = torchdeq.get_deq(
            f_solver=f_solver,
            b_solver=b_solver,
            ift=True,
            f_max_iter=f_iter if f_solver == "simple_fixed_point_iter" else maxiter,
            b_max_iter=b_iter if b_solver == "simple_fixed_point_iter" else maxiter,
            f_tol=tol,
            b_tol=tol,
            f_stop_mode="rel",
            b_stop_mode="rel",
        )
        self.f_kwargs = dict(f_kwargs or {})
        self.eta, self.warm = float(eta), bool(warm)
        self.z = torch.zeros(self.t.shape)
        self.name = f"{f_solver}/{b_solver}"

    def _loss(self, z0):
        torch = self.torch
        inj = self.x @ self.W1.T  # (once per solve: the loop-invariant part of f)
        W2 = self.W2

        def f(z):
            return torch.tanh(inj + z @ W2.T)

        out, info = self.deq(f, z0, solver_kwargs=self.f_kwargs)
        z = out[-1]
        return ((z - self.t) ** 2).sum(1).mean(), z, info

    def step(self) -> dict:
        """One step: forward solve, implicit backward, update.  Returns the
        loss at the step's θ, the forward iterations of the worst sample and
        the worst relative residual torchdeq measured."""
        torch = self.torch
        loss, z, info = self._loss(self.z if self.warm else torch.zeros_like(self.z))
        self.W1.grad = self.W2.grad = None
        loss.backward()
        with torch.no_grad():
            self.W1 -= self.eta * self.W1.grad
            self.W2 -= self.eta * self.W2.grad
        self.z = z.detach()
        return {
            "loss": float(loss.detach()),
            "forward_iterations": int(info["nstep"].max()),
            "residual_rel": float(info["rel_lowest"].max()),
        }

    def loss_and_grad(self, z0=None):
        """R̂ and ∇R̂ at the present θ, no update; forward solve from ``z0``
        (default zeros).  Returns (loss, {"W1": ..., "W2": ...}) as numpy
        float32, and the solution z (n, k)."""
        torch = self.torch
        z0 = torch.zeros_like(self.z) if z0 is None else torch.from_numpy(np.asarray(z0, np.float32))
        loss, z, _ = self._loss(z0)
        self.W1.grad = self.W2.grad = None
        loss.backward()
        grads = {"W1": self.W1.grad.numpy().copy(), "W2": self.W2.grad.numpy().copy()}
        self.W1.grad = self.W2.grad = None
        return float(loss.detach()), grads, z.detach().numpy()

    def params(self) -> dict:
        return {"W1": self.W1.detach().numpy().copy(), "W2": self.W2.detach().numpy().copy()}


def default_threads() -> int:
    """torch's intra-op thread count as this process started it."""
    import torch

    return torch.get_num_threads()


def run_steps(problem: dict, steps: int, *, threads: int, **settings) -> dict:
    """``steps`` steps of a new :class:`TorchStep` (``settings``) from θ(0),
    torch limited to ``threads`` threads while they run.  Returns θ(T)
    (``params``), the loss at θ(0), the forward iterations of the worst
    sample and the worst relative residual over the steps."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        stepper = TorchStep(problem, **settings)
        infos = [stepper.step() for _ in range(steps)]
    finally:
        torch.set_num_threads(saved)
    return {
        "params": stepper.params(),
        "loss0": infos[0]["loss"],
        "max_iterations": max(i["forward_iterations"] for i in infos),
        "worst_residual_rel": max(i["residual_rel"] for i in infos),
    }
