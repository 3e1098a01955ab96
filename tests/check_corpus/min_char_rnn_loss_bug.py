"""
Vanilla RNN with a softmax on every step: loss and gradients for one minibatch of
sequences, written like the lossFun of a small char-rnn training script
(column vectors, one example per column, dicts keyed by the time step).
"""

import numpy as np

hidden_size = 64  # neurons in the hidden layer (for the demo below)


def lossFun(xs, ys, hprev, Wxh, Whh, Why, bh, by):
    """
    xs: (T, D, N) inputs, xs[t] holds the N examples of step t as columns
    ys: (T, N) integer targets
    hprev: (H, N) hidden state before the first step
    Returns loss, dWxh, dWhh, dWhy, dbh, dby, dhprev (the gradient w.r.t. hprev).
    """
    N = hprev.shape[1]
    cols = np.arange(N)
    hs, ps = {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t in range(len(xs)):
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        scores = np.dot(Why, hs[t]) + by
        scores -= np.max(scores, axis=0)  # for numerical safety
        ps[t] = np.exp(scores) / np.sum(np.exp(scores), axis=0)
        loss += -np.sum(np.log(ps[t][ys[t], cols]))

    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hprev)
    for t in reversed(range(len(xs))):
        dscores = np.copy(ps[t])
        dscores[ys[t], cols] -= 1  # softmax + cross-entropy
        dWhy += np.dot(dscores, hs[t].T)
        dby += np.sum(dscores, axis=1, keepdims=True)
        dh = np.dot(Why.T, dscores) + dhnext  # from the output and from step t+1
        da = (1 - hs[t] ** 2) * dh  # through the tanh
        dbh += np.sum(da, axis=1, keepdims=True)
        dWxh += np.dot(da, xs[t].T)
        dWhh += np.dot(da, hs[t - 1].T)
        dhnext = np.dot(Whh, da)
    return loss, dWxh, dWhh, dWhy, dbh, dby, dhnext


if __name__ == "__main__":
    D, C, T, N = 8, 8, 25, 4
    Wxh = np.random.randn(hidden_size, D) * 0.01
    Whh = np.random.randn(hidden_size, hidden_size) * 0.01
    Why = np.random.randn(C, hidden_size) * 0.01
    bh = np.zeros((hidden_size, 1))
    by = np.zeros((C, 1))
    xs = np.random.randn(T, D, N)
    ys = np.random.randint(0, C, size=(T, N))
    loss, *grads = lossFun(xs, ys, np.zeros((hidden_size, N)), Wxh, Whh, Why, bh, by)
    print("loss %.4f, about %.4f expected at initialisation" % (loss, T * N * np.log(C)))
