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
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import DemoConfig, run_demo

        run_demo(DemoConfig(seeds=args.seeds, steps=args.steps), out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
