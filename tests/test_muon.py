"""Muon numerics: orthogonalisation quality, variance reduction, cautious weight decay."""

from __future__ import annotations

import pytest
import torch

from objectives.muon import (
    Muon,
    apply_weight_decay_,
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


def test_cautious_weight_decay_decays_only_where_signs_agree() -> None:
    p = torch.tensor([1.0, -1.0, 2.0, -2.0, 3.0])
    update = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0])  # agree, disagree, disagree, agree, zero
    cautious = p.clone()
    apply_weight_decay_(cautious, update, 0.5, cautious=True)
    assert cautious.tolist() == [0.5, -1.0, 2.0, -1.0, 3.0]
    plain = p.clone()
    apply_weight_decay_(plain, update, 0.5, cautious=False)
    assert plain.tolist() == (p * 0.5).tolist()


def test_muon_cautious_step_matches_the_formula() -> None:
    """One Muon step with cautious decay: p - lr·wd·p·[u·p > 0] - lr·scale·u, u the orthogonalised grad."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(48, 16))
    p.grad = torch.randn(48, 16)
    p0 = p.detach().clone()
    lr, wd = 0.1, 0.5
    Muon([p], lr=lr, weight_decay=wd, cautious_wd=True, nesterov=False, momentum=0.0).step()
    u = orthogonalize(p.grad, "newton_schulz")
    agree = (u * p0) > 0
    expected = p0 - lr * wd * p0 * agree - lr * shape_lr_scale(p.shape) * u
    torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)
    # the disagreeing coordinates moved by the update alone: no decay there
    undecayed = p0 - lr * shape_lr_scale(p.shape) * u
    torch.testing.assert_close(p.detach()[~agree], undecayed[~agree], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(p.detach()[agree], undecayed[agree], atol=1e-3)
    assert agree.any() and (~agree).any()


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
            assert second.shape == expected and (second > 0).all()
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
