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
