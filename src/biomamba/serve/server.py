"""A local, OpenAI-compatible HTTP server: /v1/completions and /v1/chat/completions (JSON or SSE streaming).

Built on the standard library's ThreadingHTTPServer: no web framework to install or keep patched, one
thread per connection, and the model work funnelled into one `BatchingEngine` that batches concurrent
requests. Every refusal is a 4xx JSON body in OpenAI's error shape ({"error": {"message", "type", "param",
"code"}}), so OpenAI client libraries surface it as is.

Privacy: logs carry method, path, status, token counts and timing; prompt and completion text are logged
only with `log_requests=True`.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from biomamba.errors import BiomambaError
from biomamba.serve.config import ServeConfig
from biomamba.serve.engine import BatchingEngine, GenerationRequest, TextStream, eos_id

log = logging.getLogger("biomamba.serve")

FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


class ApiError(Exception):
    """A request the server refuses: HTTP status plus OpenAI-style error fields."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


class ContextLengthError(BiomambaError):
    """The prompt plus the tokens to generate do not fit in the model's context."""


def context_limit(model: Any) -> int | None:
    """Most positions (prompt + generated tokens) the model can take; None where there is no such limit.

    transformers models declare it in their config (GPT-2 `n_positions`, Llama/Mistral
    `max_position_embeddings`); biomamba's Mamba2 is recurrent and has none.
    """
    try:
        from biomamba.models import family

        if family(model) == "mamba2":
            return None
    except (ImportError, TypeError):
        pass
    config = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None) if config is not None else None
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(limit: int | None, prompt_tokens: int, max_new_tokens: int) -> None:
    """Raise `ContextLengthError` (naming the limit) when prompt + max_new_tokens exceed `limit`."""
    if limit is not None and prompt_tokens + max_new_tokens > limit:
        raise ContextLengthError(
            f"this model's maximum context length is {limit} tokens, but {prompt_tokens + max_new_tokens} "
            f"were requested ({prompt_tokens} in the prompt, {max_new_tokens} to generate): shorten the "
            "prompt or ask for fewer tokens"
        )


class _Sampling(BaseModel):
    """Fields shared by both endpoints. Unknown OpenAI fields are accepted and ignored (clients send many)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: Literal[1] = 1
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: Literal[False] = False
    logprobs: None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("send one prompt per request (a list of exactly one string)")
        return value

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)


@dataclass
class ServerState:
    """What the handler threads share: the tokenizer, the engine and the limits."""

    tokenizer: Any
    engine: BatchingEngine
    config: ServeConfig
    model_name: str
    context_limit: int | None = None  # the model's maximum positions (None: no limit, as for Mamba2)


class Handler(BaseHTTPRequestHandler):
    server_version = "biomamba"
    protocol_version = "HTTP/1.1"
    state: ServerState  # set on the subclass made by `make_server`

    # ---- routing -----------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch(
            {
                "/health": lambda: self._json(200, {"status": "ok"}),
                "/v1/models": self._models,
            }
        )

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch({"/v1/completions": self._completions, "/v1/chat/completions": self._chat})

    def _dispatch(self, routes: dict[str, Any]) -> None:
        started = time.monotonic()
        self._meta: dict[str, Any] = {}
        try:
            path = self.path.split("?", 1)[0]
            handler = routes.get(path)
            if handler is None:
                known = path in ("/health", "/v1/models", "/v1/completions", "/v1/chat/completions")
                if known:
                    raise ApiError(
                        405, f"method {self.command} not allowed on {path}", code="method_not_allowed"
                    )
                raise ApiError(404, f"no such endpoint: {path}", code="not_found")
            handler()
        except ApiError as exc:
            if self._meta.get("streaming"):  # headers already sent: all we can do is end the stream
                log.warning("stream ended early: %s", exc.message)
                return
            self._discard_body()
            self._json(exc.status, exc.body())
        except (BrokenPipeError, ConnectionResetError):
            self._meta["status"] = 499  # the client went away
        except Exception:  # a bug: keep the server alive, answer 500, log the traceback (no request text)
            log.exception("internal error on %s", self.path)
            if self._meta.get("streaming"):
                return
            self._json(500, ApiError(500, "internal server error").body())
        finally:
            self._log_access(started)

    # ---- endpoints ---------------------------------------------------------------------------------
    def _models(self) -> None:
        model = {"id": self.state.model_name, "object": "model", "created": 0, "owned_by": "biomamba"}
        self._json(200, {"object": "list", "data": [model]})

    def _completions(self) -> None:
        request = self._parse(CompletionRequest)
        self._generate(request, request.text(), chat=False)

    def _chat(self) -> None:
        request = self._parse(ChatRequest)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        tokenizer = self.state.tokenizer
        template = getattr(tokenizer, "chat_template", None) or FALLBACK_CHAT_TEMPLATE
        prompt = tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=True
        )
        self._generate(request, prompt, chat=True)

    # ---- generation ----------------------------------------------------------------------------------
    def _generate(self, request: _Sampling, prompt: str, chat: bool) -> None:
        cfg, tokenizer = self.state.config, self.state.tokenizer
        max_tokens = (
            request.max_completion_tokens
            or request.max_tokens
            or min(cfg.default_max_tokens, cfg.max_new_tokens)
        )
        if max_tokens > cfg.max_new_tokens:
            raise ApiError(
                400,
                f"max_tokens {max_tokens} exceeds this server's limit of {cfg.max_new_tokens}",
                param="max_tokens",
                code="max_tokens_exceeded",
            )
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ApiError(400, "the prompt is empty", param="prompt", code="empty_prompt")
        if len(ids) > cfg.max_prompt_tokens:
            raise ApiError(
                400,
                f"the prompt has {len(ids)} tokens; this server accepts at most {cfg.max_prompt_tokens}",
                param="messages" if chat else "prompt",
                code="context_length_exceeded",
            )
        try:
            check_context(self.state.context_limit, len(ids), max_tokens)
        except ContextLengthError as exc:
            prompt_fits = len(ids) < (self.state.context_limit or 0)
            param = "max_tokens" if prompt_fits else ("messages" if chat else "prompt")
            raise ApiError(400, str(exc), param=param, code="context_length_exceeded") from None
        eos = eos_id(tokenizer)
        job = GenerationRequest(
            prompt_ids=ids,
            max_new_tokens=max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            stop_token_ids=frozenset({eos} - {None}),
        )
        if not self.state.engine.submit(job):
            raise ApiError(429, "too many requests are waiting; retry later", code="server_busy")
        self._meta.update(prompt_tokens=len(ids))
        if cfg.log_requests:
            log.info("prompt: %r", prompt)
        pieces = self._pieces(job, TextStream(tokenizer, request.stops()), max_tokens)
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        try:
            if request.stream:
                self._stream(ident, pieces, chat)
            else:
                self._complete(ident, pieces, chat, len(ids))
        finally:
            job.cancelled.set()

    def _pieces(
        self, job: GenerationRequest, text: TextStream, max_tokens: int
    ) -> Iterator[tuple[str, str | None]]:
        """(text piece, finish_reason or None) pairs; the last pair carries the finish reason."""
        timeout = self.state.config.request_timeout_s
        count = 0
        try:
            for token in job.stream(timeout=timeout):
                count += 1
                piece = text.feed(token)
                if text.stopped:
                    job.cancelled.set()
                    self._meta["completion_tokens"] = count
                    yield piece, "stop"
                    return
                if piece:
                    yield piece, None
        except queue.Empty:
            raise ApiError(504, f"generation took longer than {timeout:.0f}s", code="timeout") from None
        self._meta["completion_tokens"] = count
        yield text.flush(), "length" if count >= max_tokens else "stop"

    def _complete(
        self, ident: str, pieces: Iterator[tuple[str, str | None]], chat: bool, n_prompt: int
    ) -> None:
        pairs = list(pieces)
        text = "".join(piece for piece, _ in pairs)
        reason = pairs[-1][1] if pairs else "stop"
        if self.state.config.log_requests:
            log.info("completion: %r", text)
        n_completion = self._meta.get("completion_tokens", 0)
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        usage = {
            "prompt_tokens": n_prompt,
            "completion_tokens": n_completion,
            "total_tokens": n_prompt + n_completion,
        }
        self._json(200, {**self._envelope(ident, chat, stream=False), "choices": [choice], "usage": usage})

    def _stream(self, ident: str, pieces: Iterator[tuple[str, str | None]], chat: bool) -> None:
        """Server-sent events, one `data:` line per piece, ending with `data: [DONE]` (OpenAI's framing)."""
        first = next(pieces)  # errors before the first token still become a JSON 4xx/5xx answer
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self._meta.update(status=200, streaming=True)
        envelope = self._envelope(ident, chat, stream=True)
        if chat:
            self._event(
                {**envelope, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
            )
        for piece, reason in _chain(first, pieces):
            if chat:
                delta = {"content": piece} if piece else {}
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": reason}
            else:
                choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": reason}
            if piece or reason:
                self._event({**envelope, "choices": [choice]})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _envelope(self, ident: str, chat: bool, stream: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if stream else "chat.completion") if chat else "text_completion"
        return {"id": ident, "object": kind, "created": int(time.time()), "model": self.state.model_name}

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")
        self.wfile.flush()

    # ---- request/response plumbing ---------------------------------------------------------------------
    def _parse(self, schema: type[BaseModel]) -> Any:
        if "json" not in (self.headers.get("Content-Type") or "application/json"):
            raise ApiError(415, "send the request body as application/json", code="unsupported_media_type")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise ApiError(411, "Content-Length is required", code="length_required")
        try:
            length = int(length_header)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number", code="bad_request") from None
        limit = self.state.config.max_request_bytes
        if length > limit:
            self.close_connection = True  # the unread body must not be parsed as the next request
            raise ApiError(
                413, f"request body of {length} bytes exceeds the limit of {limit}", code="request_too_large"
            )
        raw = self.rfile.read(length)
        self._body_read = True
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the body is not valid JSON ({exc})", code="invalid_json") from None
        if not isinstance(payload, dict):
            raise ApiError(400, "the body must be a JSON object", code="invalid_json")
        try:
            return schema.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "missing":
                message = "required field is missing"
            raise ApiError(400, f"{param}: {message}", param=param, code="invalid_value") from None

    def _discard_body(self) -> None:
        """Drop an unread request body so a kept-alive connection stays in sync."""
        if getattr(self, "_body_read", False) or self.close_connection:
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if 0 < length <= self.state.config.max_request_bytes:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self._meta["status"] = status

    def _log_access(self, started: float) -> None:
        meta = self._meta
        log.info(
            "%s %s %s %.1fms prompt_tokens=%s completion_tokens=%s",
            self.command,
            self.path.split("?", 1)[0],
            meta.get("status", "-"),
            1000 * (time.monotonic() - started),
            meta.get("prompt_tokens", "-"),
            meta.get("completion_tokens", "-"),
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Silence http.server's default stderr line (it would print the raw request line)."""


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def make_server(
    model: Any, tokenizer: Any, config: ServeConfig, model_name: str, decoder: Any = None
) -> tuple[ThreadingHTTPServer, BatchingEngine]:
    """Bind the server (not yet serving) and start its engine; the caller runs serve_forever.

    `decoder` replaces the PyTorch `BatchDecoder` (e.g. `serve.gguf_engine.GgufDecoder` for llama.cpp)."""
    from biomamba.serve.engine import BatchDecoder

    vocab = len(tokenizer) if hasattr(tokenizer, "__len__") else None
    engine = BatchingEngine(
        decoder or BatchDecoder(model, vocab_size=vocab),
        max_batch_size=config.max_batch_size,
        batch_wait_s=config.batch_wait_ms / 1000,
        max_queue=config.max_queue,
    )
    state = ServerState(tokenizer, engine, config, model_name, context_limit(model))
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer((config.host, config.port), handler)
    server.daemon_threads = True
    return server, engine


class RunningServer:
    """A server on a background thread, for tests and notebooks: `with RunningServer(...) as url: ...`."""

    def __init__(self, model: Any, tokenizer: Any, config: ServeConfig, model_name: str = "biomamba") -> None:
        self.server, self.engine = make_server(model, tokenizer, config, model_name)
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> RunningServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.engine.close()
        self._thread.join(10)
