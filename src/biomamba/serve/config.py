"""Recipe section `serve`: where the local server listens and the limits it enforces.

Defaults are chosen for the privacy case biomamba targets (patient text on the premises): the server binds to
127.0.0.1, and request text is never logged unless `log_requests: true`.
"""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt

from biomamba.config import Section


class ServeConfig(Section):
    """Settings of `biomamba serve` (every key is also a flag)."""

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 exposes the model to the network.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 picks a free one).")
    model_name: str | None = Field(
        None, description="Name reported in /v1/models (default: the directory name)."
    )
    device: str = "cpu"
    dtype: str | None = Field(None, description="float32 / bfloat16 / float16 (default: as stored).")
    max_batch_size: PositiveInt = Field(8, description="Requests decoded together in one batch.")
    batch_wait_ms: float = Field(
        5.0, ge=0.0, description="How long the first request waits for others to join."
    )
    continuous_batching: bool = Field(
        True,
        description="Waiting requests join the running batch between decode steps (false: each batch runs "
        "to its end first, the old behaviour, kept as the latency benchmark's baseline).",
    )
    max_queue: PositiveInt = Field(64, description="Waiting requests beyond this are refused with 429.")
    max_request_bytes: PositiveInt = Field(1_000_000, description="Larger request bodies get 413.")
    max_prompt_tokens: PositiveInt = Field(
        4096, description="Longer prompts get 400 context_length_exceeded."
    )
    max_new_tokens: PositiveInt = Field(1024, description="Upper bound on a request's max_tokens.")
    default_max_tokens: PositiveInt = Field(
        128, description="max_tokens when a request gives none (capped at max_new_tokens)."
    )
    request_timeout_s: PositiveFloat = Field(
        600.0, description="A request waiting longer than this for its next token gets 504."
    )
    socket_timeout_s: PositiveFloat = Field(
        30.0, description="A connection silent this long (headers, body, or idle keep-alive) is closed."
    )
    listen_backlog: PositiveInt = Field(
        128, description="Connections the kernel queues before the server accepts them."
    )
    log_requests: bool = Field(False, description="Also log prompt and completion text (off: metadata only).")
