"""A tiny LSTM layer package (numpy only)."""

from .layers import lstm_backward, lstm_forward

__all__ = ["lstm_forward", "lstm_backward"]
