"""Experiment: the reviewers' variants. Nesterov momentum, and minibatch SGD noise without label noise.

On the toy valley (Nesterov vs heavy ball, both with label noise) and on matrix sensing (heavy ball with
minibatches of B = 10 of n = 100 and no label noise, against label noise), alpha(gamma) per variant.
At interpolation the minibatch noise vanishes (every residual is zero), so without label noise the runs do
not move towards the flat minimum: they are reported as censored, not dropped.

    python experiments/variants.py [--seeds 16] [--out flatter-out/variants]
"""

import argparse
from pathlib import Path

import numpy as np

from flatter.sweep import SweepSpec, power_law, run_sweep


def main(seeds, out):
    out = Path(out)
    toy = SweepSpec(
        problem="toy-valley",
        variants=("sgdm", "nesterov"),
        gammas=(0.5, 2 / 3, 0.85),
        etas=(0.01, 0.004, 0.0016, 0.00064),
        seeds=seeds,
        observable="abs_y",
        threshold=0.1,
        phase1=False,
        label_noise_mode="one",
    )
    sensing = SweepSpec(
        problem="matrix-sensing",
        problem_kwargs={"d": 20, "r": 2, "n": 100},
        variants=("sgdm", "sgdm-no-label-noise"),
        gammas=(0.5, 2 / 3),
        etas=(0.008, 0.004, 0.002),
        sigmas=(0.05,),
        batch_sizes=(10,),
        seeds=max(4, seeds // 4),
        observable="recovery_error",
        threshold=0.2,
        max_steps=2**15,
    )
    for name, spec in (("toy-valley", toy), ("matrix-sensing", sensing)):
        res = run_sweep(spec, out / name, progress=False)
        print(f"\n{name}: alpha_settle (s.e.) per variant and gamma; censored runs")
        for variant in spec.variants:
            for g in spec.gammas:
                d = res.sel(
                    variant=variant, gamma=g, C=spec.Cs[0], sigma=spec.sigmas[0], batch_size=spec.batch_sizes[0]
                )
                fit = power_law(spec.etas, d["T_settle"], d["censored_settle"])
                print(
                    f"  {variant:<20} gamma={g:.3f}: alpha = {fit.alpha:.2f} +- {fit.alpha_se:.2f}, "
                    f"censored {int(d['censored_settle'].sum())}/{d['censored_settle'].size}, "
                    f"medians {np.round(fit.medians).tolist()}"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--out", default="flatter-out/variants")
    args = parser.parse_args()
    main(args.seeds, args.out)
