"""One module per `antiphon` subcommand (see agent/ui/cli.py)."""
