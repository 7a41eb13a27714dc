"""The large-batch study: test accuracy against batch size for MSGD, SNGM, LARS and Adam at a fixed epoch budget.

For every optimizer and batch size (a cell), the peak learning rate is tuned on a small log grid by
validation accuracy (held out from the training split), then fresh seeds train at the chosen value; the
cell reports their final test accuracy and the epochs they take to reach a target test accuracy. Every
batch size gets the same number of gradient evaluations (``epochs`` passes over the training set), the
schedule of large-batch practice (linear warm-up, cosine decay) and the same L2 term. Cells are written
one by one (atomically), so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._io import UNREADABLE_FILE_ERRORS, environment, save_arrays, save_json
from .._problem import Problem
from .._progress import keep_alive
from ..figures import large_batch_figure, save_figure
from ..large_batch import (
    LABELS,
    OPTIMIZERS,
    CellResult,
    format_summary,
    mean_sd,
    summarize_cells,
    tune_and_train,
)
from ._presets import load_dataset, pick_preset

CLASSES = 10
"""Both data sets have ten classes (the per-class subsets set the training set size)."""


@dataclasses.dataclass(frozen=True)
class LargeBatchPreset:
    """One large-batch study.

    ``train_per_class`` / ``validation_per_class`` / ``test_per_class``: stratified, seeded, disjoint
    subsets (``None`` test: the whole test split); the training set size must be divisible by every batch
    size. ``grids``: the peak learning rates tried per optimizer (the same grid at every batch size).
    ``tuning_seeds`` runs per grid value choose it, ``seeds`` fresh runs report it. ``target_accuracy``:
    the test accuracy whose first passage gives "epochs to target".
    """

    dataset: str
    model: str
    width: int
    depth: int
    train_per_class: int
    validation_per_class: int
    test_per_class: int | None
    batch_sizes: tuple[int, ...]
    epochs: int
    warmup_epochs: float
    grids: tuple[tuple[str, tuple[float, ...]], ...]
    seeds: int
    tuning_seeds: int
    target_accuracy: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    trust_coefficient: float = 1e-3
    seed: int = 0
    eval_batch_size: int = 1000

    @property
    def optimizers(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.grids)

    def digest(self) -> str:
        """A hash of every setting: cells computed under other settings are never mixed in."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _half_decades(lowest_power: float, count: int) -> tuple[float, ...]:
    """``count`` learning rates :math:`10^{p}, 10^{p + 1/2}, \\ldots` from ``p = lowest_power`` (3 digits)."""
    return tuple(float(f"{10 ** (lowest_power + i / 2):.3g}") for i in range(count))


# 2 CPU cores, a few minutes: MLP-6 of width 128 on 5120 training images, batch 16 to 1024 (20 % of them).
_FASHION_QUICK = LargeBatchPreset(
    dataset="fashion-mnist",
    model="mlp",
    width=128,
    depth=6,
    train_per_class=512,
    validation_per_class=100,
    test_per_class=200,
    batch_sizes=(16, 32, 64, 128, 256, 512, 1024),
    epochs=10,
    warmup_epochs=1.0,
    grids=(
        ("msgd", _half_decades(-3, 6)),
        ("sngm", _half_decades(-2.5, 6)),
        ("lars", _half_decades(-1, 6)),
        ("adam", _half_decades(-4, 6)),
    ),
    seeds=4,
    tuning_seeds=2,
    target_accuracy=0.82,
)
# ResNet-18 on 160 CIFAR-10 images on CPU (minutes): the pipeline, not the science. Width 32 is GroupNorm's least.
_CIFAR_SMOKE = LargeBatchPreset(
    dataset="cifar10",
    model="resnet18",
    width=32,
    depth=18,
    train_per_class=16,
    validation_per_class=4,
    test_per_class=4,
    batch_sizes=(8, 16, 32),
    epochs=2,
    warmup_epochs=0.5,
    grids=(("msgd", (0.01, 0.1)), ("sngm", (0.01, 0.1)), ("lars", (1.0, 10.0)), ("adam", (1e-3, 1e-2))),
    seeds=2,
    tuning_seeds=1,
    target_accuracy=0.2,
)
PRESETS: dict[str, dict[str, LargeBatchPreset]] = {
    "fashion-mnist": {
        "quick": _FASHION_QUICK,
        # A GPU: width 512, 51,200 training images, the whole test set, batch 128 to 4096 (8 %), 30 epochs.
        "paper": dataclasses.replace(
            _FASHION_QUICK,
            width=512,
            train_per_class=5120,
            validation_per_class=800,
            test_per_class=None,
            batch_sizes=(128, 256, 512, 1024, 2048, 4096),
            epochs=30,
            warmup_epochs=2.0,
            grids=(
                ("msgd", _half_decades(-3, 7)),
                ("sngm", _half_decades(-2.5, 7)),
                ("lars", _half_decades(-1, 7)),
                ("adam", _half_decades(-4.5, 7)),
            ),
            target_accuracy=0.88,
        ),
    },
    "cifar10": {
        "smoke": _CIFAR_SMOKE,
        # The SNGM paper's setting on a GPU: ResNet-18 (GroupNorm), 40,960 training images, batch 256 to 4096
        # (10 %), 60 epochs with 5 of warm-up.
        "paper": dataclasses.replace(
            _CIFAR_SMOKE,
            width=64,
            train_per_class=4096,
            validation_per_class=900,
            test_per_class=None,
            batch_sizes=(256, 512, 1024, 2048, 4096),
            epochs=60,
            warmup_epochs=5.0,
            grids=(
                ("msgd", _half_decades(-2, 6)),
                ("sngm", _half_decades(-2, 6)),
                ("lars", _half_decades(-0.5, 6)),
                ("adam", _half_decades(-4, 6)),
            ),
            seeds=3,
            tuning_seeds=1,
            target_accuracy=0.85,
        ),
    },
}


def preset(dataset: str, name: str, **overrides) -> LargeBatchPreset:
    """A preset by dataset and name, with fields replaced by ``overrides`` (e.g. ``seeds=2``)."""
    config = pick_preset(PRESETS, dataset, name, overrides)
    unknown_opt = [o for o in config.optimizers if o not in OPTIMIZERS]
    if unknown_opt:
        raise ValueError(f"optimizers must be among {OPTIMIZERS}, got {unknown_opt}")
    if len({len(g) for _, g in config.grids}) != 1:
        raise ValueError(f"grids must have one length for every optimizer, got {dict(config.grids)}")
    n = config.train_per_class * CLASSES
    bad = [b for b in config.batch_sizes if n % b]
    if bad:
        raise ValueError(f"batch_sizes must divide the {n} training examples, got {bad}")
    return config


def _split(labels: np.ndarray, first: int, second: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint stratified subsets: ``first`` and ``second`` examples of every class."""
    from ..data import stratified_subset

    idx = stratified_subset(labels, first + second, seed=seed)
    rng = np.random.default_rng(seed)
    a, b = [], []
    for c in np.unique(labels[idx]):
        members = rng.permutation(idx[labels[idx] == c])
        a.append(members[:first])
        b.append(members[first:])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def build_study(config: LargeBatchPreset, data_dir: str | Path | None = None):
    """``(problem, init, validation, source)``: the training subset with test data, ``init(key) -> params``
    (new weights per seed) and the held-out validation split."""
    from flax import nnx

    from ..data import stratified_subset
    from ..models import MLP, ResNet18

    data = load_dataset(config.dataset, data_dir)
    train, test = data.normalized()
    if config.dataset == "fashion-mnist":
        train, test = train[..., None], test[..., None]
    tr, va = _split(data.train_labels, config.train_per_class, config.validation_per_class, config.seed)
    te = (
        np.arange(len(data.test_labels))
        if config.test_per_class is None
        else stratified_subset(data.test_labels, config.test_per_class, seed=config.seed)
    )
    k = data.num_classes

    def make(rngs):
        if config.model == "mlp":
            return MLP(int(np.prod(train.shape[1:])), k, width=config.width, depth=config.depth, rngs=rngs)
        return ResNet18(k, in_channels=train.shape[-1], width=config.width, rngs=rngs)

    graphdef, _, rest = nnx.split(make(nnx.Rngs(0)), nnx.Param, ...)

    def init(key):
        return nnx.split(make(nnx.Rngs(params=key)), nnx.Param, ...)[1]

    def predict(params, x):
        return nnx.merge(graphdef, params, rest)(x)

    problem = Problem(
        predict,
        jnp.asarray(train[tr]),
        jax.nn.one_hot(data.train_labels[tr], k),
        test_inputs=jnp.asarray(test[te]),
        test_targets=jax.nn.one_hot(data.test_labels[te], k),
        loss="cross_entropy",
        name=f"{config.dataset}-{config.model}{config.width}",
        eval_batch_size=config.eval_batch_size,
    )
    validation = (jnp.asarray(train[va]), jax.nn.one_hot(data.train_labels[va], k))
    return problem, init, validation, data.source


def _read_cell(path: Path, digest: str) -> dict | None:
    """A finished cell of this study (None when it is another study's, which is then recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            stored = {k: f[k] for k in f.files}
    except UNREADABLE_FILE_ERRORS as err:
        raise ValueError(
            f"{path} is truncated or corrupted ({type(err).__name__}: {err}); delete it to recompute the cell"
        ) from None
    return stored if str(stored.get("digest")) == digest else None


def run_cells(
    problem: Problem, init, validation, config: LargeBatchPreset, folder: Path, *, echo=print, progress: bool = True
):
    """Every (optimizer, batch size) cell, read from ``folder`` when a previous run of the same settings
    wrote it; returns ``{(optimizer, batch_size): CellResult}`` and the seconds each new cell took. A cell's
    epochs tick a progress bar as they end."""
    from tqdm.auto import tqdm

    digest = config.digest()
    cells, seconds = {}, {}
    for name, grid in config.grids:
        for batch in config.batch_sizes:
            path = folder / f"{name}-b{batch}.npz"
            stored = _read_cell(path, digest) if path.exists() else None
            if stored is not None:
                cells[name, batch] = CellResult.from_arrays(stored)
                echo(_cell_line(cells[name, batch], "resumed"))
                continue
            start = time.perf_counter()
            bar = tqdm(desc=f"  {LABELS[name]} B={batch}: tuning and training", unit=" epochs", leave=False,
                       disable=not progress)  # fmt: skip
            with keep_alive(bar):  # a cell's program compiles before its first epoch ticks
                cell = tune_and_train(
                    problem,
                    init,
                    optimizer=name,
                    batch_size=batch,
                    epochs=config.epochs,
                    grid=grid,
                    validation=validation,
                    target=config.target_accuracy,
                    seeds=config.seeds,
                    tuning_seeds=config.tuning_seeds,
                    warmup_epochs=config.warmup_epochs,
                    momentum=config.momentum,
                    weight_decay=config.weight_decay,
                    trust_coefficient=config.trust_coefficient,
                    on_epoch=bar.update,
                )
            bar.close()
            seconds[name, batch] = time.perf_counter() - start
            runs = len(grid) * config.tuning_seeds + config.seeds
            steps = runs * config.epochs * problem.num_examples // batch
            save_arrays(path, digest=np.array(digest), seconds=np.array(seconds[name, batch]), **cell.to_arrays())
            cells[name, batch] = cell
            echo(_cell_line(cell, f"{seconds[name, batch]:.1f} s, {steps / seconds[name, batch]:.0f} run-steps/s"))
    return cells, seconds


def _cell_line(cell: CellResult, note: str) -> str:
    mean, sd = mean_sd(cell.final_test_accuracy)
    edge = " (grid edge)" if cell.at_edge else ""
    head = f"  {LABELS[cell.optimizer]:5s} B={cell.batch_size:<5d} lr={cell.learning_rate:<7.3g}{edge}"
    return f"{head} test {mean:.4f} ± {sd:.4f}  [{note}]"


def summarize(cells: dict, config: LargeBatchPreset, tolerance: float = 0.01) -> dict:
    """:func:`flatter.large_batch.summarize_cells` with the preset's description."""
    ordered = {(name, b): cells[name, b] for name in config.optimizers for b in config.batch_sizes}
    return {
        "dataset": config.dataset,
        "model": f"{config.model}{config.width}",
        "train_examples": config.train_per_class * CLASSES,
        "validation_examples": config.validation_per_class * CLASSES,
        "epochs": config.epochs,
        "target_accuracy": config.target_accuracy,
        "preset": dataclasses.asdict(config),
        "digest": config.digest(),
        **summarize_cells(ordered, tolerance=tolerance),
    }


def plot(cells: dict, config: LargeBatchPreset, summary: dict, path: Path) -> None:
    caption = (
        f"{config.dataset}, {config.model}-{config.depth} width {config.width}, {summary['train_examples']} "
        f"training images: warm-up {config.warmup_epochs:g} epoch{'' if config.warmup_epochs == 1 else 's'} + cosine "
        f"decay, L2 {config.weight_decay:g}"
    )
    fig = large_batch_figure(
        cells, summary, epochs=config.epochs, target_accuracy=config.target_accuracy, caption=caption
    )
    save_figure(fig, path, dpi=120)


def run_large_batch(
    dataset: str,
    preset_name: str,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    progress: bool = True,
    **overrides,
) -> dict:
    """Build the data, run (or resume) every cell, print the table, write the figure and the files, under
    ``out/large-batch/dataset/preset``."""
    config = preset(dataset, preset_name, **overrides)
    out = Path(out) / "large-batch" / dataset / preset_name
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    problem, init, validation, source = build_study(config, data_dir)
    print(
        f"large-batch study, {dataset} {preset_name}: {problem.num_examples} training, {validation[0].shape[0]} "
        f"validation, {problem.test_inputs.shape[0]} test images ({source}); {len(config.optimizers)} optimizers x "
        f"{len(config.batch_sizes)} batch sizes, {config.tuning_seeds} tuning seed(s) per grid value, "
        f"{config.seeds} seeds reported",
        flush=True,
    )
    cells, seconds = run_cells(
        problem, init, validation, config, out / "cells", echo=lambda s: print(s, flush=True), progress=progress
    )
    summary = summarize(cells, config)
    summary.update(
        source=source,
        wall_seconds=time.perf_counter() - start,
        cell_seconds={f"{k[0]}-b{k[1]}": v for k, v in seconds.items()},
        environment=environment(),
    )
    print("\n" + format_summary(summary))
    save_json(out / "summary.json", summary)
    save_arrays(
        out / "curves.npz",
        description=np.array(
            "per optimizer (axis 0, see optimizers), batch size (axis 1, batch_sizes), seed (axis 2) and epoch "
            "(axis 3): the reported runs at the tuned learning rate; grid_validation: mean final validation "
            "accuracy per grid value (axis 2, grid)"
        ),
        optimizers=np.array(config.optimizers),
        batch_sizes=np.array(config.batch_sizes),
        learning_rate=np.array([[cells[o, b].learning_rate for b in config.batch_sizes] for o in config.optimizers]),
        **{
            field: np.array(
                [[getattr(cells[o, b].curves, field) for b in config.batch_sizes] for o in config.optimizers]
            )
            for field in ("train_loss", "validation_accuracy", "test_accuracy")
        },
        grid=np.array([g for _, g in config.grids]),
        grid_validation=np.array(
            [[cells[o, b].grid_validation for b in config.batch_sizes] for o in config.optimizers]
        ),
    )
    plot(cells, config, summary, out / "large_batch.png")
    print(f"\nwrote {out / 'large_batch.png'}, {out / 'summary.json'} ({summary['wall_seconds']:.0f} s)")
    return summary
