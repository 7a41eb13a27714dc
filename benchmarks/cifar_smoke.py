"""The cifar10 driver end to end with its own model, ResNet-18, on a small archive in the official format.

    python benchmarks/cifar_smoke.py

The suite runs the same driver path (archive, phase 1, the pilot, the sweep, the summary and the figure) on a
three-layer MLP, which compiles in seconds; this is the ResNet-18 run it stands in for (width 32, the smoke preset
on one learnable image per class, as ``tests/test_networks.py`` used to run it: about 5 minutes on 2 cores, most
of it XLA compiling the convolutions). Prints the driver's output and its wall time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import write_cifar  # noqa: E402  (the suite's writer of official-format archives)

from flatter.drivers.networks import run_network_experiment  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_cifar(folder, archive=True, per_batch=8, test=20, learnable=True)
        start = time.perf_counter()
        record = run_network_experiment(
            "cifar10", "smoke", folder / "out", data_dir=folder / "cifar-10-python.tar.gz", progress=False,
            width=32, train_per_class=1, test_per_class=1, batch_size=8, max_steps=8,
        )  # fmt: skip
        print(
            f"ResNet-18 (width 32) cifar10 smoke end to end: {record['runs']} runs, tr∇²L at the start "
            f"{record['trace_start']:.4g}, {time.perf_counter() - start:.0f} s"
        )


if __name__ == "__main__":
    main()
