#!/usr/bin/python3
"""Batch prediction throughput: `mppdl predict` against PyTorch-Python inference of the same model.

For each network (--archs), in one invocation:
1. mppdl trains it for one epoch on 2,000 Fashion-MNIST rows (recorded in a scratch project; the
   weights do not change the rate) and exports it with `mppdl export --format onnx`;
2. **mppdl**: `mppdl predict --run R --data FMNIST --out CSV --batch-size B --threads T --json` over
   the 60,000 training images (`--split train`; a small network predicts the 10,000 test images too
   quickly to time), over mppdl's default of one segment per thread (the rows cut into T shards,
   each predicted in batches of B by a one-thread worker; `--segments 1` for one worker of T
   threads); `predict_rows_per_sec` is its forward figure (normalization, batched
   forward passes, softmax, argmax; not reading the IDX files or writing the CSV, reported apart
   as the end-to-end `rows_per_sec`);
3. **pytorch**: the same network built from the same JSON by peer_model.py, its weights read from
   the exported ONNX file's initializers (so both run the very same numbers; the script checks
   that their probabilities agree), `model.eval()` under `torch.inference_mode()`, the images
   scaled to [0, 1] and fed in batches of B, softmax on the logits: the loop of the PyTorch
   tutorials, timed over the same 60,000 rows from scaling to the last batch.
Both run with T threads (`--threads T`; `torch.set_num_threads(T)` and OMP/OPENBLAS/MKL_NUM_THREADS
for Python). Each figure is the median of --repeats runs after one warm-up. The target is mppdl
>= 1.0x PyTorch-Python at every batch size.

MADlib's published batch prediction rate is 1.6-1.9k images/s on a 2-segment CPU Greenplum (its
network: the Keras CIFAR-10 CNN); mppdl's end-to-end rate is set against it for information (the
table path, with reading and writing through PostgreSQL, is bench/pg_predict.py).

    /usr/bin/python3 bench/predict_vs_pytorch.py [--archs fmnist_cnn,lenet5,mlp] [--batch-sizes 64,256]
                                                 [--threads 2] [--segments 0] [--markdown] [--json-out FILE]
"""

import argparse
import csv
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mppdl", default=os.environ.get("MPPDL", "build/app/mppdl"))
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--archs", default="fmnist_cnn,lenet5,mlp")
    p.add_argument("--batch-sizes", default="64,256")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--segments", type=int, default=0, help="mppdl predict --segments (0: its default, one per thread)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--json-out")
    a = p.parse_args()
    a.archs = [x for x in a.archs.split(",") if x]
    a.batch_sizes = [int(x) for x in a.batch_sizes.split(",") if x]
    return a


ARGS = parse_args()
# Before torch is imported: its thread pools read these.
for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_k] = str(ARGS.threads)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_model  # noqa: E402
from machine import cpu_model  # noqa: E402

MADLIB = (1600, 1900)
TARGET = 1.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def mppdl_env():
    # mppdl keeps OpenBLAS on the calling thread unless OPENBLAS_NUM_THREADS is set (devices.cpp).
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    return env


def mppdl(*words):
    cmd = [ARGS.mppdl, *map(str, words)]
    proc = subprocess.run(cmd, env=mppdl_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("mppdl failed (%d): %s\n%s%s" % (proc.returncode, " ".join(map(shlex.quote, cmd)),
                                                         proc.stdout, proc.stderr))
    return proc.stdout


def peer_with_onnx_weights(arch, onnx_path):
    model = peer_model.build_model(arch)
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
               for t in onnx.load(onnx_path).graph.initializer}
    state = model.state_dict()
    for key in state:
        if key.endswith("num_batches_tracked"):
            continue
        state[key] = weights[key[len("layers."):]]
    model.load_state_dict(state)
    return model.eval()


def pytorch_predict(model, raw, batch):
    """Seconds for scaling and predicting every row, and the probabilities."""
    start = time.perf_counter()
    with torch.inference_mode():
        x = torch.from_numpy(raw).float().div_(255.0)
        out = [torch.softmax(model(x[i:i + batch]), dim=1) for i in range(0, x.shape[0], batch)]
        probabilities = torch.cat(out)
        probabilities.argmax(1)
    return time.perf_counter() - start, probabilities.numpy()


def read_csv_probabilities(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return np.array([[float(v) for v in r[2:]] for r in rows], np.float32)


def main():
    torch.set_num_threads(ARGS.threads)
    # The 60,000 training images: a small network predicts the 10,000 test images in a tenth of a
    # second, too short to time steadily.
    images = peer_model._read_idx_gz(os.path.join(ARGS.data, "train-images-idx3-ubyte.gz"))
    raw = np.ascontiguousarray(images.reshape(-1, 1, 28, 28))
    version = mppdl("--version").strip()
    results = []
    with tempfile.TemporaryDirectory(prefix="mppdl-bench-infer-") as work:
        project = os.path.join(work, "bench.mppdl")
        for arch in ARGS.archs:
            log("%s: training one epoch on 2,000 rows, exporting..." % arch)
            mppdl("train", "--data", ARGS.data, "--arch", arch, "--epochs", "1", "--limit", "2000", "--seed", "1",
                  "--lr", "0.05", "--momentum", "0.9", "--project", project, "--name", arch, "--quiet")
            onnx_path = os.path.join(work, arch + ".onnx")
            mppdl("export", "--run", arch, "--project", project, "--out", onnx_path)
            model = peer_with_onnx_weights(arch, onnx_path)
            for batch in ARGS.batch_sizes:
                csv_path = os.path.join(work, "%s-%d.csv" % (arch, batch))
                m_runs, p_runs = [], []
                for i in range(ARGS.repeats + 1):  # the first of each is a warm-up
                    event = json.loads(mppdl("predict", "--run", arch, "--project", project, "--data", ARGS.data,
                                             "--split", "train", "--out", csv_path, "--batch-size", batch, "--threads", ARGS.threads,
                                             "--segments", ARGS.segments, "--json").strip().splitlines()[-1])
                    seconds, probabilities = pytorch_predict(model, raw, batch)
                    if i > 0:
                        m_runs.append(event)
                        p_runs.append(seconds)
                agreement = float(np.abs(read_csv_probabilities(csv_path) - probabilities).max())
                m_rate = statistics.median(e["predict_rows_per_sec"] for e in m_runs)
                e2e = statistics.median(e["rows_per_sec"] for e in m_runs)
                p_rate = raw.shape[0] / statistics.median(p_runs)
                log("  batch %d: mppdl %.0f rows/s (end to end %.0f), pytorch %.0f rows/s, ratio %.2f, max |diff| %.1e"
                    % (batch, m_rate, e2e, p_rate, m_rate / p_rate, agreement))
                results.append({"network": arch, "batch": batch, "segments": m_runs[0]["segments"],
                                "mppdl_rows_per_sec": m_rate,
                                "mppdl_end_to_end_rows_per_sec": e2e, "pytorch_rows_per_sec": p_rate,
                                "ratio": m_rate / p_rate, "max_abs_probability_difference": agreement,
                                "mppdl_runs": m_runs, "pytorch_seconds": p_runs})

    header = ["network", "batch", "mppdl segments", "mppdl rows/s", "pytorch rows/s", "ratio", "mppdl end to end", "vs MADlib 1.6-1.9k",
              "max |p diff|"]
    rows = [[r["network"], str(r["batch"]), str(r["segments"]), "{:,.0f}".format(r["mppdl_rows_per_sec"]),
             "{:,.0f}".format(r["pytorch_rows_per_sec"]), "%.2fx" % r["ratio"],
             "{:,.0f}".format(r["mppdl_end_to_end_rows_per_sec"]),
             "%.1f-%.1fx" % (r["mppdl_end_to_end_rows_per_sec"] / MADLIB[1], r["mppdl_end_to_end_rows_per_sec"] / MADLIB[0]),
             "%.1e" % r["max_abs_probability_difference"]] for r in results]
    met = all(r["ratio"] >= TARGET for r in results)
    verdict = "target mppdl >= %.1fx PyTorch-Python at every batch size: %s (lowest %.2fx)" % (
        TARGET, "PASS" if met else "FAIL", min(r["ratio"] for r in results))

    def render(markdown):
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        if markdown:
            lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
        else:
            lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
            lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        return "\n".join(lines)

    print(render(False))
    print(verdict)
    if ARGS.markdown:
        print()
        print("### Batch prediction: mppdl predict vs PyTorch-Python inference")
        print()
        print("- Machine: %s (%s logical CPUs), %d threads, %s; %s, torch %s" % (
            cpu_model(), os.cpu_count(), ARGS.threads, datetime.date.today(), version, torch.__version__))
        print("- Command: `/usr/bin/python3 bench/predict_vs_pytorch.py%s`" %
              "".join(" " + shlex.quote(x) for x in sys.argv[1:]))
        print("- the 60,000 Fashion-MNIST training images (`--split train`); median of %d runs after a warm-up" % ARGS.repeats)
        print()
        print(render(True))
        print()
        print(verdict + ".")
    if ARGS.json_out:
        with open(ARGS.json_out, "w") as f:
            json.dump({"threads": ARGS.threads, "results": results}, f, indent=1)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
