"""A local, OpenAI-compatible HTTP server: /v1/completions and /v1/chat/completions (JSON or SSE streaming).

Built on the standard library's ThreadingHTTPServer: no web framework to install or keep patched, one
thread per connection, and the model work funnelled into one `BatchingEngine` that batches concurrent
requests. Every refusal is a 4xx JSON body in OpenAI's error shape ({"error": {"message", "type", "param",
"code"}}), so OpenAI client libraries surface it as is.

Robustness: request fields are validated strictly (no string or boolean is coerced into a number), bodies
are bounded in size and nesting depth, every socket has a timeout, and any fault inside one request fails
that request only; `/health` answers 503 should the engine ever stop. See docs/serve.md for the list.

Privacy: logs carry method, path, status, token counts and timing; prompt and completion text are logged
only with `log_requests=True`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from biomamba.errors import BiomambaError
from biomamba.models.decoding import SEED_MAX, SEED_MIN, GenerationRequest
from biomamba.models.generation import TextStream
from biomamba.serve.config import ServeConfig
from biomamba.serve.engine import BatchingEngine, Engine, EngineStopped, eos_id

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
    `max_position_embeddings`); a family without one (`FamilySpec.positional_limit`: biomamba's Mamba2 is
    recurrent) has none. Engines that are no torch model (llama.cpp's) are read from their config alone.
    """
    from biomamba.models.families import GENERIC, family_spec

    if not family_spec(model, default=GENERIC).positional_limit:
        return None
    config = getattr(model, "config", None)  # None (no config): every getattr below gives None too
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
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


MAX_JSON_DEPTH = 32  # OpenAI request bodies nest a few levels; deeper is refused before validation
TOO_DEEP = f"the body nests deeper than {MAX_JSON_DEPTH} levels"
CONTENT_LENGTH = re.compile(r"[0-9]{1,12}")  # plain decimal digits: no sign, no spaces, no `1_0`
ROUTES = ("/health", "/v1/models", "/v1/completions", "/v1/chat/completions")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool = False


class _Sampling(BaseModel):
    """Fields shared by both endpoints. Unknown OpenAI fields are accepted and ignored (clients send many).

    Strict: a string or a boolean is never coerced into a number (`"max_tokens": "5"` or `true` is a 400,
    as at OpenAI), while an integer is accepted where a float is due."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> _Sampling:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

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
    logprobs: int | None = None

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: int | None) -> None:
        if value is not None:
            raise ValueError("logprobs are not supported by this server")
        return value

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("send one prompt per request (a list of exactly one string)")
        return value

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None

    @field_validator("logprobs", "top_logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | int | None) -> bool | int | None:
        if value:  # false / null / 0 ask for nothing and are accepted
            raise ValueError("logprobs are not supported by this server")
        return value


@dataclass
class ServerState:
    """What the handler threads share: the tokenizer, the engine and the limits."""

    tokenizer: Any
    engine: Engine
    config: ServeConfig
    model_name: str
    context_limit: int | None = None  # the model's maximum positions (None: no limit, as for Mamba2)


class Handler(BaseHTTPRequestHandler):
    server_version = "biomamba"
    protocol_version = "HTTP/1.1"
    state: ServerState  # set on the subclass made by `make_server`

    # ---- routing -----------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch({"/health": self._health, "/v1/models": self._models})

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch({"/v1/completions": self._completions, "/v1/chat/completions": self._chat})

    def _no_route(self) -> None:
        self._dispatch({})  # 405 on a known path, 404 elsewhere, both as JSON

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _no_route  # noqa: N815

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, unknown method, huge headers) as JSON too."""
        self.close_connection = True
        if code in (405, 501) and self.command:
            code, message = 405, f"method {self.command} not allowed"
        error = ApiError(code, message or explain or "bad request", code="bad_request")
        self._meta = {}  # called by http.server before (or instead of) _dispatch
        with contextlib.suppress(OSError):
            body = self.command != "HEAD" and code >= 200 and code not in (204, 304)
            self._json(code, error.body(), reason=message, with_body=body)

    def _dispatch(self, routes: dict[str, Any]) -> None:
        started = time.monotonic()
        self._meta: dict[str, Any] = {}
        try:
            path = self.path.split("?", 1)[0]
            handler = routes.get(path)
            if handler is None:
                if path in ROUTES:
                    raise ApiError(
                        405, f"method {self.command} not allowed on {path}", code="method_not_allowed"
                    )
                raise ApiError(404, f"no such endpoint: {path}", code="not_found")
            handler()
            if not self._meta.get("streaming"):
                self._discard_body()  # e.g. a GET sent with a body: keep the connection in sync
        except ApiError as exc:
            if self._meta.get("streaming"):  # headers already sent: all we can do is end the stream
                log.warning("stream ended early: %s", exc.message)
                return
            try:
                self._discard_body()
                self._json(exc.status, exc.body())
            except OSError:  # the client is gone: nobody to tell
                self._meta["status"] = 499
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self._meta["status"] = 499  # the client went away or stalled past socket_timeout_s
            self.close_connection = True
        except Exception:  # a bug: keep the server alive, answer 500, log the traceback (no request text)
            log.exception("internal error on %s", self.path)
            if self._meta.get("streaming"):
                return
            self._json(500, ApiError(500, "internal server error").body())
        finally:
            self._log_access(started)

    # ---- endpoints ---------------------------------------------------------------------------------
    def _health(self) -> None:
        """200 while the engine runs; 503 (with the reason) once it stopped or died."""
        engine = self.state.engine
        if engine.alive:
            load = {k: getattr(engine, k) for k in ("running", "waiting") if hasattr(engine, k)}
            self._json(200, {"status": "ok", **load})
            return
        died = getattr(engine, "died", None)
        reason = f"engine died: {type(died).__name__}: {died}" if died else "engine stopped"
        self._json(503, {"status": "unavailable", "reason": reason})

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
        try:
            prompt = tokenizer.apply_chat_template(
                messages, chat_template=template, tokenize=False, add_generation_prompt=True
            )
        except Exception as exc:  # noqa: BLE001 - the model's template refuses these messages (e.g. Mistral's
            # raise_exception on a system message): the request is at fault, not the server
            raise ApiError(
                400, f"messages: the model's chat template refused them: {exc}", "messages", "invalid_value"
            ) from None
        self._generate(request, prompt, chat=True)

    def _check_model(self, request: _Sampling) -> None:
        if request.model is not None and request.model != self.state.model_name:
            raise ApiError(
                404,
                f"the model '{request.model}' does not exist; this server serves '{self.state.model_name}'",
                param="model",
                code="model_not_found",
            )

    # ---- generation ----------------------------------------------------------------------------------
    def _generate(self, request: _Sampling, prompt: str, chat: bool) -> None:
        cfg, tokenizer = self.state.config, self.state.tokenizer
        self._check_model(request)
        asked = request.max_completion_tokens or request.max_tokens
        if asked is not None and asked > cfg.max_new_tokens:
            raise ApiError(
                400,
                f"max_tokens {asked} exceeds this server's limit of {cfg.max_new_tokens}",
                param="max_tokens",
                code="max_tokens_exceeded",
            )
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        max_tokens = asked or self._default_max_tokens(len(ids))
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
        job = GenerationRequest(
            prompt_ids=ids,
            max_new_tokens=max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            stop_token_ids=frozenset({eos_id(tokenizer)} - {None}),
        )
        try:
            accepted = self.state.engine.submit(job)
        except EngineStopped as exc:
            raise ApiError(503, str(exc), code="engine_unavailable") from None
        if not accepted:
            raise ApiError(429, "too many requests are waiting; retry later", code="server_busy")
        self._meta.update(prompt_tokens=len(ids))
        if cfg.log_requests:
            log.info("prompt: %r", prompt)
        pieces = self._pieces(job, TextStream(tokenizer, request.stops()), max_tokens)
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        try:
            if request.stream:
                self._stream(ident, pieces, chat, len(ids) if request.include_usage() else None)
            else:
                self._complete(ident, pieces, chat, len(ids))
        finally:
            job.cancelled.set()

    def _default_max_tokens(self, n_prompt: int) -> int:
        """No max_tokens given: the server default, clamped to what is left of the model's context."""
        cfg, limit = self.state.config, self.state.context_limit
        default = min(cfg.default_max_tokens, cfg.max_new_tokens)
        if limit is not None and n_prompt < limit:
            return min(default, limit - n_prompt)
        return default  # a prompt that fills the context is refused by check_context, naming the limit

    def _client_gone(self) -> bool:
        """Whether the client closed its connection (checked while it waits for tokens)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _pieces(
        self, job: GenerationRequest, text: TextStream, max_tokens: int
    ) -> Iterator[tuple[str, str | None]]:
        """(text piece, finish_reason or None) pairs; the last pair carries the finish reason."""
        timeout = self.state.config.request_timeout_s
        count = 0
        try:
            for token in job.stream(timeout=timeout, abandoned=self._client_gone):
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
        except EngineStopped as exc:
            raise ApiError(503, str(exc), code="engine_unavailable") from None
        if job.cancelled.is_set():  # the client hung up while waiting: nobody to answer
            raise ConnectionResetError("client went away")
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
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        usage = self._usage(n_prompt)
        self._json(200, {**self._envelope(ident, chat, stream=False), "choices": [choice], "usage": usage})

    def _usage(self, n_prompt: int) -> dict[str, int]:
        done = self._meta.get("completion_tokens", 0)
        return {"prompt_tokens": n_prompt, "completion_tokens": done, "total_tokens": n_prompt + done}

    def _stream(
        self, ident: str, pieces: Iterator[tuple[str, str | None]], chat: bool, usage_prompt: int | None
    ) -> None:
        """Server-sent events, one `data:` line per piece, ending with `data: [DONE]` (OpenAI's framing).

        With `stream_options.include_usage` (`usage_prompt` set), every chunk carries `"usage": null` and
        a last chunk with no choices carries the usage, as OpenAI sends them."""
        first = next(pieces)  # errors before the first token still become a JSON 4xx/5xx answer
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self._meta.update(status=200, streaming=True)
        envelope = self._envelope(ident, chat, stream=True)
        if usage_prompt is not None:
            envelope["usage"] = None
        if chat:
            self._event(
                {**envelope, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
            )
        for piece, reason in itertools.chain([first], pieces):
            if chat:
                delta = {"content": piece} if piece else {}
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": reason}
            else:
                choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": reason}
            if piece or reason:
                self._event({**envelope, "choices": [choice]})
        if usage_prompt is not None:
            self._event({**envelope, "choices": [], "usage": self._usage(usage_prompt)})
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
        length = self._content_length()
        limit = self.state.config.max_request_bytes
        if length > limit:
            self.close_connection = True  # the unread body must not be parsed as the next request
            raise ApiError(
                413, f"request body of {length} bytes exceeds the limit of {limit}", code="request_too_large"
            )
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise ApiError(408, "the request body did not arrive in time", code="request_timeout") from None
        self._body_read = True
        if len(raw) < length:
            self.close_connection = True
            raise ApiError(400, f"the body ended after {len(raw)} of {length} bytes", code="bad_request")
        payload = _load_json(raw)
        try:
            return schema.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "missing":
                message = "required field is missing"
            raise ApiError(400, f"{param}: {message}", param=param, code="invalid_value") from None

    def _content_length(self) -> int:
        """The body length: one header of plain decimal digits (`CONTENT_LENGTH`), else 4xx."""
        values = set(self.headers.get_all("Content-Length") or [])
        if not values:
            self.close_connection = True  # a chunked or unannounced body would be read as the next request
            raise ApiError(411, "Content-Length is required", code="length_required")
        self.close_connection = self.close_connection or len(values) > 1
        value = values.pop().strip() if len(values) == 1 else ""
        if not CONTENT_LENGTH.fullmatch(value):
            self.close_connection = True  # where the body ends is unknown: the connection cannot be reused
            raise ApiError(400, "Content-Length must be one non-negative integer", code="bad_request")
        return int(value)

    def _discard_body(self) -> None:
        """Drop an unread request body so a kept-alive connection stays in sync."""
        if getattr(self, "_body_read", False) or self.close_connection:
            return
        value = (self.headers.get("Content-Length") or "0").strip()
        length = int(value) if CONTENT_LENGTH.fullmatch(value) else -1
        try:
            if 0 < length <= self.state.config.max_request_bytes:
                self.rfile.read(length)
            elif length:
                self.close_connection = True
        except TimeoutError:
            self.close_connection = True

    def _json(
        self, status: int, payload: dict[str, Any], reason: str | None = None, with_body: bool = True
    ) -> None:
        """Answer `payload` as JSON (`reason`: the status line's phrase; `with_body` False: headers only)."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if with_body:
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


def _load_json(raw: bytes) -> dict[str, Any]:
    """Parse a request body: a JSON object of bounded depth whose strings are all valid Unicode."""
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc})", code="invalid_json") from None
    except RecursionError:
        raise ApiError(400, TOO_DEEP, code="invalid_json") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_json")
    _check_values(payload)
    return payload


def _check_values(payload: dict[str, Any]) -> None:
    """Refuse nesting beyond MAX_JSON_DEPTH and lone surrogates (`"\\ud800"`: valid JSON, not text)."""
    pending: list[tuple[Any, str, int]] = [(payload, "", 0)]
    while pending:
        value, where, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, TOO_DEEP, code="invalid_json")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                param = where or None
                raise ApiError(
                    400, f"{where}: the text holds a lone UTF-16 surrogate", param, "invalid_value"
                ) from None
        elif isinstance(value, dict):
            pending.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in value.items())
            pending.extend((k, where, depth + 1) for k in value)  # keys are text too
        elif isinstance(value, list):
            pending.extend((v, f"{where}.{i}", depth + 1) for i, v in enumerate(value))


def make_engine(model: Any, tokenizer: Any, config: ServeConfig, decoder: Any = None) -> BatchingEngine:
    """The continuous-batching engine over `decoder`: by default biomamba's `BatchDecoder` over a torch model;
    `models.gguf.GgufDecoder` runs a GGUF file through llama.cpp (one request at a time)."""
    from biomamba.models.decoding import BatchDecoder

    vocab = len(tokenizer) if hasattr(tokenizer, "__len__") else None
    decoder = decoder or BatchDecoder(model, vocab_size=vocab)
    return BatchingEngine(
        decoder,
        max_batch_size=min(config.max_batch_size, decoder.max_rows or config.max_batch_size),
        batch_wait_s=config.batch_wait_ms / 1000,
        max_queue=config.max_queue,
        continuous=config.continuous_batching,
    )


def make_server(
    model: Any, tokenizer: Any, config: ServeConfig, model_name: str, engine: Engine | None = None
) -> tuple[ThreadingHTTPServer, Engine]:
    """Bind the server (not yet serving) and start its engine; the caller runs serve_forever.

    `engine` lets another backend serve (anything implementing `Engine`); by default `make_engine`.
    `model` is only asked for its context limit then (`context_limit`)."""
    engine = engine or make_engine(model, tokenizer, config)
    state = ServerState(tokenizer, engine, config, model_name, context_limit(model))
    # `timeout` makes StreamRequestHandler set it on each accepted socket: a stalled client is dropped
    handler = type("BoundHandler", (Handler,), {"state": state, "timeout": config.socket_timeout_s})
    server_class = type("BoundServer", (ThreadingHTTPServer,), {"request_queue_size": config.listen_backlog})
    try:
        server = server_class((config.host, config.port), handler)
    except BaseException:
        engine.close()
        raise
    server.daemon_threads = True
    return server, engine


class RunningServer:
    """A server on a background thread, for tests and notebooks: `with RunningServer(...) as url: ...`;
    `engine` as in `make_server`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        config: ServeConfig,
        model_name: str = "biomamba",
        engine: Engine | None = None,
    ) -> None:
        self.server, self.engine = make_server(model, tokenizer, config, model_name, engine)
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
