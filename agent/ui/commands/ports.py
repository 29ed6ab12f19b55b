"""antiphon ports [--backend NAME]: list MIDI inputs and outputs on the backend in use."""
from __future__ import annotations

from agent.ui.cli import common_options
from agent.config import load_config
from agent.midi.ports import Ports

HELP = "list MIDI input and output ports, and the backend in use"


def add_arguments(p) -> None:
    p.add_argument("--backend", help="auto | alsa | jack | coremidi | winmm | loopback (default: [midi] backend, "
                                     "then MIDO_BACKEND)")
    common_options(p)


def run(args) -> int:
    cfg = load_config(args.config, args.overrides)
    ports = Ports(args.backend or cfg.midi.backend)
    print(f"backend: {ports.name}")
    for kind, names in (("inputs", ports.input_names()), ("outputs", ports.output_names())):
        print(f"{kind}:")
        for n in names:
            print(f"  {n}")
        if not names:
            print("  (none)")
    return 0
