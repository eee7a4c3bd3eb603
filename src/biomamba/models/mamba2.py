"""biomamba's Mamba2 language model in pure PyTorch (architecture of the state-spaces/mamba2 checkpoints).

Layout (parameter names follow transformers' Mamba2ForCausalLM, so its safetensors load as they are):

    backbone.embeddings                    [V_padded, d_model]
    backbone.layers.N.norm                 RMSNorm (pre-norm; residual stream kept in fp32)
    backbone.layers.N.mixer.in_proj        d_model -> (z | xBC | dt) = 2*d_inner + 2*ngroups*d_state + nheads
    backbone.layers.N.mixer.conv1d         causal depthwise conv (d_conv taps) on xBC, then SiLU
    backbone.layers.N.mixer.{dt_bias,A_log,D}
    backbone.layers.N.mixer.norm           gated RMSNorm: rmsnorm(y * silu(z)) per group of d_inner/ngroups
    backbone.layers.N.mixer.out_proj       d_inner -> d_model
    backbone.norm_f                        final RMSNorm
    lm_head                                tied to the embeddings unless tie_embeddings=False

The SSD scan lives in `biomamba.models.ssd`. `biomamba.models.kernels` may take a faster path (compiled, or
mamba-ssm's or fla's Triton kernels on CUDA) as ``config.kernels`` says; nothing here requires them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biomamba.models.kernels import KERNEL_CHOICES
from biomamba.models.kernels.compiled import compiled_ssd
from biomamba.models.kernels.dispatch import scan_backend
from biomamba.models.kernels.fla_kernel import fla_ssd
from biomamba.models.kernels.mamba_ssm_kernel import triton_ssd
from biomamba.models.ssd import segment_ids, ssd_chunked, ssd_step


@dataclass
class Mamba2Config:
    """Architecture of a Mamba2 LM. Names follow mamba-ssm (``d_model``, ``n_layer``, ``ssm_cfg`` fields).

    ``vocab_size`` is the tokenizer's vocabulary; the embedding has `padded_vocab_size` rows (a multiple of
    ``pad_vocab_size_multiple``, for tensor-core friendly shapes, as in mamba-ssm).
    """

    d_model: int = 768
    n_layer: int = 24
    vocab_size: int = 50277
    d_state: int = 128
    d_conv: int = 4
    expand: int = 2
    headdim: int = 64
    ngroups: int = 1
    chunk_size: int = 256
    norm_epsilon: float = 1e-5
    residual_in_fp32: bool = True
    tie_embeddings: bool = True
    pad_vocab_size_multiple: int = 16
    bias: bool = False
    conv_bias: bool = True
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    dt_limit: tuple[float, float] = (0.0, float("inf"))
    A_init_range: tuple[float, float] = (1.0, 16.0)
    initializer_range: float = 0.02
    bos_token_id: int | None = 0
    eos_token_id: int | None = 0
    pad_token_id: int | None = 0
    # runtime only (never saved): scan implementation, one of KERNEL_CHOICES (biomamba.models.kernels),
    # and whether training recomputes the scan's chunk x chunk intermediates in backward (saves memory)
    kernels: str = "auto"
    recompute_scan: bool = True
    # Not "mamba2" on purpose: peft forbids LoRA on out_proj for model_type mamba2 (transformers' fused
    # CUDA path bypasses that Linear); ours calls it normally. Use biomamba.models.family() -> "mamba2".
    model_type: str = field(default="biomamba-mamba2", init=False)

    def __post_init__(self) -> None:
        self.dt_limit = (float(self.dt_limit[0]), float(self.dt_limit[1]))
        self.A_init_range = (float(self.A_init_range[0]), float(self.A_init_range[1]))
        problems = []
        if self.d_inner % self.headdim:
            problems.append(f"expand*d_model ({self.d_inner}) is not a multiple of headdim ({self.headdim})")
        elif self.nheads % self.ngroups:
            problems.append(f"nheads ({self.nheads}) is not a multiple of ngroups ({self.ngroups})")
        for name in ("d_model", "n_layer", "vocab_size", "d_state", "d_conv", "chunk_size", "ngroups"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive (got {getattr(self, name)})")
        if self.kernels not in KERNEL_CHOICES:
            problems.append(f"kernels must be one of {', '.join(KERNEL_CHOICES)} (got {self.kernels!r})")
        if self.pad_vocab_size_multiple < 1:
            problems.append("pad_vocab_size_multiple must be >= 1")
        if problems:
            raise ValueError("invalid Mamba2 config: " + "; ".join(problems))

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def nheads(self) -> int:
        return self.d_inner // self.headdim

    @property
    def conv_dim(self) -> int:
        return self.d_inner + 2 * self.ngroups * self.d_state

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return (self.vocab_size + m - 1) // m * m

    # transformers-style aliases, so code written for HF configs (and peft) can read ours.
    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer

    @property
    def tie_word_embeddings(self) -> bool:
        return self.tie_embeddings

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["dt_limit"] = list(self.dt_limit)
        data["A_init_range"] = list(self.A_init_range)
        return data

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def replace(self, **changes: Any) -> Mamba2Config:
        return dataclasses.replace(self, **changes)


@dataclass
class CausalLMOutput:
    """What every biomamba model call returns: ``logits [B, T, V_padded]`` (fp32), ``loss`` when labels
    were given, the ``cache`` that was passed in (updated in place), and with ``output_hidden_states=True``
    the output of every block followed by the final-normed hidden state (``hidden_states[-1]``, what a
    classification head reads), as transformers' Mamba2 returns them."""

    logits: Tensor
    loss: Tensor | None = None
    cache: Mamba2Cache | None = None
    hidden_states: tuple[Tensor, ...] | None = None

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return tuple(v for v in (self.loss, self.logits) if v is not None)[key]
        return getattr(self, key)


class Mamba2Cache:
    """Per-layer recurrent state for decoding: conv history and SSM state, O(1) in the sequence length.

    ``conv`` is ``[n_layer, B, d_conv-1, conv_dim]`` (the last pre-activation xBC inputs, model dtype) and
    ``ssm`` is ``[n_layer, B, nheads, headdim, d_state]`` (fp32). Rows are independent sequences: `select`
    picks/repeats rows (e.g. one encoded prompt -> several answer continuations), `clone` copies, `cat`
    stacks caches of separately prefilled prompts. ``seqlen_offset`` counts tokens processed so far.
    """

    def __init__(self, conv: Tensor, ssm: Tensor, seqlen_offset: int = 0) -> None:
        self.conv = conv
        self.ssm = ssm
        self.seqlen_offset = seqlen_offset

    @property
    def batch_size(self) -> int:
        return self.ssm.shape[1]

    def clone(self) -> Mamba2Cache:
        return Mamba2Cache(self.conv.clone(), self.ssm.clone(), self.seqlen_offset)

    def select(self, index: Tensor | Sequence[int]) -> Mamba2Cache:
        """New cache made of the given batch rows (repeats allowed), copied."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.ssm.device)
        return Mamba2Cache(self.conv.index_select(1, idx), self.ssm.index_select(1, idx), self.seqlen_offset)

    def repeat_interleave(self, repeats: int) -> Mamba2Cache:
        """Each row repeated ``repeats`` times in place order (row0, row0, row1, row1, ...)."""
        return Mamba2Cache(
            self.conv.repeat_interleave(repeats, dim=1),
            self.ssm.repeat_interleave(repeats, dim=1),
            self.seqlen_offset,
        )

    @staticmethod
    def cat(caches: Sequence[Mamba2Cache]) -> Mamba2Cache:
        """Stack the rows of several caches (offsets may differ; the maximum is kept)."""
        return Mamba2Cache(
            torch.cat([c.conv for c in caches], dim=1),
            torch.cat([c.ssm for c in caches], dim=1),
            max(c.seqlen_offset for c in caches),
        )


class RMSNorm(nn.Module):
    """RMSNorm computed in fp32 (as transformers' Mamba2RMSNorm), with statistics per group of `group_size`
    channels (default: all of them). Given a gate ``z`` it is the mixer's rmsnorm(x * silu(z))
    (norm_before_gate=False).

    Group size d_inner/ngroups matches mamba-ssm's RMSNormGated for Mamba2, which is what makes a model
    with ngroups > 1 load exactly.
    """

    def __init__(self, dim: int, eps: float = 1e-5, group_size: int | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.group_size = group_size or dim
        self.eps = eps

    def forward(self, x: Tensor, z: Tensor | None = None, out_dtype: torch.dtype | None = None) -> Tensor:
        xf = x.float() if z is None else x.float() * F.silu(z.float())
        shape = xf.shape
        xg = xf.reshape(*shape[:-1], shape[-1] // self.group_size, self.group_size)
        xg = xg * torch.rsqrt(xg.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xg.reshape(shape).to(out_dtype or x.dtype)


class Mamba2Mixer(nn.Module):
    """One Mamba2 mixer: in_proj -> conv+SiLU -> SSD -> gated norm -> out_proj."""

    def __init__(self, config: Mamba2Config, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        c = config
        self.d_inner, self.nheads, self.conv_dim = c.d_inner, c.nheads, c.conv_dim
        self.in_proj = nn.Linear(c.d_model, 2 * c.d_inner + 2 * c.ngroups * c.d_state + c.nheads, bias=c.bias)
        self.conv1d = nn.Conv1d(
            c.conv_dim, c.conv_dim, c.d_conv, groups=c.conv_dim, padding=c.d_conv - 1, bias=c.conv_bias
        )
        self.dt_bias = nn.Parameter(torch.empty(c.nheads))
        self.A_log = nn.Parameter(torch.empty(c.nheads))
        self.D = nn.Parameter(torch.empty(c.nheads))
        self.norm = RMSNorm(c.d_inner, eps=c.norm_epsilon, group_size=c.d_inner // c.ngroups)
        self.out_proj = nn.Linear(c.d_inner, c.d_model, bias=c.bias)

    @torch.no_grad()
    def reset_ssm_parameters(self, generator: torch.Generator | None = None) -> None:
        """mamba-ssm's initialisation of dt_bias (inverse softplus of log-uniform dt), A_log and D."""
        c = self.config
        dev = self.dt_bias.device
        u = torch.rand(c.nheads, generator=generator).to(dev)
        dt = torch.exp(u * (math.log(c.dt_max) - math.log(c.dt_min)) + math.log(c.dt_min))
        dt = dt.clamp(min=c.dt_init_floor)
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        lo, hi = c.A_init_range
        A = torch.empty(c.nheads).uniform_(lo, hi, generator=generator).to(dev)
        self.A_log.copy_(torch.log(A))
        self.D.fill_(1.0)

    def _dt(self, dt_raw: Tensor) -> Tensor:
        lo, hi = self.config.dt_limit
        dt = F.softplus(dt_raw.float() + self.dt_bias.float())
        if lo > 0.0 or hi != float("inf"):
            dt = dt.clamp(min=lo, max=hi)
        return dt

    def _conv(self, xbc: Tensor, history: Tensor | None, seg: Tensor | None) -> Tensor:
        """Causal depthwise conv + SiLU on [b, l, conv_dim] (channels last). A cached `history` (the last
        k-1 inputs before these) is read, then shifted in place to end with these inputs.

        With segments, taps that reach into another document are dropped (the conv state resets)."""
        weight = self.conv1d.weight[:, 0, :]  # [conv_dim, k]
        k = weight.shape[1]
        b, length, _ = xbc.shape
        if seg is None and history is None:
            out = F.conv1d(
                xbc.transpose(1, 2), self.conv1d.weight, self.conv1d.bias, padding=k - 1, groups=self.conv_dim
            )
            return F.silu(out[..., :length].transpose(1, 2))
        start = xbc.new_zeros(b, k - 1, xbc.shape[2]) if history is None else history.to(xbc.dtype)
        full = torch.cat([start, xbc], dim=1)  # [b, k-1+l, d]
        if history is not None:
            history.copy_(full[:, length:])
        if seg is not None:
            seg_full = torch.cat([seg[:, :1].expand(b, k - 1), seg], dim=1)
        out = (
            xbc.new_zeros(xbc.shape)
            if self.conv1d.bias is None
            else self.conv1d.bias.to(xbc.dtype).expand_as(xbc)
        )
        for j in range(k):  # tap j multiplies the input (k-1-j) steps back
            term = full[:, j : j + length] * weight[:, j].to(xbc.dtype)
            if seg is not None and j < k - 1:
                term = term * (seg_full[:, j : j + length] == seg).unsqueeze(-1).to(xbc.dtype)
            out = out + term
        return F.silu(out)

    def forward(
        self,
        hidden: Tensor,
        seg: Tensor | None = None,
        cache: Mamba2Cache | None = None,
    ) -> Tensor:
        c = self.config
        b, length, _ = hidden.shape
        zxbcdt = self.in_proj(hidden)
        z, xbc, dt_raw = torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)
        A = -torch.exp(self.A_log.float())
        dt = self._dt(dt_raw)

        history = cache.conv[self.layer_idx] if cache is not None else None
        x, B, C = self._split_heads(self._conv(xbc, history, seg))
        if cache is not None and length == 1 and seg is None:  # decoding: one recurrent step per row
            y = ssd_step(cache.ssm[self.layer_idx], x[:, 0], dt[:, 0], A, B[:, 0], C[:, 0], D=self.D)
        else:
            backend = scan_backend(c.kernels, x) if cache is None else "torch"
            if backend == "triton":
                y = triton_ssd(x, dt_raw, self.dt_bias, A, B, C, self.D, c.chunk_size, c.dt_limit, seg)
            elif backend == "fla":
                y = fla_ssd(x, dt, A, B, C, self.D, seg)
            elif cache is None and c.recompute_scan and torch.is_grad_enabled():
                # Keep only the scan's inputs for backward and recompute its chunk x chunk intermediates
                # there: they are the largest activations of the model (as mamba-ssm's kernels do).
                scan_args = (x, dt, A, B, C, c.chunk_size, self.D, None, seg)  # no initial state
                y = torch.utils.checkpoint.checkpoint(_scan_output, backend, *scan_args, use_reentrant=False)
            else:
                state = cache.ssm[self.layer_idx] if cache is not None else None
                y, final = _torch_scan(backend)(x, dt, A, B, C, c.chunk_size, self.D, state, seg)
                if cache is not None:
                    cache.ssm[self.layer_idx].copy_(final)
        y = self.norm(y.reshape(b, length, self.d_inner), z, hidden.dtype)
        return self.out_proj(y)

    def _split_heads(self, xbc: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The activated conv output [..., conv_dim] as the scan's x [..., nheads, headdim] and its B and C
        [..., ngroups, d_state]."""
        c, lead = self.config, xbc.shape[:-1]
        x, B, C = torch.split(xbc, [self.d_inner, c.ngroups * c.d_state, c.ngroups * c.d_state], dim=-1)
        groups = (*lead, c.ngroups, c.d_state)
        return x.reshape(*lead, self.nheads, c.headdim), B.reshape(groups), C.reshape(groups)


def _scan_output(backend: str, *args: Any) -> Tensor:
    """The output alone of `_torch_scan(backend)` called with `args` (what checkpointing recomputes)."""
    return _torch_scan(backend)(*args)[0]


def _torch_scan(backend: str):
    """`ssd_chunked`, compiled when ``kernels: torch_compile`` chose it for this forward."""
    return compiled_ssd() if backend == "torch_compile" else ssd_chunked


class Mamba2Block(nn.Module):
    """Pre-norm residual block: residual + mixer(norm(residual)); the residual stream is fp32 if asked."""

    def __init__(self, config: Mamba2Config, layer_idx: int) -> None:
        super().__init__()
        self.residual_in_fp32 = config.residual_in_fp32
        self.norm = RMSNorm(config.d_model, eps=config.norm_epsilon)
        self.mixer = Mamba2Mixer(config, layer_idx)

    def forward(self, hidden: Tensor, seg: Tensor | None = None, cache: Mamba2Cache | None = None) -> Tensor:
        residual = hidden.float() if self.residual_in_fp32 else hidden
        normed = self.norm(hidden.to(self.norm.weight.dtype))
        return residual + self.mixer(normed, seg=seg, cache=cache)


class Mamba2Backbone(nn.Module):
    def __init__(self, config: Mamba2Config) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(config.padded_vocab_size, config.d_model)
        self.layers = nn.ModuleList([Mamba2Block(config, i) for i in range(config.n_layer)])
        self.norm_f = RMSNorm(config.d_model, eps=config.norm_epsilon)
        self.gradient_checkpointing = False

    def forward(
        self,
        input_ids: Tensor,
        seg: Tensor | None = None,
        cache: Mamba2Cache | None = None,
        collect: list[Tensor] | None = None,
    ) -> Tensor:
        hidden = self.embeddings(input_ids)
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and cache is None:
                hidden = torch.utils.checkpoint.checkpoint(layer, hidden, seg, None, use_reentrant=False)
            else:
                hidden = layer(hidden, seg=seg, cache=cache)
            if collect is not None:
                collect.append(hidden)
        out = self.norm_f(hidden.to(self.norm_f.weight.dtype))
        if collect is not None:
            collect.append(out)
        return out


class Mamba2LMHeadModel(nn.Module):
    """Mamba2 causal LM. Call as ``model(input_ids=..., seq_idx=None, labels=None, cache=None)``.

    - ``seq_idx [B, T]``: document index per position; the conv and SSM state reset wherever it changes.
    - ``labels [B, T]``: HF-style next-token loss (labels shifted inside; -100 ignored), mean over tokens.
    - ``cache``: from `allocate_cache`; the tokens are processed from the cached state, which is updated in
      place (``cache.seqlen_offset`` advances by T).
    - ``logits_to_keep``: when > 0, only the last that many positions get logits (saves memory at decode).
    - ``output_hidden_states``: also return per-block outputs and the final-normed hidden state.
    - ``attention_mask``: accepted for interface compatibility only when it is all ones (no padding).
    """

    def __init__(self, config: Mamba2Config) -> None:
        super().__init__()
        self.config = config
        self.backbone = Mamba2Backbone(config)
        self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.backbone.embeddings.weight

    # ---- construction -------------------------------------------------------------------------------
    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> None:
        """mamba-ssm's initialisation: N(0, 0.02) embeddings, default Linear/Conv init with zero biases,
        out_proj rescaled by 1/sqrt(n_layer) (GPT-2 prenorm-residual scheme), SSM parameters as in
        `Mamba2Mixer.reset_ssm_parameters`."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        c = self.config
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv1d):
                bound_w = torch.empty_like(module.weight, device="cpu")
                nn.init.kaiming_uniform_(bound_w, a=math.sqrt(5), generator=gen)
                module.weight.copy_(bound_w)
                if isinstance(module, nn.Conv1d) and module.bias is not None:
                    bound = 1 / math.sqrt(module.weight[0].numel())  # torch's default: U(+-1/sqrt(fan_in))
                    module.bias.copy_(torch.empty(module.bias.shape).uniform_(-bound, bound, generator=gen))
                elif module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, RMSNorm):
                module.weight.fill_(1.0)
        emb = self.backbone.embeddings.weight
        emb.copy_(torch.empty(emb.shape).normal_(0.0, c.initializer_range, generator=gen))
        for layer in self.backbone.layers:
            layer.mixer.out_proj.weight.div_(math.sqrt(c.n_layer))
            layer.mixer.reset_ssm_parameters(gen)
        if not c.tie_embeddings:
            self.lm_head.weight.copy_(
                torch.empty(self.lm_head.weight.shape).normal_(0.0, c.initializer_range, generator=gen)
            )

    # ---- conveniences shared with transformers models -----------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.backbone.embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.embeddings.weight.dtype

    def get_input_embeddings(self) -> nn.Embedding:
        return self.backbone.embeddings

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def gradient_checkpointing_enable(self, **_: Any) -> None:
        self.backbone.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        self.backbone.gradient_checkpointing = False

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Each parameter once (a tied head is the embeddings: named_parameters yields it once)."""
        return sum(
            p.numel()
            for name, p in self.named_parameters()
            if not (exclude_embeddings and name.startswith("backbone.embeddings"))
        )

    def allocate_cache(
        self, batch_size: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Mamba2Cache:
        """Zero decoding state for ``batch_size`` sequences (conv state in the model dtype, SSM state fp32)."""
        c = self.config
        device = device or self.device
        conv = torch.zeros(
            c.n_layer, batch_size, c.d_conv - 1, c.conv_dim, device=device, dtype=dtype or self.dtype
        )
        ssm = torch.zeros(
            c.n_layer, batch_size, c.nheads, c.headdim, c.d_state, device=device, dtype=torch.float32
        )
        return Mamba2Cache(conv, ssm)

    # ---- forward --------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: Tensor,
        seq_idx: Tensor | None = None,
        labels: Tensor | None = None,
        cache: Mamba2Cache | None = None,
        logits_to_keep: int = 0,
        attention_mask: Tensor | None = None,
        output_hidden_states: bool = False,
        **_: Any,
    ) -> CausalLMOutput:
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError(
                "Mamba2 does not take padding masks: pack documents with seq_idx, or run rows of different "
                "lengths separately (biomamba.models.generate does this for you)"
            )
        if cache is not None and cache.batch_size != input_ids.shape[0]:
            raise ValueError(f"cache holds {cache.batch_size} rows but input_ids has {input_ids.shape[0]}")
        seg = segment_ids(seq_idx) if seq_idx is not None else None
        collect: list[Tensor] | None = [] if output_hidden_states else None
        hidden = self.backbone(input_ids, seg=seg, cache=cache, collect=collect)
        if cache is not None:
            cache.seqlen_offset += input_ids.shape[1]
        if logits_to_keep > 0:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden.to(self.lm_head.weight.dtype)).float()
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        hidden_states = tuple(collect) if collect is not None else None
        return CausalLMOutput(logits=logits, loss=loss, cache=cache, hidden_states=hidden_states)


def causal_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy, labels shifted inside (as transformers), -100 ignored."""
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    shift_labels = labels[:, 1:].reshape(-1).to(shift_logits.device)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=-100)
