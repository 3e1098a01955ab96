"""A single-layer LSTM in numpy that uses PyTorch's nn.LSTM parameter layout, so that
weights can be copied from / compared with `torch.nn.LSTM` (weight_ih_l0 etc.).

    gates = x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh      # (N, 4H), chunks i, f, g, o
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)
"""

import numpy as np


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def lstm_forward(input, h0, c0, W_ih, W_hh, b_ih, b_hh):
    """input: (seq_len, batch, input_size) like nn.LSTM with batch_first=False.
    Returns output (seq_len, batch, hidden_size), (h_n, c_n) and a cache."""
    seq_len = input.shape[0]
    hidden_size = W_hh.shape[1]
    h, c = h0, c0
    output = []
    steps = []
    for t in range(seq_len):
        x = input[t]
        gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
        i, f, g, o = np.split(gates, 4, axis=1)
        i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        h_new = o * tc
        steps.append((x, h, c, i, f, g, o, tc))
        h, c = h_new, c_new
        output.append(h)
    cache = (steps, W_ih, W_hh, hidden_size)
    return np.stack(output), (h, c), cache


def lstm_backward(grad_output, cache, grad_hn=None, grad_cn=None):
    """grad_output: (seq_len, batch, hidden_size).
    Returns (grad_input, grad_h0, grad_c0, grad_W_ih, grad_W_hh, grad_b_ih, grad_b_hh)."""
    steps, W_ih, W_hh, hidden_size = cache
    grad_W_ih = np.zeros_like(W_ih)
    grad_W_hh = np.zeros_like(W_hh)
    grad_b = np.zeros(W_ih.shape[0])
    grad_input = []

    dh = np.zeros_like(grad_output[0]) if grad_hn is None else grad_hn.copy()
    dc = np.zeros_like(grad_output[0]) if grad_cn is None else grad_cn.copy()
    for t in reversed(range(len(steps))):
        x, h_prev, c_prev, i, f, g, o, tc = steps[t]
        dh = dh + grad_output[t]
        dc = dc + dh * o * (1.0 - tc * tc)
        d_i = dc * g * i * (1.0 - i)
        d_f = dc * c_prev * f * (1.0 - f)
        d_g = dc * i * (1.0 - g * g)
        d_o = dh * tc * o * (1.0 - o)
        dgates = np.concatenate([d_i, d_f, d_g, d_o], axis=1)

        grad_W_ih += dgates.T @ x
        grad_W_hh += dgates.T @ h_prev
        grad_b += dgates.sum(axis=0)
        grad_input.append(dgates @ W_ih)
        dh = dgates @ W_hh
        dc = dc * f

    grad_input = np.stack(grad_input[::-1])
    # b_ih and b_hh are added together, so they get the same gradient
    return grad_input, dh, dc, grad_W_ih, grad_W_hh, grad_b, grad_b.copy()
