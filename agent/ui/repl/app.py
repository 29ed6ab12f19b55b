"""The live REPL: a prompt_toolkit prompt over a running Engine.

The engine plays in its own threads; this thread only reads (copies of)
its state for the toolbar and calls the engine's setter, so typing,
completion and redrawing never hold anything the engine needs for more than
a copy. Engine messages print above the prompt without breaking the line
being typed (patch_stdout). Ctrl-C silences the agent and keeps the
session; Ctrl-D or `quit` stops it (every note closed, ports closed).

History is kept across sessions in $XDG_DATA_HOME/antiphon/history
(~/.local/share/antiphon/history when XDG_DATA_HOME is not set).
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from agent.config import ROOT
from agent.live.controls import live_keys
from agent.ui.repl.commands import Commands
from agent.model.echo import FORMS
from agent.ui.repl.parse import ALIASES, HELP, KEYS, MODES, TEMPO_SOURCES
from agent.ui.repl.toolbar import toolbar_text

TOOLBAR_REFRESH_S = 0.25
RENDER_CLEAR_S = 0.004  # a redraw (a few ms of Python holding the GIL) starts only this far from the next send
KEY_ARG = re.compile(r"^\s*(?:at\s+\w+\s+)?key\s+(.*)$")


def data_dir() -> Path:
    """The user's data folder for Antiphon (XDG_DATA_HOME respected)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "antiphon"


def history_path() -> Path:
    return data_dir() / "history"


def model_folders() -> list[str]:
    models = ROOT / "models"
    if not models.is_dir():
        return []
    return sorted(p.name for p in models.iterdir() if (p / "vocab.json").exists())


class ReplCompleter(Completer):
    """Commands, then each command's arguments: choices, settings, port names, model folders, paths."""

    def __init__(self, commands: Commands) -> None:
        self.commands = commands
        self.paths = PathCompleter(expanduser=True)

    def _options(self, words: list[str]) -> list[str] | None:
        """Candidates for the word after `words`; None: complete a path."""
        if not words:
            return sorted(HELP) + ["at"]
        if words[0] == "at":
            return ["bar", "beat"] if len(words) == 1 else self._options(words[2:])
        cmd, n = words[0], len(words)
        settings = sorted(ALIASES) + live_keys()
        if cmd == "mode" and n == 1:
            return MODES
        if cmd == "form" and n == 1:
            return list(FORMS)
        if cmd == "adaptive" and n == 1:
            return ["on", "off"]
        if cmd == "tempo" and n == 1:
            return list(TEMPO_SOURCES)
        if cmd == "length":
            return ["same"] if n == 1 else ["bars"] if n == 2 else []
        if cmd == "silence" and n == 2:
            return ["beats", "ms"]
        if cmd == "set" and n == 1:
            return live_keys()
        if cmd == "cc":
            if n == 1:
                return ["learn", "off"] + settings
            return settings if n == 2 and words[1] == "learn" else []
        if cmd == "connect":
            if n == 1:
                return ["in", "out"]
            ins, outs = self.commands.port_names  # cached: listing ports can hold the GIL (JACK)
            return ins if words[1] == "in" else outs
        if cmd == "help" and n == 1:
            return sorted(HELP)
        if cmd == "record" and n == 1:
            return ["start", "stop"]
        if cmd in ("load", "save", "source") or (cmd == "record" and n == 2):
            return None
        return []

    def get_completions(self, document: Document, complete_event):
        text = document.text_before_cursor
        words = text.split()
        partial = "" if text.endswith(" ") or not words else words.pop()
        m = KEY_ARG.match(text)
        if m:  # a key is several words ("D minor"): complete the whole rest of the line
            rest = m.group(1)
            for k in KEYS:
                if k.lower().startswith(rest.lower()) and k != rest:
                    yield Completion(k, start_position=-len(rest))
            return
        options = self._options(words)
        if options is None:
            if words[0] == "load":
                for m in model_folders():
                    if m.startswith(partial):
                        yield Completion(m, start_position=-len(partial), display_meta="models/")
            yield from self.paths.get_completions(Document(partial, len(partial)), complete_event)
            return
        for o in options:
            if o.startswith(partial) and o != partial:
                yield Completion(o, start_position=-len(partial),
                                 display_meta=HELP[o][1][:40] if not words and o in HELP else "")


class Repl:
    """The prompt loop. `input`/`output` are prompt_toolkit's (tests pass a pipe input)."""

    def __init__(self, engine, *, input=None, output=None, history: Path | None | bool = None,
                 say=None) -> None:
        self.engine = engine
        self.commands = Commands(engine, say=say or (lambda line: print(line, flush=True)))
        if history is False:
            hist = InMemoryHistory()
        else:
            path = Path(history) if history else history_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                hist = FileHistory(str(path))
            except OSError:  # a read-only home: the session goes on without saved history
                hist = InMemoryHistory()
        self.session = PromptSession(
            "antiphon> ", history=hist, completer=ReplCompleter(self.commands), complete_while_typing=False,
            bottom_toolbar=lambda: toolbar_text(engine), refresh_interval=TOOLBAR_REFRESH_S,
            input=input, output=output)
        self.silenced = 0
        self.session.app.before_render += self._clear_of_the_next_note

    def _clear_of_the_next_note(self, _app) -> None:
        """Hold a redraw back until the scheduler's next send is out, if it is due within RENDER_CLEAR_S.

        A redraw is CPU-bound Python: were it to run across a send, the output thread would wait
        for the GIL (and, on a loaded machine, for this thread to be scheduled again to hand it
        over). Sleeping releases the GIL; at most a few ms of display delay."""
        s, clock = self.engine.scheduler, self.engine.clock
        if s is None:
            return
        for _ in range(4):
            due = s.next_due()
            if due is None:
                return
            wait = due - clock.now()
            if wait > RENDER_CLEAR_S or wait < -0.005:  # far enough, or already late (not ours to wait for)
                return
            clock.sleep_until(max(due, clock.now()) + 0.0005)

    def _exit_when_engine_stops(self) -> None:
        self.engine.stopped.wait()
        app = self.session.app
        loop = getattr(app, "loop", None)
        if app.is_running and loop is not None:
            loop.call_soon_threadsafe(lambda: app.exit(exception=EOFError()) if app.is_running else None)

    def run(self) -> None:
        """Prompt until quit, Ctrl-D or the engine stopping by itself. Does not stop the engine."""
        self.engine.measure()
        threading.Thread(target=self._exit_when_engine_stops, name="antiphon-repl-watch", daemon=True).start()
        say = self.commands.say
        with patch_stdout(raw=True):
            while not self.engine.stopped.is_set():
                try:
                    line = self.session.prompt()
                except KeyboardInterrupt:
                    self.engine.silence()
                    self.silenced += 1
                    say("silenced: the agent's notes are off until you play or give a mode (Ctrl-D quits)")
                    continue
                except EOFError:
                    break
                if not self.commands.run(line):
                    break
