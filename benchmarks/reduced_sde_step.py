"""The reduced SDE's settling time against its step, where the motion along the valley rings (omega > 1).

On the toy valley at gamma = 0.85, eta = 1e-4, with 1 - beta chosen so that the along-valley oscillation has
angular frequency omega = sqrt(2 kappa) in s = (1 - beta) k (omega = 1.6, 6.3 and 12.6), the median settling time
(|y| < 0.1, in s) of ``flatter.limit.reduced_sde`` paths at steps omega ds = 0.3, 0.1, 0.03, against a reference
at omega^2 ds = 0.05, all in float64 with the same paths' keys. The same without fluctuations (a deterministic ring)
at omega ds = 0.3 against its own reference. ``flatter.timescales.predict_grid`` integrates with omega^2 ds <= 0.3
(``NOISE_STEP``): this table is what sets it.

    python benchmarks/reduced_sde_step.py [--paths 1024]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import flatter  # noqa: E402

ETA, S1, THRESHOLD = 1e-4, 16.0, 0.1
OMEGAS = (1.6, 6.3, 12.6)
PHASES = (0.3, 0.1, 0.03)  # omega ds
REFERENCE = 0.05  # omega^2 ds


def settling(omega: float, ds: float, paths: int, fluctuations: bool = True) -> float:
    """Median settling time in s of ``paths`` reduced-SDE paths on the toy with along-valley frequency omega."""
    a = (ETA**2 / (2 * omega**2)) ** (1 / 3)  # kappa = eta^2 / (4 a^3) = omega^2 / 2 (sigma = B = 1)
    every = max(int(round(0.01 / ds)), 1)  # records every ~0.01 in s: the criterion sees each swing
    steps = every * int(np.ceil(S1 / (ds * every)))
    toy = flatter.problems.toy_valley()
    sol = flatter.limit.reduced_sde(
        toy, toy.init_params(None), eta=ETA, beta=1 - a, sigma=1.0, key=jax.random.key(0), s1=steps * ds, ds=ds,
        seeds=paths if fluctuations else 1, save_every=every, observables=["abs_y"], fluctuations=fluctuations,
    )  # fmt: skip
    settled = flatter.settling_time(sol.ts, sol.observables["abs_y"], THRESHOLD)
    return float(jnp.median(settled.time))


def main(paths: int) -> None:
    print(f"toy valley, gamma = 0.85, eta = {ETA:g}, sigma = B = 1; median settling time (|y| < {THRESHOLD}) in s "
          f"over {paths} paths, float64")  # fmt: skip
    header = f"{'omega':>6} {'step':>16} {'ds':>9} | {'settle s':>8} {'vs ref':>7}"
    print(header)
    print("-" * len(header))
    t0 = time.perf_counter()
    for omega in OMEGAS:
        ds_ref = REFERENCE / omega**2
        reference = settling(omega, ds_ref, paths)
        for phase in PHASES:
            value = settling(omega, phase / omega, paths)
            print(f"{omega:6.1f} {'omega ds = ' + str(phase):>16} {phase / omega:9.2e} | {value:8.3f} "
                  f"{value / reference - 1:+7.1%}")  # fmt: skip
        print(f"{omega:6.1f} {'omega^2 ds = ' + str(REFERENCE):>16} {ds_ref:9.2e} | {reference:8.3f} {'ref':>7}")
        ring = settling(omega, 0.3 / omega, paths, fluctuations=False)
        ring_ref = settling(omega, ds_ref, paths, fluctuations=False)
        print(f"{omega:6.1f} {'no noise, 0.3':>16} {0.3 / omega:9.2e} | {ring:8.3f} {ring / ring_ref - 1:+7.1%}")
    print(f"wall, compile included: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=1024, help="reduced-SDE paths per row")
    main(parser.parse_args().paths)
