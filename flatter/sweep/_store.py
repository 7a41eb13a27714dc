"""A sweep's results folder that cannot lie: every chunk names the sweep it belongs to and is verified.

Layout of ``out/``: ``spec.json`` (the spec and its digest), ``chunks/*.npz`` (one file per computed
chunk: the spec digest, the run indices and the per-run fields) and, once every run is done,
``results.json`` / ``results.npz``. A chunk is trusted only if it opens, carries this spec's digest
and holds valid run indices; anything else is an error that names the file, what is wrong and what
to do. Which runs are done is read from the chunks themselves, so resuming does not depend on how
the remaining runs are chunked (device count, ``chunk_size``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .._io import UNREADABLE_FILE_ERRORS, save_arrays, save_json
from ._grid import drawn_by_shuffle

CHUNK_FORMAT = 1

FIELDS = ("T_first", "T_settle", "censored_first", "censored_settle", "diverged", "final_value", "horizon")
"""The per-run fields of every sweep: first-passage and settling steps, their censoring flags, divergence, the
observable's final value and the horizon."""


def fields_of(spec) -> tuple[str, ...]:
    """The per-run fields a sweep stores: :data:`FIELDS` and a ``curve_<name>`` per recorded curve."""
    return FIELDS + tuple(f"curve_{name}" for name in spec.curves)


class SweepStoreError(ValueError):
    """A results folder that does not match the sweep asked of it; the message names the file."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; the message says how many runs are saved (a rerun resumes from them)."""


class SweepIncomplete(SweepStoreError):
    """``load`` of a sweep whose runs are not all done (``load(folder, partial=True)`` returns them)."""


def arrays_checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the named arrays (names, dtypes, shapes and bytes), so results cannot be relabelled or swapped."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def chunk_files(out: Path) -> list[Path]:
    folder = out / "chunks"
    return sorted(folder.glob("*.npz")) if folder.is_dir() else []


def claim_folder(out: Path, spec, start: str | None = None) -> None:
    """Check that ``out`` is free or holds this sweep (before any work; under the lock).

    A ``spec.json`` of another sweep, or of this spec from another model or start point (``start``: the
    :func:`~flatter.sweep.start_digest` of a user's problem), is refused when the folder holds any of its
    results; one left alone by a failed start (no chunk, no results) is replaced. An unreadable ``spec.json``
    beside chunks is refused (the chunks are then checked one by one against this spec when it is removed).
    """
    spec_file = out / "spec.json"
    has_results = bool(chunk_files(out)) or (out / "results.npz").exists()
    if spec_file.exists():
        try:
            recorded = json.loads(spec_file.read_text())
            digest, recorded_start = recorded["digest"], recorded.get("start")
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
            if has_results:
                raise SweepStoreError(
                    f"{spec_file} is unreadable ({type(err).__name__}: {err}); the chunks in {out / 'chunks'} "
                    "carry their sweep's digest: delete spec.json to resume after they are checked, or start a "
                    "fresh folder"
                ) from None
            digest = None
        if digest is not None and digest != spec.digest and has_results:
            legacy = ""
            if isinstance(recorded, dict) and drawn_by_shuffle(recorded.get("spec", {})) and spec.sampling != "shuffle":
                legacy = " (its minibatches were drawn by flatter 0.1's shuffle: sampling='shuffle' resumes it)"
            raise SweepStoreError(
                f"{out} holds results of a different sweep (digest {digest}, this one is {spec.digest}){legacy}; "
                "choose another folder or remove this one"
            )
        if digest == spec.digest and recorded_start != start and has_results:
            raise SweepStoreError(
                f"{out} holds results of this spec from another model or start point (start digest "
                f"{recorded_start}, this one is {start}): choose another folder or remove this one"
            )


def record_spec(out: Path, spec, start: str | None = None) -> None:
    """Write ``spec.json`` (the spec, its digest and the start digest), once the folder's chunks are verified."""
    save_json(out / "spec.json", {"digest": spec.digest, "start": start, "spec": spec.to_json()})


def write_chunk(path: Path, digest: str, runs: np.ndarray, *, start: str | None = None, **fields: np.ndarray) -> None:
    """Atomically write one chunk: its sweep's digest and start digest, its run indices and the per-run fields."""
    save_arrays(
        path, flatter_chunk_format=CHUNK_FORMAT, digest=np.array(digest), start=np.array(str(start)), run=runs, **fields
    )


def read_chunk(
    path: Path, digest: str, num_runs: int, fields: tuple[str, ...], start: str | None = None
) -> dict[str, np.ndarray]:
    """Read a chunk and verify it belongs to the sweep ``digest`` (and, given ``start``, to that model and start
    point); every problem is an error naming ``path``."""
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except UNREADABLE_FILE_ERRORS as err:
        raise SweepStoreError(
            f"{path} is truncated or corrupted ({type(err).__name__}: {err}); delete this file and rerun the same "
            "sweep to recompute just its runs"
        ) from None
    if "digest" not in data or "run" not in data:
        raise SweepStoreError(
            f"{path} does not say which sweep it belongs to (written by an older flatter, or not a chunk); delete "
            "it and rerun the same sweep to recompute its runs, or start a fresh folder"
        )
    if str(data["digest"]) != digest:
        raise SweepStoreError(
            f"{path} belongs to another sweep (digest {data['digest']}, this one is {digest}): its results must not "
            "be mixed in; start a fresh folder, or delete the folder's chunks to recompute this sweep"
        )
    if start is not None and str(data.get("start", "None")) != start:
        raise SweepStoreError(
            f"{path} was computed from another model or start point (start digest {data.get('start')}, this one is "
            f"{start}): start a fresh folder, or delete the folder's chunks to recompute this sweep"
        )
    runs = data["run"]
    missing = [k for k in fields if k not in data]
    if runs.ndim != 1 or (runs.size and (runs.min() < 0 or runs.max() >= num_runs)) or missing:
        raise SweepStoreError(
            f"{path} is malformed (run indices outside [0, {num_runs}) or fields {missing} missing); delete this file "
            "and rerun the same sweep to recompute its runs"
        )
    return data


def done_runs(out: Path, digest: str, num_runs: int, fields: tuple[str, ...], start: str | None = None) -> np.ndarray:
    """The runs that verified chunks of this sweep (and start) hold (raises on the first bad chunk)."""
    done = np.zeros(num_runs, bool)
    for path in chunk_files(out):
        done[read_chunk(path, digest, num_runs, fields, start)["run"]] = True
    return done


def write_plan(out: Path, digest: str, representative: np.ndarray, horizon: np.ndarray) -> None:
    """Record which run stands for which (deduplicated runs) and the horizons, for partial loads."""
    save_arrays(out / "plan.npz", digest=np.array(digest), representative=representative, horizon=horizon)


def read_plan(out: Path, digest: str, num_runs: int) -> np.ndarray:
    """The representative of every run (each run its own when no plan was written yet)."""
    path = out / "plan.npz"
    if not path.exists():
        return np.arange(num_runs)
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["digest"]) != digest:
                raise SweepStoreError(f"{path} belongs to another sweep (digest {f['digest']}); start a fresh folder")
            representative = f["representative"]
    except UNREADABLE_FILE_ERRORS as err:
        raise SweepStoreError(f"{path} is unreadable ({type(err).__name__}: {err}); rerun the same sweep") from None
    if representative.shape != (num_runs,):
        raise SweepStoreError(f"{path} is malformed (expected {num_runs} runs); rerun the same sweep")
    return representative


def assemble(out: Path, spec, representative: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The per-run fields from the verified chunks, on the grid; runs not done yet are NaN / flagged.

    Returns ``(data, finished)``, both shaped ``spec.shape``; deduplicated runs take their
    representative's values.
    """
    num = representative.size
    fields = fields_of(spec)
    data = {
        k: np.full(num, np.nan)
        if k in ("T_first", "T_settle", "final_value")
        else (np.zeros(num, bool) if k.startswith(("censored", "diverged")) else np.full(num, -1, np.int64))
        for k in FIELDS
    }
    data.update({k: np.full((num, spec.records + 1), np.nan) for k in fields if k.startswith("curve_")})
    finished = np.zeros(num, bool)
    for path in chunk_files(out):
        chunk = read_chunk(path, spec.digest, num, fields)
        for k in fields:
            data[k][chunk["run"]] = chunk[k]
        finished[chunk["run"]] = True
    data = {k: v[representative].reshape(spec.shape + v.shape[1:]) for k, v in data.items()}
    return data, finished[representative].reshape(spec.shape)
