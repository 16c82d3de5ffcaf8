"""Muon: momentum orthogonalised by a matrix polynomial, for the hidden 2-D matrices.

Per step, for each matrix (Keller Jordan's Muon; modded-nanogpt's NorMuon variant):

1. Nesterov momentum, EMA form: ``buf ← lerp(buf, g, 1-μ)``, ``u ← lerp(g, buf, μ)``.
2. Orthogonalise ``u`` (push its singular values towards 1) with five odd-polynomial iterations
   ``X ← aX + (bA + cA²)X``, ``A = XXᵀ``, working on the wide orientation (tall matrices are
   transposed, so ``A`` is the small Gram matrix):

   - ``newton_schulz``: the fixed quintic (3.4445, −4.7750, 2.0315) after ``X / ‖X‖_F``; it trades
     exactness for slope at 0, leaving singular values in roughly [0.7, 1.15];
   - ``polar_express``: Amsel et al. 2025 (arXiv:2505.16932), a different (a, b, c) per iteration,
     after ``X / (1.02 ‖X‖_F)``; it lands much closer to 1. Coefficients and normalisation are
     those of KellerJordan/modded-nanogpt ``train_gpt.py`` (num_iters=5, safety 2e-2, cushion 2).
3. Optional NorMuon variance reduction (arXiv:2510.05491, as in modded-nanogpt): an EMA (beta2,
   default 0.9 as modded-nanogpt's ``normuon_defaults``) of the squared update per row (per
   column for wide matrices) rescales the orthogonalised update neuron by neuron, then the whole
   update is rescaled back to its original Frobenius norm.
4. Weight decay, plain (``p ← p − λp``) or cautious (Chen et al. 2025, arXiv:2510.12402: "apply
   weight decay only to coordinates whose signs align with the optimizer update", i.e. where
   ``update · p ≥ 0``; the step then already shrinks ``|p|``). The strength ``λ`` is, with
   ``cwd_lr_scaling`` (default, modded-nanogpt), ``wd · lr · (lr_mul · lr)``: the decay is
   scaled by the learning rate twice, once for the decay and once with the update's own
   multiplier ``lr_mul`` (the shape scale of step 5), so it anneals with lr² (wd 1.2 there);
   without it, the decoupled AdamW form ``wd · lr``.
5. ``p ← p − lr · sqrt(max(1, rows/cols)) · update`` (shape-based LR scaling).

A parameter group with ``split: k`` holds matrices that stack k logical matrices along their
rows (nGPT's SwiGLU ``c_fc = [W_u; W_v]``): steps 1-5 treat each block of rows/k as its own
matrix (its own orthogonalisation, second moment, norm and shape scale), as the references do
with separate matrices. Orthogonalising the stack as one would balance the update across the
two halves by their joint spectrum, so the half with the larger gradients takes most of it.

``torch.optim.Muon`` exists in torch 2.13 but does not match: it has one fixed coefficient
triple (no per-iteration Polar Express), no variance reduction, no cautious decay, and it always
orthogonalises in bfloat16 (slow and lossy on CPU). Its Newton–Schulz path is used as a
cross-check in the tests. Here the polynomial runs in **bfloat16 on CUDA** (as modded-nanogpt)
and **float32 on CPU** (bfloat16 matmuls are slow there), unless ``orthog_dtype`` says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

Coeffs = Sequence[tuple[float, float, float]]

NEWTON_SCHULZ_COEFFS: Coeffs = [(3.4445, -4.7750, 2.0315)] * 5

# KellerJordan/modded-nanogpt train_gpt.py: "Computed for num_iters=5, safety_factor=2e-2, cushion=2"
POLAR_EXPRESS_COEFFS: Coeffs = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]

# method -> (coefficients, Frobenius-norm safety factor, eps)
ORTHOGONALIZERS: dict[str, tuple[Coeffs, float, float]] = {
    "newton_schulz": (NEWTON_SCHULZ_COEFFS, 1.0, 1e-7),
    "polar_express": (POLAR_EXPRESS_COEFFS, 1.0 + 2e-2, 1e-6),
}


def orthogonalize(g: Tensor, method: str = "newton_schulz", dtype: torch.dtype = torch.float32) -> Tensor:
    """Approximate ``U Vᵀ`` of ``g = U S Vᵀ`` by ``method``, computed in ``dtype``.

    Args:
        g: a matrix, or a batch of matrices (``(..., rows, cols)``), each orthogonalised alone.
        method: ``"newton_schulz"`` or ``"polar_express"``.
        dtype: the dtype of the iterations (the optimiser passes bfloat16 on CUDA, float32 on CPU).
    """
    if method not in ORTHOGONALIZERS:
        raise ValueError(f"orthog must be one of {sorted(ORTHOGONALIZERS)}, got {method!r} (fix: pick one of them)")
    coeffs, safety, eps = ORTHOGONALIZERS[method]
    x = g.to(dtype)
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) * safety + eps)
    for a, b, c in coeffs:
        gram = x @ x.mT
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return x.mT if tall else x


def variance_reduction_dim(shape: torch.Size) -> int:
    """The dimension NorMuon averages over: per row for tall/square, per column for wide."""
    return -1 if shape[-2] >= shape[-1] else -2


def normuon_rescale(update: Tensor, second_moment: Tensor, beta2: float) -> Tensor:
    """NorMuon: per-neuron normalisation by an EMA second moment, keeping each matrix's norm.

    Args:
        update: the orthogonalised update, ``(rows, cols)`` or a batch ``(k, rows, cols)``.
        second_moment: the EMA of the mean squared update per neuron (updated in place).
        beta2: the EMA's decay (modded-nanogpt: 0.9).
    """
    u = update.float()
    v_mean = u.square().mean(dim=variance_reduction_dim(u.shape), keepdim=True)
    second_moment.lerp_(v_mean, 1 - beta2)
    scaled = u * second_moment.clamp_min(1e-10).rsqrt()
    norm = lambda t: t.norm(dim=(-2, -1), keepdim=True)  # noqa: E731
    return scaled * (norm(u) / norm(scaled).clamp_min(1e-10))


def apply_weight_decay_(p: Tensor, update: Tensor, decay: float, *, cautious: bool) -> None:
    """``p ← p − decay·p`` in place; if ``cautious``, only where ``update·p ≥ 0``.

    Args:
        p: the parameter (or a view of it), changed in place.
        update: the update that will be subtracted from ``p`` (same shape).
        decay: the fraction removed, ``λ`` of the module docstring.
        cautious: decay only the coordinates where update and parameter agree in sign.
    """
    if decay == 0.0:
        return
    if cautious:
        p.sub_(p * (update * p >= 0) * decay)
    else:
        p.mul_(1.0 - decay)


def shape_lr_scale(shape: torch.Size) -> float:
    """sqrt(max(1, rows/cols)): equalises the update RMS of tall matrices (Keller's scaling)."""
    return math.sqrt(max(1.0, shape[-2] / shape[-1]))


def decay_strength(weight_decay: float, lr: float, lr_mul: float, *, lr_scaling: bool) -> float:
    """``λ`` per step: ``wd·lr·(lr_mul·lr)`` with ``lr_scaling`` (modded-nanogpt), else ``wd·lr``.

    Args:
        weight_decay: the configured ``wd``.
        lr: the group's (scheduled) learning rate.
        lr_mul: the update's multiplier (the shape scale).
        lr_scaling: modded-nanogpt's scaling of the decay by the update's learning rate.
    """
    return weight_decay * lr * (lr_mul * lr if lr_scaling else 1.0)


class Muon(torch.optim.Optimizer):
    """Muon / NorMuon for 2-D parameters; see the module docstring for the update.

    Orthogonalisation runs in bfloat16 on CUDA and float32 on CPU (``orthog_dtype`` overrides).

    Args:
        params: 2-D parameters, or parameter groups; a group may set ``split: k`` for matrices
            that stack k logical matrices along their rows (each is updated on its own).
        lr: learning rate (set per step by the training loop's schedule).
        momentum: momentum (likewise set per step during warm-up).
        nesterov: Nesterov momentum (the reference's default).
        orthog: ``"newton_schulz"`` or ``"polar_express"``.
        variance_reduction: NorMuon's per-neuron normalisation.
        beta2: NorMuon's second-moment EMA decay.
        weight_decay: ``wd``; see ``decay_strength``.
        cautious_wd: decay only where the update and the parameter agree in sign.
        cwd_lr_scaling: scale the decay by lr² (modded-nanogpt) rather than lr.
        orthog_dtype: force the dtype of the orthogonalisation.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        orthog: str = "newton_schulz",
        variance_reduction: bool = False,
        beta2: float = 0.9,
        weight_decay: float = 0.0,
        cautious_wd: bool = False,
        cwd_lr_scaling: bool = True,
        orthog_dtype: torch.dtype | None = None,
    ) -> None:
        if orthog not in ORTHOGONALIZERS:
            raise ValueError(f"orthog must be one of {sorted(ORTHOGONALIZERS)}, got {orthog!r} (fix: pick one of them)")
        defaults = {
            "lr": lr, "momentum": momentum, "nesterov": nesterov, "orthog": orthog,
            "variance_reduction": variance_reduction, "beta2": beta2, "weight_decay": weight_decay,
            "cautious_wd": cautious_wd, "cwd_lr_scaling": cwd_lr_scaling, "split": 1,
        }
        super().__init__(params, defaults)
        self.orthog_dtype = orthog_dtype
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon takes 2-D parameters only, got shape {tuple(p.shape)}")
                if p.shape[0] % group["split"]:
                    raise ValueError(f"split={group['split']} does not divide the rows of shape {tuple(p.shape)}")

    def _dtype(self, p: Tensor) -> torch.dtype:
        """bfloat16 on CUDA (as modded-nanogpt), float32 elsewhere, unless set explicitly."""
        if self.orthog_dtype is not None:
            return self.orthog_dtype
        return torch.bfloat16 if p.device.type == "cuda" else torch.float32

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def, override]
        """One Muon update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            mu, k = group["momentum"], group["split"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                blocks = (k, p.shape[0] // k, p.shape[1])  # k logical matrices, each updated alone
                state = self.state[p]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                    if group["variance_reduction"]:
                        reduced = list(blocks)
                        reduced[variance_reduction_dim(torch.Size(blocks))] = 1
                        state["second_moment"] = torch.zeros(reduced, device=g.device)
                buf = state["momentum_buffer"]
                buf.lerp_(g, 1 - mu)
                update = g.lerp(buf, mu) if group["nesterov"] else buf
                update = orthogonalize(update.view(blocks), group["orthog"], self._dtype(p))
                if group["variance_reduction"]:
                    update = normuon_rescale(update, state["second_moment"], group["beta2"])
                update = update.to(p.dtype)
                lr_mul = shape_lr_scale(torch.Size(blocks))
                decay = decay_strength(group["weight_decay"], group["lr"], lr_mul, lr_scaling=group["cwd_lr_scaling"])
                view = p.view(blocks)
                apply_weight_decay_(view, update, decay, cautious=group["cautious_wd"])
                view.add_(update, alpha=-group["lr"] * lr_mul)
        return loss
