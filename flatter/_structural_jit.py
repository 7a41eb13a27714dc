"""Compile a function once per *program*, whatever Python closures it was built from.

``jax.jit`` caches on the identity of the function and of its static arguments. An optimizer built
afresh in a loop (``flatter.heavy_ball(eta, beta)`` for each ``eta``) is a new closure every time,
so an eager ``flatter.simulate`` over a grid of hyperparameters would recompile at every point.
:func:`structural_jit` instead traces the function to a jaxpr, keys the cache on the jaxpr's text
(the program, with the closed-over arrays as inputs rather than values) and runs the cached
executable with this call's closed-over arrays. Hyperparameters held as JAX arrays (flatter's
transforms convert theirs; ``label_noise`` keeps sigma and its key in the state) therefore cost no
compile; a Python float that ends up as a literal in the program still does, which is correct.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jax
from jax.extend import core as jax_core

_CACHE: OrderedDict[str, Callable] = OrderedDict()
_MAX_ENTRIES = 64
_COMPILED = 0  # programs compiled so far (the cache itself holds at most _MAX_ENTRIES of them)


def structural_jit(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)`` compiled, reusing an executable for any earlier call with the same program.

    The program is identified by the text of ``jax.make_jaxpr(fn)(*args)`` (primitives, shapes,
    dtypes, literals) and the tree structures of the inputs and outputs. Tracing costs milliseconds;
    a compile costs seconds.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flatter._structural_jit import structural_jit, cache_size
      >>> before = cache_size()
      >>> outs = [structural_jit(lambda x, s=jnp.asarray(s): x * s, jnp.ones(3)) for s in (1.0, 2.0, 3.0)]
      >>> print(outs[2], cache_size() - before)  # three closures, one program, one compile
      [3. 3. 3.] 1
    """
    return structural_compile(fn, *args)(*args)


def structural_compile(fn: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    """``fn`` traced once at ``args`` and compiled as :func:`structural_jit` does: a function of arguments of
    the same structure, shapes and dtypes, for loops that call the same closure many times (no tracing per call).
    """
    flat_args, in_tree = jax.tree.flatten(args)
    closed, out_shape = jax.make_jaxpr(lambda *a: fn(*jax.tree.unflatten(in_tree, a)), return_shape=True)(*flat_args)
    out_tree = jax.tree.structure(out_shape)
    text = f"{in_tree}|{out_tree}|{closed.jaxpr}"
    key = hashlib.sha256(text.encode()).hexdigest()
    compiled = _CACHE.get(key)
    if compiled is None:
        global _COMPILED
        _COMPILED += 1
        jaxpr = closed.jaxpr
        compiled = jax.jit(lambda consts, flat: jax_core.jaxpr_as_fun(jax_core.ClosedJaxpr(jaxpr, consts))(*flat))
        _CACHE[key] = compiled
        if len(_CACHE) > _MAX_ENTRIES:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    consts = list(closed.consts)

    def call(*call_args: Any) -> Any:
        return jax.tree.unflatten(out_tree, compiled(consts, jax.tree.leaves(call_args)))

    return call


def cache_size() -> int:
    """The number of distinct programs compiled so far (for tests and verbose reports)."""
    return _COMPILED
