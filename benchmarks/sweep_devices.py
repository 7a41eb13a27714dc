"""Sweep throughput on 1, 2, 4 and 8 (host) devices: the main job's matrix-sensing sweep and a toy-valley sweep.

Each device count runs in a fresh process (XLA_FLAGS=--xla_force_host_platform_device_count=N) into a fresh
folder; the time excludes nothing (setup and compilation included), as a user would see it, and the
ratio to one device is printed. On a machine with accelerators, run it with --real to use the
visible devices once.

    python benchmarks/sweep_devices.py [--seeds 8] [--problem matrix-sensing toy-valley] [--real]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import dataclasses, json, sys, time
import jax
from flatter.sweep import SweepSpec, run_sweep
from flatter.drivers.scaling import presets
seeds, out, problem = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if problem == "toy-valley":
    spec = SweepSpec(problem="toy-valley", gammas=(0.5, 0.6, 2 / 3, 0.75, 0.85), etas=(0.01, 0.004, 0.0016, 0.00064),
                     seeds=seeds, observable="abs_y", threshold=0.1, phase1=False, label_noise_mode="one")
else:  # the main job's sweep (flatter scaling --problem matrix-sensing --preset quick) at this many seeds
    spec = dataclasses.replace(presets("matrix-sensing", "quick")[0], seeds=seeds)
t = time.perf_counter()
res = run_sweep(spec, out, chunk_size=256, progress=False)
wall = time.perf_counter() - t
runs = res.data["horizon"].size
steps = float(res.data["horizon"].sum())
print(json.dumps({"devices": jax.device_count(), "kind": jax.devices()[0].device_kind, "runs": runs,
                  "wall": wall, "runs_per_s": runs / wall, "run_steps_per_s": steps / wall}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--problem", nargs="+", default=["matrix-sensing", "toy-valley"])
    parser.add_argument("--real", action="store_true", help="use the visible devices as they are")
    args = parser.parse_args()
    counts = [None] if args.real else [1, 2, 4, 8]
    for problem in args.problem:
        grid = "the quick preset's grid" if problem == "matrix-sensing" else "5 gammas x 4 etas"
        print(f"{problem} sweep: {grid} x {args.seeds} seeds, horizons from the predictor, all included")
        base = None
        for n in counts:
            env = dict(os.environ)
            if n is not None:
                env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
                env["JAX_PLATFORMS"] = "cpu"
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(args.seeds), tmp, problem],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            base = base or r["wall"]
            print(
                f"  {r['devices']} x {r['kind']}: {r['runs']} runs in {r['wall']:.1f} s = {r['runs_per_s']:.1f} "
                f"runs/s, {r['run_steps_per_s'] / 1e6:.2f} M run-steps/s, {base / r['wall']:.2f}x one device"
            )


if __name__ == "__main__":
    main()
