#!/usr/bin/python3
"""Reading a PostgreSQL table: mppdl's pg:TABLE source against psql's binary \\copy to /dev/null.

Loads the full Fashion-MNIST training set (60,000 rows of 784 pixels, from the IDX .gz files) into
the server in three layouts, each with an id column, with psql COPY FROM STDIN (text), then ANALYZE:

    real    label integer, pixels real[]
    bytea   label integer, pixels bytea (one byte a pixel)
    columns label integer, p0 .. p783 smallint

For each layout, in the same run, alternating which goes first:

- psql: `psql -c "\\copy (SELECT <what mppdl selects>) TO '/dev/null' (FORMAT binary)"`, the wall
  time of the whole psql process (start, connect, COPY). The SELECT is the one
  engine/src/data/pg_source.cpp builds: label::int8 and pixels::float4[] (real), pixels as it is
  (bytea), ARRAY[p0, ..., p783]::float4[] (columns).
- mppdl: `mppdl train --data pg:T --json --val-fraction 0 --normalize none ...`; the wall_seconds
  of the "data: ... loaded in" message: train::loadData's clock, from before the source is opened
  to the packed tensors (connect, catalog query, binary COPY, decoding, tensors; prepare() with
  --val-fraction 0 and --normalize none only converts bytea's uint8 to float32). The process is
  killed at that message: no training. The message's own "loaded in 0.9s" (humanDuration) has a
  0.1 s resolution, too coarse here; `mppdl data show` adds per-value statistics, so neither is used.

Parallel N-stream reading (--streams, default 2,4): mppdl reads the table as N segments' shards
over N connections at once (`--strategy model-averaging --segments N --distribute-by database
--distributed-by id`: segment s selects `WHERE abs(hashtext(id::text)::int8) % N = s`), against N psql
processes started together, each \copy-ing the same shard SELECT to /dev/null (time until the last
ends). Every stream scans the whole table and keeps its 1/N of the rows, as a hash-distributed read
must on PostgreSQL (Greenplum's segments read only their own rows).

MB are the bytes of the binary COPY stream (10^6 bytes), counted once per layout; rows/s and MB/s
come from the median of --repeats runs (after one warm-up run of each reader). The ratio is psql's
time over mppdl's (1.0: as fast as psql; the target is >= 0.8).

    packaging/pg-test-server.sh /usr/bin/python3 bench/pg_read.py --markdown

The server: --conn, else $MPPDL_TEST_PG; the password from $MPPDL_TEST_PG_PASSWORD (or PGPASSWORD,
~/.pgpass) reaches psql and mppdl through PGPASSWORD, never on a command line. Progress on stderr,
results on stdout.
"""

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

from machine import cpu_model
from pg_common import ENV, add_common_args, check_binary, copy_in, log, read_idx, render, run_psql, server_version

TARGET = 0.8
WIDTH = 784
LAYOUTS = ("real", "bytea", "columns")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated: " + ", ".join(LAYOUTS))
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each reader per layout (median)")
    p.add_argument("--limit", type=int, default=0, help="load only the first N rows (0 = all 60,000)")
    p.add_argument("--streams", default="2,4",
                   help="comma-separated N for the parallel N-stream reading (empty: skip it)")
    p.add_argument("--order-by-id", action="store_true",
                   help="read in id order (mppdl --id id; ORDER BY id in psql's SELECT)")
    p.add_argument("--skip-load", action="store_true", help="the tables are there from an earlier run (--keep)")
    p.add_argument("--keep", action="store_true", help="leave the tables in the database")
    p.add_argument("--markdown", action="store_true", help="also print a markdown section")
    p.add_argument("--json-out", help="write the figures to this file")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a ratio is below the target")
    a = p.parse_args()
    a.layouts = [x.strip() for x in a.layouts.split(",") if x.strip()]
    for layout in a.layouts:
        if layout not in LAYOUTS:
            p.error("unknown layout %r (use %s)" % (layout, ", ".join(LAYOUTS)))
    try:
        a.streams = [int(x) for x in a.streams.split(",") if x.strip()]
    except ValueError:
        p.error("--streams takes comma-separated numbers, got %r" % a.streams)
    if any(n < 2 for n in a.streams):
        p.error("--streams: each N must be >= 2 (one stream is the first table)")
    if a.repeats < 1 or a.limit < 0:
        p.error("--repeats must be >= 1 and --limit >= 0")
    if not a.conn:
        p.error("no server: pass --conn or run under packaging/pg-test-server.sh (which sets MPPDL_TEST_PG)")
    return a


def psql(args, sql, **kw):
    return run_psql(args.psql, args.conn, sql, **kw)


# Data -----------------------------------------------------------------------------------------

def load_fashion(args):
    dims, pixels = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    _, labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    n = dims[0] if args.limit == 0 else min(args.limit, dims[0])
    assert dims[1] * dims[2] == WIDTH
    return n, pixels[:n * WIDTH], labels[:n]


def table_name(layout):
    return "bench_fmnist_" + layout


def feature_columns():
    return ["p%d" % k for k in range(WIDTH)]


def create_and_copy(args, layout, n, pixels, labels):
    """CREATE TABLE, COPY FROM STDIN (text) through psql, ANALYZE; returns the seconds the COPY took."""
    t = table_name(layout)
    if layout == "columns":
        columns = "".join(", %s smallint" % c for c in feature_columns())
    else:
        columns = ", pixels " + ("bytea" if layout == "bytea" else "real[]")
    psql(args, "DROP TABLE IF EXISTS %s; CREATE TABLE %s (id integer, label integer%s)" % (t, t, columns))
    words = [str(v) for v in range(256)]

    def lines():
        for r in range(n):
            row = pixels[r * WIDTH:(r + 1) * WIDTH]
            if layout == "bytea":
                features = "\\\\x" + row.hex()  # COPY text: the backslash of \x doubled
            elif layout == "real":
                features = "{" + ",".join([words[b] for b in row]) + "}"
            else:
                features = "\t".join([words[b] for b in row])
            yield "%d\t%d\t%s\n" % (r, labels[r], features)

    started = time.perf_counter()
    copy_in(args.psql, args.conn, t, lines())
    copy_seconds = time.perf_counter() - started
    psql(args, "ANALYZE %s" % t)
    return copy_seconds


# Readers --------------------------------------------------------------------------------------

def shard_condition(streams, shard):
    """ShardPlan::condition() of engine/src/data/pg_read.cpp, hashing the id."""
    return 'abs(hashtext("id"::text)::int8) %% %d = %d' % (streams, shard)


def select_sql(layout, args, where=None):
    """The SELECT of engine/src/data/pg_source.cpp for this table (one shard's, with `where`)."""
    t = '"%s"' % table_name(layout)
    if layout == "real":
        features = '"pixels"::float4[]'
    elif layout == "bytea":
        features = '"pixels"'
    else:
        features = "ARRAY[" + ", ".join('"%s"' % c for c in feature_columns()) + "]::float4[]"
    condition = " WHERE " + where if where else ""
    if args.order_by_id:  # with --id, mppdl also reads the id as text (LoadedSource::ids)
        return 'SELECT "label"::int8, %s, "id"::text AS mppdl_id FROM %s%s ORDER BY "id"' % (features, t, condition)
    return 'SELECT "label"::int8, %s FROM %s%s' % (features, t, condition)


def copy_bytes(args, layout):
    """The size of the binary COPY stream."""
    proc = subprocess.Popen([args.psql, "-X", "-q", args.conn, "-c",
                             "COPY (%s) TO STDOUT (FORMAT binary)" % select_sql(layout, args)],
                            stdout=subprocess.PIPE, env=ENV)
    total = 0
    while True:
        block = proc.stdout.read(1 << 20)
        if not block:
            break
        total += len(block)
    if proc.wait() != 0:
        raise SystemExit("COPY of %s failed" % layout)
    return total


def time_psql(args, layout):
    command = "\\copy (%s) TO '/dev/null' (FORMAT binary)" % select_sql(layout, args)
    started = time.perf_counter()
    psql(args, command)
    return time.perf_counter() - started


def time_psql_parallel(args, layout, streams):
    """N psql processes, each \copy-ing one shard, started together; seconds until the last ends."""
    started = time.perf_counter()
    procs = [subprocess.Popen([args.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", args.conn, "-c",
                               "\\copy (%s) TO '/dev/null' (FORMAT binary)" %
                               select_sql(layout, args, shard_condition(streams, s))], env=ENV)
             for s in range(streams)]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a psql shard read of %s failed" % layout)
    return time.perf_counter() - started


def mppdl_command(args, layout, streams=0):
    cmd = [args.mppdl, "train", "--data", "pg:" + table_name(layout), "--conn", args.conn, "--shape", "1,28,28",
           "--val-fraction", "0", "--normalize", "none", "--epochs", "1", "--arch", "mlp", "--no-project", "--json"]
    if layout == "columns":
        # Without --id the id column would be one more numeric feature; name the 784 pixels.
        cmd += ["--features", ",".join(feature_columns())]
    if args.order_by_id:
        cmd += ["--id", "id"]
    if streams:
        cmd += ["--strategy", "model-averaging", "--segments", str(streams), "--distribute-by", "database",
                "--distributed-by", "id"]
    return cmd


def time_mppdl(args, layout, data=None, streams=0):
    """(loadData's seconds, the process's seconds up to that message, the message)."""
    cmd = mppdl_command(args, layout, streams) if data is None else [
        args.mppdl, "train", "--data", data, "--val-fraction", "0", "--normalize", "none", "--epochs", "1",
        "--arch", "mlp", "--no-project", "--json"]
    return time_command(cmd)


def time_command(cmd):
    """`mppdl train ... --json` run up to its "data:" message, then killed: (loadData's seconds,
    the process's seconds up to that message, the message)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
    found = None
    try:
        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if event.get("event") == "failed":
                raise SystemExit("mppdl failed: %s\n  %s" % (event.get("message"), " ".join(map(shlex.quote, cmd))))
            message = event.get("message", "")
            if message.startswith("data:"):
                found = (event["wall_seconds"], time.perf_counter() - started, message)
                break
    finally:
        proc.kill()  # the data is loaded: no training
        proc.wait()
    if found is None:
        raise SystemExit("mppdl printed no data message: %s\n%s" % (" ".join(map(shlex.quote, cmd)),
                                                                     proc.stderr.read()))
    return found


# Report ---------------------------------------------------------------------------------------



def main():
    args = parse_args()
    if not check_binary(args.mppdl):
        return 2
    server = server_version(args.psql, args.conn)
    n, pixels, labels = load_fashion(args)
    results = []
    for layout in args.layouts:
        load_seconds = None
        if not args.skip_load:
            log("%s: loading %d rows (COPY FROM STDIN, text)..." % (layout, n))
            load_seconds = create_and_copy(args, layout, n, pixels, labels)
        size = copy_bytes(args, layout)
        log("%s: binary COPY stream %.1f MB; warm-up..." % (layout, size / 1e6))
        time_psql(args, layout)
        _, _, message = time_mppdl(args, layout)
        log("  " + message)
        psql_times, mppdl_times, process_times = [], [], []
        for i in range(args.repeats):
            # Alternate the order so that drift of the machine falls on both readers.
            for reader in (("psql", "mppdl") if i % 2 == 0 else ("mppdl", "psql")):
                if reader == "psql":
                    psql_times.append(time_psql(args, layout))
                else:
                    seconds, process, _ = time_mppdl(args, layout)
                    mppdl_times.append(seconds)
                    process_times.append(process)
            log("  run %d: psql %.3f s, mppdl %.3f s (process %.3f s)" %
                (i + 1, psql_times[-1], mppdl_times[-1], process_times[-1]))
        parallel = []
        for streams in args.streams:
            psql_n, mppdl_n = [], []
            time_psql_parallel(args, layout, streams)  # warm-up
            time_mppdl(args, layout, streams=streams)
            for i in range(args.repeats):
                for reader in (("psql", "mppdl") if i % 2 == 0 else ("mppdl", "psql")):
                    if reader == "psql":
                        psql_n.append(time_psql_parallel(args, layout, streams))
                    else:
                        mppdl_n.append(time_mppdl(args, layout, streams=streams)[0])
            log("  %d streams: psql %.3f s, mppdl %.3f s (medians)" %
                (streams, statistics.median(psql_n), statistics.median(mppdl_n)))
            parallel.append({"streams": streams, "psql_seconds": psql_n, "mppdl_seconds": mppdl_n,
                             "psql_median": statistics.median(psql_n), "mppdl_median": statistics.median(mppdl_n)})
        results.append({"layout": layout, "rows": n, "copy_bytes": size, "load_seconds": load_seconds,
                        "psql_seconds": psql_times, "mppdl_seconds": mppdl_times,
                        "mppdl_process_seconds": process_times,
                        "psql_median": statistics.median(psql_times), "mppdl_median": statistics.median(mppdl_times),
                        "mppdl_process_median": statistics.median(process_times), "parallel": parallel})
        if not args.keep:
            psql(args, "DROP TABLE IF EXISTS %s" % table_name(layout))

    idx_seconds = None
    if args.limit == 0:
        try:
            idx_seconds, _, _ = time_mppdl(args, None, data=args.data)
        except (OSError, SystemExit) as e:
            log("the IDX reference failed: %s" % e)

    header = ["layout", "rows", "COPY MB", "psql s", "psql rows/s", "psql MB/s", "mppdl s", "mppdl rows/s",
              "mppdl MB/s", "mppdl/psql"]
    rows = []
    for r in results:
        mb = r["copy_bytes"] / 1e6
        rows.append([r["layout"], "{:,}".format(r["rows"]), "%.1f" % mb, "%.3f" % r["psql_median"],
                     "{:,.0f}".format(r["rows"] / r["psql_median"]), "%.0f" % (mb / r["psql_median"]),
                     "%.3f" % r["mppdl_median"], "{:,.0f}".format(r["rows"] / r["mppdl_median"]),
                     "%.0f" % (mb / r["mppdl_median"]), "%.2fx" % (r["psql_median"] / r["mppdl_median"])])
    parallel_header = ["layout", "streams", "psql s", "psql rows/s", "mppdl s", "mppdl rows/s", "mppdl/psql",
                       "vs 1 stream"]
    parallel_rows = []
    for r in results:
        for p in r["parallel"]:
            parallel_rows.append([r["layout"], str(p["streams"]), "%.3f" % p["psql_median"],
                                  "{:,.0f}".format(r["rows"] / p["psql_median"]), "%.3f" % p["mppdl_median"],
                                  "{:,.0f}".format(r["rows"] / p["mppdl_median"]),
                                  "%.2fx" % (p["psql_median"] / p["mppdl_median"]),
                                  "%.2fx" % (r["mppdl_median"] / p["mppdl_median"])])
    missed = [r["layout"] for r in results if r["psql_median"] / r["mppdl_median"] < TARGET]
    verdict = "PASS" if not missed else "MISS (%s)" % ", ".join(missed)
    print(render(header, rows, False))
    print("target: mppdl >= %.1fx psql's rate: %s" % (TARGET, verdict))
    if "bytea" in args.layouts:
        print("bytea: mppdl's time includes prepare()'s uint8 -> float32 conversion, which psql does not do")
    if parallel_rows:
        print()
        print(render(parallel_header, parallel_rows, False))
    if idx_seconds is not None:
        print("for reference: mppdl reading the IDX .gz files (60,000 train + 10,000 test rows): %.3f s" % idx_seconds)

    if args.markdown:
        print()
        print("### Reading a PostgreSQL table: mppdl pg:TABLE vs psql binary \\copy")
        print()
        print("- Machine: %s (%s logical CPUs), %s" % (cpu_model(), os.cpu_count(), datetime.date.today()))
        print("- Server: %s, on the same machine over TCP loopback (`packaging/pg-test-server.sh`)" %
              server.split(" on ")[0])
        print("- Rows: Fashion-MNIST training set, %s rows of 784 pixels; median of %d runs after a warm-up%s" %
              ("{:,}".format(n), args.repeats, "; read in id order" if args.order_by_id else ""))
        print("- psql: wall time of `psql -c \"\\copy (SELECT ...) TO '/dev/null' (FORMAT binary)\"` (process "
              "start and connection included); mppdl: loadData's clock in `mppdl train --json` (connection, "
              "catalog query, binary COPY, decoding into packed tensors)")
        print("- MB: bytes of the binary COPY stream / 10^6")
        print("- Command: `packaging/pg-test-server.sh /usr/bin/python3 bench/pg_read.py%s`" %
              "".join(" " + shlex.quote(x) for x in sys.argv[1:]))
        print()
        print(render(header, rows, True))
        print()
        print("Target: mppdl >= %.1fx psql's rate: **%s**." % (TARGET, verdict))
        if "bytea" in args.layouts:
            print("bytea: mppdl's time includes train's prepare() turning the uint8 pixels into float32 "
                  "(188 MB written; about 40-50 ms on the 2-core VM), which psql does not do.")
        loads = [r for r in results if r["load_seconds"]]
        if loads:
            print("Loading the tables with psql COPY FROM STDIN (text): " +
                  ", ".join("%s %.1f s" % (r["layout"], r["load_seconds"]) for r in loads) + ".")
        if idx_seconds is not None:
            print("For reference, mppdl reads the IDX .gz files (60,000 + 10,000 rows) in %.3f s." % idx_seconds)
        if parallel_rows:
            print()
            print("Parallel N-stream reading (`--distribute-by database --distributed-by id`): N connections, "
                  "segment s reading `WHERE abs(hashtext(id::text)::int8) %% N = s`, against N psql processes "
                  "\\copy-ing the same shards at once; \"vs 1 stream\" is mppdl's one-stream time over its N-stream "
                  "time (%s logical CPUs serve the server, psql and mppdl alike)." % os.cpu_count())
            print()
            print(render(parallel_header, parallel_rows, True))

    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"server": server, "rows": n, "results": results, "idx_seconds": idx_seconds}, f, indent=1)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
