"""
Numpy re-implementation of tf.keras.layers.GRU(units, reset_after=True,
return_sequences=True), with the Keras weight layout so that
`layer.get_weights()` can be plugged in directly:

    kernel            (input_dim, 3 * units)   blocks [z | r | h]
    recurrent_kernel  (units, 3 * units)       blocks [z | r | h]
    bias              (2, 3 * units)           row 0: input bias, row 1: recurrent bias

    z  = sigmoid(x W_z + b_z + h R_z + rb_z)
    r  = sigmoid(x W_r + b_r + h R_r + rb_r)
    hh = tanh(x W_h + b_h + r * (h R_h + rb_h))
    h  = z * h_prev + (1 - z) * hh
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gru_forward(inputs, initial_state, kernel, recurrent_kernel, bias):
    """inputs: (batch, timesteps, input_dim); initial_state: (batch, units)."""
    units = recurrent_kernel.shape[0]
    h = initial_state
    outputs, steps = [], []
    for t in range(inputs.shape[1]):
        x = inputs[:, t, :]
        matrix_x = x @ kernel + bias[0]
        matrix_inner = h @ recurrent_kernel + bias[1]
        x_z, x_r, x_h = np.split(matrix_x, 3, axis=-1)
        rec_z, rec_r, rec_h = np.split(matrix_inner, 3, axis=-1)
        z = sigmoid(x_z + rec_z)
        r = sigmoid(x_r + rec_r)
        hh = np.tanh(x_h + r * rec_h)
        steps.append((x, h, z, r, hh, rec_h))
        h = z * h + (1 - z) * hh
        outputs.append(h)
    cache = (steps, kernel, recurrent_kernel, units)
    return np.stack(outputs, axis=1), cache


def gru_backward(d_outputs, cache):
    """d_outputs: (batch, timesteps, units).
    Returns d_inputs, d_initial_state, d_kernel, d_recurrent_kernel, d_bias."""
    steps, kernel, recurrent_kernel, units = cache
    R_z, R_r, R_h = np.split(recurrent_kernel, 3, axis=-1)
    d_kernel = np.zeros_like(kernel)
    d_recurrent_kernel = np.zeros_like(recurrent_kernel)
    d_bias = np.zeros((2, 3 * units))
    d_inputs = np.zeros(d_outputs.shape[:2] + (kernel.shape[0],))

    dh_prev = np.zeros_like(d_outputs[:, 0, :])
    for t in reversed(range(len(steps))):
        x, h_prev, z, r, hh, rec_h = steps[t]
        dh = d_outputs[:, t, :] + dh_prev

        d_hh = dh * (1 - z) * (1 - hh**2)
        d_z = dh * (h_prev - hh) * z * (1 - z)
        d_rec_h = d_hh * r
        d_r = d_hh * rec_h * r * (1 - r)

        d_matrix_x = np.concatenate([d_z, d_r, d_hh], axis=-1)
        d_matrix_inner = np.concatenate([d_z, d_r, d_rec_h], axis=-1)
        d_kernel += x.T @ d_matrix_x
        d_recurrent_kernel += h_prev.T @ d_matrix_inner
        d_bias[0] += d_matrix_x.sum(axis=0)
        d_bias[1] += d_matrix_inner.sum(axis=0)

        d_inputs[:, t, :] = d_matrix_x @ kernel.T
        dh_prev = dh * z + d_z @ R_z.T + d_r @ R_r.T + d_rec_h @ R_h

    return d_inputs, dh_prev, d_kernel, d_recurrent_kernel, d_bias
