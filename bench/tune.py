#!/usr/bin/python3
"""Model selection: model hopper against training alone, task parallelism and Hyperband against grid.

Two studies, each through `mppdl tune --json` on real Fashion-MNIST, in scratch projects:

1. **Schedulers** (--configs-space, 8 configurations, --segments 4, --epochs E): the same grid
   trained three ways, with the same seed (the same initial weights per configuration):
   - `--scheduler mop`: model hopper over 4 segments (each configuration hops over the 4 shards);
   - `--scheduler task`: task parallelism, each configuration whole on one of 4 workers;
   - `--scheduler sequential`: one after another with every thread: each configuration "alone".
   Reported: every configuration's test accuracy under mop against alone (target: within 0.5
   points: no averaging penalty, as Cerebro and MADlib's fit_multiple_model promise), and the
   total time of the three.
2. **Hyperband vs grid** (--hb-space): the grid of the space with every configuration at R =
   max_epochs epochs, against Hyperband (R, eta) sampling the same lists. Reported: the best
   validation and test accuracy of each, and the epochs each spent (target: Hyperband within 1
   point of the grid's best test accuracy with at most a third of its epochs).

    /usr/bin/python3 bench/tune.py [--limit 20000] [--epochs 3] [--threads 2] [--markdown]
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS_SPACE = {"architecture": ["mlp", "lenet5"], "lr": [0.05, 0.01], "batch_size": [32, 128], "momentum": 0.9}
HB_SPACE = {"architecture": "mlp", "lr": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3], "batch_size": [32, 128],
            "momentum": [0.0, 0.9], "max_epochs": 9, "eta": 3, "seed": 5}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mppdl", default=os.environ.get("MPPDL", os.path.join(REPO_ROOT, "build", "app", "mppdl")))
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--limit", type=int, default=20000, help="training rows (0: all 60,000)")
    p.add_argument("--epochs", type=int, default=3, help="study 1: epochs of every configuration")
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--schedule", default="cosine", help="study 1: the learning-rate schedule (cosine: the weights "
                   "settle at the end, so the comparison is not SGD's epoch-to-epoch noise)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--studies", default="schedulers,hyperband")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--json-out")
    return p.parse_args()


def tune(args, workdir, name, space, *extra):
    space_path = os.path.join(workdir, name + ".json")
    with open(space_path, "w") as f:
        json.dump(space, f)
    cmd = [args.mppdl, "tune", "--space", space_path, "--data", args.data, "--limit", str(args.limit),
           "--threads", str(args.threads), "--seed", "1", "--name", name,
           "--project", os.path.join(workdir, "bench.mppdl"), "--json", *extra]
    print("  " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - start
    final = json.loads(out.strip().splitlines()[-1])
    assert final["event"] == "finished", final
    final["wall_seconds"] = seconds
    return final


def by_config(result):
    return {json.dumps(r["configuration"], sort_keys=True): r for r in result["leaderboard"]}


def describe(c):
    return "%s lr %g batch %d" % (c["architecture"], c["lr"], c["batch_size"])


def schedulers(args, workdir):
    space = dict(CONFIGS_SPACE, epochs=args.epochs)
    runs = {}
    for scheduler in ("mop", "task", "sequential"):
        runs[scheduler] = tune(args, workdir, "sched-" + scheduler, space, "--search", "grid", "--scheduler", scheduler,
                               "--segments", str(args.segments), "--schedule", args.schedule)
    alone = by_config(runs["sequential"])
    rows = []
    for key, r in sorted(by_config(runs["mop"]).items()):
        a = alone[key]
        rows.append({"configuration": r["configuration"], "mop_test": r["test_accuracy"],
                     "alone_test": a["test_accuracy"], "task_test": by_config(runs["task"])[key]["test_accuracy"],
                     "difference_points": 100 * (r["test_accuracy"] - a["test_accuracy"])})
    return {"rows": rows, "seconds": {k: v["seconds"] for k, v in runs.items()},
            "wall_seconds": {k: v["wall_seconds"] for k, v in runs.items()},
            "max_abs_difference_points": max(abs(r["difference_points"]) for r in rows)}


def hyperband(args, workdir):
    grid_space = {k: v for k, v in HB_SPACE.items() if k not in ("max_epochs", "eta", "seed")}
    grid_space["epochs"] = HB_SPACE["max_epochs"]
    grid = tune(args, workdir, "grid", grid_space, "--search", "grid", "--scheduler", "mop",
                "--segments", str(args.segments))
    hb = tune(args, workdir, "hyperband", HB_SPACE, "--search", "hyperband", "--scheduler", "mop",
              "--segments", str(args.segments))

    def best(result):
        top = result["leaderboard"][0]  # sorted by validation accuracy
        return {"configuration": top["configuration"], "val": top["val_accuracy"], "test": top["test_accuracy"],
                "epochs": result["epochs_done"], "configurations": len(result["leaderboard"]),
                "seconds": result["seconds"]}

    g, h = best(grid), best(hb)
    return {"grid": g, "hyperband": h, "gap_points": 100 * (g["test"] - h["test"]),
            "epoch_ratio": h["epochs"] / g["epochs"]}


def main():
    args = parse_args()
    studies = args.studies.split(",")
    report = {"date": datetime.date.today().isoformat(), "machine": machine.cpu_model(),
              "cpus": os.cpu_count(), "threads": args.threads, "limit": args.limit}
    with tempfile.TemporaryDirectory(prefix="mppdl-bench-tune-") as workdir:
        if "schedulers" in studies:
            report["schedulers"] = schedulers(args, workdir)
        if "hyperband" in studies:
            report["hyperband"] = hyperband(args, workdir)

    md = args.markdown
    lines = []
    if md:
        lines += ["### Model selection: model hopper, task parallelism, Hyperband", "",
                  "- Machine: %s (%d logical CPUs), %d threads, %s; %s" % (
                      report["machine"], report["cpus"], args.threads, platform.platform(), report["date"]),
                  "- Command: `/usr/bin/python3 bench/tune.py%s`" % "".join(" " + a for a in sys.argv[1:]),
                  "- Fashion-MNIST, the first %s training rows (10%% held out for validation), the 10,000 test images"
                  % ("{:,}".format(args.limit) if args.limit else "60,000"), ""]
    if "schedulers" in report:
        s = report["schedulers"]
        lines.append("%d configurations, %d epochs each (%s schedule), %d segments: test accuracy under model hopper "
                     "against the configuration trained alone (sequential), and task parallelism" % (
                         len(s["rows"]), args.epochs, args.schedule, args.segments))
        lines.append("")
        head = ["configuration", "mop test", "alone test", "difference (points)", "task test"]
        body = [[describe(r["configuration"]), "%.2f%%" % (100 * r["mop_test"]), "%.2f%%" % (100 * r["alone_test"]),
                 "%+.2f" % r["difference_points"], "%.2f%%" % (100 * r["task_test"])] for r in s["rows"]]
        lines += table(head, body, md)
        lines.append("")
        t = s["seconds"]
        lines.append("Total time: mop %.0f s, task %.0f s, sequential %.0f s (mop %.2fx of sequential, %.2fx of task); "
                     "largest |difference| %.2f points (target 0.5: %s)" % (
                         t["mop"], t["task"], t["sequential"], t["mop"] / t["sequential"], t["mop"] / t["task"],
                         s["max_abs_difference_points"], "PASS" if s["max_abs_difference_points"] <= 0.5 else "FAIL"))
        lines.append("")
    if "hyperband" in report:
        h = report["hyperband"]
        head = ["search", "configurations", "epochs", "best configuration", "val", "test", "time"]
        body = [[name, str(r["configurations"]), str(r["epochs"]), describe(r["configuration"]),
                 "%.2f%%" % (100 * r["val"]), "%.2f%%" % (100 * r["test"]), "%.0f s" % r["seconds"]]
                for name, r in (("grid", h["grid"]), ("hyperband", h["hyperband"]))]
        lines += table(head, body, md)
        lines.append("")
        lines.append("Hyperband's best is %.2f points below the grid's (target <= 1: %s) with %.2f of its epochs "
                     "(target <= 1/3: %s)" % (h["gap_points"], "PASS" if h["gap_points"] <= 1 else "FAIL",
                                              h["epoch_ratio"], "PASS" if h["epoch_ratio"] <= 1 / 3 else "FAIL"))
    print("\n".join(lines))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1)


def table(head, body, md):
    if md:
        return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"] + \
               ["| " + " | ".join(r) + " |" for r in body]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(head)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in [head] + body]


if __name__ == "__main__":
    main()
