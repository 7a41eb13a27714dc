"""Experiment: the toy valley's alpha(gamma), gamma in {0, 0.25, 0.5, 0.6, 2/3, 0.75, 0.85}.

Both criteria (settling and first passage) against alpha = 2 - 2 gamma (gamma <= 2/3), gamma (above).

Baselines in the same figure: label-noise SGD at the same eta and at eta_eff = eta/(1-beta) (docs/theory.md §5).
Writes OUT/toy-valley/PRESET/scaling.png, summary.json and the per-run sweeps (resumable).

    python experiments/toy_alpha.py --preset quick
    # the same as: flatter scaling --problem toy-valley --preset quick
"""

import argparse

from flatter.drivers.scaling import run_scaling

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick")
    parser.add_argument("--out", default="flatter-out/scaling")
    args = parser.parse_args()
    run_scaling("toy-valley", args.preset, args.out)
