"""Tests run in float64 so that comparisons with NumPy recurrences are tight."""

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)


def pytest_configure(config):
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
