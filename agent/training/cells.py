"""The model's arguments from the training command, and the LSTM/GRU size match.

`--cell gru` trains the same token model with a GRU core. By default its size
is matched to an LSTM's: `--hidden` then names the LSTM (of `--layers` and
`--embedding`) whose parameter count the GRU takes, and the GRU's own hidden
size is the one whose count comes nearest (`agent.model.net.matched_hidden`;
a GRU has 3 weight blocks per layer to the LSTM's 4, so its state is wider:
297 for the 2x256 LSTM at vocabulary 242). The card says which LSTM it matched.
"""
from __future__ import annotations

from dataclasses import asdict

from agent.model.net import ModelArgs, count_params, matched_hidden


def model_args_of(args, pieces) -> ModelArgs:
    """ModelArgs from scripts/train.py's arguments and the loaded pieces (vocabulary or key count)."""
    if args.kind == "roll":
        if args.cell != "lstm":
            raise SystemExit(f"train.py: --cell {args.cell} is for token models; roll models are LSTMs")
        return ModelArgs(vocab_size=pieces.train[0].shape[1], embedding=0, hidden=args.hidden, layers=args.layers,
                         dropout=args.dropout, kind="roll", head=args.head, input_dropout=args.input_dropout,
                         nade_hidden=args.nade_hidden if args.head == "nade" else 0, weight_drop=args.weight_drop)
    lstm = ModelArgs(vocab_size=pieces.vocab.size, embedding=args.embedding, hidden=args.hidden,
                     layers=args.layers, dropout=args.dropout, weight_drop=args.weight_drop)
    if args.cell == "lstm":
        return lstm
    hidden = matched_hidden(lstm, args.cell) if args.match_lstm else args.hidden
    return ModelArgs(**{**asdict(lstm), "cell": args.cell, "hidden": hidden})


def size_match(model_args: dict, config: dict) -> dict | None:
    """For the card: the LSTM a GRU's size was matched to, both parameter counts; None if not matched."""
    if model_args.get("cell", "lstm") == "lstm" or not config.get("match_lstm"):
        return None
    own = ModelArgs(**model_args)
    lstm = ModelArgs(**{**model_args, "cell": "lstm", "hidden": int(config["hidden"])})
    return {"lstm_hidden": lstm.hidden, "lstm_params": count_params(lstm), "hidden": own.hidden,
            "params": count_params(own),
            "rule": "the hidden size whose parameter count is nearest the LSTM's (GRU: 3 gates, LSTM: 4)"}
