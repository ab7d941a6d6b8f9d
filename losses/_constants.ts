// Numerical constants shared by the reference and every engine: one definition each.

/**
 * Norms are clamped to this before dividing, like torch.nn.functional.normalize's `eps`:
 * x̂ = x / max(‖x‖, NORM_EPS).
 */
export const NORM_EPS = 1e-12;
