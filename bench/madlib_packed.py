#!/usr/bin/python3
"""Reading a MADlib packed table (training_preprocessor_dl's output) against the same rows one a row,
and against psql's binary \\copy of the packed buffers.

Fashion-MNIST's 60,000 training images are written twice: as MADlib keeps images before its
preprocessor, `x real[]` of 28x28x1 a row (height x width x channels) with an id, and packed as
training_preprocessor_dl('rows', 'packed', 'label', 'x', BUFFER, 255) packs them (x and label bytea:
float32 of x * float(1/255), one-hot int16; x_shape, label_shape, buffer_id; packed_summary). Then:

- mppdl, packed: `mppdl train --data pg:packed` up to its "data:" message (the read, unpacking
  and the values multiplied back by normalizing_const, without training);
- mppdl, rows: the same of `pg:rows --layout hwc --id id` (a binary COPY of 60,000 real[]);
- psql: `\\copy (SELECT buffer_id, x, label, x_shape, label_shape FROM packed) TO /dev/null
  (FORMAT binary)`, the wall time of the psql process.

Medians of --repeats runs after a warm-up. Run under packaging/pg-test-server.sh:
    packaging/pg-test-server.sh /usr/bin/python3 bench/madlib_packed.py [--markdown]
"""

import argparse
import os
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_common import add_common_args, check_binary, copy_in, log, read_idx, render, run_psql, server_version  # noqa: E402
from pg_read import time_command  # noqa: E402


def create_tables(args, pixels, labels, n):
    run_psql(args.psql, args.conn, "DROP TABLE IF EXISTS madlib_bench_rows; CREATE TABLE madlib_bench_rows "
             "(id integer, label integer, x real[])")

    def row_lines():
        for i in range(n):
            p = pixels[i * 784:(i + 1) * 784]
            rows = ",".join("{" + ",".join("{%d}" % v for v in p[h * 28:(h + 1) * 28]) + "}" for h in range(28))
            yield "%d\t%d\t{%s}\n" % (i, labels[i], rows)
    copy_in(args.psql, args.conn, "madlib_bench_rows", row_lines())

    reciprocal = struct.unpack("<f", struct.pack("<f", 1.0 / 255.0))[0]
    scaled = [struct.unpack("<f", struct.pack("<f", v * reciprocal))[0] for v in range(256)]
    table = [struct.pack("<f", s) for s in scaled]
    run_psql(args.psql, args.conn, "DROP TABLE IF EXISTS madlib_bench_packed, madlib_bench_packed_summary; "
             "CREATE TABLE madlib_bench_packed (x bytea, label bytea, x_shape integer[], label_shape integer[], "
             "buffer_id integer)")

    def buffer_lines():
        for b, begin in enumerate(range(0, n, args.buffer_size)):
            count = min(args.buffer_size, n - begin)
            x = b"".join(table[v] for v in pixels[begin * 784:(begin + count) * 784])
            y = bytearray(count * 10 * 2)
            for r in range(count):
                struct.pack_into("<h", y, (r * 10 + labels[begin + r]) * 2, 1)
            yield "\\\\x%s\t\\\\x%s\t{%d,28,28,1}\t{%d,10}\t%d\n" % (x.hex(), bytes(y).hex(), count, count, b)
    copy_in(args.psql, args.conn, "madlib_bench_packed", buffer_lines())
    run_psql(args.psql, args.conn,
             "CREATE TABLE madlib_bench_packed_summary AS SELECT 'madlib_bench_rows'::text AS source_table, "
             "'madlib_bench_packed'::text AS output_table, ARRAY['label'] AS dependent_varname, "
             "ARRAY['x'] AS independent_varname, ARRAY['integer'] AS dependent_vartype, "
             "ARRAY[0,1,2,3,4,5,6,7,8,9] AS label_class_values, %d AS buffer_size, 255::real AS normalizing_const, "
             "ARRAY[10]::integer[] AS num_classes; ANALYZE madlib_bench_rows; ANALYZE madlib_bench_packed"
             % args.buffer_size)


def time_psql(args):
    started = time.perf_counter()
    run_psql(args.psql, args.conn, "\\copy (SELECT buffer_id::int8, x, label, x_shape::int8[], label_shape::int8[] "
             "FROM madlib_bench_packed ORDER BY buffer_id) TO '/dev/null' (FORMAT binary)")
    return time.perf_counter() - started


def time_mppdl_source(args, source):
    """loadData's seconds for `mppdl train --data SOURCE...` (killed once the data is loaded)."""
    cmd = [args.mppdl, "train", "--data"] + source + ["--conn", args.conn, "--val-fraction", "0", "--normalize",
                                                      "none", "--epochs", "1", "--arch", "mlp", "--no-project",
                                                      "--json"]
    return time_command(cmd)[0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--buffer-size", type=int, default=1000, help="rows a buffer, MADlib's buffer_size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--keep", action="store_true", help="leave the tables in the database")
    args = p.parse_args()
    if not args.conn or not check_binary(args.mppdl):
        return 2
    server_version(args.psql, args.conn)
    dims, pixels = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    _, labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    n = min(args.rows, dims[0])
    log("writing %d rows, and packed in buffers of %d" % (n, args.buffer_size))
    create_tables(args, pixels, labels, n)
    packed = ["pg:madlib_bench_packed"]
    rows = ["pg:madlib_bench_rows", "--layout", "hwc", "--id", "id"]

    times = {"packed": [], "rows": [], "psql": []}
    for i in range(args.repeats + 1):
        results = {"packed": time_mppdl_source(args, packed), "rows": time_mppdl_source(args, rows),
                   "psql": time_psql(args)}
        if i > 0:  # the first run warms the server's cache
            for k, v in results.items():
                times[k].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    mb = n * 784 * 4 / 1e6
    table = [["mppdl, packed table (%d buffers)" % (-(-n // args.buffer_size)), "%.2f" % med["packed"],
              "%.0f" % (mb / med["packed"]), "%.2f" % (med["psql"] / med["packed"])],
             ["mppdl, one row a tuple (real[] 28x28x1, --layout hwc)", "%.2f" % med["rows"],
              "%.0f" % (mb / med["rows"]), "%.2f" % (med["psql"] / med["rows"])],
             ["psql \\copy of the packed buffers (binary, to /dev/null)", "%.2f" % med["psql"],
              "%.0f" % (mb / med["psql"]), "1.00"]]
    print(render(["reader, %d rows" % n, "seconds", "MB/s of float32", "psql / it"], table, args.markdown))
    if not args.keep:
        run_psql(args.psql, args.conn, "DROP TABLE madlib_bench_rows, madlib_bench_packed, madlib_bench_packed_summary")
    return 0


if __name__ == "__main__":
    sys.exit(main())
