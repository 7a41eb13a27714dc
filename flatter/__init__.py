"""flatter: SGD with momentum and label noise near the valley of minimizers, in JAX.

Conventions (see README): heavy ball in the PyTorch/optax form v <- beta v + g, theta <- theta - eta v;
effective learning rate eta_eff = eta / (1 - beta); the momentum rule 1 - beta = C eta**gamma; the loss
L = (1/2n) sum_a |f_a - y_a|^2; label noise y -> y + sigma xi.

The public names are listed, as explicit re-exports, in ``flatter/_api.py``. They load on first use
(PEP 562), so ``import flatter`` and the ``flatter`` command start without importing JAX.
"""

import importlib
import importlib.metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # static analysers see the explicit re-exports
    from ._api import *  # noqa: F403

try:
    __version__ = importlib.metadata.version("flatter")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"


def __getattr__(name: str):
    _api = importlib.import_module("flatter._api")  # not `from . import`: that would call this hook again
    try:
        value = getattr(_api, name)
    except AttributeError:
        raise AttributeError(f"module 'flatter' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    _api = importlib.import_module("flatter._api")
    return sorted(set(globals()) | {n for n in vars(_api) if not n.startswith("_")})
