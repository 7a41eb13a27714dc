"""The demo's headline compares against the fair baseline (SGD at the same eta_eff) and says which is faster."""

from flatter.drivers.demo import headline


def result(steps):
    return {"steps_to_recovery_median": steps}


def test_the_headline_names_the_fair_baseline_and_the_faster_one():
    text = headline(result(700.0), fair=result(500.0), same_eta=result(None), horizon=100_000)
    assert text.startswith("headline (fair baseline: SGD-LN at the same eta_eff = eta/(1-beta)):")
    assert "SGD at eta_eff recovers X* 1.4x faster than the 2/3 rule" in text
    assert text.endswith("against SGD at the same eta: >= 143x faster")  # a censored baseline is a bound


def test_the_rule_ahead_and_censored_cases():
    assert "the 2/3 rule recovers X* 2.0x faster than SGD at eta_eff" in headline(
        result(500.0), fair=result(1000.0), same_eta=result(9000.0), horizon=10_000
    )
    assert "the 2/3 rule recovers X* >= 20.0x faster" in headline(
        result(500.0), fair=result(None), same_eta=result(None), horizon=10_000
    )
    both = headline(result(None), fair=result(None), same_eta=result(None), horizon=10_000)
    assert "neither the 2/3 rule nor SGD at eta_eff recovers X* within the horizon" in both
    assert "against SGD at the same eta" not in both
