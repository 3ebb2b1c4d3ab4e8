"""Extended experiment: Figures 4-5 with tanh and softplus (and the sigmoid for reference).

Usage: python experiments/exp1_activations.py [--out DIR] [--quick]

CONFIG below is passed to sideq.paper.extended.exp_activations (the code shared with
`sideq reproduce --extended`); edit it to change the run. ``--quick`` ignores it
and uses the small quick settings. Prints the JSON summary; figures go to --out
(default figures/extended).
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # entry point: float64 for the figures

from sideq.paper.extended import script_main  # noqa: E402

# xi = 2, X ~ Unif[0, 1] throughout (as in the paper's Section 4).
CONFIG = dict(n=1000, eta=0.1, epochs=4000, seed=0, activations=["tanh", "softplus", "sigmoid"])

if __name__ == "__main__":
    sys.exit(script_main("activations", config=CONFIG))
