"""Sweep results: arrays labelled by the sweep's axes, with the spec and the environment; one-line load."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from .._io import UNREADABLE_FILE_ERRORS, save_arrays, save_json
from ._fit import OptimalGamma, PowerLawFit, optimal_gamma, power_law
from ._grid import SweepSpec
from ._store import SweepIncomplete, SweepStoreError, arrays_checksum, assemble, read_plan


@dataclasses.dataclass(frozen=True)
class SweepResults:
    """Per-run results on the grid ``spec.shape`` = (variant, gamma, C, eta, sigma, batch_size, seed).

    ``data[name]`` for ``name`` in :data:`flatter.sweep.FIELDS`: first-passage and settling steps (censored runs
    hold the horizon and are flagged), divergence, the observable's final value, the horizon.
    Load with ``flatter.sweep.load(folder)``; select with :meth:`sel`.
    """

    spec: SweepSpec
    data: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def axes(self) -> dict[str, tuple]:
        return self.spec.axes

    def dims(self, **coords) -> tuple[str, ...]:
        """The axis names of :meth:`sel`'s arrays for the same ``coords`` (with ``squeeze=True``)."""
        self._check_axes(coords)
        return tuple(name for name, values in self.axes.items() if name not in coords and len(values) > 1)

    def _check_axes(self, coords: dict) -> None:
        unknown = [name for name in coords if name not in self.axes]
        if unknown:
            raise ValueError(f"unknown axes {unknown}; the axes are {list(self.axes)}")

    def sel(self, *, squeeze: bool = True, **coords) -> dict[str, np.ndarray | np.generic]:
        """Index the data by axis values, e.g. ``sel(variant="sgdm", gamma=2/3)`` (nearest float; a NumPy scalar where
        every axis is fixed).

        The axes named are dropped; with ``squeeze`` (the default) so is every axis of length one
        (a sweep of one C, one sigma, full batch), so the arrays have the axes :meth:`dims` names, e.g.
        ``(eta, seed)`` for the sweep above: what :func:`~flatter.sweep.power_law` takes.
        """
        self._check_axes(coords)
        index: list[Any] = [slice(None)] * len(self.axes)
        for i, (name, values) in enumerate(self.axes.items()):
            if name in coords:
                want = coords[name]
                if isinstance(want, str) or want is None:
                    if want not in values:
                        raise ValueError(f"{name}={want!r} is not on the sweep's grid; its values are {list(values)}")
                    index[i] = list(values).index(want)
                else:
                    index[i] = int(np.argmin(np.abs(np.asarray(values, float) - want)))
            elif squeeze and len(values) == 1:
                index[i] = 0
        return {k: v[tuple(index)] for k, v in self.data.items()}

    def times(
        self, variant: str = "sgdm", gamma: float | None = None, criterion: str = "settle", **coords
    ) -> tuple[np.ndarray, np.ndarray]:
        """Convergence times and their censoring flags, ``(T, censored)``, for one variant (and gamma).

        ``criterion`` is one of :attr:`criteria`: ``"settle"`` (the last crossing into the criterion), ``"first"``
        (first passage), or one added by :meth:`with_criterion`.
        Every axis but eta, seed (and gamma when ``gamma`` is None) must be fixed by ``coords`` or have one
        value, so the arrays are ``(eta, seed)`` or ``(gamma, eta, seed)``.
        """
        if criterion not in self.criteria:
            raise ValueError(f"criterion must be one of {', '.join(map(repr, self.criteria))}, got {criterion!r}")
        t, c = self._fields((f"T_{criterion}", f"censored_{criterion}"), variant, gamma, **coords)
        return t, c

    def _fields(self, names, variant, gamma, **coords) -> list[np.ndarray]:
        # The named fields on the (eta, seed) or (gamma, eta, seed) axes that times() documents.
        coords = {"variant": variant, **coords}
        if gamma is not None:
            coords["gamma"] = gamma
        want = ("eta", "seed") if gamma is not None else ("gamma", "eta", "seed")
        free = [name for name in self.dims(**coords) if name not in want]
        if free:
            raise ValueError(
                f"the sweep has several values on axes {free}: name one of each, e.g. "
                + ", ".join(f"{n}={self.axes[n][0]!r}" for n in free)
            )
        d = self.sel(squeeze=False, **coords)
        keep = [name for name in self.axes if name not in coords]
        squeeze_axes = tuple(i for i, name in enumerate(keep) if name not in want)
        return [np.squeeze(d[name], squeeze_axes) for name in names]

    @property
    def criteria(self) -> tuple[str, ...]:
        """The convergence times held: ``"first"``, ``"settle"`` and any added by :meth:`with_criterion`."""
        return tuple(k[2:] for k in self.data if k.startswith("T_") and f"censored_{k[2:]}" in self.data)

    def with_criterion(self, name: str, times: np.ndarray, censored: np.ndarray) -> SweepResults:
        """These results with one more convergence time per run (``T_<name>``, ``censored_<name>``), shaped
        ``spec.shape`` (e.g. :meth:`plateau_times` of a recorded curve), for the fits and the summary."""
        times, censored = np.asarray(times, float), np.asarray(censored, bool)
        if times.shape != self.spec.shape or censored.shape != self.spec.shape:
            raise ValueError(
                f"times and censored must have the sweep's shape {self.spec.shape}, got {times.shape} and "
                f"{censored.shape}"
            )
        data = {**self.data, f"T_{name}": times, f"censored_{name}": censored}
        return dataclasses.replace(self, data=data)

    def plateau_times(self, curve: str = "test_accuracy", tolerance: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
        """Per run, :func:`flatter.plateau_time` of a recorded curve (``curves=(curve, ...)`` in the spec): the
        first record from which the smoothed curve stays within ``tolerance`` of its final plateau, in steps, and
        whether that is censored. Diverged runs are censored. Both shaped ``spec.shape``."""
        import jax.numpy as jnp

        from .._criteria import plateau_time

        key = f"curve_{curve}"
        if key not in self.data:
            have = [k[6:] for k in self.data if k.startswith("curve_")]
            raise ValueError(f"curve must be one the sweep recorded ({have}), got {curve!r}")
        values, horizon = self.data[key], self.data["horizon"]
        records = values.shape[-1] - 1
        times, censored = np.full(horizon.shape, np.nan), np.ones(horizon.shape, bool)
        for h in np.unique(horizon):
            if h <= 0:
                continue
            where = horizon == h
            steps = jnp.arange(records + 1) * (int(h) // records)
            t = plateau_time(steps, values[where], tolerance, diverged=self.data["diverged"][where])
            times[where], censored[where] = np.asarray(t.time), np.asarray(t.censored)
        return times, censored

    def power_law(
        self, variant: str = "sgdm", gamma: float = 2 / 3, criterion: str = "settle", **coords
    ) -> PowerLawFit:
        """:func:`~flatter.sweep.power_law` of ``T = A eta^-alpha`` for one variant and gamma (see :meth:`times`).

        Examples:
          ``results.power_law("sgdm", gamma=2/3).alpha``; for a sweep over several C, name one: ``C=0.5``.
        """
        t, c = self.times(variant, gamma, criterion, **coords)
        (diverged,) = self._fields(("diverged",), variant, gamma, **coords)
        return power_law(self.spec.etas, t, c, diverged=diverged)

    def optimal_gamma(self, variant: str = "sgdm", criterion: str = "settle", **coords) -> OptimalGamma:
        """:func:`~flatter.sweep.optimal_gamma` over the sweep's gammas, per eta (see :meth:`times`)."""
        t, c = self.times(variant, None, criterion, **coords)
        return optimal_gamma(self.spec.gammas, self.spec.etas, t, c)

    def to_xarray(self):
        """The results as an ``xarray.Dataset`` on the sweep's axes (needs the ``xarray`` extra)."""
        try:
            import xarray
        except ImportError:
            raise ImportError("to_xarray needs xarray: pip install 'flatter[xarray]'") from None
        names = list(self.axes)
        coords = {
            name: np.array(["full" if v is None else v for v in values]) if name == "batch_size" else np.array(values)
            for name, values in self.axes.items()
        }
        shape = self.spec.shape
        variables = {k: (names, v) for k, v in self.data.items() if v.shape == shape}
        return xarray.Dataset(variables, coords=coords, attrs={"digest": self.spec.digest})

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        # The arrays carry their sweep's digest and results.json their checksum: load() verifies both.
        save_arrays(folder / "results.npz", sweep_digest=np.array(self.spec.digest), **self.data)
        save_json(
            folder / "results.json",
            {
                "description": "flatter sweep: arrays in results.npz have the shape of `axes` "
                "(variant, gamma, C, eta, sigma, batch_size, seed)",
                "axes": {k: list(v) for k, v in self.axes.items()},
                "fields": list(self.data),
                "spec": self.spec.to_json(),
                **self.meta,
                "digest": self.spec.digest,
                "checksum": arrays_checksum(self.data),
            },
        )


def _verify_results(folder: Path, spec: SweepSpec, meta: dict, data: dict) -> None:
    """results.json, results.npz and spec.json must name one sweep, and the arrays be the ones results.json
    describes; ``data`` loses its ``sweep_digest`` entry."""
    rebuild = "rerun the same sweep into this folder to rebuild them from its chunks"
    try:
        on_disk = json.loads((folder / "spec.json").read_text())["digest"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        on_disk = spec.digest  # spec.json is optional beside finished results
    if on_disk != spec.digest:
        raise SweepStoreError(
            f"{folder / 'results.json'} belongs to another sweep (digest {spec.digest}) than {folder / 'spec.json'} "
            f"({on_disk}); {rebuild}"
        )
    stored = str(data.pop("sweep_digest", "none"))
    if meta.get("digest") != spec.digest or stored != spec.digest:
        raise SweepStoreError(
            f"the results in {folder} are not of one sweep: results.json's spec has digest {spec.digest}, its "
            f"'digest' field {meta.get('digest')} and results.npz {stored}; {rebuild}"
        )
    if meta.get("checksum") != arrays_checksum(data):
        raise SweepStoreError(
            f"{folder / 'results.npz'} does not hold the arrays {folder / 'results.json'} describes (checksum "
            f"mismatch); {rebuild}"
        )


def load(folder: str | Path, *, partial: bool = False) -> SweepResults:
    """Load a sweep from its folder: ``results = flatter.sweep.load("out/sweep")``.

    A finished sweep loads from ``results.json``/``results.npz``. An unfinished one raises
    :class:`~flatter.sweep.SweepIncomplete` saying how many runs are done; with ``partial=True`` it
    returns them from the verified chunks, the other runs NaN (``T_*``, ``final_value``) with
    ``horizon = -1``, and ``data["finished"]`` marking which are real. Unreadable or foreign files
    raise :class:`~flatter.sweep.SweepStoreError` naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no sweep folder at {folder}")
    results_file, spec_file = folder / "results.json", folder / "spec.json"
    if results_file.exists() and not partial:
        try:
            meta = json.loads(results_file.read_text())
            spec = SweepSpec.from_json(meta.pop("spec"))
            with np.load(folder / "results.npz", allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (*UNREADABLE_FILE_ERRORS, TypeError) as err:
            raise SweepStoreError(
                f"the results in {folder} are unreadable ({type(err).__name__}: {err}); rerun the same sweep into "
                "this folder to rebuild them from its chunks"
            ) from None
        _verify_results(folder, spec, meta, data)
        return SweepResults(spec, data, meta)
    try:
        spec = SweepSpec.from_json(json.loads(spec_file.read_text())["spec"])
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
