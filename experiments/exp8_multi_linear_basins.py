"""Extended experiment: basins of gradient descent for the multi-output linear DEQ (k = 2).

Usage: python experiments/exp8_multi_linear_basins.py [--out DIR] [--quick]

CONFIG below is passed to sideq.paper.extended.exp_multi_linear_basins (the code shared with
`sideq reproduce --extended`); edit it to change the run. ``--quick`` ignores it
and uses the small quick settings. Prints the JSON summary; figures go to --out
(default figures/extended).
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # entry point: float64 for the figures

from sideq.paper.extended import script_main  # noqa: E402

# X ~ Unif[0, 1], y = W1 x + W2 y in R^2; W2(0) = diag(a, b) over the box, W1(0) fixed.
CONFIG = dict(xi=[2.0, 1.0], w1_0=[0.1, 0.1], box=[[-1.0, 3.0], [-1.0, 3.0]], grid_points=60, eta=0.05, epochs=2000)

if __name__ == "__main__":
    sys.exit(script_main("multi_linear_basins", config=CONFIG))
