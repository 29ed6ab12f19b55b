"""The short fuzz run CI does: scripts/fuzz.py's checks, a few thousand examples in all.

The long run (100,000 of each) is `python scripts/fuzz.py --count 100000`; its figures are in BENCHMARKS.md.
"""
from __future__ import annotations

import logging

import pytest

pytest.importorskip("hypothesis")

from agent.bench import fuzz  # noqa: E402  (it needs hypothesis)
COUNT = {"midi": 2000, "stream": 1000}  # ~30 s together on a 2-core machine


@pytest.mark.parametrize("target", ["midi", "stream"])
def test_fuzz_short_run_finds_no_failure(target):
    logging.disable(logging.WARNING)
    try:
        res = fuzz.run(target, COUNT[target], progress=False)
    finally:
        logging.disable(logging.NOTSET)
    assert res["count"] >= COUNT[target] * 0.9  # hypothesis may stop a little short of max_examples
    assert res["failures"] == 0, res["first_failure"]
    if target == "midi":
        assert res["read"] > 0 and res["refused"] > 0  # both paths were exercised
    else:
        assert res["agent_notes"] > 0 and res["messages"] > 0
