"""Extended experiment: step-size map against Theorem 3.9's threshold lambda1/(2 lambda2) (sigmoid DEQ).

Usage: python experiments/exp6_step_size.py [--out DIR] [--quick]

CONFIG below is passed to sideq.paper.extended.exp_step_size (the code shared with
`sideq reproduce --extended`); edit it to change the run. ``--quick`` ignores it
and uses the small quick settings. Prints the JSON summary; figures go to --out
(default figures/extended).
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # entry point: float64 for the figures

from sideq.paper.extended import script_main  # noqa: E402

# xi = 2, X ~ Unif[0, 1] throughout (as in the paper's Section 4).
CONFIG = dict(n_inits=8, radius=0.5, n_eta=49, eta_range=[1e-4, 1e2], epochs=2000, delta1=0.5, delta2=0.5)

if __name__ == "__main__":
    sys.exit(script_main("step_size", config=CONFIG))
