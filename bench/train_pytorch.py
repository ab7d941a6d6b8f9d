"""The PyTorch anchor of bench/train_bench.ts: one training step of the same model, the same head
and the same optimiser, timed by the caller.

The model: a small MLP body (IN → HIDDEN, relu, → D) whose output is the features, and an ArcFace
head (s = 64, m = 0.5, insightface's fallback past θ = π − m) on C class weights; Adam (lr 1e-3)
on the body and on the class weights. float32, torch.set_num_threads(os.cpu_count()),
OMP_WAIT_POLICY=PASSIVE and OpenBLAS's kernels picked from the CPU flags, as bench/pytorch_anchor.py
does.

Protocol (a sidecar): argv N D C IN HIDDEN SEED; prints one JSON line describing the setup, then for
each line "step" on stdin runs one step (forward, backward, optimiser) and prints its loss and the
seconds it took; "quit" ends it.
"""
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:
    with open("/proc/cpuinfo") as cpuinfo:
        flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
except OSError:
    flags = []
if "avx512f" in flags:
    os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
elif "avx2" in flags:
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SCALE, MARGIN = 64.0, 0.5
COS_M, SIN_M = math.cos(MARGIN), math.sin(MARGIN)
THRESHOLD = math.cos(math.pi - MARGIN)
SHIFT = math.sin(math.pi - MARGIN) * MARGIN


def arcface(x, w, labels):
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).t()
    column = labels[:, None]
    c = cos.gather(1, column)
    sin = torch.sqrt(torch.clamp((1 - c) * (1 + c), min=1e-16))
    f = torch.where(c > THRESHOLD, c * COS_M - sin * SIN_M, c - SHIFT)
    return F.cross_entropy(cos.scatter(1, column, f) * SCALE, labels)


def main():
    n, d, c, inputs, hidden, seed = (int(v) for v in sys.argv[1:7])
    torch.set_num_threads(os.cpu_count())
    generator = torch.Generator().manual_seed(seed)
    body = torch.nn.Sequential(
        torch.nn.Linear(inputs, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, d))
    w = torch.nn.Parameter(torch.randn(c, d, generator=generator) / math.sqrt(d))
    x0 = torch.randn(n, inputs, generator=generator)
    labels = torch.randint(0, c, (n,), generator=generator)
    optimizer = torch.optim.Adam([*body.parameters(), w], lr=1e-3)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "ompWaitPolicy": os.environ.get("OMP_WAIT_POLICY"),
    }), flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = arcface(body(x0), w, labels)
        loss.backward()
        optimizer.step()
        seconds = time.perf_counter() - start
        print(json.dumps({"loss": loss.item(), "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
