"""nGPT: the normalised Transformer (Loshchilov et al. 2024, arXiv:2410.01131), in one file.

Follows NVIDIA/ngpt's model.py. Every embedding, every row of a matrix along the embedding
dimension and every hidden state lives on the unit hypersphere; there is no LayerNorm. A block
moves the hidden state towards its (normalised) attention and MLP outputs with learnable
per-dimension step sizes ("eigen learning rates") α:

    h ← norm(h);   h ← norm(h + α_A (norm(attn(h)) − h));   h ← norm(h + α_M (norm(mlp(h)) − h))

Scaling vectors restore the magnitudes that normalisation removes: s_qk on the normalised queries
and keys (so the softmax scale is sqrt(d_head), not 1/sqrt(d_head)), s_u and s_v on the SwiGLU
branches (v additionally × sqrt(d_model), so the SiLU sees O(1) inputs), s_z on the logits. Each
is stored as ``init_scaling`` and multiplied by ``init_value / init_scaling`` in the forward pass,
the paper's trick to give them a sensible effective learning rate under a shared Adam lr.

The matrices drift off the sphere under optimiser steps; ``normalize_weights()`` projects them
back (every ``lazy_proj_freq`` steps in the training loop, and once at construction). Between
projections the embedding rows drift off the sphere too, so each block re-normalises the hidden
state on entry (NVIDIA/ngpt's block works on ``justnorm(h)``: "normally, normalization is not
needed"; with lazy projection it is): with projection every step this is a no-op up to rounding.

α starts at ``alpha_init`` (nGPT: 0.05; seed 003's baseline: 0.15, our default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class NGPTConfig:
    """Model shape. ``seq_len`` bounds the rotary tables; ``mlp_ratio`` sets the SwiGLU width;
    ``alpha_init`` is the initial eigen learning rate α of every block."""

    vocab_size: int = 256
    seq_len: int = 256
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    mlp_ratio: int = 4
    alpha_init: float = 0.15

    @property
    def base_scale(self) -> float:
        """1/sqrt(d_model): the init std of matrices and the storage scale of the gains."""
        return self.d_model**-0.5


def justnorm(x: Tensor, dim: int = -1) -> Tensor:
    """``x`` divided by its L2 norm along ``dim`` (a point on the unit sphere)."""
    return x / x.norm(p=2, dim=dim, keepdim=True).clamp_min(1e-12)


class ScaledGain(nn.Module):
    """A learnable per-dimension vector stored at ``init_scaling`` and used as ``init_value``.

    The effective value is ``param * init_value / init_scaling``, so a shared Adam step moves it
    by ``lr * init_value / init_scaling`` (the nGPT parametrisation of α, s_qk, s_uv, s_z).
    """

    def __init__(self, dim: int, init_value: float, init_scaling: float) -> None:
        super().__init__()
        self.factor = init_value / init_scaling
        self.param = nn.Parameter(torch.full((dim,), init_scaling, dtype=torch.float32))

    def forward(self) -> Tensor:
        return self.param * self.factor


class Rotary(nn.Module):
    """Rotary position embeddings (rotate-half form) with precomputed cos/sin tables."""

    def __init__(self, head_dim: int, seq_len: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", angles.sin()[None, :, None, :], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Rotate ``x`` of shape (B, T, H, D) by position."""
        t = x.size(1)
        cos, sin = self.cos[:, :t].to(x.dtype), self.sin[:, :t].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Block(nn.Module):
    """One nGPT layer: normalised attention step then normalised SwiGLU MLP step."""

    def __init__(self, cfg: NGPTConfig) -> None:
        super().__init__()
        d, hidden, s = cfg.d_model, cfg.mlp_ratio * cfg.d_model, cfg.base_scale
        self.n_head, self.head_dim = cfg.n_head, d // cfg.n_head
        self.query = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.att_c_proj = nn.Linear(d, d, bias=False)
        self.c_fc = nn.Linear(d, 2 * hidden, bias=False)
        self.mlp_c_proj = nn.Linear(hidden, d, bias=False)
        self.rotary = Rotary(self.head_dim, cfg.seq_len)
        self.attn_alpha = ScaledGain(d, init_value=cfg.alpha_init, init_scaling=s)
        self.mlp_alpha = ScaledGain(d, init_value=cfg.alpha_init, init_scaling=s)
        self.sqk = ScaledGain(d, init_value=1.0, init_scaling=s)
        self.su = ScaledGain(hidden, init_value=1.0, init_scaling=1.0)
        self.sv = ScaledGain(hidden, init_value=1.0, init_scaling=1.0)
        self.v_scale = math.sqrt(d)

    def attention(self, h: Tensor) -> Tensor:
        """Causal multi-head attention on normalised, s_qk-scaled, rotated queries and keys."""
        b, t, d = h.shape
        shape = (b, t, self.n_head, self.head_dim)
        q = self.rotary(self.query(h).view(shape))
        k = self.rotary(self.key(h).view(shape))
        v = self.value(h).view(shape)
        sqk = self.sqk().view(1, 1, self.n_head, self.head_dim)
        q, k = sqk * justnorm(q), sqk * justnorm(k)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2).to(q.dtype), v.transpose(1, 2).to(q.dtype),
            is_causal=True, scale=math.sqrt(self.head_dim),
        )
        return self.att_c_proj(y.transpose(1, 2).reshape(b, t, d))

    def mlp(self, h: Tensor) -> Tensor:
        """SwiGLU with s_u on the value branch and s_v·sqrt(d_model) on the gate."""
        u, v = self.c_fc(h).chunk(2, dim=-1)
        u = u * self.su()
        v = v * (self.sv() * self.v_scale)
        return self.mlp_c_proj(u * F.silu(v))

    def forward(self, h: Tensor) -> Tensor:
        h = justnorm(h)  # back on the sphere: embedding rows drift between lazy projections
        h = justnorm(h + self.attn_alpha().abs() * (justnorm(self.attention(h)) - h))
        h = justnorm(h + self.mlp_alpha().abs() * (justnorm(self.mlp(h)) - h))
        return h


class NGPT(nn.Module):
    """Token embedding, nGPT blocks and an s_z-scaled (untied) LM head."""

    def __init__(self, cfg: NGPTConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.n_head or (cfg.d_model // cfg.n_head) % 2:
            raise ValueError(f"d_model={cfg.d_model} must split into n_head={cfg.n_head} even-sized heads")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.sz = ScaledGain(cfg.vocab_size, init_value=1.0, init_scaling=cfg.base_scale)
        for w, _ in self.sphere_matrices():
            nn.init.normal_(w, mean=0.0, std=cfg.base_scale)  # only the direction survives:
        self.normalize_weights()  # every matrix is projected onto the sphere right away

    def sphere_matrices(self) -> list[tuple[Tensor, int]]:
        """Every normalised matrix with the dimension (the embedding one) its vectors lie along."""
        mats: list[tuple[Tensor, int]] = [(self.wte.weight, 1), (self.lm_head.weight, 1)]
        for b in self.blocks:
            mats += [(b.query.weight, 1), (b.key.weight, 1), (b.value.weight, 1), (b.c_fc.weight, 1)]
            mats += [(b.att_c_proj.weight, 0), (b.mlp_c_proj.weight, 0)]
        return mats

    def hidden_matrices(self) -> list[nn.Parameter]:
        """The 2-D matrices inside the blocks: what Muon optimises."""
        return [p for b in self.blocks for p in b.parameters() if p.ndim == 2]

    def stacked_matrices(self) -> dict[int, int]:
        """``id(matrix) → k`` for matrices that stack k logical matrices along their rows.

        SwiGLU's ``c_fc`` is ``[W_u; W_v]`` (two ``hidden × d`` matrices in one layer, for one
        matmul); an optimiser that works on whole matrices (Muon) must treat each on its own.
        """
        return {id(b.c_fc.weight): 2 for b in self.blocks}

    @torch.no_grad()
    def normalize_weights(self) -> None:
        """Project every normalised matrix back onto the unit sphere along its embedding dim."""
        for w, dim in self.sphere_matrices():
            w.copy_(justnorm(w.float(), dim).to(w.dtype))

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> Tensor:
        """Logits (B, T, V), or the mean cross-entropy when ``targets`` are given.

        Args:
            idx: token ids, (B, T) int64.
            targets: next-token ids, (B, T) int64, or None for logits.
        """
        h = self.wte(idx)
        for block in self.blocks:
            h = block(h)
        logits = self.lm_head(h) * self.sz()
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
