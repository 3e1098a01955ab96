import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_grad(y):
    """Derivative of the sigmoid, given its output y."""
    return y * (1.0 - y)


def tanh(x):
    return np.tanh(x)


def tanh_grad(y):
    """Derivative of tanh, given its output y."""
    return 1.0 - y * y
