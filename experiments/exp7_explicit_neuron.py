"""Extended experiment: explicit neuron sigma(theta x) vs the sigmoid DEQ on the same data.

Usage: python experiments/exp7_explicit_neuron.py [--out DIR] [--quick]

CONFIG below is passed to sideq.paper.extended.exp_explicit_neuron (the code shared with
`sideq reproduce --extended`); edit it to change the run. ``--quick`` ignores it
and uses the small quick settings. Prints the JSON summary; figures go to --out
(default figures/extended).
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # entry point: float64 for the figures

from sideq.paper.extended import script_main  # noqa: E402

# xi = 2, X ~ Unif[0, 1] throughout (as in the paper's Section 4).
CONFIG = dict(n=1000, eta=0.1, epochs=4000, seed=0)

if __name__ == "__main__":
    sys.exit(script_main("explicit_neuron", config=CONFIG))
