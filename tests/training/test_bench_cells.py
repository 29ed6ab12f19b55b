"""agent/bench/cells.py's verdict: the GRU becomes the default kind only past the seed spread at equal step cost."""
import pytest

from agent.bench.cells import verdict


def runs(lstm_nll, gru_nll, lstm_us=50.0, gru_us=50.0):
    def run(cell, nll, us):
        return {"cell": cell, "test_nll": nll, "step": {"int8": {"p50_us": us}, "float32": {"p50_us": 2 * us}}}
    return [run("lstm", n, lstm_us) for n in lstm_nll] + [run("gru", n, gru_us) for n in gru_nll]


def test_a_gain_larger_than_the_seed_spread_at_equal_cost_makes_the_gru_the_default():
    v = verdict(runs([1.50, 1.52], [1.40, 1.41]))
    assert v["gru_gain_nats"] == pytest.approx(0.105, abs=1e-9)
    assert v["seed_spread_nats"] == pytest.approx(0.02, abs=1e-9)
    assert v["default_cell"] == "gru"


def test_a_gain_inside_the_seed_spread_keeps_the_lstm():
    v = verdict(runs([1.50, 1.60], [1.48, 1.52]))  # gain 0.05, spread 0.10
    assert v["default_cell"] == "lstm"


def test_a_gain_at_a_higher_step_cost_keeps_the_lstm():
    v = verdict(runs([1.50, 1.52], [1.40, 1.41], lstm_us=50.0, gru_us=60.0))
    assert v["equal_step_cost"] is False
    assert v["default_cell"] == "lstm"
