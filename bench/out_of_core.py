#!/usr/bin/python3
"""Out of core: epoch time from memory-mapped packed rows against the same run in memory, and a
dataset three times a memory cgroup's limit trained to completion.

1. On all of Fashion-MNIST (fits both ways), `mppdl train` in memory and with `--memory-budget 1M`
   (out of core): the same seed, so the same losses to every digit (checked), the cache built by a
   first out-of-core run and reused by the timed one. Reported: the mean epoch_seconds of the
   epochs, their ratio (in-memory time / out-of-core time: 1.0 is as fast, the target is >= 0.8),
   and each run's peak resident size against the packed float32 rows. With --cold, the page cache
   is dropped before the out-of-core run (as root): its first epoch then reads the rows from disk.
2. As root with a cgroup v1 memory controller: Fashion-MNIST tiled --copies times (copy k shifted
   right by k % 4 and down by k / 4 pixels, zeros shifted in) into raw IDX files, trained one
   epoch in a memory cgroup of --limit MB: first with --memory-budget 100G (in memory: expected to
   be killed), then with the default budget (read from the cgroup: out of core). Reported: the
   packed size against the limit, the exit, the cgroup's peak usage, the wall time and the test
   accuracy. Then `mppdl predict` of all those rows to a CSV in the same cgroup, in memory (killed)
   and with the default budget (streamed a chunk at a time). The scratch files and the cgroup are
   removed afterwards.
"""

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_common import REPO_ROOT, log, render  # noqa: E402

MB = 1024.0 * 1024.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--mppdl", default=os.environ.get("MPPDL", os.path.join(REPO_ROOT, "build", "app", "mppdl")))
    p.add_argument("--arch", default="mlp")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--cold", action="store_true", help="drop the page cache before the out-of-core run (root)")
    p.add_argument("--copies", type=int, default=7, help="tiles of Fashion-MNIST for the cgroup run (0: skip it)")
    p.add_argument("--limit", type=int, default=400, help="the cgroup's memory limit, MB")
    p.add_argument("--scratch", default=tempfile.gettempdir())
    p.add_argument("--markdown", action="store_true")
    return p.parse_args()


def train(args, data, extra, prefix=None, epochs=None):
    cmd = [args.mppdl, "train", "--data", data, "--arch", args.arch, "--epochs", str(epochs or args.epochs),
           "--batch-size", "64", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--seed", "1",
           "--threads", str(args.threads), "--no-project", "--json", *extra]
    if prefix:
        cmd = ["sh", "-c", prefix + " ".join("'%s'" % c for c in cmd)]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - start
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events, seconds


def exit_text(code):
    """A child's exit as a user reads it: 0, a status, or the signal that killed it (the shell
    exec'd mppdl, so Python sees the signal as a negative code)."""
    if code < 0 or code > 128:
        return "killed (signal %d)" % (-code if code < 0 else code - 128)
    return str(code)


def finished_of(events):
    done = [e for e in events if e.get("event") == "finished"]
    return done[-1] if done else None


def epoch_seconds(events):
    return [e["epoch_seconds"] for e in events if e.get("event") == "epoch"]


def fits_both_ways(args, scratch):
    cache = os.path.join(scratch, "cache")
    rows = []
    code, memory, _ = train(args, args.data, [])
    if code != 0:
        raise SystemExit("in memory failed: %s" % memory)
    code, built, _ = train(args, args.data, ["--memory-budget", "1M", "--cache-dir", cache], epochs=1)
    if code != 0:
        raise SystemExit("the out-of-core build failed")
    if args.cold:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    code, outofcore, _ = train(args, args.data, ["--memory-budget", "1M", "--cache-dir", cache])
    if code != 0:
        raise SystemExit("out of core failed")
    a, b = finished_of(memory), finished_of(outofcore)
    same = all(a.get(k) == b.get(k) for k in ("test_loss", "test_accuracy", "train_loss"))
    packed = 70000 * (784 * 4 + 8)
    for name, events, fin in (("in memory", memory, a), ("out of core" + (" (cold)" if args.cold else ""),
                                                         outofcore, b)):
        secs = epoch_seconds(events)
        peak = fin["ranks"][0]["peak_rss_bytes"]
        rows.append([name, " ".join("%.2f" % s for s in secs), "%.2f" % (sum(secs) / len(secs)),
                     "%.0f" % (peak / MB), "%.0f" % (packed / MB), "%.4f" % fin["test_loss"]])
    mean = lambda xs: sum(xs) / len(xs)
    ratio = mean(epoch_seconds(memory)) / mean(epoch_seconds(outofcore))
    later = mean(epoch_seconds(memory)[1:] or epoch_seconds(memory)) / \
        mean(epoch_seconds(outofcore)[1:] or epoch_seconds(outofcore))
    header = ["rows kept", "epoch s", "mean epoch s", "peak RSS MB", "packed MB", "test loss"]
    print(render(header, rows, args.markdown))
    print("\nout-of-core speed against in memory (in-memory / out-of-core mean epoch time): %.2fx over every epoch, "
          "%.2fx after the first; the same losses to every digit: %s" % (ratio, later, "yes" if same else "NO"))
    shutil.rmtree(cache, ignore_errors=True)


def write_tiled(data, out, copies):
    with gzip.open(os.path.join(data, "train-images-idx3-ubyte.gz")) as f:
        images = f.read()[16:]
    with gzip.open(os.path.join(data, "train-labels-idx1-ubyte.gz")) as f:
        labels = f.read()[8:]
    import numpy
    base = numpy.frombuffer(images, dtype=numpy.uint8).reshape(60000, 28, 28)
    n = 60000 * copies
    with open(os.path.join(out, "train-images-idx3-ubyte"), "wb") as x, \
            open(os.path.join(out, "train-labels-idx1-ubyte"), "wb") as y:
        x.write((0x803).to_bytes(4, "big") + n.to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big"))
        y.write((0x801).to_bytes(4, "big") + n.to_bytes(4, "big"))
        for k in range(copies):
            dx, dy = k % 4, k // 4
            shifted = numpy.zeros_like(base)
            shifted[:, dy:, dx:] = base[:, :28 - dy, :28 - dx]
            x.write(shifted.tobytes())
            y.write(labels)
    for test in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(os.path.join(data, test), os.path.join(out, test))
    return n


def over_the_limit(args, scratch):
    group = "/sys/fs/cgroup/memory/mppdl_bench_%d" % os.getpid()
    if os.geteuid() != 0 or not os.path.exists("/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        log("the cgroup run needs root and a cgroup v1 memory controller: skipped")
        return
    tiled = os.path.join(scratch, "tiled")
    os.makedirs(tiled, exist_ok=True)
    n = write_tiled(args.data, tiled, args.copies)
    packed = (n + 10000) * (784 * 4 + 8)
    limit = args.limit * 1024 * 1024
    os.mkdir(group)
    rows = []
    try:
        with open(group + "/memory.limit_in_bytes", "w") as f:
            f.write(str(limit))
        prefix = "echo $$ > %s/cgroup.procs && exec " % group
        cache = os.path.join(scratch, "cache-tiled")
        model = os.path.join(scratch, "tiled.model")
        for name, extra in (("in memory (--memory-budget 100G)", ["--memory-budget", "100G"]),
                            ("default budget (out of core)", ["--save", model])):
            with open(group + "/memory.max_usage_in_bytes", "w") as f:
                f.write("0")
            code, events, seconds = train(args, tiled, ["--cache-dir", cache, *extra], prefix=prefix, epochs=1)
            with open(group + "/memory.max_usage_in_bytes") as f:
                peak = int(f.read())
            fin = finished_of(events)
            rows.append([name, "%d rows, %.0f MB" % (n, packed / MB), "%.2fx" % (packed / limit),
                         exit_text(code),
                         "%.0f" % (peak / MB), "%.0f" % seconds,
                         "%.2f%%" % (100 * fin["test_accuracy"]) if fin else "-"])
        header = ["run in a %d MB cgroup" % args.limit, "training data", "packed / limit", "exit", "cgroup peak MB",
                  "wall s", "test accuracy"]
        print("\n" + render(header, rows, args.markdown))
        # Predicting every training row back to a CSV in the same cgroup: streamed a chunk at a time.
        rows = []
        for name, extra in (("in memory (--memory-budget 100G)", ["--memory-budget", "100G"]),
                            ("default budget (streamed)", [])):
            with open(group + "/memory.max_usage_in_bytes", "w") as f:
                f.write("0")
            out = os.path.join(scratch, "predictions.csv")
            cmd = [args.mppdl, "predict", "--model", model, "--data", tiled, "--split", "train", "--out", out,
                   "--threads", str(args.threads), "--json", *extra]
            start = time.monotonic()
            proc = subprocess.run(["sh", "-c", prefix + " ".join("'%s'" % c for c in cmd)], capture_output=True,
                                  text=True)
            seconds = time.monotonic() - start
            with open(group + "/memory.max_usage_in_bytes") as f:
                peak = int(f.read())
            report = json.loads(proc.stdout.splitlines()[-1]) if proc.returncode == 0 else {}
            lines = sum(1 for _ in open(out)) - 1 if proc.returncode == 0 else 0
            rows.append([name, exit_text(proc.returncode), report.get("memory", "-"), str(lines), "%.0f" % (peak / MB),
                         "%.0f" % seconds, "%.0f" % report.get("rows_per_sec", 0)])
            if os.path.exists(out):
                os.remove(out)
        header = ["predict %d rows in the cgroup" % n, "exit", "rows kept", "CSV rows", "cgroup peak MB", "wall s",
                  "rows/s"]
        print("\n" + render(header, rows, args.markdown))
    finally:
        shutil.rmtree(tiled, ignore_errors=True)
        shutil.rmtree(os.path.join(scratch, "cache-tiled"), ignore_errors=True)
        time.sleep(0.5)
        os.rmdir(group)


def main():
    args = parse_args()
    scratch = tempfile.mkdtemp(prefix="mppdl_out_of_core_", dir=args.scratch)
    try:
        fits_both_ways(args, scratch)
        if args.copies > 0:
            over_the_limit(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
