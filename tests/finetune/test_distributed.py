"""Fine-tuning under torchrun (gloo, 2 CPU processes): each rank trains on its own share of the rows, so DDP
gives the losses of one process with the same global batch. Before the fix every rank dealt the rows as rank 0
of 1 (the process group was joined only later, by the Trainer) and both trained on the same rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.factories.corpora import logged_losses
from tests.factories.recipes import sft_recipe, write_medqa
from tests.factories.scripts import torchrun

from biomamba.finetune.run import finetune

LOOP = {"micro_batch_size": 2, "global_batch_size": 4, "max_steps": 3, "lr": 3e-3, "schedule": "constant"}


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_ddp_finetune_deals_each_rank_its_rows_and_matches_one_process(tmp_path: Path, tiny_mamba2_dir: Path):
    data = write_medqa(tmp_path / "medqa.jsonl", 16, seed=0)
    recipe = {"seed": 0, **sft_recipe(tiny_mamba2_dir, data, train=LOOP)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        finetune(recipe, output_dir=tmp_path / "single", log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)
    ddp = {**recipe, "train": {**recipe["train"], "distributed": "ddp"}}
    torchrun([{"stage": "finetune", "recipe": ddp, "output_dir": str(tmp_path / "ddp")}], nproc=2)
    single = logged_losses(tmp_path / "single")
    assert len(single) == 3
    torch.testing.assert_close(logged_losses(tmp_path / "ddp"), single, rtol=1e-5, atol=1e-6)
