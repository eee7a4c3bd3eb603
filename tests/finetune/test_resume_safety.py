"""`biomamba finetune --resume` on a checkpoint someone else crafted: refused in one line, nothing executed.

Fine-tuning resumes through the trainer's checkpoint reader, so this is the same guarantee as
`biomamba train --resume` (tests/train/test_checkpoint_safety.py), checked through the finetune CLI.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.factories.pickles import plant_in_optimizer_metadata
from tests.factories.recipes import sft_recipe, write_medqa

from biomamba.cli.main import run
from biomamba.train.checkpoint import latest_checkpoint


def test_finetune_resume_refuses_a_hostile_optimizer_metadata(
    tiny_gpt2_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_medqa(tmp_path / "q.jsonl", 16, seed=0)
    train = {"lr": 1e-2, "max_steps": 2, "schedule": "constant", "save_every": 1}
    sections = sft_recipe(tiny_gpt2_dir, data, method="lora", train=train)
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(yaml.safe_dump({"name": "sft", "seed": 0, **sections}))
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as done:
        run(["finetune", str(recipe), "--output-dir", str(out)])
    assert done.value.code == 0, capsys.readouterr().err
    marker = tmp_path / "pwned"
    plant_in_optimizer_metadata(latest_checkpoint(out / "checkpoints"), marker)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        run(["finetune", str(recipe), "--output-dir", str(out), "--resume"])
    err = capsys.readouterr().err
    assert not marker.exists()
    assert done.value.code == 2 and "Traceback" not in err
    assert "optimizer/.metadata: refused to load: it references posix.system" in err.strip().splitlines()[-1]
