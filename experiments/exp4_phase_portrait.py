"""Extended experiment: phase portrait of -grad R in the (theta1, theta2) plane (linear and sigmoid DEQ).

Usage: python experiments/exp4_phase_portrait.py [--out DIR] [--quick]

CONFIG below is passed to sideq.paper.extended.exp_phase_portrait (the code shared with
`sideq reproduce --extended`); edit it to change the run. ``--quick`` ignores it
and uses the small quick settings. Prints the JSON summary; figures go to --out
(default figures/extended).
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # entry point: float64 for the figures

from sideq.paper.extended import script_main  # noqa: E402

# xi = 2, X ~ Unif[0, 1] throughout (as in the paper's Section 4).
CONFIG = dict(grid_points=160, linear_box=[[-3, 3], [-2, 4]], sigmoid_box=[[-3, 7], [-4, 3.9]], singular_mask=0.04)

if __name__ == "__main__":
    sys.exit(script_main("phase_portrait", config=CONFIG))
