"""The C* command end to end: the sweep over C at gamma = 2/3, C*(sigma) and its figure, with progress throughout."""

import json

import numpy as np
import pytest
from helpers import never_silent

from flatter.drivers.cstar import cstar_spec, run_cstar


def test_a_preset_is_checked_and_its_seeds_can_be_overridden():
    assert cstar_spec("toy-valley", "quick").seeds == 32 and cstar_spec("toy-valley", "quick", 4).seeds == 4
    with pytest.raises(ValueError, match="preset must be one of"):
        cstar_spec("toy-valley", "huge")


@pytest.mark.heavy
def test_the_cstar_command_shows_progress_and_its_reduced_ode_optimum_scales_as_sigma_to_the_two_thirds(tmp_path):
    with never_silent():  # the sweep's bar, then one tick per sigma of the reduced-ODE optimum
        summary = run_cstar("toy-valley", "quick", tmp_path, seeds=4)
    out = tmp_path / "toy-valley" / "quick"
    assert (out / "cstar.png").stat().st_size > 20_000
    assert json.loads((out / "summary.json").read_text())["rows"][0]["sigma"] == 0.5
    # docs/theory.md: at gamma = 2/3, C* ~ sigma^(2/3) (kappa = sigma^2 / (4 C^3) held fixed).
    sigmas = [r["sigma"] for r in summary["rows"]]
    slope = np.polyfit(np.log(sigmas), np.log([r["C_star_ode"] for r in summary["rows"]]), 1)[0]
    assert slope == pytest.approx(2 / 3, abs=0.08)
    # The damping ratio printed at each C*: the toy's closed form, lambda = 2 and B = 1 (one example, any mode).
    for r in summary["rows"]:
        kappa = r["sigma"] ** 2 / (4 * r["C_star_sim"] ** 3)
        assert r["zeta_at_C_star_sim"] == pytest.approx(0.5 / np.sqrt(2 * kappa), rel=1e-5)
