"""Runs inside a process that has mamba-ssm (the reference install, scripts/mamba-ssm-reference.sh) on its path.

It answers with mamba-ssm's own code only, so the contract tests check biomamba's writer against the
consumer, not against biomamba's reader. Usage: ``python mamba_ssm_probe.py REQUESTS.json ANSWER.json``;
each request is one of
- ``{"op": "fields"}``: the fields of mamba-ssm's ``MambaConfig`` dataclass;
- ``{"op": "load", "dir": D, "weights": F}``: ``MambaLMHeadModel.from_pretrained(D)`` (strict load), its
  state dict saved to F;
- ``{"op": "shapes", "config": {...}}``: key names and shapes of ``MambaLMHeadModel(MambaConfig(**config))``;
- ``{"op": "write", "config": {...}, "dir": D, "seed": S}``: a randomly initialised model saved with
  mamba-ssm's own ``save_pretrained``.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import torch
from mamba_ssm.models.config_mamba import MambaConfig
from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel


def _answer(request: dict) -> object:
    op = request["op"]
    if op == "fields":
        return [f.name for f in dataclasses.fields(MambaConfig)]
    if op == "load":
        model = MambaLMHeadModel.from_pretrained(request["dir"], device="cpu")
        torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, request["weights"])
        return {"n_params": sum(p.numel() for p in model.parameters())}
    if op == "shapes":
        with torch.device("meta"):
            model = MambaLMHeadModel(MambaConfig(**request["config"]))
        return {k: list(v.shape) for k, v in model.state_dict().items()}
    if op == "write":
        torch.manual_seed(request["seed"])
        model = MambaLMHeadModel(MambaConfig(**request["config"]), device="cpu")
        with torch.no_grad():  # move every tensor off its initial value so no mix-up can hide
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        model.save_pretrained(request["dir"])
        return {}
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    requests = json.loads(open(sys.argv[1], encoding="utf-8").read())
    answers = [_answer(r) for r in requests]
    with open(sys.argv[2], "w", encoding="utf-8") as fh:
        json.dump(answers, fh)


if __name__ == "__main__":
    main()
