"""`antiphon` command line: a thin dispatcher over agent/ui/commands/*.

Each command module defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their command runs, so
`antiphon --help` stays fast and never imports torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from agent import __version__
from agent.errors import AntiphonError

# name -> (module, one-line help). Keep the help here so --help imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("agent.ui.commands.config", "validate a config file and print the effective config"),
    "tokens": ("agent.ui.commands.tokens", "show a MIDI file as tokens, or round-trip it through them"),
    "ports": ("agent.ui.commands.ports", "list MIDI input and output ports, and the backend in use"),
    "play": ("agent.ui.commands.play", "play along live: listen on a MIDI input, answer on a virtual or named output"),
    "repl": ("agent.ui.commands.repl", "try the live REPL with no keyboard: loopback ports and a scripted player"),
    "demo": ("agent.ui.commands.demo", "no keyboard needed: a scripted player and the agent, recorded to MIDI, MusicXML, PNG and WAV"),
    "generate": ("agent.ui.commands.generate", "continue a MIDI file and write MIDI, MusicXML and a piano roll"),
}


def common_options(parser: argparse.ArgumentParser) -> None:
    """--config and --set, shared by every command that reads the config."""
    parser.add_argument("--config", metavar="FILE", help="config file (default: config.toml at the project root)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value (repeatable)")


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: antiphon [--version] [--help] COMMAND [ARGS]", "",
             "Antiphon, a live MIDI jam partner. Commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "`antiphon COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"antiphon {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"antiphon: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"antiphon {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except AntiphonError as exc:
        print(f"antiphon {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
