"""Experiment: the optimal prefactor C* of 1 - beta = C eta^(2/3) against the label-noise strength sigma.

Simulated C*(sigma) (vertex of the median settling time over a C grid, bootstrap CI over seeds) against the
reduced-ODE prediction, and the fitted exponent of C* ~ sigma^p (predicted p = 2/3, docs/theory.md §1.6).

    python experiments/c_star.py --preset quick   # same as: flatter cstar --preset quick
"""

import argparse

from flatter.drivers.cstar import run_cstar

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick")
    parser.add_argument("--out", default="flatter-out/cstar")
    args = parser.parse_args()
    run_cstar("toy-valley", args.preset, args.out)
