"""What the PostgreSQL benchmarks share: the server's password for child processes, psql, IDX files."""

import gzip
import os
import struct
import subprocess
import sys


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def child_env():
    """The environment of psql and mppdl: the test server's password through PGPASSWORD (never on a
    command line), and no NOTICEs from DROP TABLE IF EXISTS."""
    env = dict(os.environ)
    if os.environ.get("MPPDL_TEST_PG_PASSWORD") and "PGPASSWORD" not in os.environ:
        env["PGPASSWORD"] = os.environ["MPPDL_TEST_PG_PASSWORD"]
    env.setdefault("PGOPTIONS", "-c client_min_messages=warning")
    return env


ENV = child_env()


def run_psql(psql, conn, sql, **kw):
    return subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", conn, "-c", sql], env=ENV, check=True, **kw)


def copy_in(psql, conn, table, lines):
    """COPY table FROM STDIN (text format) through psql, from an iterable of lines."""
    proc = subprocess.Popen([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", conn, "-c", "COPY %s FROM STDIN" % table],
                            stdin=subprocess.PIPE, env=ENV)
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= 1000:
            proc.stdin.write("".join(chunk).encode())
            chunk = []
    proc.stdin.write("".join(chunk).encode())
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("COPY into %s failed" % table)


def read_idx(path):
    """(dims, payload bytes) of an IDX .gz file."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = [struct.unpack(">I", data[4 + 4 * i:8 + 4 * i])[0] for i in range(magic & 0xFF)]
    return dims, data[4 + 4 * len(dims):]


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def add_common_args(p):
    """The flags every PostgreSQL benchmark takes: the server, the data, the binaries."""
    p.add_argument("--conn", default=os.environ.get("MPPDL_TEST_PG", ""),
                   help="libpq connection string (default: $MPPDL_TEST_PG)")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX .gz directory")
    p.add_argument("--mppdl", default=os.environ.get("MPPDL", os.path.join(REPO_ROOT, "build", "app", "mppdl")))
    p.add_argument("--psql", default="psql")


def check_binary(path):
    """False (after saying so) when there is no mppdl binary at `path`."""
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return True
    log("error: no mppdl binary at %s (build it, pass --mppdl or set $MPPDL)" % path)
    return False


def server_version(psql, conn):
    version = subprocess.run([psql, "-X", "-A", "-t", conn, "-c", "SELECT version()"], env=ENV, check=True,
                             capture_output=True, text=True).stdout.strip()
    log("server: " + version)
    return version


def render(header, rows, markdown):
    """A table as aligned text (first column left, the others right), or as markdown."""
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(header), "-" * len(fmt(header))] + [fmt(r) for r in rows])


def create_fashion_table(psql, conn, data, table):
    """Fashion-MNIST's 60,000 training images as TABLE (id integer, label integer, pixels bytea),
    analyzed; returns the row count."""
    dims, pixels = read_idx(os.path.join(data, "train-images-idx3-ubyte.gz"))
    _, labels = read_idx(os.path.join(data, "train-labels-idx1-ubyte.gz"))
    n = dims[0]
    run_psql(psql, conn, "DROP TABLE IF EXISTS {0}; CREATE TABLE {0} (id integer, label integer, "
             "pixels bytea)".format(table))
    copy_in(psql, conn, table, ("%d\t%d\t\\\\x%s\n" % (i, labels[i], pixels[i * 784:(i + 1) * 784].hex())
                                for i in range(n)))
    run_psql(psql, conn, "ANALYZE %s" % table)
    return n
