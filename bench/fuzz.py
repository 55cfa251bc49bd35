#!/usr/bin/python3
"""The parsers' fuzz loops, run long: every file format, the Keras JSON import, the architecture
parser and the PostgreSQL binary COPY tuple decoder, each for at least 100,000 damaged inputs.

ctest runs the same loops briefly (MPPDL_FUZZ_ROUNDS unset: 120 to 400 inputs each); this script
raises the count and reports, per loop, how many inputs were tried, accepted and rejected, and
whether anything crashed or threw something other than mppdl's errors (the loop's test fails).

    /usr/bin/python3 bench/fuzz.py                    # 100,000 inputs per loop
    /usr/bin/python3 bench/fuzz.py --inputs 1000      # a quick look
"""

import argparse
import os
import re
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("MPPDL_BUILD", os.path.join(REPO_ROOT, "build"))

# (test binary, gtest case, inputs per round): the tuple loop decodes 20 tuples a round.
LOOPS = [
    ("tests/engine/data/mppdl_data_test", "DataFuzz.IdxFiles", 1),
    ("tests/engine/data/mppdl_data_test", "DataFuzz.CsvFiles", 1),
    ("tests/engine/data/mppdl_data_test", "DataFuzz.NpyFiles", 1),
    ("tests/engine/data/mppdl_data_test", "DataFuzz.ImageFolders", 1),
    ("tests/engine/data/mppdl_data_test", "DataFuzz.PostgresCopyTuples", 20),
    ("tests/engine/model/mppdl_model_test", "ModelFuzz.MutatedExamplesNeverBreakParsingAnalysisOrTheBuilder", 1),
    ("tests/engine/model/mppdl_model_test", "ModelFuzz.MutatedKerasJsonNeverBreaksTheImportOrTheBuilder", 1),
]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--inputs", type=int, default=100_000, help="inputs per loop (at least)")
    p.add_argument("--only", help="run only the loops whose case contains this text")
    args = p.parse_args()
    failed = 0
    print(f"{'loop':<62} {'inputs':>8} {'accepted':>9} {'rejected':>9} {'seconds':>8}  result")
    for binary, case, per_round in LOOPS:
        if args.only and args.only not in case:
            continue
        rounds = -(-args.inputs // per_round)
        env = dict(os.environ, MPPDL_FUZZ_ROUNDS=str(rounds))
        start = time.monotonic()
        done = subprocess.run([os.path.join(BUILD, binary), f"--gtest_filter={case}"], env=env,
                              capture_output=True, text=True)
        seconds = time.monotonic() - start
        counts = re.search(r"fuzzed (\d+) [^:]*: (\d+) accepted, (\d+) rejected", done.stdout)
        if counts:
            inputs, accepted, rejected = counts.groups()
        else:  # the architecture loop reports parsed / valid / built
            arch = re.search(r"fuzzed (\d+) [^:]*: parsed (\d+), valid (\d+)", done.stdout)
            inputs, accepted = (arch.group(1), arch.group(3)) if arch else ("?", "?")
            rejected = str(int(inputs) - int(accepted)) if arch else "?"
        ok = done.returncode == 0
        failed += not ok
        crash = "" if ok else (" (signal %d)" % -done.returncode if done.returncode < 0 else " (failed)")
        print(f"{case:<62} {inputs:>8} {accepted:>9} {rejected:>9} {seconds:>8.1f}  {'ok' if ok else 'FAIL' + crash}")
        if not ok:
            sys.stdout.write(done.stdout[-4000:] + done.stderr[-2000:])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
