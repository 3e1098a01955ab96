"""Checking other people's BPTT code: the search, the isolated worker, the report, batches.

The choices the command line offers are defined here, so that parsing them imports nothing else.
"""

#: How a user's function is called: the whole loss and gradients, or one RNN layer's VJP.
FORMS = ("full", "layer")
#: x W (the model's row vectors) or W x (min-char-rnn's columns).
LAYOUTS = ("row", "column")
#: Precisions an answer may be declared to be computed in (check's `precision`).
PRECISIONS = ("float64", "float32", "float16", "bfloat16")
#: How a user's code is written: symbptt's signature, or a min-char-rnn script's lossFun.
STYLES = ("plain", "char-rnn")
