"""A sweep over two processes (jax.distributed on localhost, CPU devices, gloo collectives).

Checks that the results equal a one-process run on the same two devices, that only process 0 writes,
and that a sweep whose process is killed mid-way resumes without losing a finished chunk.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import sys, time
import jax
pid, nproc, port, out, slow = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
jax.config.update("jax_num_cpu_devices", 2 // nproc)  # two devices in all, however many processes
if nproc > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=nproc, process_id=pid,
                               initialization_timeout=60)
import flatter._io, flatter.sweep._run as run
if pid != 0:  # process 0 alone may write: any write from here fails the run
    def refuse(*args, **kwargs):
        raise AssertionError(f"process {pid} tried to write {args[0]}")
    flatter._io.atomic_write_bytes = refuse
if slow:  # room to kill a process between chunks
    write = run.write_chunk
    run.write_chunk = lambda *a, **k: (write(*a, **k), time.sleep(slow))
from flatter.sweep import SweepSpec, run_sweep
spec = SweepSpec(problem="toy-valley", gammas=(0.5, 2 / 3), etas=(0.01, 0.004), seeds=5, observable="abs_y",
                 threshold=0.1, phase1=False, variants=("sgdm", "sgd-same-eta"), max_steps=2**12)
res = run_sweep(spec, out, chunk_size=2, progress=False)
print("finished", pid, jax.process_count(), jax.device_count(), flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start(pid, nproc, port, out, slow=0.0):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(pid), str(nproc), str(port), str(out), str(slow)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_pair(out, slow=0.0):
    port = free_port()
    procs = [start(pid, 2, port, out, slow) for pid in (0, 1)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stdout[-2000:] + stderr[-4000:]
    return [stdout for stdout, _ in outputs]


def arrays(folder):
    with np.load(folder / "results.npz") as f:
        return {k: f[k] for k in f.files}


def test_two_processes_equal_one_process_and_only_process_0_writes(tmp_path):
    single = start(0, 1, 0, tmp_path / "single", 0.0)
    stdout, stderr = single.communicate(timeout=300)
    assert single.returncode == 0, stderr[-4000:]
    assert "finished 0 1 2" in stdout
    outputs = run_pair(tmp_path / "pair")
    assert "finished 0 2 2" in outputs[0] and "finished 1 2 2" in outputs[1]
    a, b = arrays(tmp_path / "pair"), arrays(tmp_path / "single")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.heavy
def test_a_killed_process_loses_no_finished_chunk(tmp_path):
    out = tmp_path / "pair"
    port = free_port()
    procs = [start(pid, 2, port, out, 0.5) for pid in (0, 1)]
    deadline = time.time() + 240
    while time.time() < deadline and len(list((out / "chunks").glob("*.npz"))) < 2:
        time.sleep(0.1)
    procs[1].send_signal(signal.SIGKILL)  # one process dies mid-sweep...
    time.sleep(0.5)
    procs[0].send_signal(signal.SIGKILL)  # ...and its partner, blocked in a collective, is stopped too
    for p in procs:
        p.communicate(timeout=60)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.npz")}
    assert before and not (out / "results.npz").exists()
    run_pair(out)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.npz")}
    assert all(after[name] == stamp for name, stamp in before.items())  # finished chunks were not redone
    fresh = tmp_path / "fresh"
    run_pair(fresh)
    a, b = arrays(out), arrays(fresh)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
