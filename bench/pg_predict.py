#!/usr/bin/python3
"""Batch prediction back to a PostgreSQL table: `mppdl predict` in rows/s against MADlib's rate.

MADlib's published figure for batch prediction on a 2-segment CPU Greenplum is 1.6-1.9k images/s
(the MADlib deep learning talk; its network is the Keras CIFAR-10 example CNN, 3x32x32 images).
There is no Greenplum here, so the peer is that figure, and this measures mppdl on the same kind of
work with this machine's cores: 10,000 rows as bytea in a table, read with a binary COPY, predicted,
and written back as (id, predicted_index, predicted_class, probabilities real[]) with COPY in one
transaction (`mppdl predict --run R --data pg:T --id id --out-table T_predicted --if-exists replace`).

Networks (--archs):
    fmnist_cnn   the Fashion-MNIST test set (10,000 rows, 1x28x28)
    cifar_cnn6   MADlib's network, on 10,000 seeded random 3x32x32 images (Debian packages no
                 CIFAR-10; a forward pass costs the same for any pixel values)
    mlp          the Fashion-MNIST test set, through the bundled MLP
Each network is trained for one epoch on 2,000 of the rows first (its weights do not change the
rate), then predicted --repeats times (median). rows/s is mppdl's own end-to-end figure (first
byte read to COMMIT; not process start or model loading), with its read/predict/write parts.

    packaging/pg-test-server.sh /usr/bin/python3 bench/pg_predict.py --markdown
"""

import argparse
import datetime
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile

from machine import cpu_model
from pg_common import ENV, add_common_args, check_binary, copy_in, log, read_idx, render, run_psql, server_version

MADLIB = (1600, 1900)  # images/s, 2-segment CPU Greenplum
TARGET = 3.0
NETWORKS = {  # name: (table, shape)
    "fmnist_cnn": ("bench_predict_fmnist", "1,28,28"),
    "cifar_cnn6": ("bench_predict_cifar", "3,32,32"),
    "mlp": ("bench_predict_fmnist", "1,28,28"),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--archs", default="fmnist_cnn,cifar_cnn6,mlp", help="comma-separated: " + ", ".join(NETWORKS))
    p.add_argument("--rows", type=int, default=10000, help="rows to predict (at most 10,000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="mppdl --threads (0: all CPUs)")
    p.add_argument("--markdown", action="store_true", help="also print a markdown section")
    p.add_argument("--json-out", help="write the figures to this file")
    a = p.parse_args()
    a.archs = [x.strip() for x in a.archs.split(",") if x.strip()]
    for arch in a.archs:
        if arch not in NETWORKS:
            p.error("unknown network %r (use %s)" % (arch, ", ".join(NETWORKS)))
    if not 1 <= a.rows <= 10000 or a.repeats < 1:
        p.error("--rows must be in [1, 10000] and --repeats >= 1")
    if not a.conn:
        p.error("no server: pass --conn or run under packaging/pg-test-server.sh (which sets MPPDL_TEST_PG)")
    return a


def create_table(args, table, rows):
    """(id integer, label integer, pixels bytea) from (label, pixel bytes) pairs."""
    run_psql(args.psql, args.conn, "DROP TABLE IF EXISTS %s; CREATE TABLE %s (id integer, label integer, pixels bytea)"
             % (table, table))
    copy_in(args.psql, args.conn, table,
            ("%d\t%d\t\\\\x%s\n" % (i, label, pixels.hex()) for i, (label, pixels) in enumerate(rows)))
    run_psql(args.psql, args.conn, "ANALYZE %s" % table)


def fashion_rows(args):
    _, pixels = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    _, labels = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))
    return [(labels[i], pixels[i * 784:(i + 1) * 784]) for i in range(args.rows)]


def random_rows(args, width):
    rng = random.Random(1)
    return [(rng.randrange(10), rng.randbytes(width)) for _ in range(args.rows)]


def mppdl(args, *words):
    cmd = [args.mppdl, *words]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("mppdl failed (%d): %s\n%s%s" % (proc.returncode, " ".join(map(shlex.quote, cmd)),
                                                         proc.stdout, proc.stderr))
    return proc.stdout


def main():
    args = parse_args()
    if not check_binary(args.mppdl):
        return 2
    server = server_version(args.psql, args.conn)
    made = set()
    results = []
    with tempfile.TemporaryDirectory(prefix="mppdl-bench-predict-") as workdir:
        project = os.path.join(workdir, "bench.mppdl")
        for run, arch in enumerate(args.archs, start=1):
            table, shape = NETWORKS[arch]
            if table not in made:
                log("%s: loading %d rows..." % (table, args.rows))
                create_table(args, table, fashion_rows(args) if shape == "1,28,28" else random_rows(args, 3 * 32 * 32))
                made.add(table)
            source = ["--data", "pg:" + table, "--conn", args.conn, "--shape", shape, "--id", "id",
                      "--threads", str(args.threads)]
            log("%s: training one epoch on 2,000 rows..." % arch)
            mppdl(args, "train", "--arch", arch, "--epochs", "1", "--limit", "2000", "--project", project, *source)
            figures = []
            for i in range(args.repeats + 1):  # the first is a warm-up
                out = mppdl(args, "predict", "--run", str(run), "--project", project, *source,
                            "--out-table", table + "_predicted", "--if-exists", "replace", "--json")
                event = json.loads(out.strip().splitlines()[-1])
                if i > 0:
                    figures.append(event)
                    log("  run %d: %.0f rows/s (read %.3f s, predict %.3f s, write %.3f s)" %
                        (i, event["rows_per_sec"], event["read_seconds"], event["predict_seconds"],
                         event["write_seconds"]))
            rates = [f["rows_per_sec"] for f in figures]
            results.append({"network": arch, "shape": shape, "rows": args.rows, "runs": figures,
                            "rows_per_sec_median": statistics.median(rates), "rows_per_sec_min": min(rates),
                            "rows_per_sec_max": max(rates),
                            "read_median": statistics.median(f["read_seconds"] for f in figures),
                            "predict_median": statistics.median(f["predict_seconds"] for f in figures),
                            "write_median": statistics.median(f["write_seconds"] for f in figures)})
        for table in made:
            run_psql(args.psql, args.conn, "DROP TABLE IF EXISTS %s, %s_predicted" % (table, table))

    header = ["network", "input", "rows/s (median)", "range", "read s", "predict s", "write s", "vs MADlib 1.6-1.9k"]
    rows = []
    for r in results:
        m = r["rows_per_sec_median"]
        rows.append([r["network"], r["shape"].replace(",", "x"), "{:,.0f}".format(m),
                     "{:,.0f}-{:,.0f}".format(r["rows_per_sec_min"], r["rows_per_sec_max"]),
                     "%.3f" % r["read_median"], "%.3f" % r["predict_median"], "%.3f" % r["write_median"],
                     "%.1f-%.1fx" % (m / MADLIB[1], m / MADLIB[0])])
    print(render(header, rows, False))
    verdicts = ["%s %s" % (r["network"], "met" if r["rows_per_sec_median"] >= TARGET * MADLIB[1] else "NOT met")
                for r in results]
    print("target (>= %.0fx MADlib's 1.9k, %s rows/s): %s" % (TARGET, "{:,.0f}".format(TARGET * MADLIB[1]),
                                                             ", ".join(verdicts)))
    if args.markdown:
        print()
        print("### Batch prediction back to a table: mppdl predict vs MADlib's published rate")
        print()
        print("- Machine: %s (%s logical CPUs), %s; server %s on loopback" %
              (cpu_model(), os.cpu_count(), datetime.date.today(), server.split(" on ")[0]))
        print("- Command: `packaging/pg-test-server.sh /usr/bin/python3 bench/pg_predict.py%s`" %
              "".join(" " + shlex.quote(x) for x in sys.argv[1:]))
        print("- %s rows as bytea, median of %d runs after a warm-up; rows/s from first byte read to COMMIT" %
              ("{:,}".format(args.rows), args.repeats))
        print()
        print(render(header, rows, True))
        print()
        print("Target >= %.0fx MADlib's rate (>= %s rows/s against its upper 1.9k): %s." %
              (TARGET, "{:,.0f}".format(TARGET * MADLIB[1]), ", ".join(verdicts)))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"server": server, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
