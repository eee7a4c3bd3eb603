"""The five published Mamba2 scales (state-spaces/mamba2-130m ... 2.7b) with their exact dimensions.

All share d_state 128, headdim 64, expand 2, ngroups 1, d_conv 4, the GPT-NeoX tokenizer (50277 ids,
padded to 50288) and tied embeddings; they differ only in width and depth. ``tiny`` is a test-sized
config (a few hundred thousand parameters) for CPU tests and demos.
"""

from __future__ import annotations

from biomamba.models.mamba2 import Mamba2Config

PUBLISHED_VOCAB = 50277

# name -> (d_model, n_layer, published size label)
PUBLISHED: dict[str, tuple[int, int, str]] = {
    "130m": (768, 24, "130M"),
    "370m": (1024, 48, "370M"),
    "780m": (1536, 48, "780M"),
    "1.3b": (2048, 48, "1.3B"),
    "2.7b": (2560, 64, "2.7B"),
}


def preset_names() -> list[str]:
    return [*PUBLISHED, "tiny"]


def preset_config(name: str) -> Mamba2Config:
    """The config of a named preset (``130m`` ... ``2.7b``, also accepted as ``mamba2-130m``, or ``tiny``)."""
    key = name.lower().removeprefix("state-spaces/").removeprefix("mamba2-")
    if key == "tiny":
        return Mamba2Config(d_model=64, n_layer=2, vocab_size=512, d_state=16, headdim=16, chunk_size=16)
    if key not in PUBLISHED:
        raise KeyError(f"unknown preset {name!r} (known: {', '.join(preset_names())})")
    d_model, n_layer, _ = PUBLISHED[key]
    return Mamba2Config(d_model=d_model, n_layer=n_layer, vocab_size=PUBLISHED_VOCAB)


def count_parameters(cfg: Mamba2Config) -> int:
    """Exact parameter count of a config (tied embeddings counted once), computed without building it."""
    d, di, ng, n, h, k = cfg.d_model, cfg.d_inner, cfg.ngroups, cfg.d_state, cfg.nheads, cfg.d_conv
    in_proj = d * (2 * di + 2 * ng * n + h) + (2 * di + 2 * ng * n + h if cfg.bias else 0)
    conv = cfg.conv_dim * k + (cfg.conv_dim if cfg.conv_bias else 0)
    out_proj = di * d + (d if cfg.bias else 0)
    per_layer = in_proj + conv + 3 * h + di + out_proj + d  # + dt_bias/A_log/D, gated norm, block norm
    emb = cfg.padded_vocab_size * d
    head = 0 if cfg.tie_embeddings else emb
    return cfg.n_layer * per_layer + emb + head + d


def format_count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}K"
