"""Extended experiment: population vs empirical risk along descent, n = 100, 1000, 10000 (sigmoid DEQ).

Usage: python experiments/exp3_population_vs_empirical.py [--out DIR] [--quick]

CONFIG below is passed to sideq.paper.extended.exp_population_vs_empirical (the code shared with
`sideq reproduce --extended`); edit it to change the run. ``--quick`` ignores it
and uses the small quick settings. Prints the JSON summary; figures go to --out
(default figures/extended).
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # entry point: float64 for the figures

from sideq.paper.extended import script_main  # noqa: E402

# xi = 2, X ~ Unif[0, 1] throughout (as in the paper's Section 4).
CONFIG = dict(ns=[100, 1000, 10000], eta=0.1, epochs=4000, data_seed=1, evaluated_epochs=200)

if __name__ == "__main__":
    sys.exit(script_main("population_vs_empirical", config=CONFIG))
