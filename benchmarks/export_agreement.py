"""How closely the ONNX and PyTorch exports reproduce digitnet, on all 10,000 MNIST test images.

    digitnet train --preset video --epochs 1 --preprocess none --out video.safetensors
    python benchmarks/export_agreement.py video.safetensors [MORE.safetensors ...]

For each model: the largest difference of any output activation from digitnet's
``net.feedforward``, how many predicted digits agree, and, for scale, how far each float32
result is from the same network computed in float64. A model that deskews its inputs is
exported with ``network_only=True`` and given ``deskew_inputs(x)``. Needs onnx, onnxruntime
and (optionally) torch.
"""

from __future__ import annotations

import sys

import numpy as np

import digitnet as dn
from digitnet.data.images import deskew_inputs
from digitnet.export import to_onnx


def outputs(net, x):
    """{name: (n, 10) outputs} from digitnet, onnxruntime and (if installed) PyTorch."""
    import onnxruntime as ort

    network_only = net.config.preprocess == "deskew"
    xin = deskew_inputs(x.copy()) if network_only else x
    graph = to_onnx(net, network_only=network_only).SerializeToString()
    out = {"onnx": ort.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(None, {"input": xin})[0]}
    try:
        import torch

        from digitnet.export import to_torch

        with torch.no_grad():
            out["torch"] = to_torch(net, network_only=network_only)(torch.from_numpy(xin)).numpy()
    except ImportError:
        print("(PyTorch is not installed: no torch column)")
    return out


def main(paths: list[str]) -> None:
    mnist = dn.load_mnist()
    x, y = mnist.test.x, mnist.test.y
    for path in paths:
        net = dn.load_model(path).net
        ref = net.feedforward(x)
        exact = net.astype("float64").feedforward(x.astype(np.float64))
        print(f"{path} ({net.config.describe()}, preprocess {net.config.preprocess}): accuracy {np.mean(ref.argmax(1) == y):.4f}; "
              f"digitnet float32 vs float64: {np.abs(ref - exact).max():.2e}")
        for name, out in outputs(net, x).items():
            agree = int((out.argmax(1) == ref.argmax(1)).sum())
            print(f"  {name:5s} max |diff| vs digitnet {np.abs(out - ref).max():.2e}, digits agreeing {agree}/{len(x)}, "
                  f"vs float64 {np.abs(out - exact).max():.2e}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
