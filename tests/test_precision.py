"""Precision as the library runs it for a user who never touches the x64 flag.

One subprocess with ``JAX_ENABLE_X64=0`` (the suite's conftest turns x64 on,
so in-process tests cannot see a library that flips the flag):

* importing every sideq module, wrapping a callable activation (its bounds
  are estimated under a scoped x64 switch) and calling ``sideq.paper.theory`` (which
  computes in float64 under a scoped switch) leave ``jax_enable_x64`` off;
* a float32 sweep (``run_sweep`` takes its dtype from the flag) with one
  diverging step size gives the float64 sweep's statuses, and its finite runs
  agree with float64 to float32 accuracy; the diverging runs do not touch the
  others;
* a float32 gradient flow agrees with the float64 one.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil
    import jax, jax.numpy as jnp, numpy as np
    flags = [bool(jax.config.jax_enable_x64)]
    import sideq
    for m in pkgutil.iter_modules(sideq.__path__):
        importlib.import_module("sideq." + m.name)
    flags.append(bool(jax.config.jax_enable_x64))
    act = sideq.activation(lambda z: jnp.tanh(2 * z))
    from sideq.paper import theory as T
    y = T.equilibria(sideq.single_index(act), np.array([[1.0]]), np.array([0.3]), np.array([[0.5]]))
    flags.append(bool(jax.config.jax_enable_x64))

    from sideq.sweep import run_sweep
    from sideq.gradient_flow import flow
    model, xi = sideq.single_index("sigmoid"), np.array([2.0])
    x = sideq.sample(sideq.uniform(0.0, 1.0, 1), jax.random.PRNGKey(0), 64)
    inits = np.array([[0.1, -0.05], [-0.2, 0.1], [0.5, 0.3]])
    def sweep():
        res = run_sweep(model, xi=xi, inits=inits, eta=[0.5, 1e12], epochs=60, x=x, progress=False)
        return {k: np.asarray(res.arrays[k]).tolist() for k in ("theta_final", "loss_final", "status")} | {
            "dtype": str(np.asarray(res.arrays["theta_final"]).dtype)}
    def flows():
        tr = flow(sideq.linear(), np.array([0.3, 0.2]), xi=xi, dist=sideq.uniform(0.0, 1.0, 1), t1=3.0)
        return {"theta": np.asarray(tr.theta[-1]).tolist(), "dtype": str(np.asarray(tr.theta).dtype)}
    out = {"sweep32": sweep(), "flow32": flows()}
    flags.append(bool(jax.config.jax_enable_x64))
    with jax.enable_x64(True):
        out.update(sweep64=sweep(), flow64=flows())
    flags.append(bool(jax.config.jax_enable_x64))
    out.update(flags=flags, y=float(y[0, 0]), y_dtype=str(y.dtype))
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_float32_user_session_never_flips_x64(tmp_path):
    env = dict(os.environ, JAX_ENABLE_X64="0", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["flags"] == [False] * 5  # before and after every step, and after the scoped float64 runs
    assert out["y_dtype"] == "float64"  # sideq.paper.theory computes in float64 all the same

    s32, s64 = out["sweep32"], out["sweep64"]
    assert s32["dtype"] == "float32" and s64["dtype"] == "float64"
    status = np.array(s64["status"])
    assert status.tolist() == s32["status"]
    diverged = status == 2  # Status.DIVERGED: the eta = 1e12 runs, and only they
    assert diverged.sum() == 3
    t32, t64 = np.array(s32["theta_final"]), np.array(s64["theta_final"])
    ok = ~diverged
    assert np.all(np.isfinite(t64[ok])) and np.all(np.isfinite(t32[ok]))
    np.testing.assert_allclose(t32[ok], t64[ok], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(s32["loss_final"])[ok], np.array(s64["loss_final"])[ok], rtol=1e-4)

    assert out["flow32"]["dtype"] == "float32" and out["flow64"]["dtype"] == "float64"
    np.testing.assert_allclose(out["flow32"]["theta"], out["flow64"]["theta"], rtol=1e-5)
