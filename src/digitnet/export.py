"""Export a trained network to ONNX or PyTorch, to run it outside digitnet.

Both exports compute exactly :meth:`Network.feedforward`: the input is what digitnet's first
layer sees, ``(n, 784)`` float32 (float64 for a float64 network) holding pixel / 255 of a
28x28 image, row by row, white ink on black (``digitnet.prepare_image`` makes it from a
picture); the output is the ``(n, 10)`` output activations, whose argmax is the digit.

* :func:`to_onnx` builds the graph with ``onnx.helper`` (no PyTorch needed; the ``onnx``
  package is the ``digitnet[onnx]`` extra) and :func:`save_onnx` writes it.
* :func:`to_torch` returns a ``torch.nn.Sequential`` of PyTorch's own modules (torch is
  optional and imported only here); :func:`save_torch` writes it with ``torch.save``.

Layer by layer:

* dense: ``w`` is already ``(n_out, n_in)``, PyTorch's ``nn.Linear`` layout, and
  z = a w^T + b is ONNX's ``Gemm`` with ``transB=1``.
* conv: digitnet's filters ``w[o, c, u, v]`` are cross-correlated with the image exactly as
  ``nn.Conv2d`` / ONNX ``Conv`` do (stride 1, no padding); digitnet's feature maps are
  channels-last ``(n, h, w, c)``, the exports' channels-first ``(n, c, h, w)``, so the input
  is reshaped to ``(n, 1, 28, 28)`` (one channel: the same numbers) and the dense layer after
  a flatten gets its weight columns reordered from (h, w, c) to (c, h, w).
* pool: non-overlapping max-pooling that drops a ragged edge is ``MaxPool2d(size)`` (floor).
* activations: sigmoid, tanh, relu, softmax (over each row), identity, by name.

A network that deskews its input (``preprocess="deskew"``) is refused unless
``network_only=True``: deskewing is a per-image shear computed from the ink's moments, not a
layer, so the exported network alone then expects inputs already deskewed by
:func:`digitnet.data.images.deskew_inputs`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from digitnet.errors import DigitnetError
from digitnet.nn.network import Network

ONNX_OPSET = 17  # ONNX opset the graph declares: Softmax over one axis needs >= 13
FORMATS = ("onnx", "torch")
SUPPORTED_KINDS = ("dense", "conv", "pool", "flatten")
ONNX_ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softmax": "Softmax", "identity": "Identity"}
INPUT_NAME, OUTPUT_NAME = "input", "output"


class ExportError(DigitnetError):
    """A network cannot be exported as asked (a layer, a preprocessing step, a missing package, the output path)."""


def input_description(net: Network) -> str:
    """What the exported graph takes, in one line (also stored in the ONNX file)."""
    n_in, dtype = net.config.layers[0], net.config.dtype
    side = int(round(n_in**0.5))
    picture = f" of a {side}x{side} image, row by row, white ink on black" if side * side == n_in else ""
    deskew = ", deskewed first with digitnet.data.images.deskew_inputs" if net.config.preprocess == "deskew" else ""
    return f"(n, {n_in}) {dtype}: pixel / 255{picture}{deskew}"


def check_exportable(net: Network, *, network_only: bool = False) -> None:
    """Raise :class:`ExportError` if ``net`` has a layer or a preprocessing step the exports lack."""
    for l, kind in enumerate(net.kinds):
        if kind not in SUPPORTED_KINDS:
            raise ExportError(
                f"Layer {l} is a {kind!r} layer, which the export does not support (it exports "
                f"{', '.join(SUPPORTED_KINDS)} layers): export a network made of those."
            )
    for l, act in enumerate(net.activation_names):
        if act not in ONNX_ACTIVATIONS:
            raise ExportError(f"Layer {l}'s activation {act!r} cannot be exported; use one of {', '.join(ONNX_ACTIVATIONS)}.")
    if net.config.preprocess == "deskew" and not network_only:
        raise ExportError(
            "The model deskews its inputs (preprocess 'deskew'), a per-image shear that the export does not "
            "carry. Export the network alone with --network-only (network_only=True in Python) and deskew each "
            "input first with digitnet.data.images.deskew_inputs(x)."
        )


def _layers(net: Network):
    """Each layer as (kind, module, params, activation, reorder), where ``reorder`` is the
    (h, w, c) shape whose flattening a dense layer's weight columns follow in digitnet and
    must be reordered to (c, h, w) for a channels-first flatten (None if not needed)."""
    after_flatten = None
    for layer, p, act in zip(net.modules, net.params, net.activation_names):
        reorder = None
        if layer.kind == "flatten" and len(layer.in_shape) == 3:
            after_flatten = layer.in_shape
        elif layer.kind == "dense" and after_flatten is not None:
            reorder, after_flatten = after_flatten, None
        yield layer.kind, layer, p, act, reorder


def _dense_w(w: np.ndarray, reorder: tuple[int, int, int] | None) -> np.ndarray:
    """A dense layer's ``w`` (n_out, n_in) with its columns in (c, h, w) order if it follows a flatten of a map."""
    if reorder is None:
        return w
    h, wd, c = reorder
    return np.ascontiguousarray(w.reshape(len(w), h, wd, c).transpose(0, 3, 1, 2).reshape(len(w), -1))


def _picture_side(net: Network) -> int | None:
    """The side of the square input picture if the network starts with conv or pool layers."""
    first = net.modules[0]
    return first.in_shape[0] if first.kind in ("conv", "pool") else None


# --- ONNX ------------------------------------------------------------------------------


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'digitnet[onnx]' (or '.[onnx]' in a clone of digitnet)") from None
    return onnx, helper, numpy_helper


def to_onnx(
    net: Network,
    path: str | os.PathLike | None = None,
    *,
    network_only: bool = False,
    overwrite: bool = False,
    opset: int = ONNX_OPSET,
) -> Any:
    """The network as an ``onnx.ModelProto``: input ``"input"`` (n, 784), output ``"output"`` (n, 10),
    also written to ``path`` if given (atomically; an existing file only with ``overwrite``).

    The graph is checked with ``onnx.checker``. Float32 networks give a float32 graph,
    float64 networks a float64 one (onnxruntime's CPU build has no float64 ``Conv``: run a
    float64 conv net as ``net.astype("float32")``).
    """
    check_exportable(net, network_only=network_only)
    if path is not None:
        _check_out(path, overwrite)
    onnx, helper, numpy_helper = _import_onnx()
    from digitnet._version import __version__

    dtype = np.dtype(net.config.dtype)
    elem = onnx.TensorProto.FLOAT if dtype == np.float32 else onnx.TensorProto.DOUBLE
    nodes, inits = [], []
    name = INPUT_NAME

    def const(tag: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), f"{tag}"))
        return tag

    side = _picture_side(net)
    if side is not None:  # (n, 784) -> (n, 1, 28, 28): channels-first with one channel is a reshape
        shape = const("picture_shape", np.array([-1, 1, side, side], np.int64))
        nodes.append(helper.make_node("Reshape", [name, shape], ["picture"], name="to_picture"))
        name = "picture"
    for l, (kind, layer, p, act, reorder) in enumerate(_layers(net)):
        out = f"z{l}"
        if kind == "dense":
            w, b = const(f"layers.{l}.w", _dense_w(p["w"], reorder)), const(f"layers.{l}.b", p["b"])
            nodes.append(helper.make_node("Gemm", [name, w, b], [out], transB=1, name=f"dense{l}"))  # z = a w^T + b
        elif kind == "conv":
            w, b = const(f"layers.{l}.w", p["w"]), const(f"layers.{l}.b", p["b"])
            nodes.append(helper.make_node("Conv", [name, w, b], [out], kernel_shape=[layer.k, layer.k], name=f"conv{l}"))
        elif kind == "pool":
            s = layer.size
            nodes.append(helper.make_node("MaxPool", [name], [out], kernel_shape=[s, s], strides=[s, s], name=f"pool{l}"))
        elif len(layer.in_shape) == 3:  # flatten a (c, h, w) map; the next dense layer's columns are reordered to match
            nodes.append(helper.make_node("Flatten", [name], [out], axis=1, name=f"flatten{l}"))
        else:  # a flatten of what is flat already
            continue
        name = out
        if kind in ("dense", "conv") and act != "identity":
            extra = {"axis": 1} if act == "softmax" else {}
            nodes.append(helper.make_node(ONNX_ACTIVATIONS[act], [name], [f"a{l}"], name=f"{act}{l}", **extra))
            name = f"a{l}"
    nodes.append(helper.make_node("Identity", [name], [OUTPUT_NAME], name="output"))
    n_in, n_out = net.config.layers[0], net.config.layers[-1]
    graph = helper.make_graph(
        nodes,
        "digitnet",
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["n", n_in])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, ["n", n_out])],
        initializer=inits,
    )
    graph.input[0].doc_string = input_description(net)
    graph.output[0].doc_string = f"(n, {n_out}) {dtype.name}: the output activations; the argmax is the predicted class"
    model = helper.make_model(
        graph,
        producer_name="digitnet",
        producer_version=__version__,
        opset_imports=[helper.make_opsetid("", opset)],
        doc_string=f"digitnet network {net.config.describe()}",
    )
    model.ir_version = min(model.ir_version, 8)  # IR 8 (ONNX 1.10+): readable by older onnxruntimes too
    helper.set_model_props(model, {"network": net.config.describe(), "input": input_description(net)})
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        _write(path, model.SerializeToString())
    return model


def save_onnx(net: Network, path: str | os.PathLike, *, network_only: bool = False, overwrite: bool = False) -> Path:
    """Write :func:`to_onnx` of ``net`` to ``path`` atomically; refuses an existing file unless ``overwrite``."""
    to_onnx(net, path, network_only=network_only, overwrite=overwrite)
    return Path(path)


# --- PyTorch ---------------------------------------------------------------------------


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ExportError("PyTorch is not installed: pip install torch") from None
    return torch


def to_torch(net: Network, *, network_only: bool = False) -> Any:
    """The network as a ``torch.nn.Sequential`` of PyTorch's own modules, in the network's dtype.

    It takes a tensor (n, 784) of pixel / 255 and returns the (n, 10) output activations,
    as :meth:`Network.feedforward` does. The parameters are copies: training one does not
    change the other.
    """
    check_exportable(net, network_only=network_only)
    torch = _import_torch()
    nn = torch.nn
    dtype = {"float32": torch.float32, "float64": torch.float64}[net.config.dtype]
    acts = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "softmax": lambda: nn.Softmax(dim=1)}
    modules: list[Any] = []
    side = _picture_side(net)
    if side is not None:
        modules.append(nn.Unflatten(1, (1, side, side)))  # (n, 784) -> (n, 1, 28, 28)
    for kind, layer, p, act, reorder in _layers(net):
        if kind == "dense":
            m = nn.Linear(layer.n_in, layer.n_out, dtype=dtype)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(_dense_w(p["w"], reorder)))
                m.bias.copy_(torch.from_numpy(p["b"]))
        elif kind == "conv":
            m = nn.Conv2d(layer.in_shape[2], layer.channels, layer.k, dtype=dtype)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(p["w"]))
                m.bias.copy_(torch.from_numpy(p["b"]))
        elif kind == "pool":
            m = nn.MaxPool2d(layer.size)
        elif len(layer.in_shape) == 3:
            m = nn.Flatten()
        else:
            continue
        modules.append(m)
        if kind in ("dense", "conv") and act != "identity":
            modules.append(acts[act]())
    return nn.Sequential(*modules).eval()


def save_torch(net: Network, path: str | os.PathLike, *, network_only: bool = False, overwrite: bool = False) -> Path:
    """Write :func:`to_torch` of ``net`` with ``torch.save`` (the whole module) to ``path`` atomically.

    Load it with ``torch.load(path, weights_only=False)``: it holds only PyTorch's own
    modules, so digitnet is not needed to load it.
    """
    _check_out(path, overwrite)
    module = to_torch(net, network_only=network_only)
    torch = _import_torch()
    buf = io.BytesIO()
    torch.save(module, buf)
    return _write(path, buf.getvalue())


def export(net: Network, path: str | os.PathLike, format: str, *, network_only: bool = False, overwrite: bool = False) -> Path:
    """:func:`save_onnx` or :func:`save_torch`, by ``format`` name ("onnx" or "torch")."""
    if format not in FORMATS:
        raise ExportError(f"Unknown export format {format!r}; choose onnx or torch.")
    save = save_onnx if format == "onnx" else save_torch
    return save(net, path, network_only=network_only, overwrite=overwrite)


# --- files -----------------------------------------------------------------------------


def _check_out(path: str | os.PathLike, overwrite: bool) -> None:
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a directory; give a file name for the export.")
    if path.exists() and not overwrite:
        raise ExportError(f"{path} exists already; choose another name, or replace it with --force (overwrite=True in Python).")


def _write(path: str | os.PathLike, data: bytes) -> Path:
    from digitnet.errors import ModelFileError
    from digitnet.files import atomic_write_bytes

    try:
        return atomic_write_bytes(path, data)
    except ModelFileError as e:
        raise ExportError(str(e)) from None
