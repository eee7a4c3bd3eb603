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

if TYPE_CHECKING:  # the public names: type checkers read them, `lazy_exports` imports them on first use
    from biomamba.train.batches import BatchSource, PackedBatches  # noqa: F401
    from biomamba.train.config import TrainConfig  # noqa: F401
    from biomamba.train.evaluate import HeldoutPerplexity  # noqa: F401
    from biomamba.train.loss import CausalLMLoss, LossOutput  # noqa: F401
    from biomamba.train.run import TrainSummary, train  # noqa: F401
    from biomamba.train.trainer import Trainer, TrainingAborted, TrainResult  # noqa: F401

__all__, __getattr__ = lazy_exports(__name__, __file__)
