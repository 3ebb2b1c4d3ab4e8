"""Extended experiment: the multi-neuron DEQ y = tanh(W1 x + W2 y) near (Xi, 0), rate against k.

Usage: python experiments/exp9_multi_index_rate.py [--out DIR] [--quick]

CONFIG below is passed to sideq.paper.extended.exp_multi_index_rate (the code shared with
`sideq reproduce --extended`); edit it to change the run. ``--quick`` ignores it
and uses the small quick settings. Prints the JSON summary; figures go to --out
(default figures/extended).
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # entry point: float64 for the figures

from sideq.paper.extended import script_main  # noqa: E402

# X ~ Unif[-1, 1]^d; Xi (k, d) with N(0, xi_scale^2) entries; starts W1 = Xi + radius N, W2 = radius N.
CONFIG = dict(d=2, n=256, ks=[1, 2, 3, 4, 6, 8], starts=8, radius=0.1, xi_scale=1.5, eta=0.5, epochs=2000, seed=0)

if __name__ == "__main__":
    sys.exit(script_main("multi_index_rate", config=CONFIG))
