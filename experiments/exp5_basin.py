"""Extended experiment: basin / rate maps over a 100 x 100 grid of theta(0) (linear and sigmoid DEQ).

Usage: python experiments/exp5_basin.py [--out DIR] [--quick]

CONFIG below is passed to sideq.paper.extended.exp_basin (the code shared with
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
    grid_points=100,
    dtol=1e-6,
    linear=dict(box=[[-3, 3], [-2, 4]], eta=0.1, epochs=1000),
    sigmoid=dict(box=[[-4, 8], [-4, 3.9]], eta=20.0, epochs=1000),
)

if __name__ == "__main__":
    sys.exit(script_main("basin", config=CONFIG))
