"""The `flatter` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flatter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="SGDM-LN with the 2/3 rule vs SGD on matrix sensing (~1 min on 2 cores)")
    demo.add_argument("--out", default="flatter-out/demo", help="folder for demo.png/.npz/.json")
    demo.add_argument("--seeds", type=int, default=4)
    demo.add_argument("--steps", type=int, default=100_000)
    scaling = sub.add_parser(
        "scaling",
        help="the 2/3 scaling law: sweep (gamma, eta) x seeds, fit alpha(gamma) with error bars, gamma*",
        description="Run (or resume) the sweeps of a preset, print the alpha(gamma) table and gamma*, and write "
        "scaling.png, summary.json and the per-run results under OUT/PROBLEM/PRESET.",
    )
    scaling.add_argument(
        "--problem", choices=("toy-valley", "matrix-sensing", "teacher-student"), default="matrix-sensing"
    )
    scaling.add_argument("--preset", choices=("quick", "paper"), default="quick")
    scaling.add_argument("--out", default="flatter-out/scaling")
    scaling.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    cstar = sub.add_parser("cstar", help="the optimal prefactor C* against the noise sigma at gamma = 2/3")
    cstar.add_argument("--problem", choices=("toy-valley",), default="toy-valley")
    cstar.add_argument("--preset", choices=("quick", "paper"), default="quick")
    cstar.add_argument("--out", default="flatter-out/cstar")
    args = parser.parse_args(argv)
    if args.command == "scaling":
        from ._scaling import run_scaling

        run_scaling(args.problem, args.preset, args.out, progress=not args.no_progress)
    elif args.command == "cstar":
        from ._cstar import run_cstar

        run_cstar(args.problem, args.preset, args.out)
    elif args.command == "demo":
        from ._demo import DemoConfig, run_demo

        run_demo(DemoConfig(seeds=args.seeds, steps=args.steps), out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
