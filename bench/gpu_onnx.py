#!/usr/bin/env python3
"""ONNX exports checked with onnxruntime, and mppdl's GPU predictions against its CPU ones.

For each model that packaging/gpu-kit.sh trained, exported and predicted on the CPU (the
Debian machine, libtorch 1.13): `mppdl predict --device cuda:0` of the same model file on the
Fashion-MNIST test split (10,000 images), and onnxruntime on the .onnx file with every execution
provider it has (CUDAExecutionProvider where onnxruntime-gpu is installed, else the CPU), fed the
raw pixels (the graph normalizes), in batches of 1,000 and of 7 (the batch dimension is dynamic).
The largest absolute difference of the class probabilities, and the share of rows whose
predicted class differs, for each pair. Target: within 1e-4, as tests/interop/onnx_readers_test.py
asks of the readers on the CPU.

    python3 bench/gpu_onnx.py --mppdl build-gpu/app/mppdl --models .gpukit/models [--device cuda:0]
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop"))
from onnx_readers_test import FMNIST, read_predictions, test_images  # noqa: E402

TOLERANCE = 1e-4
ROWS = 10000


def compare(a, b):
    return {"max_abs_diff": float(np.abs(a - b).max()),
            "class_disagreement": float((a.argmax(1) != b.argmax(1)).mean())}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mppdl", required=True)
    p.add_argument("--models", required=True, help="the kit's models folder: NAME.model, NAME.onnx, NAME.cpu.csv")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--json-out")
    a = p.parse_args()
    try:
        import onnxruntime
        # The providers that run a model here (a CPU-only wheel also lists Azure's remote one).
        providers = [p for p in onnxruntime.get_available_providers()
                     if p in ("CUDAExecutionProvider", "CPUExecutionProvider")]
        version = onnxruntime.__version__
    except ImportError:
        onnxruntime, providers, version = None, [], None
        print("onnxruntime is not installed here: only mppdl's devices are compared")
    x = test_images(ROWS)
    names = sorted(f[:-len(".onnx")] for f in os.listdir(a.models) if f.endswith(".onnx"))
    results, worst = {}, 0.0
    work = tempfile.mkdtemp(prefix="mppdl-gpu-onnx-")
    for name in names:
        base = os.path.join(a.models, name)
        _, cpu = read_predictions(base + ".cpu.csv", ROWS)
        out = os.path.join(work, name + ".csv")
        subprocess.run([a.mppdl, "predict", "--model", base + ".model", "--data", FMNIST, "--device", a.device,
                        "--out", out], check=True, stdout=subprocess.DEVNULL)
        _, device = read_predictions(out, ROWS)
        r = {"mppdl %s vs mppdl cpu" % a.device: compare(device, cpu)}
        for provider in providers if onnxruntime else []:
            try:
                session = onnxruntime.InferenceSession(base + ".onnx", providers=[provider])
            except Exception as e:  # a provider whose libraries do not load here (cuDNN, CUDA)
                print("%-10s onnxruntime %s could not start: %s" % (name, provider, str(e).splitlines()[0]))
                continue
            if session.get_providers()[0] != provider:
                print("%-10s onnxruntime fell back from %s to %s" % (name, provider, session.get_providers()))
                continue
            for batch in (1000, 7):
                got = np.concatenate([session.run(None, {"input": x[i:i + batch]})[0]
                                      for i in range(0, len(x), batch)])
                r["onnxruntime %s batch %d vs mppdl cpu" % (provider, batch)] = compare(got, cpu)
                r["onnxruntime %s batch %d vs mppdl %s" % (provider, batch, a.device)] = compare(got, device)
        results[name] = r
        for pair, c in r.items():
            worst = max(worst, c["max_abs_diff"])
            print("%-10s %-55s max |diff| %.2e, classes differ %.4f%%" % (
                name, pair, c["max_abs_diff"], 100 * c["class_disagreement"]))
    ok = worst <= TOLERANCE
    print("onnxruntime %s, providers %s; largest difference %.2e: %s (target %.0e)" % (
        version, providers, worst, "PASS" if ok else "FAIL", TOLERANCE))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"date": datetime.date.today().isoformat(), "onnxruntime": version, "providers": providers,
                       "results": results, "largest_difference": worst, "pass": ok}, f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
