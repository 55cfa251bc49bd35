#!/usr/bin/python3
"""What watching a run in the terminal workbench costs the run: the same `mppdl train` unwatched
and watched by `mppdl tui` (inside tmux, on the run's screen, redrawing its curves while it trains),
alternating (off, on, on, off, ...) so that drift of the machine falls on both sides. Compared:
the median epoch time (the `epoch_seconds` the run records), and the workbench's own CPU time per
second of the run. The target: watched within 2% of unwatched.

    /usr/bin/python3 bench/tui_overhead.py                       # lenet5 on 12,000 rows, 3 epochs
    /usr/bin/python3 bench/tui_overhead.py --arch fmnist_cnn --repeats 3
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 0.02


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="lenet5")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--limit", type=int, default=12000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2, help="runs per mode")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--mppdl", default=os.environ.get("MPPDL", os.path.join(REPO_ROOT, "build", "app", "mppdl")))
    return p.parse_args()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(args, project, watched, socket):
    cmd = [args.mppdl, "train", "--data", args.data, "--arch", args.arch, "--limit", str(args.limit),
           "--epochs", str(args.epochs), "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--seed", "1",
           "--threads", str(args.threads), "--json", "--project", project]
    tui_pid, tui_cpu = None, 0.0
    if watched:
        # The workbench on the newest run's screen: Enter opens the first row (newest first).
        started = subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-s", "w", "-x", "160", "-y", "48",
                                  f"env -u DISPLAY TERM=xterm-256color LANG=C.UTF-8 {args.mppdl} tui {project}"],
                                 capture_output=True, text=True)
        if started.returncode != 0:
            sys.exit(f"tmux could not start the workbench: {started.stderr.strip()}")
        time.sleep(1.0)
        tui_pid = int(subprocess.run(["tmux", "-L", socket, "list-panes", "-t", "w", "-F", "#{pane_pid}"],
                                     capture_output=True, text=True, check=True).stdout.split()[0])
    train = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    start_cpu = cpu_seconds(tui_pid) if tui_pid else 0.0
    opened = False
    epochs, started = [], time.monotonic()
    for line in train.stdout:
        event = json.loads(line)
        if watched and not opened and event.get("event") == "progress":
            subprocess.run(["tmux", "-L", socket, "send-keys", "-t", "w", "Home", "Enter"], check=True)
            opened = True
        if event.get("event") == "epoch" and "segment" not in event and "epoch_seconds" in event.get("metrics", event):
            metrics = event.get("metrics", event)
            epochs.append(metrics["epoch_seconds"])
    train.wait()
    wall = time.monotonic() - started
    if tui_pid:
        tui_cpu = cpu_seconds(tui_pid) - start_cpu
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    return epochs, wall, tui_cpu


def main():
    args = parse_args()
    if not shutil.which("tmux"):
        sys.exit("tmux is needed (packaging/install-deps.sh installs it)")
    work = tempfile.mkdtemp(prefix="mppdl-tui-bench-")
    project = os.path.join(work, "bench.mppdl")
    socket = f"mppdl_bench_{os.getpid()}"
    times = {False: [], True: []}
    tui_cpu, tui_wall = 0.0, 0.0
    order = []
    for r in range(args.repeats):
        order += [False, True] if r % 2 == 0 else [True, False]
    try:
        for watched in order:
            epochs, wall, cpu = one_run(args, project, watched, socket)
            times[watched] += epochs[1:] if len(epochs) > 1 else epochs  # the first epoch warms up
            if watched:
                tui_cpu += cpu
                tui_wall += wall
            print(f"{'watched  ' if watched else 'unwatched'} epochs {', '.join(f'{e:.2f}' for e in epochs)} s",
                  flush=True)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    ratio = on / off - 1
    print(f"\n{args.arch}, {args.limit} rows, {args.threads} threads: median epoch {off:.3f} s unwatched, "
          f"{on:.3f} s watched: {ratio * 100:+.1f}% (target within {TARGET * 100:.0f}%): "
          f"{'met' if ratio <= TARGET else 'NOT met'}")
    print(f"the workbench used {tui_cpu:.2f} s of CPU over {tui_wall:.1f} s of watched runs "
          f"({tui_cpu / max(tui_wall, 1e-9) * 100:.1f}% of one core)")


if __name__ == "__main__":
    main()
