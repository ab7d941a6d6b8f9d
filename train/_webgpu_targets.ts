// A successor head's target terms on tfjs-webgpu as tfjs ops on the GPU, so that nothing is read
// back: each sample's target cosine c_iy from x and its target row of W (sub-center ArcFace: the
// largest of its K rows), the target value f(c_iy) with the slopes of losses/successor_targets.ts
// as custom gradients (the same formulas, in float32), and MagFace's regulariser. tfjs
// differentiates them; engine-webgpu computes the rest of the head (its scale-s head without margin,
// the targets read from a buffer: train/_webgpu_step.ts). ElasticFace, MagFace and sub-center
// ArcFace: the kinds whose terms need nothing but the batch. AdaFace, CurricularFace and AdaCos carry
// a state from batch to batch that would have to come back to the host (onState) every step: they
// stay on the engines that read the tensors back.
import type { SuccessorHeadSpec, SuccessorHook } from "../losses/head_spec.ts";
import { NORM_EPS } from "../losses/checks.ts";
import { SIN_FLOOR } from "../losses/successor_targets.ts";
import { tf } from "./tfjs_setup.ts";

type Hook<K extends SuccessorHook["kind"]> = Extract<SuccessorHook, { kind: K }>;

/** Whether the target terms of `spec` are computed here, or why not. */
export function gpuTargetSupport(spec: SuccessorHeadSpec): true | string {
  const kind = spec.successor.kind;
  if (kind === "elastic" || kind === "magFace" || kind === "subCenter") return true;
  return `its state (${kind}) would have to be read back from the GPU every step`;
}

/** Each row's norm, as a column (N×1). */
function rowNorms(m: tf.Tensor2D): tf.Tensor2D {
  return tf.sqrt(tf.sum(tf.square(m), 1, true));
}

/** Rows divided by their norms (`norms`, when known), max(‖row‖, ε) as the reference divides. */
function unitRows(m: tf.Tensor2D, norms = rowNorms(m)): tf.Tensor2D {
  return tf.div(m, tf.maximum(norms, NORM_EPS));
}

/** The rows `rows` of W (one tensor, or shards of consecutive rows), gathered. */
function rowsOf(weights: tf.Tensor2D[], rows: tf.Tensor1D): tf.Tensor2D {
  if (weights.length === 1) return tf.gather(weights[0], rows);
  let first = 0, sum: tf.Tensor2D | undefined;
  for (const shard of weights) {
    const count = shard.shape[0], local = tf.sub(rows, tf.scalar(first, "int32"));
    const inside = tf.logicalAnd(tf.greaterEqual(local, 0), tf.less(local, count));
    const picked = tf.mul(
      tf.gather(shard, tf.clipByValue(local, 0, count - 1)),
      tf.expandDims(tf.cast(inside, "float32"), 1),
    ) as tf.Tensor2D;
    sum = sum ? tf.add(sum, picked) : picked;
    first += count;
  }
  return sum!;
}

/**
 * Each sample's target cosine from the unit features x̂: x̂_i·ŵ_{y_i}, or with K sub-centers (rows y·K … y·K + K − 1) the
 * largest of the K (the gradient goes to that row, as tf.max's does).
 */
function targetCosines(
  x: tf.Tensor2D,
  weights: tf.Tensor2D[],
  labels: tf.Tensor1D,
  K: number,
) {
  if (K <= 1) return tf.sum(tf.mul(x, unitRows(rowsOf(weights, labels))), 1) as tf.Tensor1D;
  const [N, D] = x.shape;
  const first = tf.expandDims(tf.mul(labels, tf.scalar(K, "int32")), 1);
  const rows = tf.reshape(tf.add(first, tf.range(0, K, 1, "int32")), [N * K]) as tf.Tensor1D;
  const w = tf.reshape(unitRows(rowsOf(weights, rows)), [N, K, D]);
  return tf.max(tf.sum(tf.mul(tf.expandDims(x, 1), w), 2), 1) as tf.Tensor1D;
}

/** The value of a target function and its slopes ∂/∂c and ∂/∂m, as tensors. */
interface Terms {
  value: tf.Tensor;
  dc: tf.Tensor;
  dm: tf.Tensor;
}

/** `terms(c, m)` as an op of c and m whose gradient is its slopes (no tape through its branches). */
function targetOp(c: tf.Tensor1D, m: tf.Tensor1D, terms: (c: tf.Tensor, m: tf.Tensor) => Terms) {
  const op = tf.customGrad(
    ((cc: tf.Tensor1D, mm: tf.Tensor1D, save: tf.GradSaveFunc) => {
      const t = terms(cc, mm);
      save([t.dc, t.dm]); // the forward's tensors are released before the backward pass
      return {
        value: t.value,
        gradFunc: (dy: tf.Tensor1D, [dc, dm]: tf.Tensor[]) => [tf.mul(dy, dc), tf.mul(dy, dm)],
      };
    }) as Parameters<typeof tf.customGrad>[0],
  );
  return (op as unknown as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor1D)(c, m);
}

/**
 * cos(θ + m) = c·cos m − sin θ·sin m for c in [−1, 1], with the reference's slopes: ∂/∂c =
 * cos m + c·sin m / max(sin θ, SIN_FLOOR) and ∂/∂m = −c·sin m − sin θ·cos m.
 */
function arcTerms(c: tf.Tensor, m: tf.Tensor): Terms {
  const sin = tf.sqrt(tf.relu(tf.sub(1, tf.square(c))));
  const cosM = tf.cos(m), sinM = tf.sin(m);
  return {
    value: tf.sub(tf.mul(c, cosM), tf.mul(sin, sinM)),
    dc: tf.add(cosM, tf.div(tf.mul(c, sinM), tf.maximum(sin, SIN_FLOOR))),
    dm: tf.neg(tf.add(tf.mul(c, sinM), tf.mul(sin, cosM))),
  };
}

/** Where `take`, the first terms, else the second. */
function select(take: tf.Tensor, a: Terms, b: Terms): Terms {
  return {
    value: tf.where(take, a.value, b.value),
    dc: tf.where(take, a.dc, b.dc),
    dm: tf.where(take, a.dm, b.dm),
  };
}

/** A value computed from tensors that the gradient does not flow back through. */
function detached<T extends tf.Tensor>(inputs: tf.Tensor[], fn: (...t: tf.Tensor[]) => T): T {
  const op = tf.customGrad(
    ((...args: unknown[]) => {
      const save = args.pop() as tf.GradSaveFunc, xs = args as tf.Tensor[];
      save(xs);
      return {
        value: fn(...xs),
        gradFunc: (_dy: tf.Tensor, saved: tf.Tensor[]) => saved.map((x) => tf.zerosLike(x)),
      };
    }) as Parameters<typeof tf.customGrad>[0],
  );
  return (op as unknown as (...t: tf.Tensor[]) => T)(...inputs);
}

/** ElasticFace's f: cos(θ + m_i) or c − m_i, its margins in the "+" order where asked. */
function elastic(
  where: string,
  spec: SuccessorHeadSpec,
  hook: Hook<"elastic">,
  c: tf.Tensor1D,
): tf.Tensor1D {
  const N = c.shape[0];
  if (hook.margins.length !== N) {
    throw new RangeError(
      `${where}: options.margins must hold one margin per sample (N = ${N}), got ${hook.margins.length}`,
    );
  }
  let margins = tf.tensor1d(Float32Array.from(hook.margins));
  if (hook.plus) {
    // fdbtrs/ElasticFace: margin_i = sorted(margins)[order_i], order = argsort(c_y, descending).
    const sorted = tf.tensor1d(Float32Array.from(hook.margins).sort());
    margins = detached([c], (cc) => tf.gather(sorted, tf.topk(cc, N).indices));
  }
  if (hook.variant === "cos") return tf.sub(c, margins);
  const exact = spec.marginGradient === "exact";
  return targetOp(c, margins, (cc, m) => {
    const t = arcTerms(cc, m);
    return exact ? t : { ...t, dc: tf.onesLike(cc) };
  });
}

/**
 * ArcFace's cos(θ + m) with its fallback (insightface: where θ + m < π, i.e. c > cos(π − m), else
 * c − sin(π − m)·m; "easy": where c > 0, else c), m per sample; `exact` false holds the margin
 * term's slope at 1, as a detached margin gradient does.
 */
function arcWithFallback(
  c: tf.Tensor1D,
  m: tf.Tensor1D,
  fallback: "insightface" | "easy",
  exact: boolean,
): tf.Tensor1D {
  return targetOp(c, m, (cc, mm) => {
    const arc = arcTerms(cc, mm), ones = tf.onesLike(cc);
    const angular = exact ? arc : { ...arc, dc: ones };
    if (fallback === "easy") {
      return select(tf.greater(cc, 0), angular, { value: cc, dc: ones, dm: tf.zerosLike(mm) });
    }
    const sinPiM = tf.sin(tf.sub(Math.PI, mm));
    const linear = {
      value: tf.sub(cc, tf.mul(sinPiM, mm)),
      dc: ones,
      dm: tf.neg(tf.add(sinPiM, tf.mul(mm, tf.cos(mm)))),
    };
    return select(tf.greater(cc, tf.cos(tf.sub(Math.PI, mm))), angular, linear);
  });
}

/**
 * MagFace's f and regulariser from c and ‖x_i‖: a = clip(‖x‖, l_a, u_a), m = linear in a,
 * cos(θ + m) where the fallback allows (insightface: c > cos(π − m), else c − sin(π − m)·m;
 * "easy": c > 0, else c); the regulariser λ_g·(a/u_a² + 1/a). tfjs's clip passes no gradient
 * outside its range, as the reference's `pass`.
 */
function magFace(hook: Hook<"magFace">, c: tf.Tensor1D, norms: tf.Tensor1D) {
  const { lowerNorm: la, upperNorm: ua, lowerMargin: lm, upperMargin: um } = hook;
  const a = tf.clipByValue(norms, la, ua);
  const m = tf.add(tf.mul(tf.sub(a, la), (um - lm) / (ua - la)), lm) as tf.Tensor1D;
  const f = arcWithFallback(c, m, hook.fallback, true);
  const extra = tf.mul(
    tf.add(tf.div(a, ua * ua), tf.div(1, a)),
    hook.regularization,
  ) as tf.Tensor1D;
  return { f, extra };
}

/**
 * The target value f(c_iy) of each sample (N) and MagFace's per-sample regulariser, as tfjs ops on
 * the features, the weights' shards and the labels (int32): differentiable, nothing read back.
 */
export function gpuTargets(
  where: string,
  spec: SuccessorHeadSpec,
  features: tf.Tensor2D,
  weights: tf.Tensor2D[],
  labels: tf.Tensor1D,
): { f: tf.Tensor1D; extra?: tf.Tensor1D } {
  const hook = spec.successor, K = hook.kind === "subCenter" ? hook.subCenters : 1;
  const norms = rowNorms(features), x = unitRows(features, norms);
  // The reference's unitCosine, with its pass: clipped, no gradient outside [−1, 1].
  const c = tf.clipByValue(targetCosines(x, weights, labels, K), -1, 1) as tf.Tensor1D;
  if (hook.kind === "elastic") return { f: elastic(where, spec, hook, c) };
  if (hook.kind === "magFace") return magFace(hook, c, tf.squeeze(norms, [1]) as tf.Tensor1D);
  if (hook.kind === "subCenter") {
    const m = tf.fill([c.shape[0]], hook.margin) as tf.Tensor1D;
    return { f: arcWithFallback(c, m, hook.fallback, spec.marginGradient === "exact") };
  }
  throw new RangeError(`${where}: the ${spec.name} head: ${gpuTargetSupport(spec)}`);
}
