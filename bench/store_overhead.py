#!/usr/bin/python3
"""The cost of recording a run in a project file: epoch time with the project store on vs off.

Runs the same `mppdl train --json` with `--no-project` and with a fresh `--project` file, in
alternating order (off, on, on, off, ...) so that drift of the machine falls on both sides, and
compares the epoch interval: the wall time from one `epoch` event to the next. That interval
contains everything the store adds to training (buffered metric writes, serializing the
checkpoint's weights and optimizer state, writing it in one transaction) while the `epoch_seconds`
metric would not: the checkpoint is taken after the epoch event. The first epoch is left out
(warm-up). The verdict: the median interval with the store must be within 2% of the median without.
On a busy 2-core VM the run-to-run spread of epoch times (+-5%) is larger than the store's cost, so
the script also prints the recorder's own account, the `store_seconds` metric it writes per epoch
(time the training thread spent serializing and writing), as a share of the epoch.

    /usr/bin/python3 bench/store_overhead.py                  # fmnist_cnn, full Fashion-MNIST
    /usr/bin/python3 bench/store_overhead.py --arch mlp       # short epochs: the worst case
"""

import argparse
import datetime
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 0.02


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="fmnist_cnn")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2, help="runs per mode")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--mppdl", default=os.environ.get("MPPDL", os.path.join(REPO_ROOT, "build", "app", "mppdl")))
    p.add_argument("--json-out", help="write the figures to this file")
    return p.parse_args()


def one_run(args, project):
    cmd = [args.mppdl, "train", "--data", args.data, "--arch", args.arch, "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
           "--seed", "1", "--threads", str(args.threads), "--json"]
    cmd += ["--project", project] if project else ["--no-project"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    walls = [json.loads(line)["wall_seconds"] for line in out.splitlines()
             if line.startswith("{") and json.loads(line).get("event") == "epoch"]
    intervals = [b - a for a, b in zip(walls, walls[1:])]
    store = []
    if project:
        # The recorder's own account: time the training thread spent in the store, per epoch.
        with sqlite3.connect(f"file:{project}?mode=ro", uri=True) as db:
            store = [v for (v,) in db.execute(
                "SELECT value FROM metrics WHERE name = 'store_seconds' AND epoch > 1 ORDER BY epoch")]
    return intervals, store


def main():
    args = parse_args()
    results = {"off": [], "on": []}
    store = []
    order = []
    for i in range(args.repeats):
        order += ["off", "on"] if i % 2 == 0 else ["on", "off"]
    with tempfile.TemporaryDirectory() as tmp:
        for n, mode in enumerate(order):
            project = os.path.join(tmp, f"bench{n}.mppdl") if mode == "on" else None
            intervals, store_seconds = one_run(args, project)
            results[mode] += intervals
            store += store_seconds
            size = os.path.getsize(project) if project else 0
            print(f"  {mode:3}: epoch intervals {', '.join(f'{x:.3f}' for x in intervals)} s"
                  + (f"  (project file {size / 1e6:.1f} MB)" if project else ""), flush=True)
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    ratio = on / off
    verdict = "PASS" if ratio - 1 <= TARGET else "FAIL"
    print(f"{args.arch}, {args.epochs} epochs x {args.repeats} runs per mode, {args.threads} threads, "
          f"{platform.node()}, {datetime.date.today()}")
    print(f"median epoch interval: store off {off:.3f} s, on {on:.3f} s -> on/off {ratio:.4f} "
          f"({(ratio - 1) * 100:+.2f}%, target <= +{TARGET * 100:.0f}%): {verdict}")
    if store:
        direct = statistics.median(store)
        print(f"time in the store per epoch (the recorder's store_seconds): median {direct * 1000:.1f} ms, "
              f"max {max(store) * 1000:.1f} ms = {direct / off * 100:.2f}% of the median epoch")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"arch": args.arch, "off": results["off"], "on": results["on"], "ratio": ratio,
                       "store_seconds": store}, f, indent=1)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
