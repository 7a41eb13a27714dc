"""The results folder cannot lie: foreign, truncated and unreadable files are named; partial loads; permissions."""

import json
import os
import re
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


def test_resume_does_not_depend_on_the_chunking_and_says_what_it_found(tmp_path, capsys):
    run_sweep(spec(), tmp_path / "a", chunk_size=2, max_chunks=3, progress=False)
    assert "resuming" not in capsys.readouterr().out  # a fresh folder
    resumed = run_sweep(spec(), tmp_path / "a", chunk_size=256, progress=False)
    found = re.search(r"resuming: (\d+) of (\d+) runs found in (\S+)", capsys.readouterr().out)
    assert found and 0 < int(found[1]) <= 6 < int(found[2]) and found[3] == str(tmp_path / "a")
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


def test_a_second_sweep_into_a_locked_folder_is_refused_and_loses_nothing(tmp_path):
    from flatter.sweep._lock import folder_lock

    first = run_sweep(spec(), tmp_path, chunk_size=4, max_chunks=1, progress=False)
    assert first is None
    before = {p.name: p.read_bytes() for p in chunks(tmp_path)}
    with folder_lock(tmp_path):  # what a running sweep holds (another open file: the OS refuses it here too)
        for other in (spec(), spec(seed=1)):
            with pytest.raises(
                SweepStoreError, match=rf"another process is running a sweep into {tmp_path} \(pid \d+\)"
            ):
                run_sweep(other, tmp_path, progress=False)
    assert {p.name: p.read_bytes() for p in chunks(tmp_path)} == before
    assert json.loads((tmp_path / "spec.json").read_text())["digest"] == spec().digest
    assert run_sweep(spec(), tmp_path, chunk_size=4, progress=False) is not None  # the lock is free again


def test_a_lock_left_by_a_killed_process_is_free(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from flatter.sweep import _lock\n"
         "with _lock.folder_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(600)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(SweepStoreError, match=rf"\(pid {holder.pid}\)"):
        run_sweep(spec(), tmp_path, progress=False)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    time.sleep(0.1)
    assert run_sweep(spec(), tmp_path, progress=False) is not None


def test_load_refuses_results_of_another_sweep(tmp_path):
    import shutil

    run_sweep(spec(), tmp_path / "a", progress=False)
    run_sweep(spec(seed=1), tmp_path / "b", progress=False)
    for copy in "cd":  # the same finished sweep three times over
        shutil.copytree(tmp_path / "a", tmp_path / copy)
    shutil.copy(tmp_path / "b" / "results.npz", tmp_path / "a" / "results.npz")  # same shapes, other numbers
    with pytest.raises(SweepStoreError, match=r"not of one sweep"):
        load(tmp_path / "a")
    shutil.copy(tmp_path / "b" / "results.json", tmp_path / "c" / "results.json")  # relabels c's arrays
    with pytest.raises(SweepStoreError, match=r"results.json belongs to another sweep"):
        load(tmp_path / "c")
    with np.load(tmp_path / "d" / "results.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["T_settle"] = arrays["T_settle"] + 1.0  # edited in place, digest kept
    np.savez_compressed(tmp_path / "d" / "results.npz", **arrays)
    with pytest.raises(SweepStoreError, match=r"checksum mismatch"):
        load(tmp_path / "d")
    assert load(tmp_path / "a", partial=True).data["finished"].all()  # the chunks still hold the truth


def test_another_model_or_start_in_the_same_folder_is_refused_never_answered_from_the_store(tmp_path):
    import jax.numpy as jnp

    import flatter
    from flatter.sweep import SweepSpec, start_digest

    x = jnp.array([[1.0, 0.5], [0.3, 1.0], [0.2, -0.4]])
    square = flatter.Problem(lambda w, x: x @ (w * w), x, jnp.ones(3), name="mine")
    quartic = flatter.Problem(lambda w, x: x @ (w**4), x, jnp.ones(3), name="mine")  # same name, data: other model
    fields = dict(observable="loss", threshold=1e-3, phase1=False, gammas=(0.5,), etas=(0.05, 0.1), seeds=2,
                  max_steps=2**10, flow_time=1.0)  # fmt: skip
    spec = SweepSpec.for_problem(square, **fields)
    assert SweepSpec.for_problem(quartic, **fields).digest == spec.digest  # the data and the name agree
    w0 = jnp.array([1.0, 0.7])
    assert start_digest(square, w0) == start_digest(square, jnp.array([1.0, 0.7]))  # deterministic
    assert start_digest(square, w0) != start_digest(quartic, w0) != start_digest(square, w0 + 0.1)
    first = run_sweep(spec, tmp_path, problem=square, params0=w0, progress=False)
    for problem, params0 in ((quartic, w0), (square, w0 + 0.1)):
        with pytest.raises(SweepStoreError, match=r"another model or start point"):
            run_sweep(spec, tmp_path, problem=problem, params0=params0, progress=False)
    (tmp_path / "spec.json").unlink()  # the chunks still know
    with pytest.raises(SweepStoreError, match=r"chunks/.*computed from another model or start point"):
        run_sweep(spec, tmp_path, problem=quartic, params0=w0, progress=False)
    again = run_sweep(spec, tmp_path, problem=square, params0=w0, progress=False)
    np.testing.assert_array_equal(again.data["T_settle"], first.data["T_settle"])


def test_two_processes_into_one_folder_one_is_refused_and_nothing_is_lost(tmp_path):
    """Two real processes: the second starts while the first holds the folder (the first waits, lock held, for
    a go file before it computes), is refused with one line, and the first then finishes the sweep untouched."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    go = tmp_path / "go"
    script = (
        "import os, sys, time; sys.path.insert(0, sys.argv[2]); import jax; jax.config.update('jax_enable_x64', True)\n"
        "from helpers import toy_spec; import flatter.sweep._run as run\n"
        "compute = run.execute_plan\n"
        "def gated(*args, **kwargs):\n"
        "    while not os.path.exists(sys.argv[4]): time.sleep(0.05)\n"
        "    return compute(*args, **kwargs)\n"
        "run.execute_plan = gated\n"
        "run.run_sweep(toy_spec(seeds=int(sys.argv[3]), max_steps=2**12), sys.argv[1], chunk_size=4, progress=False)\n"
        "print('finished', flush=True)"
    )
    out, tests = tmp_path / "sweep", str(Path(__file__).parent)
    first = subprocess.Popen(
        [sys.executable, "-c", script, str(out), tests, "4", str(go)], stdout=subprocess.PIPE, text=True
    )
    lock = out / ".lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
        assert first.poll() is None and time.monotonic() < deadline, "the first sweep never took the lock"
        time.sleep(0.05)
    try:  # refused at the lock (were it not, it would wait for the go file: a timeout)
        second = subprocess.run(
            [sys.executable, "-c", script, str(out), tests, "3", str(go)], capture_output=True, text=True, timeout=120
        )
    finally:
        go.touch()
    assert second.returncode != 0
    assert f"another process is running a sweep into {out} (pid {first.pid})" in second.stderr
    assert first.wait(timeout=600) == 0 and first.stdout.read().strip() == "finished"
    results = load(out)
    assert results.spec.seeds == 4 and np.isfinite(results.data["T_settle"]).all()
    alone = run_sweep(spec(seeds=4), tmp_path / "alone", chunk_size=4, progress=False)
    np.testing.assert_array_equal(results.data["T_settle"], alone.data["T_settle"])


def test_ctrl_c_mid_sweep_says_how_many_runs_are_saved_and_the_rerun_resumes(tmp_path, monkeypatch):
    import flatter.sweep._run as run
    from flatter.sweep import SweepInterrupted

    written = []
    write = run.write_chunk

    def interrupted_on_the_third(path, *args, **kwargs):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(path)
        write(path, *args, **kwargs)

    monkeypatch.setattr(run, "write_chunk", interrupted_on_the_third)
    with pytest.raises(SweepInterrupted, match=r"interrupted: (\d+) of 18 runs saved in .*rerun the same sweep") as e:
        run_sweep(spec(), tmp_path, chunk_size=4, progress=False)
    saved = sum(len(np.load(p)["run"]) for p in chunks(tmp_path))
    assert f"interrupted: {saved} of 18 runs saved" in str(e.value) and saved > 0
    monkeypatch.setattr(run, "write_chunk", write)
    resumed = run_sweep(spec(), tmp_path, chunk_size=4, progress=False)
    fresh = run_sweep(spec(), tmp_path / "fresh", chunk_size=4, progress=False)
    np.testing.assert_array_equal(resumed.data["T_settle"], fresh.data["T_settle"])
