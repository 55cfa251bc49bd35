#!/usr/bin/python3
"""--no-cache: a table's training rows read from the server again every epoch, against the same run
with the rows in memory and out of core, in one run of this script.

Fashion-MNIST's 60,000 training images go into a table (id, label, pixels bytea). `mppdl train` of
that table, the same seed and configuration, three ways: in memory (the rows read once), out of
core (--memory-budget 1M: read once in chunks into packed files, memory-mapped) and --no-cache
(each epoch reads every training row again, a block of 8 MB of prepared rows per query, the next
block read while the current one trains; nothing kept between epochs). Reported per way: the load
(time to the first epoch), the mean epoch_seconds, the ratio of in-memory epoch time to its epoch
time (1.0 is as fast), the rows read from the server (rank figures), the peak resident size and the
validation accuracy (the order of the rows differs with --no-cache: a block shuffle, so the
accuracy differs a little; in memory and out of core train the same to every digit).
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_common import ENV, add_common_args, check_binary, create_fashion_table, log, render, run_psql  # noqa: E402

MB = 1024.0 * 1024.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--table", default="bench_no_cache")
    p.add_argument("--arch", default="mlp")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--segments", type=int, default=1, help="model-averaging segments (1: the single strategy)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--markdown", action="store_true")
    return p.parse_args()


def train(args, extra):
    strategy = ["--strategy", "model-averaging", "--segments", str(args.segments)] if args.segments > 1 else []
    cmd = [args.mppdl, "train", "--data", "pg:" + args.table, "--conn", args.conn, "--id", "id", "--shape",
           "1,28,28", "--arch", args.arch, "--epochs", str(args.epochs), "--batch-size", "64", "--optimizer", "sgd",
           "--lr", "0.05", "--momentum", "0.9", "--seed", "1", "--threads", str(args.threads), "--no-project",
           "--json", *strategy, *extra]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("mppdl train %s failed (%d):\n%s" % (" ".join(extra), proc.returncode, proc.stderr[-3000:]))
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    epochs = [e for e in events if e.get("event") == "epoch" and "epoch_seconds" in e]
    finished = next(e for e in events if e.get("event") == "finished")
    loaded = next(e for e in events if e.get("event") == "message" and e["message"].startswith("data: "))
    return {
        "load": loaded["wall_seconds"],
        "epoch": sum(e["epoch_seconds"] for e in epochs) / len(epochs),
        "rows_read": sum(r["rows_read"] for r in finished["ranks"]),
        "peak": max(r["peak_rss_bytes"] for r in finished["ranks"]),
        "val_accuracy": finished["val_accuracy"],
        "val_loss": finished["val_loss"],
        "wall": seconds,
    }


def main():
    args = parse_args()
    if not check_binary(args.mppdl):
        return 2
    if not args.conn:
        log("error: no server: pass --conn or run under packaging/pg-test-server.sh")
        return 2
    n = create_fashion_table(args.psql, args.conn, args.data, args.table)
    log("table %s: %d rows" % (args.table, n))
    try:
        ways = [("in memory", []), ("out of core", ["--memory-budget", "1M"]), ("--no-cache", ["--no-cache"])]
        results = {}
        for name, extra in ways:
            log("training %s ..." % name)
            results[name] = train(args, extra)
    finally:
        run_psql(args.psql, args.conn, "DROP TABLE IF EXISTS %s" % args.table)
    base = results["in memory"]["epoch"]
    if results["out of core"]["val_loss"] != results["in memory"]["val_loss"]:
        log("warning: out of core did not train the same as in memory")
    rows = []
    for name, _ in ways:
        r = results[name]
        rows.append([name, "%.1f" % r["load"], "%.2f" % r["epoch"], "%.2fx" % (base / r["epoch"]),
                     "{:,}".format(r["rows_read"]), "%.0f" % (r["peak"] / MB), "%.4f" % r["val_accuracy"]])
    print("Fashion-MNIST, %d rows in PostgreSQL; %s, %d epochs, %s, %d threads" %
          (n, args.arch, args.epochs,
           "model averaging over %d segments" % args.segments if args.segments > 1 else "single", args.threads))
    print(render(["rows kept", "load s", "epoch s", "in-memory/this", "rows read", "peak MB", "val acc"], rows,
                 args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
