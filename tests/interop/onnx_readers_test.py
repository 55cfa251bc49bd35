#!/usr/bin/python3
"""mppdl's ONNX files read by independent readers, against mppdl's own predictions.

For each model: train it briefly with the real binary on real Fashion-MNIST (recorded in a scratch
project), `mppdl export --format onnx`, `mppdl predict --out CSV` on the test split, then
- onnx.checker.check_model(full_check=True) (Debian's python3-onnx) accepts the file, and the
  metadata names the classes, the normalization and the run;
- OpenCV's DNN module (python3-opencv, cv2.dnn.readNetFromONNX) runs it on the first 256 raw test
  images (pixel values 0-255, the graph normalizes) and its probabilities match mppdl's CSV within
  1e-4, in one batch of 256 and in batches of 1 and 7 (the batch dimension is dynamic);
- onnxruntime does the same when it is installed (the GPU machine has it; Debian 12 has no package).

Models: mlp, lenet5 (standardize normalization: Sub/Div in the graph), fmnist_cnn (BatchNorm,
Dropout), every_layer (every layer type of the engine, no normalization) and a 4-member ensemble
(one graph averaging its members).

    tests/interop/onnx_readers_test.py --mppdl build/app/mppdl [--keep DIR]
"""

import argparse
import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnx.checker
import cv2

HERE = os.path.dirname(os.path.abspath(__file__))
FMNIST = "/usr/share/datasets/fashion-mnist"
TOLERANCE = 1e-4
IMAGES = 256

# name: (architecture, extra train flags)
MODELS = {
    "mlp": ("mlp", []),
    "lenet5": ("lenet5", ["--normalize", "standardize"]),
    "fmnist_cnn": ("fmnist_cnn", []),
    "every_layer": (os.path.join(HERE, "every_layer.json"), ["--normalize", "none", "--lr", "0.001"]),
    "ensemble4": ("fmnist_cnn", ["--strategy", "ensemble", "--segments", "4"]),
}


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        sys.exit("FAILED (exit %d): %s\n%s" % (r.returncode, " ".join(cmd), r.stdout))
    return r.stdout


def test_images(n):
    with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16)
    return data.reshape(-1, 1, 28, 28)[:n].astype(np.float32)


def read_predictions(path, n):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1 : n + 1]
    classes = [h[len("prob_"):] for h in header[2:]]
    probabilities = np.array([[float(v) for v in r[2:]] for r in body], np.float32)
    return classes, probabilities


def cv2_forward(path, x, batch):
    net = cv2.dnn.readNetFromONNX(path)
    out = []
    for i in range(0, len(x), batch):
        net.setInput(x[i : i + batch])
        out.append(net.forward().copy())
    return np.concatenate(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mppdl", required=True)
    p.add_argument("--keep", help="work in this directory and keep it")
    p.add_argument("--models", default=",".join(MODELS))
    a = p.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="mppdl-onnx-")
    os.makedirs(work, exist_ok=True)
    project = os.path.join(work, "onnx.mppdl")
    if os.path.exists(project):
        os.remove(project)
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    x = test_images(IMAGES)
    failures = []
    for name in a.models.split(","):
        arch, extra = MODELS[name]
        run([a.mppdl, "train", "--data", FMNIST, "--limit", "1200", "--arch", arch, "--epochs", "1",
             "--batch-size", "64", "--seed", "3", "--project", project, "--name", name, "--quiet"] + extra)
        model = os.path.join(work, name + ".onnx")
        exported = json.loads(run([a.mppdl, "export", "--run", name, "--project", project, "--format", "onnx",
                                   "--out", model, "--json"]))
        predictions = os.path.join(work, name + ".csv")
        run([a.mppdl, "predict", "--run", name, "--project", project, "--data", FMNIST, "--out", predictions])
        classes, expected = read_predictions(predictions, IMAGES)

        m = onnx.load(model)
        onnx.checker.check_model(m, full_check=True)
        meta = {prop.key: prop.value for prop in m.metadata_props}
        problems = []
        if json.loads(meta.get("mppdl.classes", "[]")) != classes:
            problems.append("metadata classes %s differ from the CSV's %s" % (meta.get("mppdl.classes"), classes))
        if "mppdl.normalization" not in meta or "mppdl.run" not in meta:
            problems.append("metadata lacks mppdl.normalization or mppdl.run: %s" % sorted(meta))
        opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
        if not opset or opset[0] < 13:
            problems.append("opset %s" % opset)
        dims = m.graph.input[0].type.tensor_type.shape.dim
        if not dims[0].dim_param:
            problems.append("the batch dimension is fixed (%s)" % dims[0])

        readers = {"opencv": lambda b: cv2_forward(model, x, b)}
        if onnxruntime is not None:
            session = onnxruntime.InferenceSession(model, providers=onnxruntime.get_available_providers())
            readers["onnxruntime"] = lambda b: np.concatenate(
                [session.run(None, {"input": x[i : i + b]})[0] for i in range(0, len(x), b)])
        worst = {}
        for reader, forward in readers.items():
            for batch in (IMAGES, 7, 1):
                got = forward(batch)
                if got.shape != expected.shape:
                    problems.append("%s batch %d: shape %s, expected %s" % (reader, batch, got.shape, expected.shape))
                    continue
                diff = float(np.abs(got - expected).max())
                worst[reader] = max(worst.get(reader, 0.0), diff)
                if diff > TOLERANCE:
                    problems.append("%s batch %d: max |difference| %.3g > %g" % (reader, batch, diff, TOLERANCE))
        print("%-12s %2d nodes, %6d weights, members %s, opset %d: %s" % (
            name, exported["nodes"], exported["weight_bytes"] // 4, meta.get("mppdl.members"), opset[0],
            ", ".join("%s max |diff| %.2g" % kv for kv in worst.items())))
        for problem in problems:
            print("  FAIL " + problem)
            failures.append(name + ": " + problem)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        sys.exit("%d failure(s)" % len(failures))
    print("all %d models agree within %g" % (len(a.models.split(",")), TOLERANCE))


if __name__ == "__main__":
    main()
