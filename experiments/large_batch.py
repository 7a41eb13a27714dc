"""Experiment: SNGM's claim at large batch. Test accuracy against batch size for MSGD, SNGM, LARS and Adam.

Every optimizer and batch size gets the same epoch budget (the same gradient evaluations), warm-up + cosine
decay and a peak learning rate tuned on a log grid by validation accuracy; fresh seeds report test accuracy
(mean ± s.d.) and the epochs they take to a target accuracy. Writes
OUT/large-batch/DATASET/PRESET/large_batch.png, summary.json, curves.npz and one file per cell (resumable).

    python experiments/large_batch.py                       # Fashion-MNIST MLP-6, quick: 2 CPU cores, minutes
    python experiments/large_batch.py --dataset cifar10 --preset paper --data cifar-10-python.tar.gz   # a GPU
    # the same as: flatter large-batch ...; every option of flatter large-batch --help applies
"""

import sys

from flatter._cli import main

if __name__ == "__main__":
    # The command line sets the machine up first (one JAX device per core, over which the runs are sharded).
    sys.exit(main(["large-batch", *sys.argv[1:]]))
