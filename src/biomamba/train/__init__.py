"""train stage: the one training loop (pretraining, continued pretraining, fine-tuning).

Public API:
- `train(recipe, ...) -> TrainSummary`: run a `biomamba train` recipe from Python (what the CLI calls).
- `Trainer(model, batches, loss_fn, config, output_dir, ...)` and `Trainer.fit(resume=...)`: the core loop,
  reused by the finetune stage with its own batch source and loss (see `biomamba.train.trainer`).
- `TrainConfig` (the `train:` recipe section), `PackedBatches` / `BatchSource` (data), `CausalLMLoss` /
  `LossOutput` (losses), `HeldoutPerplexity` (per-domain evaluation during training).
- `biomamba.train.checkpoint`: checkpoint layout, `latest_checkpoint`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biomamba.utils.lazy import lazy_exports

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and readers; never run
    from biomamba.train.batches import BatchSource, PackedBatches  # noqa: F401
    from biomamba.train.config import TrainConfig  # noqa: F401
    from biomamba.train.evaluate import HeldoutPerplexity  # noqa: F401
    from biomamba.train.loss import CausalLMLoss, LossOutput  # noqa: F401
    from biomamba.train.run import TrainSummary, train  # noqa: F401
    from biomamba.train.trainer import Trainer, TrainingAborted, TrainResult  # noqa: F401

_LOCATIONS = {
    "BatchSource": "biomamba.train.batches",
    "PackedBatches": "biomamba.train.batches",
    "CausalLMLoss": "biomamba.train.loss",
    "LossOutput": "biomamba.train.loss",
    "HeldoutPerplexity": "biomamba.train.evaluate",
    "TrainConfig": "biomamba.train.config",
    "Trainer": "biomamba.train.trainer",
    "TrainResult": "biomamba.train.trainer",
    "TrainingAborted": "biomamba.train.trainer",
    "TrainSummary": "biomamba.train.run",
    "train": "biomamba.train.run",
}

__all__ = sorted(_LOCATIONS)
__getattr__ = lazy_exports(__name__, _LOCATIONS)
