"""Experiment: matrix sensing, two-phase (Gauss-Newton interpolator, then SGDM-LN).

T against eta per gamma, alpha(gamma), gamma*.

Baselines in the same figure: label-noise SGD at the same eta and at eta_eff = eta/(1-beta) (docs/theory.md §5).
Writes OUT/matrix-sensing/PRESET/scaling.png, summary.json and the per-run sweeps (resumable).

    python experiments/matrix_sensing_scaling.py --preset quick
    # the same as: flatter scaling --problem matrix-sensing --preset quick
"""

import argparse

from flatter.drivers.scaling import run_scaling

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick")
    parser.add_argument("--out", default="flatter-out/scaling")
    args = parser.parse_args()
    run_scaling("matrix-sensing", args.preset, args.out)
