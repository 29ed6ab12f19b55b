"""The REPL's echo and form (issue 22 item 2): set live, validated, CC-mappable, shown in the toolbar and status.

A real Engine on loopback ports with the scripted predictor underneath (as tests/ui/test_repl.py), the
commands typed into a real prompt_toolkit session."""
from __future__ import annotations

import mido
import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from scripted import ScriptedPredictor  # noqa: E402

from agent.config import load_config
from agent.live.engine import Engine
from agent.midi.ports import Loopback, Ports
from agent.ui.repl.app import Repl, toolbar_text
from agent.ui.repl.toolbar import status_lines
from helpers import wait_for


@pytest.fixture
def engine():
    cfg = load_config(overrides=['jam.mode="call"', "timing.bpm=300.0"])
    loop = Loopback()
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=loop), input_name="keyboard",
                 virtual_name="Antiphon", report=lambda line: None).start()
    eng.loop = loop
    yield eng
    eng.stop()


def drive(engine, *lines):
    out: list[str] = []
    with create_pipe_input() as inp:
        repl = Repl(engine, input=inp, output=DummyOutput(), history=False, say=out.append)
        for line in lines:
            inp.send_text(line + "\n")
        inp.send_text("quit\n")
        repl.run()
    return out


@pytest.mark.parametrize("form", ["continue", "echo", "vary", "contrast"])
def test_each_form_is_selectable_and_reaches_the_samplers_controls(engine, form):
    out = drive(engine, "echo 0.6", f"form {form}")
    assert not any(o.startswith("error") for o in out), out
    assert engine.controls.cfg.jam.echo == 0.6 and engine.controls.cfg.jam.form == form
    assert engine.controls.sampling.echo == 0.6 and engine.controls.sampling.form == form
    assert f"echo 0.6 {form}, related -" in toolbar_text(engine)
    assert f"echo 0.6 {form}, related -" in status_lines(engine)[2]


@pytest.mark.parametrize("line,names,rng", [("echo 1.5", "1.5", "0.0 to 1.0"), ("echo loud", "'loud'", "0.0 to 1.0"),
                                            ("form mirror", "'mirror'", "continue, echo, vary, contrast"),
                                            ("form", "''", "continue, echo, vary, contrast")])
def test_a_bad_echo_or_form_prints_one_error_naming_it_and_changes_nothing(engine, line, names, rng):
    before = engine.controls.cfg
    out = drive(engine, line)
    errors = [o for o in out if o.startswith("error:")]
    assert len(errors) == 1, out
    assert names in errors[0] and rng in errors[0], errors[0]
    assert engine.controls.cfg == before and engine.controls.sampling.echo == 0.0


def test_echo_off_is_not_in_the_toolbar_and_a_controller_sweeps_echo(engine):
    assert "echo" not in toolbar_text(engine)
    out = drive(engine, "cc echo 21", "cc")
    assert out[-1] == "CC21 -> jam.echo [0 1]"
    Ports("loopback", loop=engine.loop).open_output("keyboard").send(
        mido.Message("control_change", control=21, value=127))
    assert wait_for(lambda: engine.controls.sampling.echo == 1.0)
    assert engine.controls.cfg.jam.echo == 1.0


def test_at_bar_echo_waits_for_the_line(engine):
    out = drive(engine, "at bar echo 0.3")
    assert "at the next bar" in out[-1], out
    assert wait_for(lambda: engine.controls.sampling.echo == 0.3)
