"""Antiphon: a live MIDI jam partner driven by a stateful LSTM.

Importing the package has no side effects: no ports open, no torch import.
"""
__version__ = "0.1.0"
