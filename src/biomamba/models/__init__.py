"""models stage: biomamba's pure-PyTorch Mamba2, and one interface over it and transformers' causal LMs.

Everything below is the contract other stages (train, eval, finetune, compress, serve) code against; the
long form with examples is docs/models.md. Names are imported lazily, so `import biomamba.models` is cheap.

Loading and saving
- ``load_model(name_or_path, *, dtype=None, device="cpu") -> nn.Module`` (eval mode). A local directory or a
  hub name (when online). Mamba2 in the transformers format (config.json ``model_type: mamba2`` +
  model.safetensors) or the mamba-ssm format (config.json with ``d_model``/``ssm_cfg`` + pytorch_model.bin,
  read with ``weights_only=True``) -> `Mamba2LMHeadModel`; a quantized directory (`biomamba.models.quantized`;
  ``dtype`` ignored) -> its model with the saved quantized layers; anything else -> transformers
  ``AutoModelForCausalLM`` (GPT-2, Llama, Mistral, ...). ``dtype``: torch dtype or "float32"/"bfloat16"/
  "float16"/"auto"; None keeps the stored dtype. Bad directories raise `biomamba.errors.CheckpointError`
  (missing/unexpected keys and wrong shapes are all listed).
- ``load_tokenizer(name_or_path)`` -> transformers tokenizer (mamba-ssm dirs without one: GPT-NeoX-20B's).
- ``save_model(model, out_dir, tokenizer=None, *, fmt="hf")`` writes atomically: Mamba2 as transformers'
  Mamba2 format (``fmt="mamba-ssm"`` for the other one), other models with ``save_pretrained``.
- ``create_model(config_or_preset, *, seed=0, dtype=None, device="cpu", **overrides)`` -> a fresh Mamba2
  (presets "130m", "370m", "780m", "1.3b", "2.7b", "tiny"; or a `Mamba2Config`; overrides e.g.
  ``vocab_size=len(tokenizer)``).
- ``family_spec(model)``, ``family_named(name)``, ``family_of_dir(model_dir)`` -> the family's `FamilySpec`
  (`biomamba.models.families`): ask it, never compare names. ``family(model) -> "mamba2" | "gpt2" | ...`` is
  its name (sees through torch.compile and peft; Mamba2's ``config.model_type`` is "biomamba-mamba2").

Calling a model (every family)
- ``out = model(input_ids=LongTensor[B, T])``; ``out.logits`` is ``[B, T, V]`` fp32 for Mamba2, where V is the
  padded vocabulary (a multiple of 16, >= len(tokenizer)): ignore/mask ids >= len(tokenizer).
- ``labels=LongTensor[B, T]`` adds ``out.loss``: mean next-token cross-entropy, labels shifted inside
  (transformers convention), -100 ignored.
- ``output_hidden_states=True``: ``out.hidden_states[-1]`` is the final-normed hidden state ``[B, T, d_model]``.

Mamba2 only (`Mamba2LMHeadModel`)
- ``seq_idx=LongTensor[B, T]``: document index per position; the conv and SSM state reset wherever it
  changes, so packed documents give exactly the logits they give alone. No padding masks: an
  ``attention_mask`` with zeros is refused (pack with seq_idx, or run rows of different lengths apart).
- ``cache = model.allocate_cache(batch_size)``; ``model(input_ids=x, cache=cache)`` processes ``x`` (any
  length) from the cached state and updates the cache in place (``cache.seqlen_offset`` counts tokens). One
  token per call is the O(1) recurrent step. ``cache.clone()``, ``cache.select(rows)`` (pick/repeat rows,
  copies), ``cache.repeat_interleave(n)``, ``Mamba2Cache.cat([...])``: encode a prompt once, then score several
  continuations from copies of its state.
- ``logits_to_keep=k`` computes logits for the last k positions only.
- ``model.config`` (`Mamba2Config`): d_model, n_layer, vocab_size (unpadded), padded_vocab_size, d_state,
  headdim, expand, ngroups, nheads, chunk_size (speed/memory only, not results), kernels (auto/torch/
  torch_compile/triton/fla: `biomamba.models.kernels`), recompute_scan (memory only), eos/bos/pad ids. ``model.gradient_checkpointing_enable()``, ``model.num_parameters()``.
- Works under bf16 autocast (decays, norms, states and the residual stream stay fp32) and torch.compile.

Generation (every family)
- ``generate(model, tokenizer, prompts, max_new_tokens=128, temperature=1.0, top_p=1.0, stop=None,
  greedy=False, *, seed=None, stop_at_eos=True)``: a str prompt -> one `Generation` (``text``, ``token_ids``,
  ``finish_reason`` "stop"/"eos"/"length", ``prompt_tokens``); a list -> a list. Mamba2 decodes from its
  cache (O(1) per token); transformers models with their KV cache and left padding.
- ``stream_generate(...)`` same arguments, yields `StreamEvent` (``index``, ``text`` delta, ``token_id``,
  ``finished``, ``finish_reason``); text that could still become a stop string is held back, never retracted.

Recipe section ``model:`` -> `biomamba.models.config.ModelConfig` (``name_or_path`` or ``preset`` + dims,
``dtype``, ``chunk_size``, ``kernels``, ``seed``); ``ModelConfig.build(device=..., vocab_size=...)``.
CLI: ``biomamba models list | info DIR | convert SRC DST --to hf|mamba-ssm | create --preset P``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biomamba.utils.lazy import lazy_exports

if TYPE_CHECKING:  # the public names: type checkers read them, `lazy_exports` imports them on first use
    from biomamba.models.checkpoint import convert_checkpoint  # noqa: F401
    from biomamba.models.families import family, family_named, family_of_dir, family_spec  # noqa: F401
    from biomamba.models.generation import Generation, StreamEvent, generate, stream_generate  # noqa: F401
    from biomamba.models.loading import create_model, load_model, load_tokenizer, save_model  # noqa: F401
    from biomamba.models.mamba2 import CausalLMOutput, Mamba2Cache, Mamba2Config, Mamba2LMHeadModel  # noqa: F401
    from biomamba.models.presets import count_parameters, preset_config  # noqa: F401

__all__, __getattr__ = lazy_exports(__name__, __file__)
