"""The results folder cannot lie: foreign, truncated and unreadable files are named; partial loads; permissions."""

import json
import os
import stat

import numpy as np
import pytest
from helpers import toy_spec

from flatter.sweep import SweepIncomplete, SweepStoreError, load, run_sweep


def spec(**kw):
    return toy_spec(**{"seeds": 3, "max_steps": 2**12, **kw})


def chunks(folder):
    return sorted((folder / "chunks").glob("*.npz"))


def test_chunks_of_another_spec_are_refused_even_without_spec_json(tmp_path):
    """The stale-results case: spec.json deleted, another seed rerun in the same folder."""
    run_sweep(spec(), tmp_path, progress=False)
    (tmp_path / "spec.json").unlink()
    with pytest.raises(SweepStoreError, match=r"chunks/.*\.npz belongs to another sweep"):
        run_sweep(spec(seed=1), tmp_path, progress=False)


def test_truncated_chunk_is_named_and_recomputing_it_restores_the_sweep(tmp_path):
    run_sweep(spec(), tmp_path / "a", chunk_size=4, max_chunks=2, progress=False)
    bad = chunks(tmp_path / "a")[0]
    os.truncate(bad, 100)
    with pytest.raises(SweepStoreError, match=rf"{bad.name} is truncated or corrupted.*delete this file"):
        run_sweep(spec(), tmp_path / "a", chunk_size=4, progress=False)
    with pytest.raises(SweepStoreError, match=bad.name):
        load(tmp_path / "a", partial=True)
    bad.unlink()
    resumed = run_sweep(spec(), tmp_path / "a", chunk_size=4, progress=False)
    fresh = run_sweep(spec(), tmp_path / "b", progress=False)
    for k in fresh.data:
        np.testing.assert_array_equal(resumed.data[k], fresh.data[k])


def test_resume_does_not_depend_on_the_chunking(tmp_path):
    run_sweep(spec(), tmp_path / "a", chunk_size=2, max_chunks=3, progress=False)
    resumed = run_sweep(spec(), tmp_path / "a", chunk_size=256, progress=False)
    fresh = run_sweep(spec(), tmp_path / "b", progress=False)
    np.testing.assert_array_equal(resumed.data["T_settle"], fresh.data["T_settle"])


def test_a_start_that_computed_nothing_leaves_the_folder_reusable(tmp_path):
    assert run_sweep(spec(), tmp_path, max_chunks=0, progress=False) is None
    assert (tmp_path / "spec.json").exists() and not chunks(tmp_path)
    res = run_sweep(spec(seeds=2), tmp_path, progress=False)  # the corrected spec is accepted
    assert json.loads((tmp_path / "spec.json").read_text())["digest"] == res.spec.digest


def test_a_different_spec_is_refused_once_results_exist(tmp_path):
    run_sweep(spec(), tmp_path, max_chunks=1, progress=False)
    with pytest.raises(SweepStoreError, match="holds results of a different sweep"):
        run_sweep(spec(seeds=4), tmp_path, progress=False)


def test_unreadable_spec_json(tmp_path):
    (tmp_path / "spec.json").write_text("{not json")
    run_sweep(spec(), tmp_path, max_chunks=1, progress=False)  # nothing to protect: reclaimed
    (tmp_path / "spec.json").write_text("{not json")
    with pytest.raises(SweepStoreError, match=r"spec.json is unreadable"):
        run_sweep(spec(), tmp_path, progress=False)


def test_load_of_an_unfinished_sweep_says_how_far_it_got_and_returns_the_finished_part(tmp_path):
    full = run_sweep(spec(), tmp_path / "full", progress=False)
    assert run_sweep(spec(), tmp_path / "part", chunk_size=4, max_chunks=1, progress=False) is None
    with pytest.raises(SweepIncomplete, match=r"unfinished: \d+ of 24 runs done.*partial=True"):
        load(tmp_path / "part")
    part = load(tmp_path / "part", partial=True)
    done = part.data["finished"]
    assert 0 < done.sum() < done.size
    np.testing.assert_array_equal(part.data["T_settle"][done], full.data["T_settle"][done])
    assert np.all(np.isnan(part.data["T_settle"][~done]))


def test_unreadable_results_are_named_and_rebuilt_by_a_rerun(tmp_path):
    run_sweep(spec(), tmp_path, progress=False)
    (tmp_path / "results.json").write_text("garbage")
    with pytest.raises(SweepStoreError, match="unreadable.*rerun the same sweep"):
        load(tmp_path)
    run_sweep(spec(), tmp_path, progress=False)
    assert load(tmp_path).spec == spec()
    with pytest.raises(FileNotFoundError, match="no sweep folder"):
        load(tmp_path / "nowhere")


def test_files_follow_the_umask(tmp_path):
    run_sweep(spec(), tmp_path, progress=False)
    mask = os.umask(0)
    os.umask(mask)
    for path in [tmp_path / "spec.json", tmp_path / "results.npz", *chunks(tmp_path)]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
