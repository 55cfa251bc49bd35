#!/usr/bin/python3
"""Segment-parallel training: time per epoch, merge share and test accuracy against N segments.

For each strategy, each N and each mode (the engine's thread pool, or N processes joined by c10d
over Gloo) runs the same `mppdl train --json --no-project` (same network, data, seed, optimizer and
host thread count) and reports the median epoch time, the share of it spent joining (the merge of
model averaging, EASGD's elastic step, all-reduce's gradient average; target <= 5%), the final test
accuracy and its ratio to the `single` strategy's (the single-node reference). Ensembles also show
their best member's test accuracy. On one machine the N segments share its cores, so time per epoch
shows the cost of simulating a cluster, not a cluster's speed-up; accuracy against N is what a
cluster of N segments would give.

    /usr/bin/python3 bench/segments.py                                  # quick: 2 epochs, 12,000 rows
    /usr/bin/python3 bench/segments.py --epochs 10 --limit 0 --segments 4,8 --modes threads \
        --strategies model-averaging --global-batch --sync-every 4      # the issue's accuracy study
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MERGE_TARGET = 0.05


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="fmnist_cnn")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--limit", type=int, default=12000, help="training rows (0 = all 60,000)")
    p.add_argument("--segments", default="1,2,4,8")
    p.add_argument("--strategies", default="model-averaging,easgd,ensemble,allreduce")
    p.add_argument("--modes", default="threads,processes", help="threads, processes or both")
    p.add_argument("--sync-every", type=int, default=0)
    p.add_argument("--global-batch", action="store_true",
                   help="--batch-size is the global minibatch: each of N segments takes batch / N rows a step")
    p.add_argument("--distribute-by", default="random")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--schedule", default="cosine")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--mppdl", default=os.environ.get("MPPDL", os.path.join(REPO_ROOT, "build", "app", "mppdl")))
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json-out")
    return p.parse_args()


def one_run(args, strategy, segments, mode):
    batch = max(1, args.batch_size // segments) if args.global_batch else args.batch_size
    cmd = [args.mppdl, "train", "--data", args.data, "--arch", args.arch, "--epochs", str(args.epochs),
           "--limit", str(args.limit), "--batch-size", str(batch), "--optimizer", "sgd",
           "--lr", str(args.lr), "--momentum", "0.9", "--schedule", args.schedule, "--seed", "1",
           "--threads", str(args.threads), "--no-project", "--json",
           "--strategy", strategy, "--segments", str(segments), "--distribute-by", args.distribute_by]
    if strategy != "single" and strategy != "allreduce" and strategy != "ensemble":
        cmd += ["--sync-every", str(args.sync_every)]
    if mode == "processes":
        cmd += ["--processes", str(segments)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    merged = [e for e in events if e.get("event") == "epoch" and "segment" not in e]
    finished = events[-1]
    epoch_seconds = statistics.median(e["epoch_seconds"] for e in merged)
    merge_share = statistics.median(e.get("merge_seconds", 0.0) / e["epoch_seconds"] for e in merged)
    divergence = [e["divergence"] for e in events if e.get("event") == "epoch" and "divergence" in e]
    members = [e["test_accuracy"] for e in events if e.get("event") == "evaluation" and "segment" in e]
    return {"strategy": strategy, "segments": segments, "mode": mode, "batch": batch,
            "epoch_seconds": epoch_seconds, "merge_share": merge_share,
            "test_accuracy": finished["test_accuracy"], "val_accuracy": merged[-1].get("val_accuracy"),
            "best_member": max(members) if members else None,
            "mean_divergence": statistics.mean(divergence) if divergence else None}


def main():
    args = parse_args()
    rows = []
    reference = one_run(args, "single", 1, "threads")
    print(f"  single: {reference['epoch_seconds']:.2f} s/epoch, test {reference['test_accuracy'] * 100:.2f}%",
          file=sys.stderr, flush=True)
    for strategy in args.strategies.split(","):
        for n in [int(x) for x in args.segments.split(",")]:
            for mode in args.modes.split(","):
                if n == 1 and mode == "processes":
                    continue  # one process is the thread pool's run
                r = one_run(args, strategy, n, mode)
                rows.append(r)
                print(f"  {strategy} N={n} {mode}: {r['epoch_seconds']:.2f} s/epoch, merge "
                      f"{r['merge_share'] * 100:.2f}%, test {r['test_accuracy'] * 100:.2f}%", file=sys.stderr, flush=True)
    header = ["strategy", "N", "mode", "batch", "s/epoch", "merge share", "test acc", "vs single", "best member",
              "divergence"]
    table = [["single", "1", "-", str(reference["batch"]), f"{reference['epoch_seconds']:.2f}", "-",
              f"{reference['test_accuracy'] * 100:.2f}%", "1.0000", "-", "-"]]
    for r in rows:
        ratio = r["test_accuracy"] / reference["test_accuracy"]
        table.append([r["strategy"], str(r["segments"]), r["mode"], str(r["batch"]), f"{r['epoch_seconds']:.2f}",
                      f"{r['merge_share'] * 100:.2f}%", f"{r['test_accuracy'] * 100:.2f}%", f"{ratio:.4f}",
                      "-" if r["best_member"] is None else f"{r['best_member'] * 100:.2f}%",
                      "-" if r["mean_divergence"] is None else f"{r['mean_divergence']:.3f}"])
    limit = "all" if args.limit == 0 else f"{args.limit:,}"
    print(f"{args.arch}, {args.epochs} epochs, {limit} training rows, {args.distribute_by} distribution, "
          f"{'global ' if args.global_batch else ''}batch {args.batch_size}, sync-every {args.sync_every}, "
          f"{args.threads} threads, {platform.node()}, {datetime.date.today()}")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
        print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
        for row in table:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    worst = max(r["merge_share"] for r in rows) if rows else 0.0
    print(f"largest merge share {worst * 100:.2f}% (target <= {MERGE_TARGET * 100:.0f}%)")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump([reference] + rows, f, indent=1)


if __name__ == "__main__":
    main()
