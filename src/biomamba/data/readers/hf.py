"""`hf`: a `datasets` hub name (streamed; needs the network) or a local dataset directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biomamba.data.readers.base import Reader, SourceConfig, register
from biomamba.data.readers.jsonl import text_field
from biomamba.data.readers.streams import Document, FileReport
from biomamba.errors import DataError


@register
class HubDataset(Reader):
    """A `datasets` hub name (streamed) or local dataset directory; offline, a clear DataError."""

    name = "hf"

    def resolve(self, source: SourceConfig, domain: str) -> list[str]:
        return source.paths()  # dataset names, not files

    def read(self, path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
        for index, record in enumerate(_load(path, source)):
            if (value := text_field(record, source, report, f"record {index}")) is not None:
                key = source.id_field or "id"
                yield Document(id=str(record.get(key) or f"{path}:{index}"), text=value)


def _load(path: str, source: SourceConfig) -> Any:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets ships with the test extras
        raise DataError(
            f"source type 'hf' needs the `datasets` package: pip install datasets ({exc})"
        ) from None
    try:
        if Path(path).is_dir():
            dataset: Any = datasets.load_from_disk(path)
            if isinstance(dataset, datasets.DatasetDict):
                dataset = dataset[source.hf_split]
            return dataset
        return datasets.load_dataset(path, source.hf_config, split=source.hf_split, streaming=True)
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; the user needs one line
        raise DataError(f"hf dataset '{path}': cannot load ({type(exc).__name__}: {exc})") from None
