"""Experiment: teacher-student (two-phase): T against eta per gamma, alpha(gamma), gamma*.

Baselines in the same figure: label-noise SGD at the same eta and at eta_eff = eta/(1-beta) (docs/theory.md §5).
Writes OUT/teacher-student/PRESET/scaling.png, summary.json and the per-run sweeps (resumable).

    python experiments/teacher_student_scaling.py --preset quick
    # the same as: flatter scaling --problem teacher-student --preset quick
"""

import argparse

from flatter.drivers.scaling import run_scaling

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick")
    parser.add_argument("--out", default="flatter-out/scaling")
    args = parser.parse_args()
    run_scaling("teacher-student", args.preset, args.out)
