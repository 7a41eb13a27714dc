"""Experiment: SNGM near the valley. Does the 2/3 rule carry over to normalized momentum?

Label-noise SNGM and heavy ball on the scaling experiment's sweeps (1 - beta = C eta^gamma): alpha(gamma) with
error bars next to the prediction, gamma* per optimizer, and the settling times T eta_eff^2 against the limit
flows (heavy ball: the label-noise flow; SNGM: the flow of log tr∇²L, flatter.limit.sngm_flow). Writes
OUT/PROBLEM/quick/sngm_valley.png and summary.json (the sweeps resume).

    python experiments/sngm_valley.py                      # toy valley, matrix sensing with noise on every
                                                           # label and with one noisy label per step: ~3 min
    python experiments/sngm_valley.py --problem toy-valley
"""

import argparse
import os

import jax

from flatter.drivers.sngm_valley import PROBLEMS, run_sngm_valley

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", choices=PROBLEMS + ("all",), default="all")
    parser.add_argument("--out", default="flatter-out/sngm-valley")
    args = parser.parse_args()
    # One JAX device per core on CPU: the sweeps shard their runs over them (as the flatter command does).
    jax.config.update("jax_num_cpu_devices", len(os.sched_getaffinity(0)))
    for problem in PROBLEMS if args.problem == "all" else (args.problem,):
        run_sngm_valley(problem, "quick", args.out, progress=False)
