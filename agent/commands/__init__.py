"""One module per `antiphon` subcommand (see agent/cli.py)."""
