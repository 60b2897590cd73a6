"""A per-example training loop with the structure of Michael Nielsen's ``network.py``.

FOR COMPARISON ONLY: this is not Nielsen's file. It was written for digitnet's speed
benchmark (``benchmarks/speed.py``) in Python 3, following the structure of the
``src/network.py`` that accompanies "Neural Networks and Deep Learning" (the code behind
3Blue1Brown's video): column-vector activations, a Python loop over the examples of each
mini-batch, one ``backprop`` call per example whose gradients are summed, sigmoid neurons,
the quadratic cost, float64 arithmetic, ``random.shuffle`` of a list of
``(x, y)`` tuples each epoch. It is what "training the video's network the textbook way"
costs, measured beside digitnet with the same data, initial weights and hyperparameters.

Differences from the original, all in the interface: Python 3 (``range``, ``zip``
returning iterators), initial weights can be passed in (the benchmark gives every
contestant the same ones), the random module is seeded from an argument, and ``SGD``
returns nothing and prints nothing (the benchmark times it).
"""

from __future__ import annotations

import random

import numpy as np


class Network:
    def __init__(self, sizes, weights=None, biases=None):
        """``sizes`` such as [784, 16, 16, 10]; ``weights[l]`` (n_out, n_in), ``biases[l]`` (n_out, 1).
        Without them, weights and biases are N(0, 1) as in the original."""
        self.num_layers = len(sizes)
        self.sizes = sizes
        if weights is None:
            self.biases = [np.random.randn(y, 1) for y in sizes[1:]]
            self.weights = [np.random.randn(y, x) for x, y in zip(sizes[:-1], sizes[1:])]
        else:
            self.weights = [np.array(w, dtype=np.float64) for w in weights]
            self.biases = [np.array(b, dtype=np.float64).reshape(-1, 1) for b in biases]

    def feedforward(self, a):
        """The output for the column vector ``a`` (n_in, 1)."""
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(np.dot(w, a) + b)
        return a

    def SGD(self, training_data, epochs, mini_batch_size, eta, seed=0):
        """Mini-batch stochastic gradient descent over ``training_data``, a list of
        ``(x, y)`` with x (784, 1) and y the one-hot (10, 1) column of the label."""
        rnd = random.Random(seed)
        training_data = list(training_data)
        n = len(training_data)
        for _ in range(epochs):
            rnd.shuffle(training_data)
            mini_batches = [training_data[k : k + mini_batch_size] for k in range(0, n, mini_batch_size)]
            for mini_batch in mini_batches:
                self.update_mini_batch(mini_batch, eta)

    def update_mini_batch(self, mini_batch, eta):
        """One gradient step from the examples of ``mini_batch``, backpropagated one at a time."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]

    def backprop(self, x, y):
        """The gradient of the quadratic cost of one example, layer by layer (BP1-BP4)."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation = x
        activations = [x]
        zs = []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = self.cost_derivative(activations[-1], y) * sigmoid_prime(zs[-1])  # BP1
        nabla_b[-1] = delta  # BP3
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())  # BP4
        for l in range(2, self.num_layers):
            z = zs[-l]
            sp = sigmoid_prime(z)
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp  # BP2
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return nabla_b, nabla_w

    def evaluate(self, test_data):
        """How many of ``test_data`` (x, label) pairs the network gets right."""
        return sum(int(np.argmax(self.feedforward(x)) == y) for x, y in test_data)

    def cost_derivative(self, output_activations, y):
        return output_activations - y


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


def load_data(x_train, y_train, x_test, y_test):
    """digitnet's arrays -> the original's lists: training pairs (x column, one-hot column),
    test pairs (x column, integer label)."""

    def one_hot(j):
        e = np.zeros((10, 1))
        e[j] = 1.0
        return e

    training = [(x.reshape(-1, 1).astype(np.float64), one_hot(int(j))) for x, j in zip(x_train, y_train)]
    test = [(x.reshape(-1, 1).astype(np.float64), int(j)) for x, j in zip(x_test, y_test)]
    return training, test
