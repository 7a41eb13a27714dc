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


def _spec_from_json(spec_json: dict) -> SweepSpec:
    return SweepSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec_json.items()})


def load(folder: str | Path, *, partial: bool = False) -> SweepResults:
    """Load a sweep from its folder: ``results = flatter.sweep.load("out/sweep")``.

    A finished sweep loads from ``results.json``/``results.npz``. An unfinished one raises
    :class:`~flatter.sweep.SweepIncomplete` saying how many runs are done; with ``partial=True`` it
    returns them from the verified chunks, the other runs NaN (``T_*``, ``final_value``) with
    ``horizon = -1``, and ``data["finished"]`` marking which are real. Unreadable or foreign files
    raise :class:`~flatter.sweep.SweepStoreError` naming the file.
    """
    from ._run import assemble
    from ._store import SweepIncomplete, SweepStoreError, read_plan

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no sweep folder at {folder}")
    results_file, spec_file = folder / "results.json", folder / "spec.json"
    if results_file.exists() and not partial:
        try:
            meta = json.loads(results_file.read_text())
            spec = _spec_from_json(meta.pop("spec"))
            with np.load(folder / "results.npz", allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError, OSError, ValueError) as err:
            raise SweepStoreError(
                f"the results in {folder} are unreadable ({type(err).__name__}: {err}); rerun the same sweep into "
                "this folder to rebuild them from its chunks"
            ) from None
        if meta.get("digest") not in (None, spec.digest):
            raise SweepStoreError(f"{results_file} does not match its own spec (digest {meta.get('digest')})")
        return SweepResults(spec, data, meta)
    try:
        spec = _spec_from_json(json.loads(spec_file.read_text())["spec"])
    except FileNotFoundError:
        raise SweepStoreError(f"{folder} holds no sweep (no spec.json, no results.json)") from None
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise SweepStoreError(f"{spec_file} is unreadable ({type(err).__name__}: {err})") from None
    data, finished = assemble(folder, spec, read_plan(folder, spec.digest, int(np.prod(spec.shape))))
    if not partial and not finished.all():
        raise SweepIncomplete(
            f"{folder} is unfinished: {int(finished.sum())} of {finished.size} runs done; rerun the same sweep to "
            "finish it, or load(folder, partial=True) for the finished runs"
        )
    data["finished"] = finished
    return SweepResults(spec, data, {"partial": True, "runs_done": int(finished.sum()), "digest": spec.digest})
