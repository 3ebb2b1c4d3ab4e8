"""The paper application: Dandapanthula & Ramdas (2025) on top of the library.

``theory`` holds the paper's formulas and constants, ``verify`` checks every
result of Section 3 numerically (``sideq verify``), ``reproduce`` draws
Figures 1-5 (``sideq reproduce``) and ``extended`` runs the experiments
beyond the paper (``sideq reproduce --extended``); ``multi`` holds the laws of Section 3.1 for
multi-neuron DEQs (MULTI_NEURON.md), checked by ``sideq verify --multi``.
See docs/design.md.
"""
