"""The PyTorch-Python peer of an mppdl network, and Fashion-MNIST loaded with numpy.

build_model(spec) turns an mppdl architecture JSON (resources/architectures/*.json) into an
nn.Module that runs the same layer graph with the same torch.nn layers and defaults as mppdl's
engine (engine/src/model/layers.cpp). Like mppdl, the module returns logits: a trailing Softmax
is dropped for training with CrossEntropyLoss.

forward_flops(spec) is the per-sample forward FLOP count with mppdl's formulas, used when the
mppdl binary is not at hand to print it ('mppdl arch show NAME').

load_fashion_mnist(dir) reads the four IDX .gz files with gzip + numpy: float32 images in [0, 1]
of shape [N, 1, 28, 28] (mppdl's default --normalize scale) and int64 labels.

Runs with Debian's /usr/bin/python3 (torch 1.13, numpy); no other dependency.
"""

import gzip
import json
import os

import numpy as np
import torch
from torch import nn

ARCH_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "resources", "architectures")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# Parameter defaults of engine/src/model/layers.cpp.
_DEFAULTS = {
    "Conv2D": {"stride": 1, "padding": "valid", "dilation": 1, "bias": True},
    "MaxPool2D": {"stride": None, "padding": 0},
    "AvgPool2D": {"stride": None, "padding": 0},
    "BatchNorm": {"momentum": 0.1, "eps": 1e-5},
    "Dense": {"bias": True},
    "LeakyReLU": {"negative_slope": 0.01},
    "Concat": {"axis": 0},
}
_META_KEYS = {"name", "type", "inputs"}


def resolve_arch_path(name_or_path):
    """A JSON file path, or the name of a bundled architecture (resources/architectures/NAME.json)."""
    if os.path.isfile(name_or_path):
        return name_or_path
    candidate = os.path.join(ARCH_DIR, name_or_path + ".json")
    if os.path.isfile(candidate):
        return os.path.normpath(candidate)
    raise FileNotFoundError("no architecture file or bundled architecture named %r" % name_or_path)


def load_spec(name_or_path):
    with open(resolve_arch_path(name_or_path)) as f:
        return json.load(f)


def _pair(v):
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ValueError("expected an integer or [h, w], got %r" % (v,))
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _numel(shape):
    return int(np.prod(shape)) if shape else 1


class _Layer:
    def __init__(self, d, previous):
        self.name = d["name"]
        self.type = d["type"]
        inputs = d.get("inputs")
        if inputs is None:
            inputs = [] if self.type == "Input" else ([previous] if previous else [])
        self.inputs = [inputs] if isinstance(inputs, str) else list(inputs)  # a name or a list
        self.p = dict(_DEFAULTS.get(self.type, {}))
        self.p.update({k: v for k, v in d.items() if k not in _META_KEYS})


def _plan(spec):
    """Layers in an execution order (inputs first), the output layer's name, and shapes."""
    layers, previous = [], None
    for d in spec["layers"]:
        layers.append(_Layer(d, previous))
        previous = d["name"]
    by_name = {l.name: l for l in layers}
    if len(by_name) != len(layers):
        raise ValueError("layer names are not unique")
    # Topological order, stable with respect to the written order.
    order, done = [], set()
    pending = list(layers)
    while pending:
        progressed = False
        for l in list(pending):
            if all(i in done for i in l.inputs):
                missing = [i for i in l.inputs if i not in by_name]
                if missing:
                    raise ValueError("layer %r: unknown inputs %s" % (l.name, missing))
                order.append(l)
                done.add(l.name)
                pending.remove(l)
                progressed = True
        if not progressed:
            raise ValueError("the layer graph has a cycle or unknown inputs: %s" % [l.name for l in pending])
    output = spec.get("output")
    if not output:
        consumed = {i for l in layers for i in l.inputs}
        sinks = [l.name for l in layers if l.name not in consumed]
        if len(sinks) != 1:
            raise ValueError("several layers feed no other layer: %s; set \"output\"" % sinks)
        output = sinks[0]
    shapes = {}
    for l in order:
        shapes[l.name] = _out_shape(l, [shapes[i] for i in l.inputs])
    return order, output, shapes


def _out_shape(l, ins):
    t, p = l.type, l.p
    if t == "Input":
        return list(p["shape"])
    x = ins[0]
    if t == "Conv2D":
        f = int(p["filters"])
        if p["padding"] == "same":
            return [f, x[1], x[2]]
        k, s, d = _pair(p["kernel_size"]), _pair(p["stride"]), _pair(p["dilation"])
        pad = (0, 0) if p["padding"] == "valid" else _pair(p["padding"])
        return [f] + [(x[1 + i] + 2 * pad[i] - (d[i] * (k[i] - 1) + 1)) // s[i] + 1 for i in range(2)]
    if t in ("MaxPool2D", "AvgPool2D"):
        k = _pair(p["pool_size"])
        s = _pair(p["stride"]) if p["stride"] is not None else k
        pad = _pair(p["padding"])
        return [x[0]] + [(x[1 + i] + 2 * pad[i] - k[i]) // s[i] + 1 for i in range(2)]
    if t == "Flatten":
        return [_numel(x)]
    if t == "Dense":
        return [int(p["units"])]
    if t == "Concat":
        axis = int(p["axis"]) % len(x)
        out = list(x)
        out[axis] = sum(s[axis] for s in ins)
        return out
    return list(x)  # BatchNorm, Dropout, activations, Add


def _layer_flops(l, ins, out):
    """Per-sample forward FLOPs with the formulas of engine/src/model/layers.cpp."""
    t, p = l.type, l.p
    if t == "Conv2D":
        k = _pair(p["kernel_size"])
        return 2 * ins[0][0] * k[0] * k[1] * _numel(out) + (_numel(out) if p["bias"] else 0)
    if t in ("MaxPool2D", "AvgPool2D"):
        k = _pair(p["pool_size"])
        return k[0] * k[1] * _numel(out)
    if t == "BatchNorm":
        return 2 * _numel(out)
    if t == "Dense":
        units = int(p["units"])
        return 2 * ins[0][0] * units + (units if p["bias"] else 0)
    if t in ("ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softmax"):
        return _numel(out)
    if t == "Add":
        return (len(ins) - 1) * _numel(out)
    return 0


def forward_flops(spec):
    """Per-sample forward FLOPs of the whole network (all layers, as 'mppdl arch show' totals)."""
    order, _, shapes = _plan(spec)
    return sum(_layer_flops(l, [shapes[i] for i in l.inputs], shapes[l.name]) for l in order)


def _make_module(l, ins):
    t, p = l.type, l.p
    if t == "Conv2D":
        cin = ins[0][0]
        k = _pair(p["kernel_size"])
        padding = "same" if p["padding"] == "same" else ((0, 0) if p["padding"] == "valid" else _pair(p["padding"]))
        return nn.Conv2d(cin, int(p["filters"]), k, stride=_pair(p["stride"]), padding=padding,
                         dilation=_pair(p["dilation"]), bias=bool(p["bias"]))
    if t in ("MaxPool2D", "AvgPool2D"):
        k = _pair(p["pool_size"])
        s = _pair(p["stride"]) if p["stride"] is not None else k
        cls = nn.MaxPool2d if t == "MaxPool2D" else nn.AvgPool2d
        return cls(k, stride=s, padding=_pair(p["padding"]))
    if t == "BatchNorm":
        cls = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
        return cls(ins[0][0], eps=float(p["eps"]), momentum=float(p["momentum"]))
    if t == "Dropout":
        return nn.Dropout(float(p["rate"]))
    if t == "Flatten":
        return nn.Flatten()
    if t == "Dense":
        return nn.Linear(ins[0][0], int(p["units"]), bias=bool(p["bias"]))
    if t == "ReLU":
        return nn.ReLU()
    if t == "LeakyReLU":
        return nn.LeakyReLU(float(p["negative_slope"]))
    if t == "Tanh":
        return nn.Tanh()
    if t == "Sigmoid":
        return nn.Sigmoid()
    if t == "Softmax":
        return nn.Softmax(dim=1)
    if t in ("Input", "Add", "Concat"):
        return None
    raise ValueError("layer %r: unknown type %r" % (l.name, t))


class GraphNet(nn.Module):
    """Executes an mppdl layer graph; forward() returns the logits (a trailing Softmax dropped)."""

    def __init__(self, spec, drop_trailing_softmax=True):
        super().__init__()
        order, output, shapes = _plan(spec)
        by_name = {l.name: l for l in order}
        if drop_trailing_softmax and by_name[output].type == "Softmax":
            output = by_name[output].inputs[0]
        # Only the layers the output depends on, in execution order (as mppdl's forwardLogits).
        needed = {output}
        for l in reversed(order):
            if l.name in needed:
                needed.update(l.inputs)
        self.steps = []  # (name, type, inputs, extra)
        self.layers = nn.ModuleDict()
        for l in order:
            if l.name not in needed:
                continue
            ins = [shapes[i] for i in l.inputs]
            m = _make_module(l, ins)
            if m is not None:
                self.layers[l.name] = m
            extra = int(l.p["axis"]) % len(ins[0]) + 1 if l.type == "Concat" else None
            self.steps.append((l.name, l.type, l.inputs, extra))
        self.input_names = [l.name for l in order if l.type == "Input" and l.name in needed]
        self.output = output
        self.input_shape = shapes[self.input_names[0]] if self.input_names else None
        self.sequential = all(len(s[2]) <= 1 for s in self.steps)

    def forward(self, x):
        values = {}
        for name, kind, inputs, extra in self.steps:
            if kind == "Input":
                values[name] = x
            elif kind == "Add":
                out = values[inputs[0]] + values[inputs[1]]
                for i in inputs[2:]:
                    out = out + values[i]
                values[name] = out
            elif kind == "Concat":
                values[name] = torch.cat([values[i] for i in inputs], dim=extra)
            else:
                values[name] = self.layers[name](values[inputs[0]])
        return values[self.output]


def build_model(spec_or_name):
    spec = load_spec(spec_or_name) if isinstance(spec_or_name, str) else spec_or_name
    return GraphNet(spec)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


# Fashion-MNIST ---------------------------------------------------------------------------------

def _read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:  # unsigned byte
        raise ValueError("%s: not an unsigned-byte IDX file (magic 0x%08x)" % (path, magic))
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(directory=FASHION_MNIST_DIR, limit=0):
    """(x_train, y_train, x_test, y_test) as torch tensors; limit > 0 keeps the first N training rows."""
    def images(name):
        a = _read_idx_gz(os.path.join(directory, name))
        return torch.from_numpy(a.astype(np.float32).reshape(-1, 1, a.shape[1], a.shape[2]) / 255.0)

    def labels(name):
        return torch.from_numpy(_read_idx_gz(os.path.join(directory, name)).astype(np.int64))

    x_train, y_train = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
    x_test, y_test = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
    if limit and limit > 0:
        x_train, y_train = x_train[:limit].contiguous(), y_train[:limit].contiguous()
    return x_train, y_train, x_test, y_test


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:] or ["mlp", "lenet5", "fmnist_cnn", "resnet_tiny", "cifar_cnn6", "vgg11"]:
        spec = load_spec(name)
        model = build_model(spec)
        x = torch.zeros([2] + list(model.input_shape))
        print("%-12s %10d params %14d FLOPs/sample  out %s" % (
            name, count_parameters(model), forward_flops(spec), tuple(model(x).shape)))
