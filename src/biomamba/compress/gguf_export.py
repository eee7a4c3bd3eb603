"""GGUF export: one file that llama.cpp (and Ollama, LM Studio, llama-cpp-python) runs on a laptop CPU.

Why GGUF: on CPU, PyTorch's int8/int4 weight-only kernels decode slower than fp32 (see BENCHMARKS.md),
while llama.cpp's Q8_0/Q4_K kernels are fast. The file is written with the `gguf` package, llama.cpp's own
writer, following the layout of llama.cpp's `convert_hf_to_gguf.py` for each architecture:

- GPT-2 -> `gpt2`; Llama and Mistral -> `llama` (q/k rows permuted back to the interleaved RoPE layout
  llama.cpp uses; Mistral's sliding window is not represented, exactly as upstream);
- biomamba's Mamba2 -> `mamba2` (A stored as -exp(A_log), conv1d squeezed, the gated norm per group).

Tensor names come from the package's own `TensorNameMap`; 1-D tensors, norms, position embeddings and the
SSM conv kernel stay F32 (llama.cpp's rule). `q8_0` is quantized here in Python (`gguf.quants`); `q4_k_m`
has no Python quantizer, so an f16 file is written and quantized by llama.cpp itself
(`llama_model_quantize` from llama-cpp-python), which is what llama.cpp users run.

The tokenizer travels inside the file: byte-level BPE (ours, GPT-2's, Mamba's GPT-NeoX) as `gpt2` with
its merges, SentencePiece-style BPE with byte fallback (Llama 2, Mistral) as `llama` with scores.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.errors import BiomambaError

QUANTS = ("f16", "q8_0", "q4_k_m")
# buffers some transformers versions keep in the state dict: not weights
_SKIPPED = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")


def require_gguf() -> Any:
    """The `gguf` package, or a one-line error saying how to install it."""
    try:
        import gguf
    except ImportError:
        raise BiomambaError("GGUF export needs the `gguf` package: pip install 'biomamba[gguf]'") from None
    return gguf


def gguf_name(stem: str, quant: str) -> str:
    """File name of one quantization, as GGUF repositories on the hub name them (`name-Q8_0.gguf`)."""
    return f"{stem}-{quant.upper()}.gguf"


def export_gguf(model: Any, tokenizer: Any, path: str | Path, quant: str = "q8_0", name: str = "") -> Path:
    """Write `model` + `tokenizer` as one GGUF file at `path` (atomically: complete or absent)."""
    from biomamba.models.families import FAMILIES, family_spec
    from biomamba.utils.atomic import atomic_path

    if quant not in QUANTS:
        raise BiomambaError(f"--quant {quant!r}: choose one of {', '.join(QUANTS)}")
    spec = family_spec(model)
    if spec.gguf_architecture not in _WRITERS:
        supported = [s.name for s in FAMILIES if s.gguf_architecture in _WRITERS]
        raise BiomambaError(f"GGUF export supports {', '.join(supported)} models (this is {spec.name})")
    path = Path(path)
    if quant == "q4_k_m":  # llama.cpp quantizes from an f16 file
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            f16 = export_gguf(model, tokenizer, Path(tmp) / "model-f16.gguf", "f16", name)
            with atomic_path(path) as tmp_path:
                _llama_quantize(f16, tmp_path, "q4_k_m")
        return path
    with atomic_path(path) as tmp_path:
        _write(model, spec.name, spec.gguf_architecture, tokenizer, tmp_path, quant, name)
    return path


def _write(model: Any, fam: str, arch_name: str, tokenizer: Any, path: Path, quant: str, name: str) -> None:
    gguf = require_gguf()
    hparams, tensors = _WRITERS[arch_name]
    arch = getattr(gguf.MODEL_ARCH, arch_name)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(name or fam)
    file_type = gguf.LlamaFileType.MOSTLY_F16 if quant == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(int(file_type))
    n_vocab = hparams(writer, model)
    write_vocab(writer, tokenizer, n_vocab)
    layers = int(getattr(model.config, "n_layer", None) or model.config.num_hidden_layers)
    name_map = gguf.get_tensor_name_map(arch, layers)
    for hf_name, data in tensors(model):
        target = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise BiomambaError(f"GGUF export: no llama.cpp tensor for {hf_name} ({fam})")
        array, qtype = _encode(gguf, target, data, quant)
        writer.add_tensor(target, array, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _encode(gguf: Any, target: str, data: np.ndarray, quant: str) -> tuple[np.ndarray, Any]:
    """llama.cpp's storage rule: vectors, norms, position embeddings and conv kernels in F32."""
    qt = gguf.GGMLQuantizationType
    keep_f32 = (
        data.ndim <= 1
        or target.endswith("_norm.weight")
        or not target.endswith(".weight")  # ssm_a, ssm_d and biases
        or target.startswith("position_embd")
        or ".ssm_conv1d." in target
    )
    if keep_f32:
        return data.astype(np.float32), qt.F32
    if quant == "q8_0":
        try:
            return gguf.quants.quantize(data.astype(np.float32), qt.Q8_0), qt.Q8_0
        except gguf.QuantError:  # rows not a multiple of 32 values: as upstream, F16
            pass
    return data.astype(np.float16), qt.F16


def _llama_quantize(src: Path, dst: Path, quant: str) -> None:
    """Quantize a GGUF file with llama.cpp's own quantizer (k-quants have no Python implementation)."""
    import ctypes

    try:
        import llama_cpp
    except ImportError:
        raise BiomambaError(
            f"--quant {quant} is quantized by llama.cpp: pip install 'biomamba[gguf]' (llama-cpp-python)"
        ) from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if status != 0:
        raise BiomambaError(f"{dst}: llama.cpp could not quantize the model to {quant} (status {status})")


def _state(model: Any) -> Iterator[tuple[str, np.ndarray]]:
    """The weights to write as float32 arrays: no buffers, no tied head (llama.cpp reuses the embedding)."""
    out, emb = model.get_output_embeddings(), model.get_input_embeddings()
    tied = out is not None and out.weight.data_ptr() == emb.weight.data_ptr()
    for key, tensor in model.state_dict().items():
        if key.endswith(_SKIPPED) or (tied and key == "lm_head.weight"):
            continue
        yield key, tensor.detach().to("cpu").float().numpy()


# ---------------------------------------------------------------------------------------------------------
# Per architecture: hyperparameters (return the vocabulary size of the embedding) and tensors


def _rope_theta(cfg: Any) -> float:
    params = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    kind = params.get("rope_type", "default")
    if kind != "default":
        raise BiomambaError(f"GGUF export: RoPE scaling {kind!r} is not supported (only plain RoPE)")
    return float(params.get("rope_theta") or getattr(cfg, "rope_theta", 10000.0))


def _llama_hparams(writer: Any, model: Any) -> int:
    cfg = model.config
    if getattr(cfg, "mlp_bias", False):
        raise BiomambaError("GGUF export: Llama MLP biases are not part of llama.cpp's llama architecture")
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads or cfg.num_attention_heads)
    writer.add_rope_freq_base(_rope_theta(cfg))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    n_vocab = model.get_input_embeddings().weight.shape[0]
    writer.add_vocab_size(n_vocab)
    return n_vocab


def _permute_rope(weight: Any, n_head: int) -> Any:
    """HF's rotate-half q/k rows back to the interleaved pairs of the original Llama (llama.cpp's RoPE)."""
    shape = weight.shape
    return weight.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _llama_tensors(model: Any) -> Iterator[tuple[str, np.ndarray]]:
    cfg = model.config
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads
    for key, data in _state(model):
        if key.endswith(("q_proj.weight", "q_proj.bias")):
            data = _permute_rope(data, n_head)
        elif key.endswith(("k_proj.weight", "k_proj.bias")):
            data = _permute_rope(data, n_kv)
        yield key, data


def _gpt2_hparams(writer: Any, model: Any) -> int:
    cfg = model.config
    writer.add_block_count(cfg.n_layer)
    writer.add_context_length(cfg.n_positions)
    writer.add_embedding_length(cfg.n_embd)
    writer.add_feed_forward_length(cfg.n_inner or 4 * cfg.n_embd)
    writer.add_head_count(cfg.n_head)
    writer.add_layer_norm_eps(cfg.layer_norm_epsilon)
    return int(model.get_input_embeddings().weight.shape[0])


def _gpt2_tensors(model: Any) -> Iterator[tuple[str, np.ndarray]]:
    for key, data in _state(model):
        if key.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            data = data.T.copy()  # GPT-2's Conv1D stores [in, out]; ggml wants [out, in]
        yield key, data


def _mamba2_hparams(writer: Any, model: Any) -> int:
    cfg = model.config
    if cfg.bias:
        raise BiomambaError("GGUF export: Mamba2 in/out projection biases are not supported by llama.cpp")
    writer.add_context_length(2**20)  # recurrent: no positional limit (llama.cpp's convention)
    writer.add_embedding_length(cfg.d_model)
    writer.add_feed_forward_length(0)
    writer.add_head_count(0)
    writer.add_block_count(cfg.n_layer)
    writer.add_ssm_conv_kernel(cfg.d_conv)
    writer.add_ssm_inner_size(cfg.d_inner)
    writer.add_ssm_state_size(cfg.d_state)
    writer.add_ssm_time_step_rank(cfg.nheads)
    writer.add_ssm_group_count(cfg.ngroups)
    writer.add_layer_norm_rms_eps(cfg.norm_epsilon)
    return int(cfg.padded_vocab_size)


def _mamba2_tensors(model: Any) -> Iterator[tuple[str, np.ndarray]]:
    cfg = model.config
    for key, data in _state(model):
        if key.endswith(".dt_bias"):
            key = key.removesuffix(".dt_bias") + ".dt_proj.bias"
        elif key.endswith(".A_log"):
            data = -np.exp(data).reshape(-1, 1)
        elif key.endswith(".D"):
            data = data.reshape(-1, 1)
        elif key.endswith(".conv1d.weight"):
            data = data.reshape(data.shape[0], -1)
        elif key.endswith(".mixer.norm.weight"):
            data = data.reshape(cfg.ngroups, -1)
        yield key, data
    if not cfg.conv_bias:  # llama.cpp requires the conv bias
        for i in range(cfg.n_layer):
            yield (
                f"backbone.layers.{i}.mixer.conv1d.bias",
                np.zeros(cfg.d_inner + 2 * cfg.ngroups * cfg.d_state),
            )


# Per llama.cpp architecture (`FamilySpec.gguf_architecture`): hyperparameters, then tensors in HF names.
_WRITERS = {
    "GPT2": (_gpt2_hparams, _gpt2_tensors),
    "LLAMA": (_llama_hparams, _llama_tensors),
    "MAMBA2": (_mamba2_hparams, _mamba2_tensors),
}


# ---------------------------------------------------------------------------------------------------------
# The tokenizer


def tokenizer_kind(tokenizer: Any) -> str:
    """`gpt2` (byte-level BPE) or `llama` (BPE with byte fallback, SentencePiece style), from its JSON."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise BiomambaError("GGUF export needs a fast (tokenizer.json) tokenizer")
    spec = json.loads(backend.to_str())
    model, decoder = spec.get("model") or {}, spec.get("decoder") or {}
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        return "llama"
    if model.get("type") == "BPE" and decoder.get("type") == "ByteLevel":
        return "gpt2"
    raise BiomambaError(
        f"GGUF export: tokenizer type {model.get('type')!r} (decoder {decoder.get('type')!r}) is not "
        "supported; byte-level BPE and Llama-style BPE with byte fallback are"
    )


def write_vocab(writer: Any, tokenizer: Any, n_vocab: int) -> None:
    """Tokens, types (and scores or merges), special ids and BOS/EOS behaviour, padded to `n_vocab`."""
    gguf = require_gguf()
    kind = tokenizer_kind(tokenizer)
    if len(tokenizer) > n_vocab:
        raise BiomambaError(f"GGUF export: tokenizer has {len(tokenizer)} tokens, the model only {n_vocab}")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        if kind == "gpt2":
            tokens, types = _bpe_tokens(gguf, tokenizer, n_vocab)
            writer.add_tokenizer_model("gpt2")
            writer.add_tokenizer_pre("gpt-2")
        else:
            vocab = gguf.LlamaHfVocab(Path(tmp))
            tokens, _, types = (list(x) for x in zip(*vocab.all_tokens(), strict=True))
            scores = _merge_scores(tokenizer, tokens)
            pad = range(len(tokens), n_vocab)
            tokens += [f"[PAD{i}]".encode() for i in pad]
            scores += [-1000.0] * len(pad)
            types += [gguf.TokenType.UNUSED] * len(pad)
            writer.add_tokenizer_model("llama")
            writer.add_tokenizer_pre("default")
            writer.add_token_scores(scores)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        special = gguf.SpecialVocab(Path(tmp), load_merges=kind == "gpt2", n_vocab=n_vocab)
    special.add_special_token.update(_adds_special(tokenizer))
    special.add_to_gguf(writer, quiet=True)


def _merge_scores(tokenizer: Any, tokens: list[bytes]) -> list[float]:
    """SentencePiece-style scores from the BPE merge order: llama.cpp's `llama` tokenizer merges the pair
    whose result scores highest, so -rank reproduces the BPE's merge order (the `gguf` package's
    LlamaHfVocab leaves a -1000 placeholder on every token, which tokenizes differently)."""
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"].get("merges") or []
    rank = {}
    for i, merge in enumerate(merges):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank.setdefault(left + right, i)
    out = []
    for token in tokens:
        text = token.decode("utf-8", errors="replace") if isinstance(token, bytes) else token
        out.append(-float(rank[text]) - 1.0 if text in rank else 0.0)
    return out


def _bpe_tokens(gguf: Any, tokenizer: Any, n_vocab: int) -> tuple[list[str], list[int]]:
    """As llama.cpp's converter: special added tokens are CONTROL, others USER_DEFINED, gaps [PAD<i>]."""
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        if i in added:
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _adds_special(tokenizer: Any) -> dict[str, bool]:
    """Whether encoding adds BOS / EOS, measured on the tokenizer itself rather than read from config."""
    ids = tokenizer("a")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    adds_bos = bos is not None and len(ids) > len(plain) and ids[0] == bos
    adds_eos = eos is not None and len(ids) > len(plain) and ids[-1] == eos
    return {"bos": bool(adds_bos), "eos": bool(adds_eos)}
