"""Decode throughput of Mamba2 on the SAME weights: biomamba's recurrent cache vs transformers' generate.

Greedy decoding of ``--new-tokens`` tokens after a ``--prompt-len`` prompt, at each ``--batch`` size. biomamba
runs its cached decode loop (prefill once, then one O(1) recurrent step per token, exactly what
`biomamba.models.generate` does without the text decoding); transformers runs ``Mamba2ForCausalLM.generate``
(do_sample=False, min_new_tokens = max_new_tokens so both produce the same number of tokens). Reports new
tokens/s (batch x new tokens / wall time, prefill included) and checks the two produce the same tokens.

    python benchmarks/models_generate.py --preset 130m --device cuda --batch 1 16 --new-tokens 512   # GPU
    python benchmarks/models_generate.py --tiny --device cpu                                          # seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from biomamba.models import create_model, load_model, save_model
from biomamba.models.mamba2 import Mamba2Config


@torch.no_grad()
def biomamba_decode(model: Any, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    cache = model.allocate_cache(ids.shape[0])
    logits = model(input_ids=ids, cache=cache, logits_to_keep=1).logits[:, -1]
    out = []
    for _ in range(new_tokens):
        token = logits.argmax(-1)
        out.append(token)
        logits = model(input_ids=token[:, None], cache=cache, logits_to_keep=1).logits[:, -1]
    return torch.stack(out, 1)


@torch.no_grad()
def transformers_decode(model: Any, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    out = model.generate(
        ids,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )
    return out[:, ids.shape[1] :]


def _time(fn: Any, cuda: bool) -> tuple[torch.Tensor, float]:
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="130m")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype", default=None, help="bfloat16 / float32 (default: bf16 on CUDA, fp32 on CPU)"
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.new_tokens = min(args.new_tokens, 16)
        args.batch = [min(b, 4) for b in args.batch]
    cuda = args.device.startswith("cuda")
    dtype = args.dtype or ("bfloat16" if cuda else "float32")
    if args.tiny:
        cfg = Mamba2Config(d_model=64, n_layer=2, vocab_size=256, d_state=16, headdim=16, chunk_size=32)
    else:
        from biomamba.models.presets import preset_config

        cfg = preset_config(args.preset)
    from transformers import Mamba2ForCausalLM

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        save_model(create_model(cfg, seed=0), Path(tmp) / "m")
        ours = load_model(Path(tmp) / "m", dtype=dtype, device=args.device)
        theirs = Mamba2ForCausalLM.from_pretrained(Path(tmp) / "m", dtype=ours.dtype).to(args.device).eval()
        for batch in args.batch:
            ids = torch.randint(
                0, 256, (batch, args.prompt_len), generator=torch.Generator().manual_seed(batch)
            )
            ids = ids.to(args.device)
            biomamba_decode(ours, ids, 2)  # warm-up
            transformers_decode(theirs, ids, 2)
            a, t_ours = _time(lambda ids=ids: biomamba_decode(ours, ids, args.new_tokens), cuda)
            b, t_theirs = _time(lambda ids=ids: transformers_decode(theirs, ids, args.new_tokens), cuda)
            same = float((a == b).float().mean())
            row = {
                "batch": batch,
                "new_tokens": args.new_tokens,
                "biomamba_tokens_per_s": batch * args.new_tokens / t_ours,
                "transformers_tokens_per_s": batch * args.new_tokens / t_theirs,
                "speedup": t_theirs / t_ours,
                "same_tokens_fraction": same,
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    device_name = torch.cuda.get_device_name() if cuda else "CPU"
    command = "python benchmarks/models_generate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"`{command}` on {device_name} ({time.strftime('%Y-%m-%d')}), {dtype}, prompt {args.prompt_len}\n")
    print("| batch | new tokens | biomamba tok/s | transformers tok/s | speedup | same tokens |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']} | {r['new_tokens']} | {r['biomamba_tokens_per_s']:,.0f} | "
            f"{r['transformers_tokens_per_s']:,.0f} | {r['speedup']:.2f}x | {100 * r['same_tokens_fraction']:.0f}% |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
