"""Mamba2 checkpoint formats: detect, read and write them, with exact key and shape checking.

Two on-disk formats hold the same weights:

- ``hf`` (biomamba's native format = transformers' Mamba2): ``config.json`` with ``model_type: mamba2``
  (hidden_size, num_hidden_layers, state_size, head_dim, n_groups, ...), ``model.safetensors`` (or a
  sharded ``model.safetensors.index.json``) with ``backbone.embeddings.weight`` and, only when untied,
  ``lm_head.weight``. transformers' ``Mamba2ForCausalLM.from_pretrained`` loads it unchanged.
- ``mamba-ssm`` (state-spaces/mamba2-*, released BioMamba checkpoints): ``config.json`` with d_model, n_layer,
  vocab_size, ssm_cfg, rms_norm, residual_in_fp32, fused_add_norm, pad_vocab_size_multiple, tie_embeddings
  (exactly the fields of mamba-ssm's ``MambaConfig`` dataclass, which rejects any other key); weights in
  ``pytorch_model.bin`` (read with ``torch.load(weights_only=True)``; never unpickled freely), keys
  ``backbone.embedding.weight``, ``backbone.layers.N.mixer.*``, ``backbone.norm_f.weight`` and
  ``lm_head.weight`` (present even when tied: ``MambaLMHeadModel`` loads strictly). biomamba writes exactly
  what ``state-spaces/mamba2-*`` on the hub holds; it also reads a ``model.safetensors`` in that layout.

A missing or unexpected key, or a wrong shape, raises `CheckpointError` listing them all.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from biomamba.errors import CheckpointError, refused_pickle
from biomamba.models.mamba2 import Mamba2Config, Mamba2LMHeadModel
from biomamba.utils.atomic import atomic_dir, write_json

FORMATS = ("hf", "mamba-ssm")
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
# A model directory's tokenizer: AutoTokenizer starts from one of the first files, the others complete it.
# merge, quantize and convert copy them all.
TOKENIZER_ENTRY_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_TOKENIZER_EXTRAS = ("special_tokens_map.json", "merges.txt", "added_tokens.json", "chat_template.jinja")
TOKENIZER_FILES = (*TOKENIZER_ENTRY_FILES, *_TOKENIZER_EXTRAS)


def has_tokenizer(model_dir: str | Path) -> bool:
    """Whether the directory holds a tokenizer (a file AutoTokenizer starts from)."""
    return any((Path(model_dir) / f).is_file() for f in TOKENIZER_ENTRY_FILES)


def copy_files(src: str | Path, dst: str | Path, names: tuple[str, ...] = TOKENIZER_FILES) -> list[str]:
    """Copy those of `names` that exist in directory `src` into `dst`; returns the names copied."""
    copied = [name for name in names if (Path(src) / name).is_file()]
    for name in copied:
        shutil.copy2(Path(src) / name, Path(dst) / name)
    return copied


# mamba-ssm ssm_cfg keys whose other values change the architecture in ways this implementation does not
# have, with the values it implements (and d_ssm: unset, or the whole d_inner, known from the config).
_SSM_SUPPORTED = {"D_has_hdim": (False,), "rmsnorm": (True,), "norm_before_gate": (False,)}


def read_config(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{model_dir}: no config.json (not a model directory)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def detect_format(model_dir: str | Path) -> str:
    """``"hf"`` (Mamba2 in transformers format), ``"mamba-ssm"``, or ``"transformers"`` (any other model)."""
    cfg = read_config(model_dir)
    if cfg.get("model_type") == "mamba2":
        return "hf"
    if "d_model" in cfg and "n_layer" in cfg:
        return "mamba-ssm"
    if "model_type" in cfg:
        return "transformers"
    raise CheckpointError(
        f"{Path(model_dir) / 'config.json'}: neither a transformers config (model_type) nor a mamba-ssm config (d_model, n_layer)"
    )


# ---- configs ----------------------------------------------------------------------------------------


# Mamba2Config fields stored under another name in transformers' Mamba2 config.json. Absent, a field takes
# Mamba2Config's default, which is transformers' too.
_HF_NAMES = {
    "d_state": "state_size",
    "d_conv": "conv_kernel",
    "expand": "expand",
    "headdim": "head_dim",
    "ngroups": "n_groups",
    "chunk_size": "chunk_size",
    "norm_epsilon": "layer_norm_epsilon",
    "residual_in_fp32": "residual_in_fp32",
    "bias": "use_bias",
    "conv_bias": "use_conv_bias",
    "dt_min": "time_step_min",
    "dt_max": "time_step_max",
    "dt_init_floor": "time_step_floor",
}
# The Mamba2Config fields mamba-ssm keeps in ``ssm_cfg`` under the same names (defaults as Mamba2Config's).
_SSM_CFG_FIELDS = (
    "d_state",
    "d_conv",
    "expand",
    "headdim",
    "ngroups",
    "chunk_size",
    "bias",
    "conv_bias",
    "dt_min",
    "dt_max",
    "dt_init_floor",
    "A_init_range",
)
_DEFAULTS = Mamba2Config()


def _read_fields(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The Mamba2Config fields `data` holds (field -> its key in `data`), each cast to the field's type."""
    return {ours: type(getattr(_DEFAULTS, ours))(data[key]) for ours, key in names.items() if key in data}


@contextlib.contextmanager
def _config_errors(source: str) -> Iterator[None]:
    """A missing key or a value of the wrong kind in a config.json, as a CheckpointError naming the file."""
    try:
        yield
    except KeyError as exc:
        raise CheckpointError(f"{source}: missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def _dt_limit(limit: Any) -> tuple[float, float]:
    """dt's (low, high) clamp; transformers' JSON writes an infinite bound as {"__float__": "Infinity"}."""
    low, high = (float(v["__float__"] if isinstance(v, dict) else v) for v in limit[:2])
    return low, high


def config_from_hf(data: dict[str, Any], source: str = "config.json") -> Mamba2Config:
    with _config_errors(source):
        vocab = int(data["vocab_size"])
        true_vocab = int(data.get("biomamba_vocab_size", vocab))
        multiple = int(data.get("pad_vocab_size_multiple", 16))
        if (true_vocab + multiple - 1) // multiple * multiple != vocab:
            true_vocab, multiple = vocab, 1
        hidden = int(data["hidden_size"])
        eos = data.get("eos_token_id")  # transformers allows a list; generation stops at the first
        fields = _read_fields(data, _HF_NAMES)
        head_dim, expand = fields.get("headdim", _DEFAULTS.headdim), fields.get("expand", _DEFAULTS.expand)
        if "num_heads" in data and int(data["num_heads"]) * head_dim != expand * hidden:
            raise CheckpointError(f"{source}: num_heads*head_dim != expand*hidden_size")
        return Mamba2Config(
            d_model=hidden,
            n_layer=int(data["num_hidden_layers"]),
            vocab_size=true_vocab,
            pad_vocab_size_multiple=multiple,
            tie_embeddings=bool(data.get("tie_word_embeddings", False)),  # transformers' default
            dt_limit=_dt_limit(data.get("time_step_limit", (0.0, math.inf))),
            bos_token_id=data.get("bos_token_id"),
            eos_token_id=eos[0] if isinstance(eos, list) and eos else eos,
            pad_token_id=data.get("pad_token_id"),
            **fields,
        )


def config_to_hf(cfg: Mamba2Config) -> dict[str, Any]:
    """transformers Mamba2Config fields (plus the unpadded vocabulary, which transformers ignores)."""
    return {
        "architectures": ["Mamba2ForCausalLM"],
        "model_type": "mamba2",
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layer,
        "vocab_size": cfg.padded_vocab_size,
        "biomamba_vocab_size": cfg.vocab_size,
        "pad_vocab_size_multiple": cfg.pad_vocab_size_multiple,
        **{key: getattr(cfg, ours) for ours, key in _HF_NAMES.items()},
        "num_heads": cfg.nheads,
        "tie_word_embeddings": cfg.tie_embeddings,
        "hidden_act": "silu",
        "time_step_limit": [cfg.dt_limit[0], _json_float(cfg.dt_limit[1])],
        "rescale_prenorm_residual": False,  # an init-time flag; True makes transformers rescale loaded weights
        "initializer_range": cfg.initializer_range,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "use_cache": True,
    }


def _json_float(value: float) -> Any:
    return {"__float__": "Infinity"} if math.isinf(value) and value > 0 else value


def config_from_ssm(data: dict[str, Any], source: str = "config.json") -> Mamba2Config:
    ssm = dict(data.get("ssm_cfg") or {})
    layer = ssm.pop("layer", "Mamba1")
    if layer != "Mamba2":
        raise CheckpointError(f"{source}: ssm_cfg.layer is {layer!r}; only Mamba2 checkpoints are supported")
    problems = []
    if int(data.get("d_intermediate", 0) or 0) != 0:
        problems.append("d_intermediate > 0 (MLP blocks)")
    if data.get("attn_layer_idx"):
        problems.append("attn_layer_idx (attention layers)")
    if not data.get("rms_norm", True):
        problems.append("rms_norm=false (LayerNorm)")
    d_ssm = (None, ssm.get("expand", 2) * data.get("d_model", 0))
    for key, supported in {**_SSM_SUPPORTED, "d_ssm": d_ssm}.items():
        if key in ssm and ssm[key] not in supported:
            problems.append(f"ssm_cfg.{key}={ssm[key]!r}")
    if problems:
        raise CheckpointError(f"{source}: unsupported mamba-ssm architecture: " + ", ".join(problems))
    with _config_errors(source):
        return Mamba2Config(
            d_model=int(data["d_model"]),
            n_layer=int(data["n_layer"]),
            vocab_size=int(data["vocab_size"]),
            pad_vocab_size_multiple=int(data.get("pad_vocab_size_multiple", 8)),
            norm_epsilon=float(data.get("norm_epsilon", 1e-5)),
            residual_in_fp32=bool(data.get("residual_in_fp32", True)),
            tie_embeddings=bool(data.get("tie_embeddings", True)),
            dt_limit=_dt_limit(ssm.get("dt_limit", (0.0, math.inf))),
            **_read_fields(ssm, {name: name for name in _SSM_CFG_FIELDS}),
        )


# mamba-ssm's RMSNorm epsilon: MambaConfig has no field for it, so only this value can be written.
SSM_NORM_EPSILON = 1e-5


def config_to_ssm(cfg: Mamba2Config) -> dict[str, Any]:
    """mamba-ssm's ``config.json``: the fields of its ``MambaConfig`` dataclass and nothing else
    (``MambaLMHeadModel.from_pretrained`` passes the file as keyword arguments to it)."""
    if not math.isclose(cfg.norm_epsilon, SSM_NORM_EPSILON, rel_tol=1e-9):
        raise CheckpointError(
            f"norm_epsilon={cfg.norm_epsilon} cannot be written in the mamba-ssm format "
            f"(mamba-ssm's MambaConfig has no such field and always uses {SSM_NORM_EPSILON}); use --to hf"
        )
    ssm_cfg: dict[str, Any] = {"layer": "Mamba2"}
    for key in (*_SSM_CFG_FIELDS, "dt_limit"):  # what differs from the defaults, which are mamba-ssm's
        if getattr(cfg, key) != getattr(_DEFAULTS, key):
            value = getattr(cfg, key)
            ssm_cfg[key] = list(value) if isinstance(value, tuple) else value
    return {
        "d_model": cfg.d_model,
        "d_intermediate": 0,
        "n_layer": cfg.n_layer,
        "vocab_size": cfg.vocab_size,
        "ssm_cfg": ssm_cfg,
        "attn_layer_idx": [],
        "attn_cfg": {},
        "rms_norm": True,
        "residual_in_fp32": cfg.residual_in_fp32,
        "fused_add_norm": True,
        "pad_vocab_size_multiple": cfg.pad_vocab_size_multiple,
        "tie_embeddings": cfg.tie_embeddings,
    }


# ---- weights ----------------------------------------------------------------------------------------


def read_weights(model_dir: str | Path) -> dict[str, Tensor]:
    """All tensors of a model directory (safetensors, sharded safetensors, or a weights-only torch pickle)."""
    root = Path(model_dir)
    from safetensors.torch import load_file

    try:
        if (root / SAFETENSORS).is_file():
            return load_file(str(root / SAFETENSORS))
        if (root / SAFETENSORS_INDEX).is_file():
            index = json.loads((root / SAFETENSORS_INDEX).read_text(encoding="utf-8"))
            weights: dict[str, Tensor] = {}
            for shard in sorted(set(index["weight_map"].values())):
                weights.update(load_file(str(root / shard)))
            return weights
        if (root / TORCH_BIN).is_file():
            state = torch.load(root / TORCH_BIN, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise CheckpointError(
                    f"{root / TORCH_BIN}: expected a state dict, got {type(state).__name__}"
                )
            return state
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt file, refused pickle, bad index
        refused = refused_pickle(root / TORCH_BIN, exc)
        if refused is not None:
            raise refused from None
        raise CheckpointError(f"{root}: cannot read weights ({type(exc).__name__}: {exc})") from None
    raise CheckpointError(f"{root}: no weights ({SAFETENSORS}, {SAFETENSORS_INDEX} or {TORCH_BIN})")


def ssm_to_hf_keys(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k.replace("backbone.embedding.", "backbone.embeddings.", 1): v for k, v in weights.items()}


def hf_to_ssm_keys(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k.replace("backbone.embeddings.", "backbone.embedding.", 1): v for k, v in weights.items()}


def load_state_strict(model: Mamba2LMHeadModel, weights: dict[str, Tensor], source: str) -> None:
    """Copy ``weights`` into ``model``; any missing/unexpected key or wrong shape is a CheckpointError.

    A tied model accepts a checkpoint with or without ``lm_head.weight`` (mamba-ssm writes it, transformers
    drops it); when present it must equal the embeddings, otherwise the checkpoint was untied."""
    expected = model.state_dict()
    weights = dict(weights)
    tied = model.config.tie_embeddings
    if tied:
        expected.pop("lm_head.weight", None)
        head = weights.pop("lm_head.weight", None)
        emb = weights.get("backbone.embeddings.weight")
        if head is not None and emb is not None and head.shape == emb.shape and not torch.equal(head, emb):
            raise CheckpointError(
                f"{source}: config says tied embeddings but lm_head.weight differs from the embeddings"
            )
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(
        f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(weights)
        if tuple(weights[k].shape) != tuple(expected[k].shape)
    )
    problems = {
        "missing keys": ", ".join(missing),
        "unexpected keys": ", ".join(unexpected),
        "wrong shapes": "; ".join(wrong),
    }
    parts = [f"{what}: {listed}" for what, listed in problems.items() if listed]
    if parts:
        raise CheckpointError(f"{source}: checkpoint does not match the config: " + " | ".join(parts))
    # assign: the model was built without initialisation; take the checkpoint's tensors as they are
    model.load_state_dict({k: v.contiguous() for k, v in weights.items()}, strict=False, assign=True)
    if tied:
        model.lm_head.weight = model.backbone.embeddings.weight


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Build modules with uninitialised storage (the checkpoint overwrites every tensor anyway).

    Random init of a multi-billion-parameter model costs tens of seconds, and building on the meta device
    drags in torch's reference-op machinery (seconds of imports); this is the cheap third way."""
    classes = (nn.Linear, nn.Embedding, nn.Conv1d)
    saved = [cls.reset_parameters for cls in classes]
    try:
        for cls in classes:
            cls.reset_parameters = lambda self: None  # type: ignore[method-assign]
        yield
    finally:
        for cls, original in zip(classes, saved, strict=True):
            cls.reset_parameters = original  # type: ignore[method-assign]


def mamba2_config(model_dir: str | Path) -> Mamba2Config:
    """The `Mamba2Config` of a Mamba2 directory in either format (CheckpointError for any other)."""
    fmt, data, source = detect_format(model_dir), read_config(model_dir), f"{Path(model_dir)}/config.json"
    if fmt == "hf":
        return config_from_hf(data, source)
    if fmt == "mamba-ssm":
        return config_from_ssm(data, source)
    raise CheckpointError(
        f"{Path(model_dir)}: not a Mamba2 checkpoint (model_type {data.get('model_type')!r})"
    )


def load_mamba2(
    model_dir: str | Path, *, dtype: torch.dtype | None = None, device: str | torch.device = "cpu"
) -> Mamba2LMHeadModel:
    """Load a Mamba2 directory in either format into biomamba's model (eval mode)."""
    cfg = mamba2_config(model_dir)
    source = str(Path(model_dir))
    weights = ssm_to_hf_keys(read_weights(model_dir))
    with skip_init():
        model = Mamba2LMHeadModel(cfg)
    load_state_strict(model, weights, source)
    model.eval()
    return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)


def _weights_for_save(model: Mamba2LMHeadModel, fmt: str) -> dict[str, Tensor]:
    """The state dict as the format's consumer loads it.

    hf: a tied ``lm_head.weight`` is left out (safetensors refuses shared storage; transformers re-ties).
    mamba-ssm: ``lm_head.weight`` is always present, since ``MambaLMHeadModel`` loads strictly, tied or not;
    torch.save keeps the tie as shared storage, as the hub's ``pytorch_model.bin`` files do."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if fmt == "mamba-ssm":
        state = hf_to_ssm_keys(state)
        if model.config.tie_embeddings:
            state["lm_head.weight"] = state["backbone.embedding.weight"]
    elif model.config.tie_embeddings:
        state.pop("lm_head.weight", None)
    return state


def save_mamba2(
    model: Mamba2LMHeadModel,
    out_dir: str | Path,
    *,
    fmt: str = "hf",
    tokenizer: Any = None,
    tokenizer_from: str | Path | None = None,
) -> Path:
    """Write ``model`` (and optionally its tokenizer) atomically as a directory in ``fmt``.

    hf: ``model.safetensors``. mamba-ssm: ``pytorch_model.bin``, the only weights file mamba-ssm's
    ``MambaLMHeadModel.from_pretrained`` reads."""
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    from safetensors.torch import save_file

    cfg = model.config
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        if fmt == "hf":
            dtype = str(model.dtype).removeprefix("torch.")
            write_json(tmp / "config.json", {**config_to_hf(cfg), "dtype": dtype})
            save_file(_weights_for_save(model, fmt), str(tmp / SAFETENSORS), metadata={"format": "pt"})
        else:
            write_json(tmp / "config.json", config_to_ssm(cfg))
            torch.save(_weights_for_save(model, fmt), tmp / TORCH_BIN)
        if tokenizer is not None:
            from biomamba.tokenizer import save_tokenizer

            save_tokenizer(tokenizer, tmp)
        elif tokenizer_from is not None:
            copy_files(tokenizer_from, tmp, (*TOKENIZER_FILES, "generation_config.json"))
    return out


def convert_checkpoint(src: str | Path, dst: str | Path, *, to: str) -> Path:
    """Convert a Mamba2 directory between the ``hf`` and ``mamba-ssm`` formats (weights bit-identical,
    dtype kept); tokenizer files are carried along."""
    if to not in FORMATS:
        raise CheckpointError(f"unknown target format {to!r} (choose from {', '.join(FORMATS)})")
    if Path(src).resolve() == Path(dst).resolve():
        raise CheckpointError(f"{dst}: the output directory must differ from the input")
    model = load_mamba2(src)
    return save_mamba2(model, dst, fmt=to, tokenizer_from=src)
