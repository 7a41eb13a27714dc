"""Shared helpers: a quadratic test loss, NumPy heavy-ball recurrences, a small toy-valley sweep spec, a
diagonal linear network built as a user would and a CIFAR-10 archive in the official format."""

import contextlib
import gzip
import io
import pickle
import re
import struct
import tarfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jaxtyping import TypeCheckError

A = np.array([[2.0, 0.3], [0.3, 0.5]])
B = np.array([1.0, -1.0])


def grad_np(theta):
    return A @ theta - B


def run_optax(tx, steps=25, theta0=(1.0, 2.0)):
    theta = jnp.asarray(theta0)
    state = tx.init(theta)
    out = []
    for _ in range(steps):
        updates, state = tx.update(jnp.asarray(A) @ theta - jnp.asarray(B), state, theta)
        theta = optax.apply_updates(theta, updates)
        out.append(np.asarray(theta))
    return np.array(out)


def run_numpy(eta, beta, nesterov=False, steps=25, theta0=(1.0, 2.0)):
    theta, v, out = np.array(theta0), np.zeros(2), []
    for k in range(steps):
        g = grad_np(theta)
        v = beta * v + g
        step = g + beta * v if nesterov else v
        theta = theta - eta(k) * step if callable(eta) else theta - eta * step
        out.append(theta.copy())
    return np.array(out)


def toy_spec(**kw):
    """A small toy-valley sweep (2 gammas x 2 etas x 4 seeds, SGDM and SGD at the same eta), fields overridable."""
    from flatter.sweep import SweepSpec

    base = dict(
        problem="toy-valley",
        gammas=(0.5, 2 / 3),
        etas=(0.01, 0.004),
        seeds=4,
        observable="abs_y",
        threshold=0.1,
        phase1=False,
        variants=("sgdm", "sgd-same-eta"),
        max_steps=2**14,
    )
    base.update(kw)
    return SweepSpec(**base)


def diagonal_network():
    """A user's Problem on a valley flatter was not tuned on: f = <u*u - v*v, x>, d = 4, n = 2, with
    non-uniform curvature along Gamma, and a point of Gamma (Gauss-Newton from a generic start)."""
    import flatter

    inputs = jnp.array([[1.0, 0.5, 0.2, 0.1], [0.3, 1.0, 0.7, 0.4]])

    def predict(theta, x):
        u, v = theta[:4], theta[4:]
        return x @ (u * u - v * v)

    problem = flatter.Problem(predict, inputs, jnp.array([1.0, 0.6]), name="diagonal-network")
    start, _ = flatter.interpolate(problem, jnp.concatenate([jnp.full(4, 0.8), jnp.full(4, 0.3)]))
    return problem, flatter.valley.project(problem, start)  # on Gamma to machine precision


def cifar_batch(n, offset, learnable=False):
    """One CIFAR-10 batch dict as the official pickles hold it: n random images, labels cycling from offset.

    ``learnable``: each class's images are a stripe pattern of its own orientation and frequency plus noise, so a
    network fits them in a few dozen steps (random pixels take hundreds); normalization per image leaves the
    pattern.
    """
    rng = np.random.default_rng(offset)
    labels = [(i + offset) % 10 for i in range(n)]
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    if learnable:
        y, x = np.mgrid[0:32, 0:32] / 32.0
        angle = np.pi * np.asarray(labels)[:, None, None] / 10
        stripes = np.sin(2 * np.pi * 3 * (np.cos(angle) * x + np.sin(angle) * y))
        image = 128 + 90 * stripes[:, None] + rng.normal(0, 20, (n, 3, 32, 32))
        data = np.clip(image, 0, 255).astype(np.uint8).reshape(n, 3072)
    return {b"batch_label": b"batch", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}


def write_cifar(folder: Path, archive: bool, per_batch: int = 4, test: int = 3, learnable: bool = False) -> dict:
    """Five training batches and a test batch in the official "python version" format (random pixels, or
    ``learnable`` class patterns: :func:`cifar_batch`)."""
    batches = {f"data_batch_{i}": cifar_batch(per_batch, i, learnable) for i in range(1, 6)} | {
        "test_batch": cifar_batch(test, 9, learnable)
    }
    blobs = {name: pickle.dumps(batch, protocol=2) for name, batch in batches.items()}
    if archive:
        with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, blob in blobs.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        (folder / "cifar-10-batches-py").mkdir()
        for name, blob in blobs.items():
            (folder / "cifar-10-batches-py" / name).write_bytes(blob)
    return batches


SHARED_FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist" / "fashion-mnist-70k.npz"
"""The fallback copy of Fashion-MNIST (70,000 images without the official split), for machines without the
Debian package."""


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """An IDX file (uint8 data) as the official Fashion-MNIST files are written, gzipped or not."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


@contextlib.contextmanager
def refused(error: type[Exception], pattern: str):
    """``pytest.raises(error, match=pattern)``, or jaxtyping's ``TypeCheckError`` naming the same parameter.

    The suite runs under jaxtyping's runtime type checker (pyproject's ``addopts``), which refuses an argument
    of the wrong type before flatter's own check can; its message names the parameter, and ``pattern``
    starts with that name. ``tests/test_bad_input.py`` also runs its table without the checker, so flatter's
    own messages (what a user without the checker sees) stay tested.
    """
    parameter = re.match(r"[A-Za-z_]\w*", pattern)
    with pytest.raises((error, TypeCheckError)) as caught:
        yield caught
    if caught.type is TypeCheckError and not issubclass(error, TypeCheckError):
        assert parameter is not None, f"the type checker refused, but {pattern!r} names no parameter"
        # the parameter the pattern names, or one it abbreviates (params for params0)
        assert re.search(rf"parameter '{parameter.group()}\w*'", str(caught.value)), str(caught.value)
    else:
        assert caught.type is error or issubclass(caught.type, error)
        assert re.search(pattern, str(caught.value)), f"{pattern!r} not in {caught.value}"


SILENCE_LIMIT = 10.0
"""Seconds a command may go without printing (issue 20: nothing silent for long on 2 cores)."""


def gaps_between(stamps: list[float]) -> str:
    """The longest gap between successive output times, with where it fell (for a failure message)."""
    gaps = np.diff(stamps)
    i = int(gaps.argmax())
    return f"{gaps[i]:.1f} s silent after {stamps[i] - stamps[0]:.1f} s of {stamps[-1] - stamps[0]:.1f} s"


@contextlib.contextmanager
def never_silent(limit: float = SILENCE_LIMIT):
    """Times every write to stdout and stderr (prints and progress bars) while the body runs, and fails if two
    writes, or the start and the first, or the last and the end, are more than ``limit`` seconds apart."""
    import sys
    import time

    stamps = [time.monotonic()]

    class Clocked:
        def __init__(self, stream):
            self._stream = stream

        def write(self, text):
            if text:
                stamps.append(time.monotonic())
            return self._stream.write(text)

        def __getattr__(self, name):
            return getattr(self._stream, name)

    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Clocked(sys.stdout), Clocked(sys.stderr)
    try:
        yield stamps
    finally:
        sys.stdout, sys.stderr = saved
    stamps.append(time.monotonic())
    assert max(np.diff(stamps)) <= limit, gaps_between(stamps)


def run_clocked(command: list[str], timeout: float, **kwargs) -> tuple[int, str, list[float]]:
    """Run a command with its output unbuffered; its exit status, its output (stdout and stderr interleaved) and
    the times each piece of output arrived, from the start to the exit."""
    import os
    import subprocess
    import time

    env = {**kwargs.pop("env", os.environ), "PYTHONUNBUFFERED": "1"}
    stamps, pieces = [time.monotonic()], []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, **kwargs) as proc:
        while piece := os.read(proc.stdout.fileno(), 65536):
            stamps.append(time.monotonic())
            pieces.append(piece)
            if stamps[-1] - stamps[0] > timeout:
                proc.kill()
                raise TimeoutError(f"{command} ran past {timeout} s")
        code = proc.wait()
    stamps.append(time.monotonic())
    return code, b"".join(pieces).decode(errors="replace"), stamps
