"""What happened to one request, collected as it goes and reported once: the access line and the metrics.

The HTTP layer creates one :class:`RequestRecord` per request and hands it to the chat chain on
:attr:`~claude2api.core.types.ChatContext.record`; the relay, the failover, the attempt and the
history-file middleware fill in what they learn, and the access-log middleware emits it once
(:mod:`claude2api.http.middlewares`), which is also when the metrics are counted. Nothing here
is looked at per event: the relay counts in locals and writes the totals once.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestRecord:
    """The facts of one request. Values are bounded: no raw client input beyond a clipped model id."""

    #: ``time.perf_counter()`` when the request arrived.
    started: float = 0.0
    #: ``openai`` / ``anthropic`` for a chat request, else ``None``.
    dialect: str | None = None
    stream: bool | None = None
    #: The model id as the client sent it (clipped for the log); ``model_label`` is the metrics'
    #: bounded version: the catalogue's base id, or ``other``.
    model_asked: str | None = None
    model_label: str = "none"
    #: The claude.ai model id the request went upstream with (``None``: the account default).
    model_sent: str | None = None
    #: Fingerprint of the account that answered (the last one tried).
    account: str | None = None
    accounts_tried: int = 0
    #: The client error's code (``model_not_found``, ``rate_limit_exceeded``...), also for an error
    #: sent in-band after the stream was committed; ``error`` is its message, clipped.
    error_code: str | None = None
    error: str | None = None
    #: Seconds from the request's arrival to the first content event, when there was one.
    first_token_seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tool_calls: int = 0
    #: Searches claude.ai ran for the reply (counted by the renderer, which sees them anyway).
    web_searches: int = 0
    history_file: bool = False
    #: The client went away before the reply was over.
    client_gone: bool = False
    #: Upstream failures met, one per failed attempt (:class:`~claude2api.core.failures.Failure` values).
    upstream_failures: list[str] = field(default_factory=list)
    #: Conversations opened on claude.ai and files uploaded there, over every attempt.
    conversations: int = 0
    uploads: int = 0
    #: What the client asked for that cannot be honoured and is not a 400 (``"temperature ignored"``).
    unhonoured: list[str] = field(default_factory=list)
