#!/usr/bin/python3
"""Batch prediction over processes: `mppdl predict --processes P` of a 60,000-row table back to a
table, in rows/s against P.

The table holds Fashion-MNIST's 60,000 training images as bytea with an id. A network (--arch,
default fmnist_cnn) is trained one epoch on 1,000 of them and saved; then, for each P, every
process reads its contiguous share of the rows (numbered in id order on the server), predicts it and
COPYs it into a part table beside the output, and rank 0 turns the parts into the output table in
one transaction (`mppdl predict --model M --data pg:T --id id --out-table T_out --if-exists replace
--processes P --threads T`). --threads is the host's: P processes share it; with
--threads-per-process N each process gets N (T = N x P), as when the cluster grows with P. rows/s is end to end,
first byte read to the merge's COMMIT (not process start or model loading); each process's read,
predict and write seconds and rank 0's merge come from the --json report. The seed's claim: batch
inference throughput grows linearly with the cluster.

    packaging/pg-test-server.sh /usr/bin/python3 bench/predict_processes.py --markdown
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_common import ENV, add_common_args, check_binary, create_fashion_table, log, render, run_psql  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--processes", default="1,2,4")
    p.add_argument("--arch", default="fmnist_cnn")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="the host's threads, shared by the processes")
    p.add_argument("--threads-per-process", type=int, default=0,
                   help="instead: this many threads for each process (a cluster that grows with P)")
    p.add_argument("--table", default="bench_predict_processes")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--markdown", action="store_true")
    return p.parse_args()


def main():
    args = parse_args()
    if not check_binary(args.mppdl):
        return 2
    if not args.conn:
        log("needs a server: run under packaging/pg-test-server.sh")
        return 2
    n = create_fashion_table(args.psql, args.conn, args.data, args.table)
    source = ["--data", "pg:" + args.table, "--conn", args.conn, "--id", "id", "--shape", "1,28,28"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model = os.path.join(scratch, "m.model")
        subprocess.run([args.mppdl, "train", *source, "--arch", args.arch, "--epochs", "1", "--limit", "1000",
                        "--no-project", "--quiet", "--save", model], env=ENV, check=True, capture_output=True)
        base = None
        for p in [int(x) for x in args.processes.split(",")]:
            best = None
            threads = args.threads_per_process * p if args.threads_per_process else args.threads
            for _ in range(args.repeats):
                proc = subprocess.run([args.mppdl, "predict", "--model", model, *source, "--out-table",
                                       args.table + "_out", "--if-exists", "replace", "--threads", str(threads),
                                       "--processes", str(p), "--json"], env=ENV, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit("predict failed: %s%s" % (proc.stdout, proc.stderr))
                report = json.loads(proc.stdout.strip().splitlines()[-1])
                if best is None or report["rows_per_sec"] > best["rows_per_sec"]:
                    best = report
            base = base or best["rows_per_sec"]
            ranks = best.get("ranks", [{"rows": best["rows"], "read_seconds": best["read_seconds"],
                                        "predict_seconds": best["predict_seconds"],
                                        "write_seconds": best["write_seconds"]}])
            split = "; ".join("%d: %.2f/%.2f/%.2f" % (i, r["read_seconds"], r["predict_seconds"], r["write_seconds"])
                              for i, r in enumerate(ranks))
            rows.append([str(p), str(max(1, threads // p)), str(best["rows"]), "%.0f" % best["rows_per_sec"],
                         "%.2fx" % (best["rows_per_sec"] / base), split,
                         "%.2f" % ranks[0].get("merge_seconds", 0.0)])
    run_psql(args.psql, args.conn, "DROP TABLE IF EXISTS %s; DROP TABLE IF EXISTS %s_out" % (args.table, args.table))
    header = ["P", "threads each", "rows", "rows/s", "vs P=1", "read/predict/write s per process", "merge s"]
    print(render(header, rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
