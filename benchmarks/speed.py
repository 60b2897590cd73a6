"""How fast digitnet trains, side by side with the alternatives, in one run.

    python benchmarks/speed.py            # the full table (several minutes)
    python benchmarks/speed.py --quick    # 1 epoch on 10,000 images: a minute or so
    python benchmarks/speed.py --configs mlp,cnn --epochs 1 --train-size 20000 --only digitnet,digitnet-augment,torch
    python benchmarks/speed.py --check    # one step of digitnet and of PyTorch agree (dropout off)
    python benchmarks/speed.py --configs mlp,cnn --profile 50   # where a step's time goes, per layer

Every contestant trains the same network with the same hyperparameters, data and number
of epochs; all but scikit-learn start from the *same initial weights* (digitnet's, for
the seed). Each run is a fresh process (so peak memory is its own and no thread pool
outlives it), and the runs are interleaved, A B C A B C ..., so that a change in the
machine's load hits every contestant alike. The table shows, per contestant, seconds
per epoch (the median over the repetitions; training steps only, no evaluation: digitnet
takes each epoch's cost from its mini-batches, ``train_metrics="batches"``, as PyTorch's loop
makes no pass over the data between epochs either), test
accuracy after the last epoch (so that nothing is made faster by doing less), peak
resident memory of its process, and its time as a multiple of digitnet's. For digitnet and
PyTorch it also shows the CPU time of the training steps (all threads together), which a
machine busy with other work disturbs much less than the wall time: on one thread of an
idle machine the two are the same.

Contestants (each skipped if its library is not installed; ``pip install -e .[bench]``):

* digitnet: ``Trainer`` with its default engine: the compiled one (``digitnet.nn.compiled``,
  Numba) where ``digitnet[fast]`` is installed, else the fused NumPy path. The table
  names the engine that ran.
* digitnet-numpy: ``Trainer`` with the fused NumPy path (``digitnet.nn.fast``), the
  engine of an install without Numba.
* digitnet reference: the same with the ``reference`` engine: ``backprop`` + ``optim.SGD``,
  a straightforward vectorised float32 NumPy loop.
* PyTorch: float32 tensors preloaded, batches by index slicing of a ``randperm``, the
  idiomatic ``zero_grad / backward / step`` loop, ``torch.set_num_threads(threads)``.
* PyTorch DataLoader: the same with ``TensorDataset`` + ``DataLoader(shuffle=True)``.
* scikit-learn: ``MLPClassifier(solver="sgd", momentum=0, alpha=0)``. The nearest it
  comes: its output layer is always softmax with the cross-entropy (log) loss and its
  weights start Glorot-uniform, so for the video's sigmoid / quadratic network it
  trains a different cost (with the learning rate 0.5 instead of 3.0, at which softmax
  + cross-entropy diverges); for the wider network it matches.
* Nielsen per-example loop: ``benchmarks/nielsen_network.py``, a Python 3 loop with the
  structure of Nielsen's ``network.py`` (float64, one backprop per example); only for
  the video's sigmoid / quadratic network.

Two configurations are the presets' own networks and optimizers (``digitnet train --preset
mlp`` / ``--preset cnn``, read from ``digitnet.training.presets``): ``mlp`` is 784-512-512-10
ReLU, softmax + cross-entropy, He init, batch 128, Nesterov momentum 0.9 at eta 0.1 with the
cosine schedule, dropout 0.2; ``cnn`` is conv 32 5x5, pool 2, conv 32 5x5, pool 2, dense 128,
softmax + cross-entropy, batch 64, Adam (eta 0.001, b1 0.9, b2 0.999), cosine, dropout 0.3.
Both sides train them *without* the presets' random shifts (and turns): augmentation is
data preparation, not the network or the optimizer, and PyTorch has no built-in equivalent
of digitnet's. The ``digitnet-augment`` contestant trains with the preset's augmentation, so
that the table shows what it costs per epoch. Their PyTorch contestant is the equivalent
``nn.Sequential`` (``nn.Dropout`` in front of the same dense layers as digitnet's dropout),
``torch.optim.SGD(nesterov=True)`` or ``torch.optim.Adam`` with the same hyperparameters and
the same learning rate per epoch; ``--check`` shows that one step of each agrees with
digitnet's to float32 rounding with the dropout off. digitnet trains these on its
``reference`` engine (the only one with momentum, Adam and dropout).

Thread counts: every process gets ``--threads`` (default 1) through OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS, and PyTorch through ``set_num_threads``;
``--threads 0`` leaves every library at its own default (digitnet's fast path still runs
its BLAS calls on one thread: see ``digitnet.nn.fast``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

CONFIGS = {
    "video-b10": dict(layers=(784, 16, 16, 10), activation="sigmoid", output="sigmoid", cost="quadratic",
                      init="scaled", batch=10, eta=3.0),
    "video-b100": dict(layers=(784, 16, 16, 10), activation="sigmoid", output="sigmoid", cost="quadratic",
                       init="scaled", batch=100, eta=3.0),
    "wide-relu-b128": dict(layers=(784, 256, 128, 10), activation="relu", output="softmax", cost="cross-entropy",
                           init="he", batch=128, eta=0.1),
    # A small convolutional network: conv 16 filters of 5x5, max-pool 2x2, dense 100, softmax.
    "cnn-b64": dict(layers=(784, 100, 10), features=("conv:16:5", "pool:2"), activation="relu", output="softmax",
                    cost="cross-entropy", init="he", batch=64, eta=0.05),
}


def _preset_config(name: str) -> dict:
    """The network and optimizer of ``--preset NAME``, in this script's terms (without its augmentation)."""
    from digitnet.training.presets import get_preset

    net, train = get_preset(name)
    return dict(preset=name, layers=net.layers, features=net.features, activation=net.activation,
                output=net.output_activation, cost=net.cost, init=net.init, batch=train.batch_size, eta=train.eta,
                optimizer=train.optimizer, momentum=train.momentum, beta2=train.beta2, schedule=train.schedule,
                dropout=train.dropout)


sys.path.append(str(HERE.parent / "src"))  # a checkout without digitnet installed
CONFIGS["mlp"] = _preset_config("mlp")
CONFIGS["cnn"] = _preset_config("cnn")
ENGINE = None  # the digitnet engine a worker ran
CPU_SECONDS = None  # the CPU time of a worker's training steps per epoch (digitnet and PyTorch), all threads
CONTESTANTS = ("digitnet", "digitnet-augment", "digitnet-numpy", "digitnet-reference", "torch", "torch-dataloader",
               "sklearn", "nielsen")


# --- the worker: one contestant, one configuration, in its own process -------------------

def _peak_rss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def _data(n_train: int | None):
    from digitnet.data.datasets import load_mnist

    d = load_mnist()
    train = d.train if n_train is None else d.train.subset(n_train)
    return train.x, train.y, d.test.x, d.test.y


def _initial(cfg: dict, seed: int):
    from digitnet.config import NetworkConfig
    from digitnet.nn.network import Network

    netcfg = NetworkConfig(layers=cfg["layers"], activation=cfg["activation"], output_activation=cfg["output"],
                           cost=cfg["cost"], init=cfg["init"], features=cfg.get("features", ()))
    return Network.create(netcfg, seed=seed)


def _train_config(cfg, epochs, seed, augment=False):
    """digitnet's TrainConfig for ``cfg``: a preset's (its augmentation only with ``augment``), else plain SGD."""
    import dataclasses

    from digitnet.config import TrainConfig
    from digitnet.training.presets import get_preset

    # The epoch's cost from its mini-batches, not from a pass over the training set between
    # epochs: PyTorch's loop makes no such pass, and on 2 threads the pass's BLAS threads keep
    # spinning into the next epoch's steps (which then took twice as long on this machine).
    if "preset" not in cfg:
        return TrainConfig(epochs=epochs, batch_size=cfg["batch"], eta=cfg["eta"], seed=seed, train_metrics="batches")
    train = get_preset(cfg["preset"])[1]
    return dataclasses.replace(train, epochs=epochs, seed=seed, augment=train.augment if augment else (),
                               train_metrics="batches")


def run_digitnet(cfg, epochs, seed, n_train, fast=True, engine=None, augment=False):
    from digitnet.data.datasets import load_mnist
    from digitnet.nn.metrics import accuracy
    from digitnet.training.train import Trainer

    d = load_mnist()
    train = d.train if n_train is None else d.train.subset(n_train)
    net = _initial(cfg, seed)
    trainer = Trainer(net, train, _train_config(cfg, epochs, seed, augment), test=None,
                      engine=engine if fast else "reference")
    global ENGINE
    ENGINE = trainer.step_engine

    seconds = 0.0
    while not trainer.done:  # the Trainer makes its engine before the first epoch's clock starts
        seconds += trainer.run_epoch().seconds  # the wall time of the epoch's gradient steps
    global CPU_SECONDS
    CPU_SECONDS = trainer.steps_cpu_seconds / epochs
    return seconds / epochs, accuracy(d.test.y, net.predict(d.test.x))


def _torch_cnn(cfg, net, dropout=0.0):
    """The same conv net in PyTorch, from digitnet's initial weights. digitnet's feature maps
    are channels-last (h, w, c), PyTorch's channels-first: the dense layer after the flatten
    gets its columns permuted accordingly."""
    import torch

    act = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}[cfg["activation"]]
    mods: list = [torch.nn.Unflatten(1, (1, 28, 28))]
    shape = None
    for module, p in zip(net.modules, net.params):
        if module.kind == "conv":
            conv = torch.nn.Conv2d(p["w"].shape[1], p["w"].shape[0], p["w"].shape[2])
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(p["w"].copy()))
                conv.bias.copy_(torch.from_numpy(p["b"].copy()))
            mods += [conv, act()]
            shape = module.out_shape
        elif module.kind == "pool":
            mods.append(torch.nn.MaxPool2d(module.size))
            shape = module.out_shape
        elif module.kind == "dense":
            w = p["w"]
            if shape is not None:  # first dense layer after the feature maps
                h, wd, c = shape
                w = w.reshape(len(w), h, wd, c).transpose(0, 3, 1, 2).reshape(len(w), -1)
                mods.append(torch.nn.Flatten())
                shape = None
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
                lin.bias.copy_(torch.from_numpy(p["b"].copy()))
            if dropout:  # digitnet drops the inputs of every dense layer but the network's first layer
                mods.append(torch.nn.Dropout(dropout))
            mods.append(lin)
            if module is not net.modules[-1]:
                mods.append(act())
    return torch.nn.Sequential(*mods)


def _torch_model(cfg, seed, dropout=None):
    """``cfg``'s network in PyTorch from digitnet's initial weights for ``seed``, with
    ``nn.Dropout`` where digitnet drops (``dropout``: default the config's)."""
    import torch

    net = _initial(cfg, seed)
    dropout = cfg.get("dropout", 0.0) if dropout is None else dropout
    if cfg.get("features"):
        return _torch_cnn(cfg, net, dropout)
    act = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}[cfg["activation"]]
    mods = []
    for l, p in enumerate(net.params):
        if l > 0 and dropout:
            mods.append(torch.nn.Dropout(dropout))
        lin = torch.nn.Linear(p["w"].shape[1], p["w"].shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(p["w"].copy()))
            lin.bias.copy_(torch.from_numpy(p["b"].copy()))
        mods.append(lin)
        if l < len(net.params) - 1:
            mods.append(act())
    if cfg["output"] == "sigmoid":
        mods.append(torch.nn.Sigmoid())
    return torch.nn.Sequential(*mods)  # softmax outputs: folded into CrossEntropyLoss


def _torch_loss(cfg):
    import torch

    if cfg["cost"] == "quadratic":
        def quadratic(a, y):  # C = 1/n sum_x 1/2 ||a - y||^2, as digitnet's
            return 0.5 * ((a - torch.nn.functional.one_hot(y, a.shape[1]).to(a.dtype)) ** 2).sum(1).mean()
        return quadratic
    return torch.nn.CrossEntropyLoss()  # log-softmax + NLL, the batch mean: softmax + cross-entropy


def _torch_optimizer(cfg, model):
    """torch.optim's counterpart of digitnet's optimizer for ``cfg``, same hyperparameters.

    digitnet's Nesterov rule (v <- mu v - eta g; w <- w - mu v_old + (1 + mu) v) and
    PyTorch's (b <- mu b + g; w <- w - eta (g + mu b)) are the same steps for a constant eta
    (v = -eta b), as they are within an epoch here."""
    import torch

    opt = cfg.get("optimizer", "sgd")
    if opt == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg["eta"])
    if opt in ("momentum", "nesterov"):
        return torch.optim.SGD(model.parameters(), lr=cfg["eta"], momentum=cfg["momentum"],
                               nesterov=opt == "nesterov")
    if opt == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg["eta"], betas=(cfg["momentum"], cfg["beta2"]), eps=1e-8)
    raise ValueError(f"no PyTorch optimizer for {opt!r}")


def check_one_step(config: str, seed: int = 0, x=None, y=None) -> float:
    """One step of digitnet's reference path and of the PyTorch contestant from the same
    weights on the same batch (default: the first 64 training images), dropout off: the
    largest difference of any weight or bias afterwards, relative to that parameter array's
    largest magnitude. (Adam divides each gradient by its own size, so the rounding of the
    smallest gradients shows more than with SGD.)"""
    import torch

    from digitnet.nn.network import backprop
    from digitnet.training.optim import make_optimizer

    cfg = CONFIGS[config]
    if x is None:
        x, y, _, _ = _data(64)
    net = _initial(cfg, seed)
    model, loss_fn = _torch_model(cfg, seed, dropout=0.0), _torch_loss(cfg)
    opt = _torch_optimizer(cfg, model)
    make_optimizer(cfg.get("optimizer", "sgd"), net.params, cfg.get("momentum", 0.9), cfg.get("beta2", 0.999)).step(
        net.params, backprop(net, x, y).layers, cfg["eta"])
    loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    opt.step()
    theirs = _torch_model_as_digitnet(cfg, net, model)
    worst = 0.0
    for p, q in zip(net.params, theirs):
        for k in p:
            worst = max(worst, float(np.abs(p[k] - q[k]).max() / np.abs(p[k]).max()))
    return worst


def _torch_model_as_digitnet(cfg, net, model):
    """The PyTorch model's parameters in the shapes and order of ``net.params``."""
    import torch

    layers = [m for m in model if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    out, shape = [], None
    for module in net.modules:
        if module.kind not in ("dense", "conv"):
            out.append({})
            if module.kind in ("pool",):
                shape = module.out_shape
            continue
        m = layers.pop(0)
        w = m.weight.detach().numpy()
        if module.kind == "conv":
            shape = module.out_shape
        elif shape is not None:  # first dense layer after the maps: back to channels-last columns
            h, wd, c = shape
            w = w.reshape(len(w), c, h, wd).transpose(0, 2, 3, 1).reshape(len(w), -1)
            shape = None
        out.append({"w": w, "b": m.bias.detach().numpy()})
    return out


def profile(config: str, steps: int = 100, seed: int = 0) -> str:
    """Where a step's time goes: digitnet's reference step taken apart layer by layer (the
    loop of ``network.forward`` / ``backward`` calling the same layer, activation, dropout,
    cost and optimizer functions), and PyTorch's forward, backward and optimizer step, as
    milliseconds of this process's CPU time per step (one thread: the wall time on an idle
    machine), averaged over ``steps`` batches of real training images after 5 warm-up steps.
    The preset's augmentation is timed on the side, as digitnet would run it."""
    import torch

    from digitnet.nn.activations import ACTIVATIONS, BACKWARD
    from digitnet.nn.network import _NO_ACTIVATION, _pool_before_relu, output_delta, total_cost
    from digitnet.training.augment import distort
    from digitnet.training.optim import make_optimizer

    cfg = CONFIGS[config]
    x_all, y_all, _, _ = _data(None)
    net, train_cfg = _initial(cfg, seed), _train_config(cfg, 1, seed, augment=True)
    opt = make_optimizer(train_cfg.optimizer, net.params, train_cfg.momentum, train_cfg.beta2)
    rng = np.random.default_rng(seed)
    pooled_first = _pool_before_relu(net)  # as backprop: a ReLU before a max-pool is applied after it
    B, p, clock = cfg["batch"], cfg.get("dropout", 0.0), time.process_time
    times: dict[str, float] = {}

    def tick(key, t0):
        t = clock()
        times[key] = times.get(key, 0.0) + t - t0
        return t

    for step in range(steps + 5):
        if step == 5:
            times.clear()
        idx = np.arange(step * B, (step + 1) * B) % len(x_all)
        t = clock()
        x, y = x_all[idx], y_all[idx]
        t = tick("batch (gather the rows)", t)
        if train_cfg.augment:
            distort(x, rng, train_cfg)
            t = tick("augmentation (not in the benchmark's s/epoch)", t)
        acts, zs, n_layers = [x], [], len(net.params)
        masks, inputs, cols = [None] * n_layers, [None] * n_layers, [None] * n_layers
        for l, (layer, par, act) in enumerate(zip(net.modules, net.params, net.activation_names)):
            a = acts[-1]
            name = f"{l} {layer.kind}"
            if p and l > 0 and layer.kind == "dense":
                keep = rng.random(a.shape, dtype=a.dtype) >= p
                masks[l] = keep * np.asarray(1 / (1 - p), a.dtype)
                a = inputs[l] = a * masks[l]
                t = tick(f"{name}: dropout forward", t)
            if layer.kind == "conv":
                cols[l] = layer.im2col(a)
                t = tick(f"{name}: im2col", t)
                z = layer.forward(par, a, cols[l])
            else:
                z = layer.forward(par, a)
            t = tick(f"{name}: forward", t)
            zs.append(z)
            if pooled_first[l]:
                z = ACTIVATIONS["relu"](z)
                t = tick(f"{name}: relu forward (of layer {l - 1}, after the pool)", t)
            elif layer.kind not in _NO_ACTIVATION and not (l + 1 < n_layers and pooled_first[l + 1]):
                z = ACTIVATIONS[act](z)
                t = tick(f"{name}: {act} forward", t)
            acts.append(z)
        delta = output_delta(net, zs[-1], acts[-1], y)
        total_cost(net, acts[-1], y)
        t = tick("cost and output delta", t)
        grads = [None] * n_layers
        for l in range(n_layers - 1, -1, -1):
            layer, name = net.modules[l], f"{l} {net.modules[l].kind}"
            a_in = acts[l] if masks[l] is None else inputs[l]
            kept = {"conv": {"cols": cols[l]}, "pool": {"z": zs[l]}}.get(layer.kind, {})
            if pooled_first[l]:
                delta = BACKWARD["relu"](zs[l], acts[l + 1], delta)
                t = tick(f"{name}: relu backward (of layer {l - 1}, after the pool)", t)
            grads[l], g = layer.backward(net.params[l], a_in, delta, l > 0, **kept)
            t = tick(f"{name}: backward", t)
            if l > 0:
                if masks[l] is not None:
                    g = g * masks[l]
                    t = tick(f"{name}: dropout backward", t)
                prev = net.modules[l - 1]
                if prev.kind in _NO_ACTIVATION or pooled_first[l]:
                    delta = g
                else:
                    delta = BACKWARD[net.activation_names[l - 1]](zs[l - 1], acts[l], g)
                    t = tick(f"{l - 1} {prev.kind}: {net.activation_names[l - 1]} backward", t)
        inv_n = np.asarray(1.0 / B, dtype=x.dtype)
        for gr in grads:
            for v in gr.values():
                v *= inv_n
        t = tick("gradient / batch size", t)
        opt.step(net.params, grads, cfg["eta"])
        tick(f"optimizer ({train_cfg.optimizer})", t)

    torch.set_num_threads(1)
    model, loss_fn = _torch_model(cfg, seed), _torch_loss(cfg)
    topt = _torch_optimizer(cfg, model)
    X, Y = torch.from_numpy(x_all), torch.from_numpy(y_all)
    ttimes = {"forward and cost": 0.0, "backward": 0.0, "optimizer": 0.0}
    for step in range(steps + 5):
        if step == 5:
            ttimes = dict.fromkeys(ttimes, 0.0)
        idx = torch.arange(step * B, (step + 1) * B) % len(X)
        xb, yb = X[idx], Y[idx]
        t0 = clock()
        topt.zero_grad()
        loss = loss_fn(model(xb), yb)
        t1 = clock()
        loss.backward()
        t2 = clock()
        topt.step()
        t3 = clock()
        ttimes["forward and cost"] += t1 - t0
        ttimes["backward"] += t2 - t1
        ttimes["optimizer"] += t3 - t2
    ms = {k: 1000 * v / steps for k, v in times.items()}
    tms = {k: 1000 * v / steps for k, v in ttimes.items()}
    ours = sum(v for k, v in ms.items() if not k.startswith("augmentation"))
    lines = [f"{config}: ms of CPU time per step of {B} (1 thread, {steps} steps)", "| digitnet (reference) | ms |",
             "| --- | ---: |"]
    lines += [f"| {k} | {v:.3f} |" for k, v in ms.items()]
    lines += [f"| **digitnet's step** (without augmentation) | **{ours:.2f}** |", "", "| PyTorch | ms |", "| --- | ---: |"]
    lines += [f"| {k} | {v:.3f} |" for k, v in tms.items()]
    lines += [f"| **PyTorch's step** | **{sum(tms.values()):.2f}** |"]
    return "\n".join(lines)


def run_torch(cfg, epochs, seed, n_train, threads, dataloader=False):
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    x, y, xt, yt = _data(n_train)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    model = _torch_model(cfg, seed)
    loss_fn = _torch_loss(cfg)
    opt = _torch_optimizer(cfg, model)
    B, n = cfg["batch"], len(X)
    loader = None
    if dataloader:
        ds = torch.utils.data.TensorDataset(X, Y)
        loader = torch.utils.data.DataLoader(ds, batch_size=B, shuffle=True,
                                             generator=torch.Generator().manual_seed(seed))
    from digitnet.training.train import epoch_eta

    train_cfg = _train_config(cfg, epochs, seed)
    model.train()
    global CPU_SECONDS
    start, cpu = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        for group in opt.param_groups:  # digitnet's learning rate for the epoch (its schedule)
            group["lr"] = epoch_eta(train_cfg, epoch)
        if loader is not None:
            batches = loader
        else:
            perm = torch.randperm(n)
            batches = ((X[idx], Y[idx]) for idx in (perm[i : i + B] for i in range(0, n, B)))
        for xb, yb in batches:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    per_epoch = (time.perf_counter() - start) / epochs
    CPU_SECONDS = (time.process_time() - cpu) / epochs
    model.eval()
    with torch.inference_mode():
        acc = (model(torch.from_numpy(xt)).argmax(1).numpy() == yt).mean()
    return per_epoch, float(acc)


def run_sklearn(cfg, epochs, seed, n_train):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, y, xt, yt = _data(n_train)
    eta = 0.5 if cfg["cost"] == "quadratic" else cfg["eta"]  # see the module docstring
    clf = MLPClassifier(
        hidden_layer_sizes=cfg["layers"][1:-1], activation="logistic" if cfg["activation"] == "sigmoid" else "relu",
        solver="sgd", learning_rate="constant", learning_rate_init=eta, batch_size=cfg["batch"], momentum=0.0,
        nesterovs_momentum=False, alpha=0.0, max_iter=epochs, shuffle=True, tol=0.0, n_iter_no_change=10**9,
        early_stopping=False, random_state=seed,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    per_epoch = (time.perf_counter() - start) / epochs
    return per_epoch, float((clf.predict(xt) == yt).mean())


def run_nielsen(cfg, epochs, seed, n_train):
    import numpy as np

    sys.path.insert(0, str(HERE))
    import nielsen_network

    x, y, xt, yt = _data(n_train)
    net0 = _initial(cfg, seed)
    net = nielsen_network.Network(list(cfg["layers"]), [p["w"] for p in net0.params], [p["b"] for p in net0.params])
    training, test = nielsen_network.load_data(x, y, xt, yt)
    start = time.perf_counter()
    with np.errstate(over="ignore"):  # exp(-z) overflows to inf for very negative z: sigmoid is 0 there
        net.SGD(training, epochs, cfg["batch"], cfg["eta"], seed=seed)
    per_epoch = (time.perf_counter() - start) / epochs
    with np.errstate(over="ignore"):
        acc = net.evaluate(test) / len(test)
    return per_epoch, acc


def worker(args) -> None:
    cfg = CONFIGS[args.config]
    name, e, s, n = args.worker, args.epochs, args.seed, args.train_size
    if name == "digitnet":
        per_epoch, acc = run_digitnet(cfg, e, s, n)
    elif name == "digitnet-augment":
        per_epoch, acc = run_digitnet(cfg, e, s, n, augment=True)
    elif name == "digitnet-numpy":
        per_epoch, acc = run_digitnet(cfg, e, s, n, engine="numpy")
    elif name == "digitnet-reference":
        per_epoch, acc = run_digitnet(cfg, e, s, n, fast=False, engine="numpy")
    elif name == "torch":
        per_epoch, acc = run_torch(cfg, e, s, n, args.threads)
    elif name == "torch-dataloader":
        per_epoch, acc = run_torch(cfg, e, s, n, args.threads, dataloader=True)
    elif name == "sklearn":
        per_epoch, acc = run_sklearn(cfg, e, s, n)
    elif name == "nielsen":
        per_epoch, acc = run_nielsen(cfg, e, s, n)
    else:
        raise SystemExit(f"unknown contestant {name!r}")
    print(json.dumps({"seconds_per_epoch": per_epoch, "accuracy": acc, "peak_mb": _peak_rss_mb(),
                      "engine": ENGINE, "cpu_seconds_per_epoch": CPU_SECONDS}))


# --- the driver -------------------------------------------------------------------------

def available(name: str, config: str) -> bool:
    import importlib.util

    preset = "preset" in CONFIGS[config]
    if name == "digitnet-augment":
        return preset  # the presets' augmentation; the other configurations have none
    if preset and name in ("digitnet-numpy", "sklearn", "nielsen"):
        return False  # momentum / Adam with dropout: the reference engine only; scikit-learn has no dropout
    if name.startswith("torch"):
        return importlib.util.find_spec("torch") is not None
    if CONFIGS[config].get("features") and name in ("sklearn", "nielsen", "digitnet-numpy"):
        return False  # none has convolution layers (digitnet's numpy engine: dense layers only)
    if name == "sklearn":
        return importlib.util.find_spec("sklearn") is not None
    if name == "nielsen":
        c = CONFIGS[config]
        return c["activation"] == c["output"] == "sigmoid" and c["cost"] == "quadratic"
    return True


def run_one(name, config, args) -> dict:
    env = dict(os.environ)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--config", config,
           "--epochs", str(args.epochs), "--seed", str(args.seed), "--threads", str(args.threads)]
    if args.train_size:
        cmd += ["--train-size", str(args.train_size)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{name} on {config} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    try:
        load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "?"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load}"


def versions() -> str:
    parts = []
    for mod in ("numpy", "torch", "sklearn"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            parts.append(f"{mod} not installed")
    try:
        from threadpoolctl import threadpool_info

        import numpy  # noqa: F401  (loads its BLAS so that threadpoolctl sees it)

        parts += [f"{i['internal_api']} {i['version']} ({i.get('architecture', '?')} kernels, "
                  f"{i['num_threads']} threads by default)" for i in threadpool_info() if i["user_api"] == "blas"]
    except ImportError:
        pass
    if os.environ.get("OPENBLAS_CORETYPE"):
        parts.append(f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}")
    return ", ".join(parts)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 epoch on 10,000 training images, 3 repetitions")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 3; --quick: 1)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each run (median taken; at least 3)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS / OpenMP / PyTorch threads of every contestant (0: each library's default)")
    p.add_argument("--train-size", type=int, default=None, help="train on the first N images (default all 60,000)")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from {', '.join(CONFIGS)}")
    p.add_argument("--only", default=",".join(CONTESTANTS), help="comma-separated contestants to run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1800, help="seconds before one run is given up")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    p.add_argument("--check", action="store_true",
                   help="only check that one step of digitnet and of PyTorch agree (dropout off), for --configs")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="only time STEPS steps of digitnet's reference path layer by layer, and PyTorch's, for "
                        "--configs, on one thread")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 1 if args.quick else 3
    if args.quick and args.train_size is None:
        args.train_size = 10_000
    if args.worker:
        return worker(args)
    if args.reps < 3:
        p.error("--reps must be at least 3: the table shows medians")

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    for c in configs:
        if c not in CONFIGS:
            p.error(f"unknown configuration {c!r}; choose from {', '.join(CONFIGS)}")
    if args.profile:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)  # BLAS on one thread, as the profile's table says
        except ImportError:
            pass  # then OPENBLAS_NUM_THREADS=1 in the environment does it
        for c in configs:
            print(profile(c, args.profile, args.seed) + "\n")
        return
    if args.check:
        for c in configs:
            print(f"{c}: one step, largest difference from PyTorch's weights {check_one_step(c, args.seed):.1e} "
                  "(relative to each array's largest weight)")
        return
    print(f"machine: {machine()}")
    print(f"versions: {versions()}; threads per contestant: {args.threads or 'library defaults'}")
    print(f"epochs per run: {args.epochs}, training images: {args.train_size or 60000}, repetitions: {args.reps}\n")
    results: dict = {}
    for config in configs:
        runners = [n for n in names if available(n, config)]
        runs: dict[str, list[dict]] = {n: [] for n in runners}
        for rep in range(args.reps):  # interleaved: A B C A B C ...
            for name in runners:
                r = run_one(name, config, args)
                runs[name].append(r)
                print(f"  {config} rep {rep + 1}: {name:20s} {r['seconds_per_epoch']:8.3f} s/epoch", file=sys.stderr)
        results[config] = runs
        print(table(config, runs))
        print()
    print(f"load average at the end: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "args": vars(args) | {"json": str(args.json)},
                                         "results": results}, indent=1, default=str))


def table(config: str, runs: dict[str, list[dict]]) -> str:
    c = CONFIGS[config]
    title = (f"{config}: {'-'.join(map(str, c['layers']))}, {c['activation']}/{c['output']}, {c['cost']}, "
             f"batch {c['batch']}, eta {c['eta']}")
    if "preset" in c:
        title = (f"{config}: --preset {c['preset']}'s network: {', '.join(c['features']) + ', ' if c['features'] else ''}"
                 f"{'-'.join(map(str, c['layers']))} {c['activation']}/{c['output']}, {c['cost']}, batch {c['batch']}, "
                 f"{c['optimizer']} eta {c['eta']} ({c['schedule']}), dropout {c['dropout']}; no augmentation "
                 "but for digitnet-augment")
    med = {n: statistics.median(r["seconds_per_epoch"] for r in rs) for n, rs in runs.items()}
    base = med.get("digitnet")
    cpu = {n: statistics.median(r["cpu_seconds_per_epoch"] for r in rs) for n, rs in runs.items()
           if all(r.get("cpu_seconds_per_epoch") is not None for r in rs)}
    lines = [title, "| contestant | s/epoch (median) | min-max | test accuracy | peak MB | x digitnet's time "
                    "| CPU s/epoch | x digitnet's CPU time |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, rs in runs.items():
        t = [r["seconds_per_epoch"] for r in rs]
        ratio = f"{med[n] / base:.1f}x" if base else "-"
        engine = rs[-1].get("engine")
        label = f"{n} ({engine})" if n == "digitnet" and engine else n
        cpu_ratio = f"{cpu[n] / cpu['digitnet']:.2f}x" if n in cpu and "digitnet" in cpu else "-"
        lines.append(f"| {label} | {med[n]:.3f} | {min(t):.3f}-{max(t):.3f} | {100 * rs[-1]['accuracy']:.2f}% | "
                     f"{max(r['peak_mb'] for r in rs):.0f} | {ratio} | "
                     f"{f'{cpu[n]:.3f}' if n in cpu else '-'} | {cpu_ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
