"""nGPT: weights and hidden states on the sphere, nGPT parametrisation, causality.

Formulas from Loshchilov et al. 2024 (arXiv:2410.01131): every hidden state is a unit vector,
``h ← Norm(h + α_A (h_A − h))`` with ``h_A = Norm(ATTN(h))`` (eq. 10-11), α stored at its
``init_scaling`` and used at ``init_value`` (section 2.6); α's init is seed 003's 0.15.
"""

from __future__ import annotations

import math

import pytest
import torch

from objectives.model import NGPT, NGPTConfig

CFG = NGPTConfig(vocab_size=256, seq_len=32, n_layer=2, n_head=4, d_model=64)


@pytest.fixture
def model() -> NGPT:
    torch.manual_seed(0)
    return NGPT(CFG)


def _assert_on_sphere(model: NGPT) -> None:
    for w, dim in model.sphere_matrices():
        assert w.shape[dim] == CFG.d_model  # the vectors lie along the embedding dimension
        torch.testing.assert_close(w.norm(dim=dim), torch.ones(w.shape[1 - dim]), rtol=1e-5, atol=1e-5)


def test_weights_start_on_the_sphere(model: NGPT) -> None:
    _assert_on_sphere(model)


def test_normalize_weights_reprojects_perturbed_matrices(model: NGPT) -> None:
    with torch.no_grad():
        for w, _ in model.sphere_matrices():
            w.mul_(torch.rand_like(w) * 3).add_(0.1)
    assert not torch.allclose(model.wte.weight.norm(dim=1), torch.ones(CFG.vocab_size))
    model.normalize_weights()
    _assert_on_sphere(model)


def test_sphere_matrices_cover_every_matrix_with_the_right_axis(model: NGPT) -> None:
    mats = {id(w): dim for w, dim in model.sphere_matrices()}
    assert set(mats) == {id(p) for p in model.parameters() if p.ndim == 2}
    block = model.blocks[0]
    assert mats[id(block.query.weight)] == 1 and mats[id(block.c_fc.weight)] == 1  # rows: (out, d)
    assert mats[id(block.att_c_proj.weight)] == 0 and mats[id(block.mlp_c_proj.weight)] == 0  # cols: (d, in)
    assert len(model.hidden_matrices()) == 6 * CFG.n_layer
    assert not any(p is model.wte.weight or p is model.lm_head.weight for p in model.hidden_matrices())


def test_hidden_states_stay_on_the_sphere(model: NGPT) -> None:
    outs: list[torch.Tensor] = []
    for block in model.blocks:
        block.register_forward_hook(lambda _m, _i, out: outs.append(out))
    model(torch.randint(0, 256, (2, 16)))
    assert len(outs) == CFG.n_layer
    for h in outs:
        torch.testing.assert_close(h.norm(dim=-1), torch.ones(2, 16), rtol=1e-5, atol=1e-5)


def test_effective_gains_follow_the_ngpt_parametrisation(model: NGPT) -> None:
    """Stored at init_scaling, used at init_value: α = alpha_init (0.15), s_qk = s_u = s_v = s_z = 1."""
    block = model.blocks[0]
    scale = CFG.d_model**-0.5
    torch.testing.assert_close(block.attn_alpha.param, torch.full((CFG.d_model,), scale))
    torch.testing.assert_close(block.attn_alpha(), torch.full((CFG.d_model,), 0.15))
    torch.testing.assert_close(block.mlp_alpha(), torch.full((CFG.d_model,), 0.15))
    other = NGPT(NGPTConfig(**{**CFG.__dict__, "alpha_init": 0.05})).blocks[0]
    torch.testing.assert_close(other.attn_alpha(), torch.full((CFG.d_model,), 0.05))
    for gain in (block.sqk, block.su, block.sv, model.sz):
        torch.testing.assert_close(gain(), torch.ones_like(gain.param))
    assert block.v_scale == pytest.approx(math.sqrt(CFG.d_model))


def test_block_renormalises_the_hidden_state_on_entry(model: NGPT) -> None:
    """Off the sphere (embedding rows drift between lazy projections) a block sees h / ‖h‖."""
    h = torch.nn.functional.normalize(torch.randn(2, 8, CFG.d_model), dim=-1)
    block = model.blocks[0]
    torch.testing.assert_close(block(h * 2.36), block(h), rtol=1e-5, atol=1e-6)


def test_swiglu_c_fc_is_declared_as_two_stacked_matrices(model: NGPT) -> None:
    stacked = model.stacked_matrices()
    assert stacked == {id(b.c_fc.weight): 2 for b in model.blocks}
    assert all(b.c_fc.weight.shape == (2 * 4 * CFG.d_model, CFG.d_model) for b in model.blocks)


def test_initial_loss_is_near_uniform(model: NGPT) -> None:
    """Unit vectors and s_z = 1 give logits in [-1, 1]: the loss starts near log(256)."""
    x = torch.randint(0, 256, (4, 32))
    loss = model(x, torch.randint(0, 256, (4, 32)))
    assert abs(loss.item() - math.log(256)) < 0.3


def test_attention_is_causal(model: NGPT) -> None:
    x = torch.randint(0, 256, (1, 20))
    y = x.clone()
    y[0, 12:] = (y[0, 12:] + 1) % 256
    a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_rejects_odd_head_split() -> None:
    with pytest.raises(ValueError, match="n_head"):
        NGPT(NGPTConfig(d_model=60, n_head=8))
