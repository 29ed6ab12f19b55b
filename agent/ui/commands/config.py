"""antiphon config --check [FILE]"""
from __future__ import annotations

from agent.ui.cli import common_options
from agent.config import load_config, to_toml

HELP = "validate a config file and print the effective config"


def add_arguments(p) -> None:
    p.add_argument("--check", nargs="?", const="", default=None, metavar="FILE",
                   help="validate FILE (default: the project's config.toml) and print the effective config")
    common_options(p)


def run(args) -> int:
    path = args.check or args.config or None
    cfg = load_config(path, args.overrides)
    print(to_toml(cfg), end="")
    return 0
