"""Sweep results: arrays labelled by the sweep's axes, with the spec and the environment; one-line load."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from .._io import save_arrays, save_json
from ._grid import SweepSpec

FIELDS = ("T_first", "T_settle", "censored_first", "censored_settle", "diverged", "final_value", "horizon")


@dataclasses.dataclass(frozen=True)
class SweepResults:
    """Per-run results on the grid ``spec.shape`` = (variant, gamma, C, eta, sigma, batch_size, seed).

    ``data[name]`` for ``name`` in :data:`FIELDS`: first-passage and settling steps (censored runs
    hold the horizon and are flagged), divergence, the observable's final value, the horizon.
    Load with ``flatter.sweep.load(folder)``; select with :meth:`sel`.
    """

    spec: SweepSpec
    data: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def axes(self) -> dict[str, tuple]:
        return self.spec.axes

    def sel(self, **coords) -> dict[str, np.ndarray]:
        """Index the data by axis values, e.g. ``sel(variant="sgdm", gamma=2/3)`` (nearest float)."""
        index: list[Any] = [slice(None)] * len(self.axes)
        for i, (name, values) in enumerate(self.axes.items()):
            if name in coords:
                want = coords.pop(name)
                if isinstance(want, str) or want is None:
                    index[i] = list(values).index(want)
                else:
                    index[i] = int(np.argmin(np.abs(np.asarray(values, float) - want)))
        if coords:
            raise ValueError(f"unknown axes {list(coords)}; the axes are {list(self.axes)}")
        return {k: v[tuple(index)] for k, v in self.data.items()}

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        save_arrays(folder / "results.npz", **self.data)
        save_json(
            folder / "results.json",
            {
                "description": "flatter sweep: arrays in results.npz have the shape of `axes` "
                "(variant, gamma, C, eta, sigma, batch_size, seed)",
                "axes": {k: list(v) for k, v in self.axes.items()},
                "fields": list(self.data),
                "spec": self.spec.to_json(),
                "digest": self.spec.digest,
                **self.meta,
            },
        )


def load(folder: str | Path) -> SweepResults:
    """Load a finished sweep from its folder: ``results = flatter.sweep.load("out/sweep")``."""
    folder = Path(folder)
    meta = json.loads((folder / "results.json").read_text())
    spec_json = meta.pop("spec")
    spec = SweepSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec_json.items()})
    with np.load(folder / "results.npz") as f:
        data = {k: f[k] for k in f.files}
    return SweepResults(spec, data, meta)
