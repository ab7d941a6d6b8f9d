#!/usr/bin/python3
"""The PyTorch CPU rows of the benchmark: the same heads, sizes and budget as bench/losses_bench.ts.

Usage: /usr/bin/python3 bench/pytorch_anchor.py JOB.json OUT.json

JOB.json (written by bench/run.ts from HEAD_CATALOG and bench/_config.ts, so a loss added to the
catalog needs nothing here): {"sizes": [{"name", "N", "D", "C"}], "heads": [{"loss", "head"}],
"budgetS": seconds per bench}, where "head" is the loss's HeadSpec with its defaults
(losses/head_spec.ts). Each head is computed the way a PyTorch user writes it: float32,
F.normalize, one matrix product, the margin on the target column only (gather/scatter), then
F.cross_entropy with the mean; timed forward+backward (gradients of features and weights).

PyTorch runs in its best configuration here, printed on start: torch.set_num_threads(os.cpu_count()),
OMP_WAIT_POLICY=PASSIVE (libgomp's spinning threads otherwise fight OpenBLAS's), and, where
/proc/cpuinfo shows avx512f, OPENBLAS_CORETYPE=SkylakeX (OpenBLAS 0.3.21 misdetects recent CPUs;
Haswell where only avx2). Either variable already set is kept. Prints progress on stderr; writes
medians, per-iteration times and the BLAS in use to OUT.json, with the process's peak resident set
size. Without PyTorch it prints one line saying what to install and exits with code 3.
"""
import ctypes
import json
import math
import os
import statistics
import sys
import time

MISSING_TORCH = 3


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# Before torch loads libgomp and OpenBLAS, which read these once.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_flags = cpu_flags()
if "avx512f" in _flags:
    os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
elif "avx2" in _flags:
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

try:
    import torch
    import torch.nn.functional as F
except ImportError as error:
    print(f"PyTorch column skipped: {sys.executable} cannot import torch ({error}); install it "
          "with `apt-get install -y python3-torch libopenblas0-pthread` (or `deno task setup`)",
          file=sys.stderr, flush=True)
    sys.exit(MISSING_TORCH)


def blas_in_use():
    """Which BLAS the process really loaded (Debian's torch links the generic libblas.so.3)."""
    torch.ones(64, 64) @ torch.ones(64, 64)  # make sure the BLAS is loaded
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if "blas" in name or "lapack" in name:
                paths.add(path)
    info = {"libraries": sorted(paths), "openblas": None}
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            info["openblas"] = {
                "library": path,
                "config": lib.openblas_get_config().decode(),
                "corename": lib.openblas_get_corename().decode(),
                "threads": lib.openblas_get_num_threads(),
            }
            break
        except (OSError, AttributeError):
            continue
    if info["openblas"]:
        o = info["openblas"]
        version = o["config"].split()[1] if o["config"].startswith("OpenBLAS") else "?"
        info["summary"] = f"OpenBLAS {version} ({o['corename']} kernels, {o['threads']} threads)"
    else:
        info["summary"] = "generic BLAS (" + ", ".join(paths or ["none found"]) + ")"
    return info


def target_function(margin, c):
    """f(c) of losses/_target.ts for the target cosines c (a column of N values)."""
    kind = margin["kind"]
    if kind == "none":
        return c
    if kind == "psi":
        m, lam = margin["margin"], margin["lambda"]
        theta = torch.acos(c.clamp(-1 + 1e-7, 1 - 1e-7))
        k = torch.floor(m * theta / math.pi).detach()
        sign = 1 - 2 * torch.remainder(k, 2)
        psi = sign * torch.cos(m * theta) - 2 * k
        return (lam * c + psi) / (1 + lam)
    m1, m2, m3 = margin["m1"], margin["m2"], margin["m3"]
    if m1 == 1:
        sin = torch.sqrt((1 - c * c).clamp(min=1e-12))
        f = c * math.cos(m2) - sin * math.sin(m2) - m3
    else:
        f = torch.cos(m1 * torch.acos(c.clamp(-1 + 1e-7, 1 - 1e-7)) + m2) - m3
    if margin["fallback"] == "easy":
        return torch.where(c > 0, f, c)
    if margin["fallback"] == "insightface":
        threshold = math.cos(math.pi - m2)
        return torch.where(c > threshold, f, c - (math.sin(math.pi - m2) * m2 + m3))
    return f


def head_loss(head, x, w, labels):
    """The mean loss of one HeadSpec."""
    if head["logits"] == "linear":
        return F.cross_entropy(x @ w.t(), labels)
    x_norm = x.norm(dim=1, keepdim=True)
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).t()
    column = labels[:, None]
    c = cos.gather(1, column)
    f = target_function(head["margin"], c)
    if head["marginGradient"] == "detached":
        f = c + (f - c).detach()
    logits = cos.scatter(1, column, f)
    radius = head["radius"]
    if radius["kind"] == "scale":
        logits = logits * radius["scale"]
    elif radius["kind"] == "featureNorm":
        logits = logits * x_norm
    else:  # normProduct: ‖x_i‖·‖w_j‖
        logits = logits * x_norm * w.norm(dim=1)[None, :]
    return F.cross_entropy(logits, labels)


def bench_rows(count, d, generator):
    """Rows drawn as bench/_inputs.ts draws them: norms 0.5 + 2|N(0, 1)|, directions Gaussian.

    Plain torch.randn rows (norm √D) would give the softmax head logits of ±100 and
    probabilities below float32's normal range: subnormal arithmetic, tens of times slower on
    some CPUs, measuring the inputs instead of the head.
    """
    norms = 0.5 + 2 * torch.randn(count, 1, generator=generator).abs()
    return torch.randn(count, d, generator=generator) * (norms / math.sqrt(d))


def bench_one(head, size, budget_s, generator):
    n_, d, c_ = size["N"], size["D"], size["C"]
    x = bench_rows(n_, d, generator).requires_grad_()
    w = bench_rows(c_, d, generator).requires_grad_()
    labels = (torch.arange(n_) * 7919 + 1) % c_

    def run():
        x.grad = None
        w.grad = None
        start = time.perf_counter()
        loss = head_loss(head, x, w, labels)
        loss.backward()
        elapsed = time.perf_counter() - start
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"non-finite loss {loss.item()}")
        return elapsed

    first = run()  # warm-up: the first run pays for allocations and thread start-up
    if first * 4 > budget_s:
        first = run()  # the cost estimate of the skip rule (as in bench/_config.ts), warm
    if first * 4 > budget_s:
        return {"skipped": f"estimated {first:.1f} s per run: 4 runs exceed the {budget_s} s budget"}
    if first < 0.01:
        for _ in range(4):
            run()
    samples = [run() for _ in range(max(3, min(32, int(budget_s / first) - 1)))]
    return {"medianMs": statistics.median(samples) * 1e3, "samplesMs": [s * 1e3 for s in samples]}


def peak_rss_mib():
    """The process's peak resident set size (VmHWM, as `/usr/bin/time -v` reports it), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def main():
    job_path, out_path = sys.argv[1], sys.argv[2]
    with open(job_path) as f:
        job = json.load(f)
    torch.set_num_threads(os.cpu_count())
    blas = blas_in_use()
    info = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": blas,
        "coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "ompWaitPolicy": os.environ.get("OMP_WAIT_POLICY"),
        "precision": "float32",
        "rows": [],
    }
    print(f"[pytorch] torch {torch.__version__}, float32, torch.set_num_threads({info['threads']}), "
          f"OMP_WAIT_POLICY={info['ompWaitPolicy']}, "
          f"OPENBLAS_CORETYPE={info['coretype'] or '(unset)'}; {blas['summary']}",
          file=sys.stderr, flush=True)
    if not blas["openblas"]:
        print("[pytorch] PyTorch runs on a generic BLAS, several times slower at the matrix "
              "products: install OpenBLAS with `apt-get install -y libopenblas0-pthread`",
              file=sys.stderr, flush=True)
    generator = torch.Generator().manual_seed(1)
    for size in job["sizes"]:
        for entry in job["heads"]:
            result = bench_one(entry["head"], size, job["budgetS"], generator)
            info["rows"].append({"loss": entry["loss"], "size": size["name"], **result})
            text = (f"median {result['medianMs']:.2f} ms ({len(result['samplesMs'])} samples)"
                    if "medianMs" in result else f"skipped: {result['skipped']}")
            print(f"[pytorch] {entry['loss']} {size['name']}: {text}", file=sys.stderr, flush=True)
    info["peakRssMiB"] = peak_rss_mib()
    with open(out_path, "w") as f:
        json.dump(info, f)


if __name__ == "__main__":
    main()
