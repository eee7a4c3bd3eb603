"""biomamba: turn general language models into biomedical ones, and prove what it gained and cost.

The package is organised as one sub-package per pipeline stage (data, tokenizer, models, train, eval,
finetune, compress, serve, report). Stages exchange files on disk whose formats are documented in
docs/formats.md, so any stage can be re-run, replaced or inspected on its own.
"""

__version__ = "0.1.0"
