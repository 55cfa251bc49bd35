#!/usr/bin/python3
"""A MADlib model architecture row checked the way MADlib would use it, without Keras.

madlib_keras_predict_byom() builds the Keras model from the row's model_arch, takes the shapes of
model.get_weights(), splits model_weights with madlib_keras_serializer.deserialize_as_nd_weights()
(float32 in the host's byte order, each array in C order, in get_weights() order) and predicts each
row of REAL[] (height x width x channels) divided by normalizing_const. This script does the same
with NumPy, with Keras' semantics for the layers mppdl exports (Conv2D with HWIO kernels, TF's
"same" padding, MaxPooling2D, Dropout as the identity at inference, channels-last Flatten, Dense
x @ W + b, activations), and compares the probabilities with a CSV of `mppdl predict --out`.

usage: madlib_keras_reference.py --conn CONN --table MODEL_ARCH_TABLE --model-id N
           --rows "SELECT id, x FROM t ORDER BY id" --normalizing-const C --predictions P.csv
Exits 0 when every probability agrees within --tolerance (1e-4), 1 otherwise, printing the
largest difference.
"""

import argparse
import csv
import json
import subprocess
import sys

import numpy as np


def psql(conn, sql):
    out = subprocess.run(["psql", conn, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout


def keras_layers(model_arch):
    config = model_arch["config"]
    return config["layers"] if isinstance(config, dict) else config


def pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def same_pads(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def weight_shapes(layers):
    """The shapes of model.get_weights(), layer by layer, as Keras builds them."""
    shape = None
    shapes = []
    for layer in layers:
        cls, cfg = layer["class_name"], layer["config"]
        if shape is None:
            shape = tuple(cfg.get("batch_input_shape") or cfg.get("batch_shape"))[1:]
        if cls in ("Conv2D", "Convolution2D"):
            kh, kw = pair(cfg["kernel_size"])
            sh, sw = pair(cfg.get("strides", 1))
            h, w, c = shape
            shapes.append((kh, kw, c, cfg["filters"]))
            if cfg.get("use_bias", True):
                shapes.append((cfg["filters"],))
            if cfg.get("padding", "valid") == "same":
                h, w = -(-h // sh), -(-w // sw)
            else:
                h, w = (h - kh) // sh + 1, (w - kw) // sw + 1
            shape = (h, w, cfg["filters"])
        elif cls in ("MaxPooling2D", "MaxPool2D"):
            ph, pw = pair(cfg.get("pool_size", 2))
            sh, sw = pair(cfg.get("strides") or cfg.get("pool_size", 2))
            h, w, c = shape
            if cfg.get("padding", "valid") == "same":
                shape = (-(-h // sh), -(-w // sw), c)
            else:
                shape = ((h - ph) // sh + 1, (w - pw) // sw + 1, c)
        elif cls == "Flatten":
            shape = (int(np.prod(shape)),)
        elif cls == "Dense":
            shapes.append((shape[0], cfg["units"]))
            if cfg.get("use_bias", True):
                shapes.append((cfg["units"],))
            shape = (cfg["units"],)
    return shapes


def deserialize_as_nd_weights(serialized, shapes):
    """MADlib's madlib_keras_serializer.deserialize_as_nd_weights()."""
    flat = np.frombuffer(serialized, dtype=np.float32)
    total = sum(int(np.prod(s)) for s in shapes)
    if total != flat.size:
        raise SystemExit("Number of elements in model weights({0}) doesn't match model({1}).".format(flat.size, total))
    weights, at = [], 0
    for s in shapes:
        n = int(np.prod(s))
        weights.append(flat[at:at + n].reshape(s))
        at += n
    return weights


def activate(x, name, alpha=0.3):
    if name in (None, "linear"):
        return x
    if name == "relu":
        return np.maximum(x, 0)
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "leaky_relu":
        return np.where(x > 0, x, alpha * x)
    raise SystemExit("activation %r is not in this reference" % name)


def windows(x, kh, kw, sh, sw, padding, fill):
    """[N, OH, OW, kh, kw, C] views of x [N, H, W, C] under Keras' padding."""
    n, h, w, c = x.shape
    if padding == "same":
        (t, b), (l, r) = same_pads(h, kh, sh), same_pads(w, kw, sw)
        x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=fill)
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.empty((n, oh, ow, kh, kw, c), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j, :] = x[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :]
    return out


def forward(layers, weights, x):
    weights = list(weights)
    x = x.astype(np.float64)
    for layer in layers:
        cls, cfg = layer["class_name"], layer["config"]
        act = cfg.get("activation")
        if isinstance(act, dict):
            act = act.get("class_name")
        if cls in ("Conv2D", "Convolution2D"):
            kernel = weights.pop(0)
            kh, kw = kernel.shape[:2]
            sh, sw = pair(cfg.get("strides", 1))
            win = windows(x, kh, kw, sh, sw, cfg.get("padding", "valid"), 0.0)
            x = np.tensordot(win, kernel.astype(np.float64), axes=([3, 4, 5], [0, 1, 2]))
            if cfg.get("use_bias", True):
                x = x + weights.pop(0)
            x = activate(x, act)
        elif cls in ("MaxPooling2D", "MaxPool2D"):
            ph, pw = pair(cfg.get("pool_size", 2))
            sh, sw = pair(cfg.get("strides") or cfg.get("pool_size", 2))
            x = windows(x, ph, pw, sh, sw, cfg.get("padding", "valid"), -np.inf).max(axis=(3, 4))
        elif cls == "Flatten":
            x = x.reshape(x.shape[0], -1)  # channels_last: h, w, c in row-major order
        elif cls == "Dense":
            x = x @ weights.pop(0).astype(np.float64)
            if cfg.get("use_bias", True):
                x = x + weights.pop(0)
            x = activate(x, act)
        elif cls == "Activation":
            x = activate(x, act)
        elif cls == "LeakyReLU":
            x = activate(x, "leaky_relu", cfg.get("alpha", 0.3))
        elif cls in ("Dropout", "InputLayer"):
            pass
        else:
            raise SystemExit("layer class %s is not in this reference" % cls)
    return x


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--conn", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--model-id", type=int, required=True)
    p.add_argument("--rows", required=True, help="SELECT id, x ... ORDER BY id")
    p.add_argument("--normalizing-const", type=float, default=1.0)
    p.add_argument("--predictions", required=True)
    p.add_argument("--tolerance", type=float, default=1e-4)
    a = p.parse_args()

    arch = json.loads(psql(a.conn, "SELECT model_arch::text FROM %s WHERE model_id = %d" % (a.table, a.model_id)))
    hexed = psql(a.conn, "SELECT encode(model_weights, 'hex') FROM %s WHERE model_id = %d" % (a.table, a.model_id))
    layers = keras_layers(arch)
    shapes = weight_shapes(layers)
    weights = deserialize_as_nd_weights(bytes.fromhex(hexed.strip().replace("\n", "")), shapes)
    input_shape = tuple(layers[0]["config"].get("batch_input_shape") or layers[0]["config"]["batch_shape"])[1:]

    ids, rows = [], []
    for line in psql(a.conn, "COPY (%s) TO STDOUT" % a.rows).splitlines():
        key, array = line.split("\t")
        ids.append(key)
        values = array.replace("{", "").replace("}", "").split(",")
        rows.append(np.array(values, dtype=np.float32).reshape(input_shape))
    # predict_byom: np.array(x, dtype=float32) / normalizing_const, one row at a time
    x = np.stack(rows) / np.float32(a.normalizing_const)
    probabilities = forward(layers, weights, x)

    with open(a.predictions, newline="") as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1:]
    by_id = {r[0]: np.array(r[2:2 + probabilities.shape[1]], dtype=np.float64) for r in body}
    worst = 0.0
    for key, reference in zip(ids, probabilities):
        if key not in by_id:
            raise SystemExit("row %s is not in %s (header %s)" % (key, a.predictions, header))
        worst = max(worst, float(np.abs(by_id[key] - reference).max()))
    total = sum(int(np.prod(s)) for s in shapes)
    print("MADlib-style deserialization: %d weights in %d arrays %s; %d rows; largest probability difference "
          "from mppdl predict: %.3g" % (total, len(shapes), [list(s) for s in shapes], len(ids), worst))
    return 0 if worst <= a.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
