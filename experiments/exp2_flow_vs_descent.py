"""Extended experiment: linear DEQ: gradient flow vs gradient descent, Theorem 3.1 circles, corrected Theorem 3.3 limits.

Usage: python experiments/exp2_flow_vs_descent.py [--out DIR] [--quick]

CONFIG below is passed to sideq.paper.extended.exp_flow_vs_descent (the code shared with
`sideq reproduce --extended`); edit it to change the run. ``--quick`` ignores it
and uses the small quick settings. Prints the JSON summary; figures go to --out
(default figures/extended).
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # entry point: float64 for the figures

from sideq.paper.extended import script_main  # noqa: E402

# xi = 2, X ~ Unif[0, 1] throughout (as in the paper's Section 4).
CONFIG = dict(
    starts=[(0.3, 0.2), (-0.6, 0.4), (0.9, -0.4), (0.25, 1.5), (-0.7, 1.6), (0.5, 2.3)],
    etas=[0.05, 0.2],
    epochs=600,
    flow_t1=60.0,
    flow_gtol=1e-10,
)

if __name__ == "__main__":
    sys.exit(script_main("flow_vs_descent", config=CONFIG))
