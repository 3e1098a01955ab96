"""A character-level RNN trained on a text file, in the shape of Karpathy's min-char-rnn.

Written for symbptt's documentation: the loss function below is the one to check, unmodified,
with

    symbptt check examples/char_rnn.py:lossFun --style char-rnn --defs-only --clip 5

The top level reads a data file and trains forever; `--defs-only` keeps symbptt from running
it (only the imports, the definitions and the constant assignments run).
"""

import numpy as np

hidden_size = 64  # neurons in the hidden layer
seq_length = 16  # characters per training sequence
learning_rate = 0.1


def lossFun(inputs, targets, hprev):
    """inputs, targets: lists of character ids; hprev: the (H, 1) state before the sequence.
    Returns the loss, the gradients of the weights and the last hidden state."""
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))  # one-hot column
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        ys[t] = Why @ hs[t] + by
        shifted = ys[t] - np.max(ys[t])  # no overflow for large logits
        log_norm = np.log(np.sum(np.exp(shifted)))
        ps[t] = np.exp(shifted - log_norm)
        loss += log_norm - shifted[targets[t], 0]
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1  # softmax cross-entropy
        dWhy += dy @ hs[t].T
        dby += dy
        dh = Why.T @ dy + dhnext
        draw = (1 - hs[t] * hs[t]) * dh
        dbh += draw
        dWxh += draw @ xs[t].T
        dWhh += draw @ hs[t - 1].T
        dhnext = Whh.T @ draw
    for dparam in (dWxh, dWhh, dWhy, dbh, dby):
        np.clip(dparam, -5, 5, out=dparam)  # against exploding gradients
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def sample(h, seed_ix, n):
    """n character ids sampled from the model, starting from state h and character seed_ix."""
    x = np.zeros((vocab_size, 1))
    x[seed_ix] = 1
    out = []
    for _ in range(n):
        h = np.tanh(Wxh @ x + Whh @ h + bh)
        p = np.exp(Why @ h + by)
        p = p / np.sum(p)
        ix = np.random.choice(range(vocab_size), p=p.ravel())
        x = np.zeros((vocab_size, 1))
        x[ix] = 1
        out.append(ix)
    return out


# -- training: runs when the script runs, never under symbptt check --defs-only -------------------
data = open("input.txt").read()
chars = sorted(set(data))
vocab_size = len(chars)
char_to_ix = {ch: i for i, ch in enumerate(chars)}
ix_to_char = dict(enumerate(chars))
Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
Whh = np.random.randn(hidden_size, hidden_size) * 0.01
Why = np.random.randn(vocab_size, hidden_size) * 0.01
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))
memory = [np.zeros_like(p) for p in (Wxh, Whh, Why, bh, by)]
n, p, hprev = 0, 0, np.zeros((hidden_size, 1))
while True:
    if p + seq_length + 1 >= len(data) or n == 0:
        hprev, p = np.zeros((hidden_size, 1)), 0
    inputs = [char_to_ix[ch] for ch in data[p : p + seq_length]]
    targets = [char_to_ix[ch] for ch in data[p + 1 : p + seq_length + 1]]
    loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev)
    if n % 1000 == 0:
        print(f"iter {n}, loss {loss:.3f}")
        print("".join(ix_to_char[i] for i in sample(hprev, inputs[0], 100)))
    for param, dparam, mem in zip((Wxh, Whh, Why, bh, by), (dWxh, dWhh, dWhy, dbh, dby), memory):
        mem += dparam * dparam
        param += -learning_rate * dparam / np.sqrt(mem + 1e-8)  # Adagrad
    p += seq_length
    n += 1
