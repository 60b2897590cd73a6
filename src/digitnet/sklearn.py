"""A scikit-learn estimator: :class:`DigitnetClassifier` (``pip install 'digitnet[sklearn]'``).

digitnet's network and training loop behind scikit-learn's interface, so it works in
``Pipeline``, ``GridSearchCV``, ``cross_val_score``, ``clone`` and ``pickle``::

    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from digitnet.sklearn import DigitnetClassifier

    X, y = load_digits(return_X_y=True)
    cross_val_score(DigitnetClassifier(), X, y, cv=5).mean()

The defaults are the video's network and training (sigmoid neurons, the quadratic cost,
plain SGD with learning rate 3.0, mini-batches of 10, 30 epochs), sized to the data: as many
inputs as ``X`` has features, one output per class, and one hidden layer of 32 neurons
(the video's 16,16 is a bottleneck for 64-pixel digits). The features are standardised
(``standardize=True``: minus the training mean, divided by the training standard deviation),
so raw features of any scale train with the video's learning rate.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import Split
from digitnet.errors import DivergenceError

__all__ = ["DigitnetClassifier"]


class DigitnetClassifier(ClassifierMixin, BaseEstimator):
    """digitnet's network as a scikit-learn classifier.

    Parameters are digitnet's settings (see ``digitnet train --help``): ``hidden`` the hidden
    layers' sizes (the input and output layers follow the data), ``activation``,
    ``output_activation``, ``cost``, ``init``, ``epochs``, ``batch_size``, ``eta``, ``lmbda``,
    ``optimizer``, ``momentum``, ``schedule``, ``dropout``, ``dtype``, ``engine``;
    ``standardize`` standardises the features (learnt in ``fit``, applied in every predict);
    ``random_state`` seeds the initial weights and the shuffles (an int: same seed, same
    numbers; None: a fresh seed each fit).

    After ``fit``: ``classes_``, ``n_features_in_``, ``n_iter_`` (epochs run), ``loss_curve_``
    (the average training cost after each epoch), ``network_`` (the trained
    :class:`~digitnet.nn.network.Network`), ``history_``, ``mean_`` and ``scale_``.
    """

    def __init__(self, hidden=(32,), *, activation="sigmoid", output_activation="sigmoid", cost="quadratic",
                 init="scaled", epochs=30, batch_size=10, eta=3.0, lmbda=0.0, optimizer="sgd", momentum=0.9,
                 schedule="constant", dropout=0.0, standardize=True, dtype="float32", engine="auto",
                 random_state=0):
        self.hidden = hidden
        self.activation = activation
        self.output_activation = output_activation
        self.cost = cost
        self.init = init
        self.epochs = epochs
        self.batch_size = batch_size
        self.eta = eta
        self.lmbda = lmbda
        self.optimizer = optimizer
        self.momentum = momentum
        self.schedule = schedule
        self.dropout = dropout
        self.standardize = standardize
        self.dtype = dtype
        self.engine = engine
        self.random_state = random_state

    def _seed(self) -> int:
        if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool) \
                and self.random_state >= 0:
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    def fit(self, X, y):
        """Train a new network on ``X`` (n, d) and labels ``y`` (n,); returns self."""
        from digitnet.nn.network import Network
        from digitnet.training.train import train

        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            only = self.classes_[0]
            only = only.item() if isinstance(only, np.generic) else only  # 3.0, not np.float64(3.0)
            raise ValueError(f"DigitnetClassifier needs samples of at least 2 classes in the data, but the data "
                             f"contains only one class: {only!r}.")
        if self.standardize:
            mean, scale = X.mean(axis=0), X.std(axis=0)
            scale[scale <= 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
        else:
            mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        self.mean_, self.scale_ = mean, scale
        hidden = (self.hidden,) if isinstance(self.hidden, (int, np.integer)) else self.hidden
        if not isinstance(hidden, (tuple, list)) or not all(
                isinstance(h, (int, np.integer)) and not isinstance(h, bool) for h in hidden):
            # a string such as "16" would otherwise be read a character at a time
            raise ValueError(f"hidden must be a tuple of hidden layer sizes, e.g. (16, 16) or (32,); got {hidden!r}.")
        net_config = NetworkConfig(
            layers=(X.shape[1], *map(int, hidden), len(self.classes_)), activation=self.activation,
            output_activation=self.output_activation, cost=self.cost, init=self.init, dtype=self.dtype)
        train_config = TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, eta=self.eta, lmbda=self.lmbda, optimizer=self.optimizer,
            momentum=self.momentum, schedule=self.schedule, dropout=self.dropout, engine=self.engine,
            seed=self._seed(), record_batch_cost=False)
        net = Network.create(net_config, seed=train_config.seed)
        try:
            history = train(net, Split((X - mean) / scale, yi.astype(np.int64)), train_config)
        except DivergenceError as e:
            raise ValueError(str(e).replace("{eta}", "eta")) from None
        self.network_ = net
        self.history_ = history
        self.loss_curve_ = [rec.cost for rec in history.epochs]
        self.n_iter_ = len(history.epochs)
        return self

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.asarray(self.network_.feedforward((X - self.mean_) / self.scale_), dtype=np.float64)

    def predict(self, X):
        """The predicted class of each row of ``X``: one of ``classes_``."""
        best = self._outputs(X).argmax(axis=1)
        return self.classes_[best]

    def predict_proba(self, X):
        """(n, n_classes): the output activations, each row scaled to sum to 1."""
        out = np.clip(self._outputs(X), 0.0, None)
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / out.shape[1])
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), uniform)

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))
