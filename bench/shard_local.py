#!/usr/bin/python3
"""Shard-local reading: what each process of `mppdl train --processes P` reads, and its peak memory.

For P = 1, 2 and 4 processes over the same 4 segments (model averaging, one epoch), on the
Fashion-MNIST files and on a 60,000-row PostgreSQL table of the same images (run under
packaging/pg-test-server.sh for the table): every rank's rows_read, bytes_read and peak resident size
from the finished event's `ranks`, their totals against the source's rows (1.0x, not P x), the wall
time, and the test (files) or validation (table) accuracy against P = 1, which runs the segments
on the thread pool. Then the peak resident size of a single-process run against the packed float32
bytes it trains and evaluates on, and against the libtorch base (a run on 100 rows).
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_common import ENV, add_common_args, check_binary, create_fashion_table, log, read_idx, render, run_psql  # noqa: E402

MB = 1024.0 * 1024.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--processes", default="1,2,4")
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--table", default="bench_shard_local")
    p.add_argument("--markdown", action="store_true")
    return p.parse_args()


def train(args, source, processes, extra=()):
    cmd = [args.mppdl, "train", "--data", source, "--arch", "mlp", "--epochs", "1", "--batch-size", "64",
           "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--seed", "1", "--threads", str(args.threads),
           "--strategy", "model-averaging", "--segments", str(args.segments), "--processes", str(processes),
           "--no-project", "--json", *extra]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("mppdl failed (%d): %s\n%s%s" % (proc.returncode, " ".join(cmd), proc.stdout, proc.stderr))
    finished = [json.loads(line) for line in proc.stdout.splitlines() if '"event":"finished"' in line][-1]
    return finished, seconds


def single_peak(args, source, extra=(), limit=None):
    cmd = [args.mppdl, "train", "--data", source, "--arch", "mlp", "--epochs", "1", "--threads", str(args.threads),
           "--no-project", "--json", *extra]
    if limit:
        cmd += ["--limit", str(limit)]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True)
    finished = [json.loads(line) for line in proc.stdout.splitlines() if '"event":"finished"' in line][-1]
    return finished["ranks"][0]["peak_rss_bytes"]


def study(args, name, source, rows, extra, metric):
    out = []
    baseline = None
    for p in [int(x) for x in args.processes.split(",")]:
        finished, seconds = train(args, source, p, extra)
        ranks = finished["ranks"]
        total = sum(r["rows_read"] for r in ranks)
        value = finished.get(metric)
        if baseline is None:
            baseline = value
        for r in ranks:
            out.append([name, str(p), str(r["rank"]), ",".join(map(str, r["segments"])), str(r["rows_read"]),
                        "%.1f" % (r["bytes_read"] / MB), "%.0f" % (r["peak_rss_bytes"] / MB), "", "", ""])
        out.append([name, str(p), "all", "", str(total), "%.1f" % (sum(r["bytes_read"] for r in ranks) / MB),
                    "%.0f" % (sum(r["peak_rss_bytes"] for r in ranks) / MB), "%.2fx" % (total / rows),
                    "%.4f (%+.1e)" % (value, value - baseline), "%.1f" % seconds])
    return out


def main():
    args = parse_args()
    if not check_binary(args.mppdl):
        return 2
    header = ["source", "P", "rank", "segments", "rows read", "MB read", "peak RSS MB", "of source",
              "accuracy (vs P=1)", "wall s"]
    rows = study(args, "fashion-mnist files", args.data, 70000, [], "test_accuracy")
    if args.conn:
        n = create_fashion_table(args.psql, args.conn, args.data, args.table)
        log("table %s: %d rows" % (args.table, n))
        for policy, extra in (("database", ["--distribute-by", "database", "--distributed-by", "id"]),
                              ("random", [])):
            rows += study(args, "pg table, " + policy, "pg:" + args.table, n,
                          ["--conn", args.conn, "--id", "id", "--shape", "1,28,28", *extra], "val_accuracy")
        run_psql(args.psql, args.conn, "DROP TABLE %s" % args.table)
    else:
        log("no server (MPPDL_TEST_PG unset): the table study is skipped")
    print(render(header, rows, args.markdown))

    # Peak memory of one process against the packed float32 data it holds (train + validation +
    # test: 70,000 rows of 784 floats) above the base: the same run on 100 rows without a test split.
    import numpy
    import tempfile
    packed = 70000 * 784 * 4
    with tempfile.TemporaryDirectory() as tiny:
        _, pixels = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
        _, labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
        numpy.save(os.path.join(tiny, "x_train.npy"),
                   numpy.frombuffer(pixels[:100 * 784], dtype=numpy.uint8).reshape(100, 1, 28, 28))
        numpy.save(os.path.join(tiny, "y_train.npy"), numpy.frombuffer(labels[:100], dtype=numpy.uint8).astype("int64"))
        base = single_peak(args, tiny, ["--strategy", "single"])
    full = single_peak(args, args.data, ["--strategy", "single"])
    print("\nsingle process, all of Fashion-MNIST: peak RSS %.0f MB; base (100 rows) %.0f MB; packed float32 data "
          "%.0f MB: (peak - base) / packed = %.2f" % (full / MB, base / MB, packed / MB, (full - base) / packed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
