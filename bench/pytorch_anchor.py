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
Haswell where only avx2; an environment's weaker OPENBLAS_CORETYPE, such as Haswell on an AVX-512 CPU,
is replaced, since it halves the speed of the products). An OMP_WAIT_POLICY already set is kept.

A successor head (issue 13: its "head" has a "successor" hook, bench/_successors.ts) is computed as
its official code computes it, module state and all (SUCCESSORS below: sub-center ArcFace after
pytorch-metric-learning's SubCenterArcFaceLoss, CurricularFace after HuangYG123/CurricularFace
head/metrics.py, AdaFace after mk-minchul/AdaFace head.py, MagFace after IrvingMeng/MagFace
models/magface.py, AdaCos after FaceX-Zoo head/AdaCos.py, ElasticFace after fdbtrs/ElasticFace
utils/losses.py), with its kernel in the official layout (D×C where the official code has one),
then F.cross_entropy with the mean, timed the same way. Prints progress on stderr; writes
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
    os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
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


def l2_norm(input, axis=1):
    """The official repositories' l2_norm (CurricularFace, AdaFace, ElasticFace)."""
    norm = torch.norm(input, 2, axis, True)
    return torch.div(input, norm)


class SubCenterArcFace:
    """pytorch-metric-learning SubCenterArcFaceLoss (an ArcFaceLoss on C·K rows, W is D×C·K, the
    class cosine the max of its K; insightface's recognition/subcenter_arcface is MXNet)."""
    layout = "DxC"

    def __init__(self, hook, classes):
        self.margin, self.scale = hook["margin"], hook["scale"]
        self.num_classes, self.sub_centers = classes, hook["subCenters"]

    def __call__(self, embeddings, W, labels):
        # CosineSimilarity: both normalised, then a matrix product
        cosine = torch.matmul(F.normalize(embeddings, p=2, dim=1),
                              F.normalize(W.t(), p=2, dim=1).t())
        cosine = cosine.view(-1, self.num_classes, self.sub_centers)
        cosine, _ = cosine.max(axis=2)
        mask = torch.zeros(labels.size(0), self.num_classes, dtype=embeddings.dtype)
        mask[torch.arange(labels.size(0)), labels] = 1
        cosine_of_target_classes = cosine[mask == 1]
        angles = torch.acos(torch.clamp(cosine_of_target_classes, -1, 1))
        modified = torch.cos(angles + self.margin)
        diff = (modified - cosine_of_target_classes).unsqueeze(1)
        logits = (cosine + (mask * diff)) * self.scale
        return F.cross_entropy(logits, labels)


class CurricularFace:
    """HuangYG123/CurricularFace head/metrics.py CurricularFace (kernel D×C, buffer t)."""
    layout = "DxC"

    def __init__(self, hook, classes):
        m = hook["margin"]
        self.m, self.s, self.alpha = m, hook["scale"], hook["alpha"]
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.threshold = math.cos(math.pi - m)
        self.mm = math.sin(math.pi - m) * m
        self.t = torch.zeros(1) + hook["t"]

    def __call__(self, embbedings, kernel, label):
        embbedings = l2_norm(embbedings, axis=1)
        kernel_norm = l2_norm(kernel, axis=0)
        cos_theta = torch.mm(embbedings, kernel_norm)
        cos_theta = cos_theta.clamp(-1, 1)
        with torch.no_grad():
            origin_cos = cos_theta.clone()  # noqa: F841 (returned by the official head)
        target_logit = cos_theta[torch.arange(0, embbedings.size(0)), label].view(-1, 1)
        sin_theta = torch.sqrt(1.0 - torch.pow(target_logit, 2))
        cos_theta_m = target_logit * self.cos_m - sin_theta * self.sin_m
        mask = cos_theta > cos_theta_m
        final_target_logit = torch.where(target_logit > self.threshold, cos_theta_m,
                                         target_logit - self.mm)
        hard_example = cos_theta[mask]
        with torch.no_grad():
            self.t = target_logit.mean() * self.alpha + (1 - self.alpha) * self.t
        cos_theta[mask] = hard_example * (self.t + hard_example)
        cos_theta.scatter_(1, label.view(-1, 1).long(), final_target_logit)
        return F.cross_entropy(cos_theta * self.s, label)


class AdaFace:
    """mk-minchul/AdaFace head.py AdaFace (kernel D×C, buffers batch_mean and batch_std); its
    input is the backbone's output, x/‖x‖ and ‖x‖ (net.py), so the gradient reaches x through
    the normalisation and not through the (detached) norms."""
    layout = "DxC"

    def __init__(self, hook, classes):
        self.m, self.h, self.s, self.t_alpha = hook["margin"], hook["h"], hook["scale"], hook["alpha"]
        self.eps = 1e-3
        self.batch_mean = torch.ones(1) * hook["mean"]
        self.batch_std = torch.ones(1) * hook["std"]

    def __call__(self, x, kernel, label):
        norms = torch.norm(x, 2, 1, True)
        embbedings = torch.div(x, norms)
        kernel_norm = l2_norm(kernel, axis=0)
        cosine = torch.mm(embbedings, kernel_norm)
        cosine = cosine.clamp(-1 + self.eps, 1 - self.eps)
        safe_norms = torch.clip(norms, min=0.001, max=100)
        safe_norms = safe_norms.clone().detach()
        with torch.no_grad():
            mean = safe_norms.mean().detach()
            std = safe_norms.std().detach()
            self.batch_mean = mean * self.t_alpha + (1 - self.t_alpha) * self.batch_mean
            self.batch_std = std * self.t_alpha + (1 - self.t_alpha) * self.batch_std
        margin_scaler = (safe_norms - self.batch_mean) / (self.batch_std + self.eps)
        margin_scaler = margin_scaler * self.h
        margin_scaler = torch.clip(margin_scaler, -1, 1)
        m_arc = torch.zeros(label.size()[0], cosine.size()[1])
        m_arc.scatter_(1, label.reshape(-1, 1), 1.0)
        g_angular = self.m * margin_scaler * -1
        m_arc = m_arc * g_angular
        theta = cosine.acos()
        theta_m = torch.clip(theta + m_arc, min=self.eps, max=math.pi - self.eps)
        cosine = theta_m.cos()
        m_cos = torch.zeros(label.size()[0], cosine.size()[1])
        m_cos.scatter_(1, label.reshape(-1, 1), 1.0)
        g_add = self.m + (self.m * margin_scaler)
        m_cos = m_cos * g_add
        cosine = cosine - m_cos
        return F.cross_entropy(cosine * self.s, label)


class MagFace:
    """IrvingMeng/MagFace models/magface.py MagLinear + MagLoss (weight D×C), the training loss
    loss_id + λ_g·loss_g of its trainer (λ_g from the head: run/run.sh's 35)."""
    layout = "DxC"

    def __init__(self, hook, classes):
        self.scale = hook["scale"]
        self.easy_margin = hook["fallback"] == "easy"
        self.l_a, self.u_a = hook["lowerNorm"], hook["upperNorm"]
        self.l_margin, self.u_margin = hook["lowerMargin"], hook["upperMargin"]
        self.lambda_g = hook["regularization"]

    def _margin(self, x):
        return (self.u_margin - self.l_margin) / (self.u_a - self.l_a) * (x - self.l_a) + \
            self.l_margin

    def __call__(self, x, weight, target):
        x_norm = torch.norm(x, dim=1, keepdim=True).clamp(self.l_a, self.u_a)
        ada_margin = self._margin(x_norm)
        cos_m, sin_m = torch.cos(ada_margin), torch.sin(ada_margin)
        weight_norm = F.normalize(weight, dim=0)
        cos_theta = torch.mm(F.normalize(x), weight_norm)
        cos_theta = cos_theta.clamp(-1, 1)
        sin_theta = torch.sqrt(1.0 - torch.pow(cos_theta, 2))
        cos_theta_m = cos_theta * cos_m - sin_theta * sin_m
        if self.easy_margin:
            cos_theta_m = torch.where(cos_theta > 0, cos_theta_m, cos_theta)
        else:
            mm = torch.sin(math.pi - ada_margin) * ada_margin
            threshold = torch.cos(math.pi - ada_margin)
            cos_theta_m = torch.where(cos_theta > threshold, cos_theta_m, cos_theta - mm)
        cos_theta_m = self.scale * cos_theta_m
        cos_theta = self.scale * cos_theta
        # MagLoss
        loss_g = torch.mean(1 / (self.u_a ** 2) * x_norm + 1 / (x_norm))
        one_hot = torch.zeros_like(cos_theta)
        one_hot.scatter_(1, target.view(-1, 1), 1.0)
        output = one_hot * cos_theta_m + (1.0 - one_hot) * cos_theta
        loss = F.cross_entropy(output, target, reduction="mean")
        return loss.mean() + self.lambda_g * loss_g


class AdaCos:
    """FaceX-Zoo head/AdaCos.py AdaCos (W C×D, the scale updated under no_grad each batch)."""
    layout = "CxD"

    def __init__(self, hook, classes):
        self.scale = hook["scale"] if hook["scale"] is not None else \
            math.sqrt(2) * math.log(classes - 1)
        self.update = hook["updateScale"]

    def __call__(self, feats, W, labels):
        W = F.normalize(W)
        logits = F.linear(F.normalize(feats), W)
        theta = torch.acos(torch.clamp(logits, -1.0 + 1e-7, 1.0 - 1e-7))
        one_hot = torch.zeros_like(logits)
        one_hot.scatter_(1, labels.view(-1, 1).long(), 1)
        if self.update:
            with torch.no_grad():
                B_avg = torch.where(one_hot < 1, torch.exp(self.scale * logits),
                                    torch.zeros_like(logits))
                B_avg = torch.sum(B_avg) / feats.size(0)
                theta_med = torch.median(theta[one_hot == 1])
                self.scale = torch.log(B_avg) / torch.cos(
                    torch.min(math.pi / 4 * torch.ones_like(theta_med), theta_med))
        return F.cross_entropy(self.scale * logits, labels)


class ElasticFace:
    """fdbtrs/ElasticFace utils/losses.py ElasticArcFace / ElasticCosFace (kernel D×C): margins
    drawn by torch.normal(m, σ) every step (m = 0.5 arc, 0.35 cos; σ = 0.05 as config.py)."""
    layout = "DxC"

    def __init__(self, hook, classes):
        self.arc = hook["variant"] == "arc"
        self.s, self.plus = hook["scale"], hook["plus"]
        self.m, self.std = (0.5 if self.arc else 0.35), 0.05

    def __call__(self, embbedings, kernel, label):
        embbedings = l2_norm(embbedings, axis=1)
        kernel_norm = l2_norm(kernel, axis=0)
        cos_theta = torch.mm(embbedings, kernel_norm)
        cos_theta = cos_theta.clamp(-1, 1)
        index = torch.where(label != -1)[0]
        m_hot = torch.zeros(index.size()[0], cos_theta.size()[1])
        margin = torch.normal(mean=self.m, std=self.std, size=label[index, None].size())
        if self.plus:
            with torch.no_grad():
                distmat = cos_theta[index, label.view(-1)].detach().clone()
                _, idicate_cosie = torch.sort(distmat, dim=0, descending=True)
                margin, _ = torch.sort(margin, dim=0)
            m_hot.scatter_(1, label[index, None], margin[idicate_cosie])
        else:
            m_hot.scatter_(1, label[index, None], margin)
        if self.arc:
            cos_theta.acos_()
            cos_theta[index] += m_hot
            cos_theta.cos_().mul_(self.s)
            return F.cross_entropy(cos_theta, label)
        cos_theta[index] -= m_hot
        return F.cross_entropy(cos_theta * self.s, label)


SUCCESSORS = {
    "subCenter": SubCenterArcFace,
    "curricular": CurricularFace,
    "adaFace": AdaFace,
    "magFace": MagFace,
    "adaCos": AdaCos,
    "elastic": ElasticFace,
}


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
    hook = head.get("successor")
    rows = c_ * hook["subCenters"] if hook and hook["kind"] == "subCenter" else c_
    x = bench_rows(n_, d, generator).requires_grad_()
    w = bench_rows(rows, d, generator)
    labels = (torch.arange(n_) * 7919 + 1) % c_
    if hook:
        module = SUCCESSORS[hook["kind"]](hook, c_)
        if module.layout == "DxC":
            w = w.t().contiguous()  # the official kernel's layout: embedding_size × classes
        compute = lambda: module(x, w, labels)  # noqa: E731
    else:
        compute = lambda: head_loss(head, x, w, labels)  # noqa: E731
    w.requires_grad_()

    def run():
        x.grad = None
        w.grad = None
        start = time.perf_counter()
        loss = compute()
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
