"""Tests run in float64 so that comparisons with NumPy recurrences are tight."""

import os
import shutil
import tempfile

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

CACHE_VARIABLE = "FLATTER_TEST_COMPILATION_CACHE"
"""The run's persistent compilation cache: made by the first process (pytest, or xdist's controller), inherited by
the workers and by every subprocess the tests start (the CLI reads FLATTER_COMPILATION_CACHE_DIR)."""


def _share_one_compilation_cache(config) -> None:
    """A program that several tests build (the same sweep chunk, the same CLI command) is compiled once per run:
    JAX's persistent cache in a fresh folder, so a run never reads what an earlier run (or the user) compiled."""
    if CACHE_VARIABLE not in os.environ:
        os.environ[CACHE_VARIABLE] = tempfile.mkdtemp(prefix="flatter-test-jax-cache-")
        config._flatter_cache_owner = True
    os.environ["FLATTER_COMPILATION_CACHE_DIR"] = os.environ[CACHE_VARIABLE]  # the CLI's
    os.environ["FLATTER_COMPILATION_CACHE"] = "1"
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[CACHE_VARIABLE]  # JAX's own, for scripts and notebooks
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"  # the costly ones; eager ops recompile
    jax.config.update("jax_compilation_cache_dir", os.environ[CACHE_VARIABLE])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    if getattr(config, "_flatter_cache_owner", False):
        shutil.rmtree(os.environ.pop(CACHE_VARIABLE), ignore_errors=True)


@pytest.fixture
def own_compiles():
    """No persistent cache inside the test: it counts compiles, and a program another test compiled would be read
    back instead (JAX memoizes whether the cache is on, so the switch resets it both ways)."""
    from jax._src import compilation_cache

    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", True)
        compilation_cache.reset_cache()


def pytest_configure(config):
    _share_one_compilation_cache(config)
    # Every figure a test writes goes through flatter.figures.save_figure's geometry check: a text off the figure
    # or into another panel fails the test (after x64 is on: the category's import loads flatter).
    config.addinivalue_line("filterwarnings", "error::flatter.figures.LayoutWarning")


def pytest_collection_modifyitems(config, items):
    """The heavy tests first: over several workers (pytest-xdist) the suite then ends when its many short tests do."""

    def order(item):  # the longest first (heavy(minutes=...)), then the other heavy ones, then file order
        heavy = item.get_closest_marker("heavy")
        return (0, -heavy.kwargs.get("minutes", 1)) if heavy is not None else (1, 0)

    items.sort(key=order)


@pytest.fixture(scope="session")
def fashion_idx_folder(tmp_path_factory):
    """The official Fashion-MNIST files: Debian's package where installed (CI installs it), else IDX files written
    from the shared fallback copy (its first 60,000 images as the training split; not the official split)."""
    from helpers import SHARED_FASHION, write_idx

    from flatter.data import DEBIAN_FOLDER

    if (DEBIAN_FOLDER / "train-images-idx3-ubyte.gz").exists():
        return DEBIAN_FOLDER
    folder = tmp_path_factory.mktemp("fashion-mnist")
    with np.load(SHARED_FASHION) as f:
        images, labels = f["images"], f["labels"]
    for name, array in (
        ("train-images-idx3-ubyte", images[:60000]),
        ("train-labels-idx1-ubyte", labels[:60000]),
        ("t10k-images-idx3-ubyte", images[60000:]),
        ("t10k-labels-idx1-ubyte", labels[60000:]),
    ):
        write_idx(folder / name, array, gz=False)
    return folder
