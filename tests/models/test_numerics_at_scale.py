"""Numerics at the published presets' real dimensions (130m ... 2.7b: d_state 128, headdim 64, chunk 256),
where small-config parity says nothing: errors of a chunked scan grow with the chunk length.

Two references from outside the code under test: a float64 step-by-step recurrence (conftest's
`recurrent_scan`), and transformers' Mamba2 run in float64 (its pure-PyTorch path) on the same weights. One
or two layers of each preset and sequences of more than two chunks keep the tests fast while the shapes are
the real ones.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from tests.models.conftest import recurrent_scan
from transformers import Mamba2ForCausalLM

from biomamba.models import save_model
from biomamba.models.mamba2 import Mamba2LMHeadModel
from biomamba.models.presets import PUBLISHED, preset_config
from biomamba.models.ssd import ssd_chunked

LENGTH = 2 * 256 + 44  # more than two chunks of the presets' 256, with a ragged last one


SCAN_HEADS = 8  # heads are independent in the scan: the presets' 24-80 would only repeat the same check


def _preset_scan_config():
    """The scan's dimensions (headdim, d_state, groups, chunk, A and dt ranges), which every preset shares."""
    shapes = {
        (c.headdim, c.d_state, c.ngroups, c.chunk_size, c.A_init_range, c.dt_min): c
        for c in map(preset_config, PUBLISHED)
    }
    assert len(shapes) == 1, "the presets' scan dimensions differ: test each of them"
    return next(iter(shapes.values()))


def _scan_inputs(dt_max: float):
    cfg = _preset_scan_config()
    h, p, n, g = SCAN_HEADS, cfg.headdim, cfg.d_state, cfg.ngroups
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, LENGTH, h, p, generator=gen)
    B = torch.randn(1, LENGTH, g, n, generator=gen)
    C = torch.randn(1, LENGTH, g, n, generator=gen)
    lo, hi = math.log(cfg.dt_min), math.log(dt_max)  # log-uniform, as mamba-ssm initialises dt
    dt = torch.exp(torch.rand(1, LENGTH, h, generator=gen) * (hi - lo) + lo)
    A = -torch.empty(h).uniform_(*cfg.A_init_range, generator=gen)
    return cfg, (x, dt, A, B, C)


@pytest.mark.parametrize("dt_max", [0.1, 1.0])  # the initial range, and the larger steps trained models reach
def test_chunked_scan_matches_a_float64_recurrence_at_every_chunk_size(dt_max):
    cfg, inputs = _scan_inputs(dt_max)
    reference = recurrent_scan(*inputs)[0]
    scale = reference.abs().max().item()
    errors = {}
    for chunk in (16, 64, cfg.chunk_size):
        y, _ = ssd_chunked(*inputs, chunk)
        errors[chunk] = (y.double() - reference).abs().max().item() / scale
    # the stable segment sums keep the error at fp32 rounding whatever the chunk length (the differences of
    # running sums gave 4.8e-6 at chunk 256 and 1.3e-5 at dt up to 1)
    assert errors[cfg.chunk_size] <= 1e-6, errors
    assert errors[cfg.chunk_size] <= 2 * errors[16] + 1e-7, errors


def _randomised_layers(name: str, n_layer: int) -> Mamba2LMHeadModel:
    cfg = dataclasses.replace(preset_config(name), n_layer=n_layer, vocab_size=512)
    model = Mamba2LMHeadModel(cfg)
    model.init_weights(seed=1)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # off the initial values, and larger steps than at init (dt_bias + 2)
        for pname, param in model.named_parameters():
            if pname.endswith(("norm.weight", "norm_f.weight", ".D")):
                param.copy_(1.0 + 0.3 * torch.randn(param.shape, generator=gen))
            if pname.endswith("dt_bias"):
                param.add_(torch.randn(param.shape, generator=gen) + 2.0)
    return model.eval()


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_model_error_is_no_worse_than_transformers_at_preset_dimensions(tmp_path, name):
    model = _randomised_layers(name, n_layer=1)
    save_model(model, tmp_path / "m")
    theirs = Mamba2ForCausalLM.from_pretrained(tmp_path / "m").eval()
    ids = torch.randint(0, 512, (1, LENGTH), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(input_ids=ids).logits.double()
        theirs32 = theirs(input_ids=ids).logits.double()
        reference = theirs.double()(input_ids=ids).logits
    our_error = (ours - reference).abs().max().item()
    their_error = (theirs32 - reference).abs().max().item()
    assert (ours - theirs32).abs().max().item() <= 1e-4
    # no worse than transformers' own fp32 error, within rounding noise (the unstable form was 1.6x worse)
    assert our_error <= 1.25 * their_error + 1e-7, (our_error, their_error)
