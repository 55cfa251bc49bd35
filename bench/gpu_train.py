#!/usr/bin/env python3
"""Training on a GPU: mppdl against PyTorch-Python on the same GPU, in the same run.

Engines, one after another in this process's run, all with the same network (built from the same
architecture JSON by bench/peer_model.py), SGD with the same lr and momentum, the same batch size
and the same data (Fashion-MNIST scaled to [0, 1]):
  mppdl              `mppdl train --device cuda:0`: the data resident on the GPU (mppdl's default)
  mppdl 4 segments   the same with --segments 4 --strategy model-averaging: four replicas
                     training side by side on one GPU, as MADlib shares a GPU between segments
  pytorch host       the tutorials' loop: a DataLoader over host tensors (pin_memory), each
                     minibatch copied to the GPU, loss and accuracy read with .item() every step
  pytorch resident   the data on the GPU, a randperm per epoch and index_select per minibatch,
                     sums kept on the GPU (the loop mppdl runs in C++)
  pytorch graphs     the resident loop with the whole step (forward, backward, SGD) captured
                     once in a CUDA graph and replayed (torch.cuda.graph); full minibatches only
'host' against 'resident' is the effect of keeping the dataset on the GPU; 'graphs' against
'resident' the effect of CUDA graphs for the training step. Epoch time is the median of the
epochs after the first (the first builds cuDNN plans and the graph). images/s = training rows /
epoch time.

Runs on the GPU machine from bench/gpu/check.sh; with --device cpu anywhere (a dry run of the
script: no graphs, no pinned memory). See bench/README.md.
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

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
TARGET_RATIO = 1.0  # mppdl's images/s against the fastest eager PyTorch peer

sys.path.insert(0, BENCH_DIR)
import peer_model  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="fmnist_cnn")
    p.add_argument("--data", default=peer_model.FASHION_MNIST_DIR)
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--epochs", type=int, default=4, help="epochs per engine; the first is warm-up")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="the first N training rows (0 = all 60,000)")
    p.add_argument("--segments", type=int, default=4, help="segments sharing the GPU (0 = skip)")
    p.add_argument("--engines", default="mppdl,segments,host,resident,graphs")
    p.add_argument("--mppdl", default=os.environ.get("MPPDL") or os.path.join(REPO_ROOT, "build", "app", "mppdl"))
    p.add_argument("--json-out", metavar="FILE")
    p.add_argument("--markdown", action="store_true", help="also print a section for docs/BENCHMARKS.md")
    a = p.parse_args()
    if a.epochs < 2:
        p.error("--epochs must be >= 2 (the first is warm-up)")
    a.engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    return a


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# mppdl --------------------------------------------------------------------------------------

def run_mppdl(a, segments):
    cmd = [a.mppdl, "train", "--data", a.data, "--arch", a.arch, "--epochs", str(a.epochs),
           "--batch-size", str(a.batch_size), "--optimizer", "sgd", "--lr", repr(a.lr),
           "--momentum", repr(a.momentum), "--seed", str(a.seed), "--val-fraction", "0",
           "--device", a.device, "--no-project", "--json"]
    if segments > 1:
        cmd += ["--segments", str(segments), "--strategy", "model-averaging"]
    if a.limit:
        cmd += ["--limit", str(a.limit)]
    log("mppdl: " + " ".join(shlex.quote(c) for c in cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError("mppdl exited with status %d: %s" % (proc.returncode, proc.stderr.strip()[-2000:]))
    seconds, finished = [], None
    for line in proc.stdout.splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if ev.get("event") == "epoch" and "segment" not in ev:
            seconds.append(float(ev["epoch_seconds"]))
            log("  epoch %d: %.3f s, train loss %.4f" % (ev["epoch"], ev["epoch_seconds"], ev.get("train_loss", -1)))
        elif ev.get("event") == "finished":
            finished = ev
    return {"epoch_seconds": seconds, "test_accuracy": finished.get("test_accuracy") if finished else None,
            "command": " ".join(shlex.quote(c) for c in cmd)}


# PyTorch peers ------------------------------------------------------------------------------

def make(a, device):
    torch.manual_seed(a.seed)
    model = peer_model.build_model(peer_model.load_spec(a.arch)).to(device)
    return model, torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)


def epoch_host(model, opt, loader, device):
    model.train()
    sync(device)
    t0 = time.perf_counter()
    total, correct, seen = 0.0, 0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * yb.size(0)
        correct += (logits.argmax(1) == yb).sum().item()
        seen += yb.size(0)
    sync(device)
    return time.perf_counter() - t0, total / seen


def epoch_resident(model, opt, x, y, batch, generator):
    model.train()
    n = x.size(0)
    perm = torch.randperm(n, generator=generator, device=x.device)
    sync(x.device)
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    for begin in range(0, n, batch):
        index = perm[begin:begin + batch]
        xb, yb = x.index_select(0, index), y.index_select(0, index)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_sum += loss.detach().double() * index.numel()
    train_loss = loss_sum.item()  # the epoch's one synchronisation
    return time.perf_counter() - t0, train_loss / n


class GraphedStep:
    """The whole training step captured in a CUDA graph (PyTorch's 'whole network capture'): static
    input buffers, three warm-up steps on a side stream (SGD's momentum buffers exist before the
    capture), then replay per minibatch."""

    def __init__(self, model, opt, batch, sample_shape, device):
        self.x = torch.zeros((batch,) + tuple(sample_shape), device=device)
        self.y = torch.zeros(batch, dtype=torch.int64, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(self.x), self.y).backward()
                opt.step()
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.loss = F.cross_entropy(model(self.x), self.y)
            self.loss.backward()
            opt.step()

    def __call__(self, xb, yb):
        self.x.copy_(xb)
        self.y.copy_(yb)
        self.graph.replay()
        return self.loss


def epoch_graphs(step, x, y, batch, generator):
    n = x.size(0) - x.size(0) % batch  # full minibatches: the graph's shapes are fixed
    perm = torch.randperm(x.size(0), generator=generator, device=x.device)
    sync(x.device)
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    for begin in range(0, n, batch):
        index = perm[begin:begin + batch]
        loss_sum += step(x.index_select(0, index), y.index_select(0, index)).detach().double() * batch
    train_loss = loss_sum.item()
    return time.perf_counter() - t0, train_loss / n, n


@torch.no_grad()
def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, x.size(0), batch):
        correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / x.size(0)


def run_peer(a, name, device, data):
    x, y, xt, yt = data
    model, opt = make(a, device)
    rows = x.size(0)
    seconds = []
    if name == "host":
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=a.batch_size,
                                             shuffle=True, pin_memory=device.type == "cuda")
        run = lambda: epoch_host(model, opt, loader, device)  # noqa: E731
    else:
        xd, yd = x.to(device), y.to(device)
        generator = torch.Generator(device=device).manual_seed(a.seed)
        if name == "graphs":
            step = GraphedStep(model, opt, a.batch_size, x.shape[1:], device)
            rows = x.size(0) - x.size(0) % a.batch_size
            run = lambda: epoch_graphs(step, xd, yd, a.batch_size, generator)[:2]  # noqa: E731
        else:
            run = lambda: epoch_resident(model, opt, xd, yd, a.batch_size, generator)  # noqa: E731
    for e in range(a.epochs):
        s, loss = run()
        seconds.append(s)
        log("  epoch %d: %.3f s, train loss %.4f" % (e + 1, s, loss))
    return {"epoch_seconds": seconds, "rows": rows, "test_accuracy": evaluate(model, xt.to(device), yt.to(device))}


# Report -------------------------------------------------------------------------------------

LABELS = {"mppdl": "mppdl", "segments": "mppdl %d segments, one GPU", "host": "pytorch host (DataLoader)",
          "resident": "pytorch resident", "graphs": "pytorch resident + CUDA graph"}


def main():
    a = parse_args()
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_train: torch sees no CUDA device")
    if device.type != "cuda":
        a.engines = [e for e in a.engines if e != "graphs"]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    data = peer_model.load_fashion_mnist(a.data, a.limit)
    rows = data[0].size(0)
    results = {}
    for engine in a.engines:
        log("== " + engine)
        if engine == "mppdl":
            r = run_mppdl(a, 1)
            r["rows"] = rows
        elif engine == "segments":
            if a.segments < 2:
                continue
            r = run_mppdl(a, a.segments)
            r["rows"] = rows
        else:
            r = run_peer(a, engine, device, data)
        r["epoch"] = statistics.median(r["epoch_seconds"][1:])
        r["images_per_sec"] = r["rows"] / r["epoch"]
        results[engine] = r

    eager = [results[k]["images_per_sec"] for k in ("host", "resident") if k in results]
    ratios = {}
    if "mppdl" in results and eager:
        ratios["mppdl / fastest eager pytorch"] = results["mppdl"]["images_per_sec"] / max(eager)
    if "host" in results and "resident" in results:
        ratios["data on the GPU: resident / host"] = results["resident"]["images_per_sec"] / results["host"]["images_per_sec"]
    if "graphs" in results and "resident" in results:
        ratios["CUDA graph: graphs / resident"] = results["graphs"]["images_per_sec"] / results["resident"]["images_per_sec"]
    if "graphs" in results and "mppdl" in results:
        ratios["mppdl / pytorch graphs"] = results["mppdl"]["images_per_sec"] / results["graphs"]["images_per_sec"]
    if "segments" in results and "mppdl" in results:
        ratios["%d segments / 1 (images/s)" % a.segments] = (results["segments"]["images_per_sec"] /
                                                             results["mppdl"]["images_per_sec"])

    date = datetime.date.today().isoformat()
    header = "%s, %s, batch %d, %d rows, %d epochs (median of the last %d), torch %s, %s" % (
        gpu, a.arch, a.batch_size, rows, a.epochs, a.epochs - 1, torch.__version__, date)
    lines = ["| engine | epoch s | images/s | test accuracy |", "|---|---:|---:|---:|"]
    for k, r in results.items():
        label = LABELS[k] % a.segments if k == "segments" else LABELS[k]
        acc = r.get("test_accuracy")
        lines.append("| %s | %.3f | %s | %s |" % (label, r["epoch"], format(round(r["images_per_sec"]), ","),
                                                  "%.2f%%" % (100 * acc) if acc is not None else "-"))
    print(header)
    print("\n".join(lines))
    for k, v in ratios.items():
        print("- %s: **%.2fx**" % (k, v))
    verdict = None
    if "mppdl / fastest eager pytorch" in ratios:
        verdict = ratios["mppdl / fastest eager pytorch"] >= TARGET_RATIO
        print("verdict: %s (target mppdl >= %.1fx the fastest eager PyTorch peer)" % (
            "PASS" if verdict else "FAIL", TARGET_RATIO))
    if a.markdown:
        print("\n### Training on %s (%s)\n\n`%s`\n" % (gpu, date, " ".join(shlex.quote(x) for x in sys.argv)))
        print(header + "\n\n" + "\n".join(lines))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"device": gpu, "date": date, "torch": torch.__version__, "args": vars(a),
                       "results": results, "ratios": ratios, "pass": verdict}, f, indent=1)


if __name__ == "__main__":
    main()
