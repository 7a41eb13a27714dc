"""Float32 matrix products at full precision, unless the user chose a precision.

On NVIDIA GPUs JAX multiplies float32 matrices in TF32 by default (about 3 significant digits).
That is too coarse for flatter's work: phase 1 interpolates to a loss of 1e-8, and the label noise
of a small sigma is a perturbation of a few percent of the residual. flatter's drivers therefore
trace and compile under ``jax.default_matmul_precision("highest")`` when
``jax_default_matmul_precision`` is unset; a user who sets it (globally or in a ``with`` block) keeps
their choice. On CPU float32 products are exact already and nothing changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """Enter ``jax.default_matmul_precision("highest")`` if no precision is configured.

    Examples:
      >>> import jax
      >>> from flatter._precision import full_precision
      >>> with full_precision():
      ...     print(jax.config.jax_default_matmul_precision)
      highest
    """
    if jax.config.jax_default_matmul_precision is None:
        with jax.default_matmul_precision("highest"):
            yield
    else:
        yield
