"""Muon numerics: orthogonalisation quality, variance reduction, cautious weight decay, split matrices.

The expected values are written from the papers' and references' formulas, not from their code:

- cautious weight decay (Chen et al. 2025, arXiv:2510.12402): decay "only ... coordinates whose
  signs align with the optimizer update", mask ``I(u ⊙ x ≥ 0)``; modded-nanogpt scales it by the
  learning rate twice: ``x ← x − wd·lr·(lr_mul·lr)·x·mask − lr_mul·lr·u`` (wd 1.2);
- NorMuon (Li et al. 2025, arXiv:2510.05491): ``v ← β₂ v + (1 − β₂) mean_cols(O ⊙ O)`` per neuron,
  ``Ô = O / sqrt(v)``, then rescaled to ``‖O‖_F``; modded-nanogpt's β₂ is 0.9;
- Muon (Jordan et al. 2024): each weight matrix's momentum is orthogonalised on its own, so a
  layer that stores two matrices stacked (SwiGLU's ``[W_u; W_v]``) takes one update per matrix.
"""

from __future__ import annotations

import pytest
import torch

from objectives.muon import (
    Muon,
    apply_weight_decay_,
    decay_strength,
    normuon_rescale,
    orthogonalize,
    shape_lr_scale,
    variance_reduction_dim,
)

# Wide, tall and near-square-but-rectangular: a Gaussian matrix with unequal sides is well
# conditioned, so five iterations must bring every singular value into the band.
SHAPES = [(64, 256), (256, 64), (128, 384), (300, 100), (96, 160)]


def _singular_values(method: str, shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    return torch.linalg.svdvals(orthogonalize(g, method))


@pytest.mark.parametrize("shape", SHAPES)
def test_newton_schulz_singular_values_land_in_band(shape: tuple[int, int]) -> None:
    s = _singular_values("newton_schulz", shape)
    assert s.min() > 0.5 and s.max() < 1.5, (s.min().item(), s.max().item())


def test_newton_schulz_square_matrix_bulk_in_band() -> None:
    """A square Gaussian matrix has singular values near 0 that no 5-step polynomial lifts; the bulk must."""
    s = _singular_values("newton_schulz", (256, 256))
    inside = ((s > 0.5) & (s < 1.5)).float().mean().item()
    assert inside > 0.95 and s.max() < 1.5


@pytest.mark.parametrize("shape", SHAPES)
def test_polar_express_is_closer_to_one(shape: tuple[int, int]) -> None:
    ns = (_singular_values("newton_schulz", shape) - 1).abs().max().item()
    pe = (_singular_values("polar_express", shape) - 1).abs().max().item()
    assert pe < ns and pe < 0.2, (pe, ns)


def test_orthogonalize_keeps_shape_and_rejects_unknown_method() -> None:
    g = torch.randn(40, 10)
    assert orthogonalize(g, "polar_express").shape == (40, 10)
    with pytest.raises(ValueError, match="orthog"):
        orthogonalize(g, "svd")


def test_cautious_weight_decay_decays_where_signs_agree_or_update_is_zero() -> None:
    p = torch.tensor([1.0, -1.0, 2.0, -2.0, 3.0])
    update = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0])  # agree, disagree, disagree, agree, zero
    cautious = p.clone()
    apply_weight_decay_(cautious, update, 0.5, cautious=True)
    assert cautious.tolist() == [0.5, -1.0, 2.0, -1.0, 1.5]  # mask u·p ≥ 0: a zero update decays
    plain = p.clone()
    apply_weight_decay_(plain, update, 0.5, cautious=False)
    assert plain.tolist() == (p * 0.5).tolist()


def test_decay_strength_is_scaled_by_lr_squared() -> None:
    """modded-nanogpt: wd · lr · (lr_mul · lr); without the scaling, AdamW's decoupled wd · lr."""
    assert decay_strength(1.2, 0.03, 2.0, lr_scaling=True) == pytest.approx(1.2 * 0.03 * 2.0 * 0.03)
    assert decay_strength(1.2, 0.03, 2.0, lr_scaling=False) == pytest.approx(1.2 * 0.03)


@pytest.mark.parametrize("lr_scaling", [True, False])
def test_muon_cautious_step_matches_the_formula(lr_scaling: bool) -> None:
    """One step: p − λ·p·[u·p ≥ 0] − lr·s·u, u the orthogonalised grad, s = sqrt(rows/cols),
    λ = wd·lr·(s·lr) (modded-nanogpt) or wd·lr."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(48, 16))
    p.grad = torch.randn(48, 16)
    p0 = p.detach().clone()
    lr, wd = 0.1, 1.2
    Muon([p], lr=lr, weight_decay=wd, cautious_wd=True, cwd_lr_scaling=lr_scaling, nesterov=False, momentum=0.0).step()
    u = orthogonalize(p.grad, "newton_schulz")
    s = (48 / 16) ** 0.5
    decay = wd * lr * (s * lr if lr_scaling else 1.0)
    agree = (u * p0) >= 0
    expected = p0 - decay * p0 * agree - lr * s * u
    torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)
    undecayed = p0 - lr * s * u  # the disagreeing coordinates moved by the update alone
    torch.testing.assert_close(p.detach()[~agree], undecayed[~agree], rtol=1e-5, atol=1e-6)
    assert agree.any() and (~agree).any()


def test_normuon_second_moment_uses_beta2_0_9_by_default() -> None:
    """From zero state one step leaves v = (1 − β₂)·mean_cols(O²) with β₂ = 0.9."""
    torch.manual_seed(2)
    p = torch.nn.Parameter(torch.randn(64, 32))
    p.grad = torch.randn(64, 32)
    opt = Muon([p], lr=0.02, variance_reduction=True, nesterov=False, momentum=0.0)
    assert opt.defaults["beta2"] == 0.9
    opt.step()
    o = orthogonalize(p.grad, "newton_schulz")
    expected = 0.1 * o.square().mean(dim=-1, keepdim=True)
    torch.testing.assert_close(opt.state[p]["second_moment"].view(64, 1), expected, rtol=1e-5, atol=1e-8)


def test_stacked_matrix_is_updated_as_two_matrices() -> None:
    """A [W_u; W_v] layer with split 2 takes exactly the updates of W_u and W_v stepped alone;
    with u-gradients 3x the v-gradients the two halves still get equal update RMS."""
    torch.manual_seed(3)
    d, h = 16, 64
    g_u, g_v = 3 * torch.randn(h, d), torch.randn(h, d)
    stacked = torch.nn.Parameter(torch.zeros(2 * h, d))
    stacked.grad = torch.cat([g_u, g_v])
    Muon([{"params": [stacked], "split": 2}], lr=0.1, orthog="polar_express", variance_reduction=True).step()
    halves = []
    for g in (g_u, g_v):
        alone = torch.nn.Parameter(torch.zeros(h, d))
        alone.grad = g.clone()
        Muon([alone], lr=0.1, orthog="polar_express", variance_reduction=True).step()
        halves.append(alone.detach())
    torch.testing.assert_close(stacked.detach(), torch.cat(halves), rtol=1e-5, atol=1e-6)
    rms = [x.square().mean().sqrt().item() for x in halves]
    assert abs(rms[0] / rms[1] - 1) < 0.02
    fused = torch.nn.Parameter(torch.zeros(2 * h, d))  # the old way: one matrix, unequal halves
    fused.grad = torch.cat([g_u, g_v])
    Muon([fused], lr=0.1, orthog="polar_express").step()
    u_rms, v_rms = (x.square().mean().sqrt().item() for x in fused.detach().chunk(2))
    assert u_rms / v_rms > 1.5


def test_split_must_divide_the_rows() -> None:
    with pytest.raises(ValueError, match="split=3"):
        Muon([{"params": [torch.nn.Parameter(torch.ones(8, 4))], "split": 3}])


@pytest.mark.parametrize("orthog", ["newton_schulz", "polar_express"])
@pytest.mark.parametrize("shape", [(64, 32), (32, 64)])
def test_muon_step_with_and_without_variance_reduction(orthog: str, shape: tuple[int, int]) -> None:
    deltas = {}
    for vr in (False, True):
        torch.manual_seed(1)
        p = torch.nn.Parameter(torch.randn(*shape))
        opt = Muon([p], lr=0.02, orthog=orthog, variance_reduction=vr)
        p0 = p.detach().clone()
        for _ in range(3):
            p.grad = torch.randn(*shape)
            opt.step()
        assert torch.isfinite(p).all()
        deltas[vr] = p.detach() - p0
        if vr:
            second = opt.state[p]["second_moment"]
            expected = (shape[0], 1) if variance_reduction_dim(p.shape) == -1 else (1, shape[1])
            assert second.shape == (1, *expected) and (second > 0).all()  # one block: split 1
        else:
            assert "second_moment" not in opt.state[p]
    assert not torch.allclose(deltas[False], deltas[True])


def test_normuon_rescale_keeps_norm_and_equalises_rows() -> None:
    """Starting from zero state, one rescale makes every row the same norm while keeping the total."""
    u = torch.randn(64, 16) * torch.linspace(0.1, 3.0, 64)[:, None]
    out = normuon_rescale(u, torch.zeros(64, 1), beta2=0.95)
    torch.testing.assert_close(out.norm(), u.norm())
    rows = out.norm(dim=1)
    assert rows.max() / rows.min() < 1.01


def test_newton_schulz_step_agrees_with_torch_optim_muon() -> None:
    """Our plain Muon (NS, Nesterov, no VR/decay) in bf16 takes torch.optim.Muon's step."""
    torch.manual_seed(0)
    init, grads = torch.randn(96, 32), [torch.randn(96, 32) for _ in range(3)]
    ours, ref = torch.nn.Parameter(init.clone()), torch.nn.Parameter(init.clone())
    opt_ours = Muon([ours], lr=0.05, momentum=0.95, orthog_dtype=torch.bfloat16)
    opt_ref = torch.optim.Muon([ref], lr=0.05, momentum=0.95, weight_decay=0.0, adjust_lr_fn="original")
    for g in grads:
        ours.grad, ref.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_ref.step()
    d_ours, d_ref = (ours - init).detach().flatten(), (ref - init).detach().flatten()
    assert torch.nn.functional.cosine_similarity(d_ours, d_ref, dim=0) > 0.99
    assert abs(d_ours.norm() / d_ref.norm() - 1) < 0.03


def test_muon_rejects_vectors() -> None:
    with pytest.raises(ValueError, match="2-D"):
        Muon([torch.nn.Parameter(torch.ones(3))])
