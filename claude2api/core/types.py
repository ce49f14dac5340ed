"""The neutral chat model every dialect parses into and renders from.

A dialect front-end (OpenAI, Anthropic) turns its request into one :class:`ChatRequest`.
The chat middleware chain (see :mod:`claude2api.pipeline`) then works on a :class:`ChatContext`
and produces an async stream of :data:`Event` objects, which a dialect renderer turns back into
its own wire format. Plugins see only these types, whatever dialect the client speaks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from claude2api.logs import get_logger

if TYPE_CHECKING:  # annotations only: the neutral core imports nothing above it at run time
    from structlog.typing import FilteringBoundLogger

    from claude2api.accounts.pool import Session
    from claude2api.config import Settings
    from claude2api.http.services import Services

from claude2api.core.limits import MessageLimit
from claude2api.core.record import RequestRecord

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(slots=True)
class TextPart:
    text: str


@dataclass(slots=True)
class ImagePart:
    """An image the client sent: inline bytes (``data``) or a URL still to download."""

    media_type: str | None = None
    data: bytes | None = None
    url: str | None = None


@dataclass(slots=True)
class DocumentPart:
    """A document the client sent (see :mod:`claude2api.core.documents`): bytes to upload (PDF,
    office files), a text file's ``text`` (sent inline), or a URL the document middleware downloads."""

    media_type: str | None = None
    data: bytes | None = None
    url: str | None = None
    text: str | None = None
    filename: str | None = None


@dataclass(slots=True)
class ToolCall:
    """A tool call in the assistant's history: ``arguments`` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(slots=True)
class ToolResult:
    """What the client's tool returned for the call ``call_id`` (text and images)."""

    call_id: str
    content: list[TextPart | ImagePart] = field(default_factory=list)
    is_error: bool = False


#: DocumentPart is used once files land.
Part = TextPart | ImagePart | DocumentPart | ToolCall | ToolResult


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part]

    @property
    def text(self) -> str:
        """The message's text parts joined by blank lines (images are not text)."""
        return "\n\n".join(p.text for p in self.parts if isinstance(p, TextPart))


@dataclass(slots=True)
class Thinking:
    """What the client asked of the model's thinking (``-think`` suffix, ``reasoning_effort``,
    Anthropic ``thinking`` / ``output_config.effort``), before the model's options are known.

    ``effort`` is an effort id (``low`` … ``max``, or ``minimal``: the model's lowest) or ``None``
    (the model's default). ``enabled=False`` with an effort asks for that effort without thinking.
    What is finally sent is :func:`claude2api.core.catalog.plan_thinking`'s decision for the model.
    """

    effort: str | None = None
    budget_tokens: int | None = None
    enabled: bool = True


@dataclass(slots=True)
class ToolDefinition:
    """A tool the client offers the model: ``input_schema`` is a JSON Schema object."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(slots=True)
class ToolChoice:
    """Whether and which tool the model must call: ``auto``, ``none``, ``required`` or ``named`` (``name``)."""

    mode: Literal["auto", "none", "required", "named"] = "auto"
    name: str | None = None


@dataclass(slots=True)
class ResponseFormat:
    """Structured output asked for: ``json_object`` (any JSON object) or ``json_schema`` (``schema``)."""

    kind: Literal["json_object", "json_schema"] = "json_object"
    schema: dict[str, Any] | None = None


@dataclass(slots=True)
class WebSearch:
    """claude.ai's own web search, when the client asked for it (or the operator turned it on).

    claude.ai takes no search options: ``max_uses``, the domain lists and ``user_location`` reach the
    model as prompt instructions (:func:`claude2api.core.search.search_instructions`). ``native``: the
    client asked in its dialect's own terms (a search tool, ``web_search_options``), so it reads the
    structured results; ``False`` for the ``-search`` suffix and ``WEB_SEARCH=always``.
    """

    max_uses: int | None = None
    allowed_domains: list[str] = field(default_factory=list)
    blocked_domains: list[str] = field(default_factory=list)
    #: Free-text location hint (``"Paris, Île-de-France, FR"``), or ``None``.
    user_location: str | None = None
    native: bool = True


@dataclass(slots=True)
class ChatRequest:
    """One chat turn as the client asked for it, dialect-neutral.

    ``model`` is what the client asked for and is echoed back in responses; ``upstream_model``
    is the claude.ai model id (without our ``-think`` suffix) or ``None`` for the account default.
    """

    model: str
    upstream_model: str | None
    messages: list[Message]
    stream: bool = False
    thinking: Thinking | None = None
    stop: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    #: Extra instructions appended to the prompt (e.g. JSON-mode emulation); plugins may add to it.
    instructions: list[str] = field(default_factory=list)
    tools: list[ToolDefinition] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    #: ``None``: web search off.
    web_search: WebSearch | None = None
    #: ``None``: plain text. Set: the reply must be JSON (the output guard checks it).
    response_format: ResponseFormat | None = None


@dataclass(slots=True)
class Attachment:
    """An inline text document sent in the completion's ``attachments`` (no upload needed)."""

    file_name: str
    content: str
    file_type: str = "text/plain"
    #: A client's text document (shown to claude.ai as a user's file), not one of our own.
    document: bool = False


@dataclass(slots=True)
class UpstreamTurn:
    """What goes to claude.ai for this turn; built by the prompt middlewares."""

    prompt: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    images: list[ImagePart] = field(default_factory=list)
    #: Documents to upload (PDFs, office files); text documents go in ``attachments`` instead.
    documents: list[DocumentPart] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Events: what the upstream produces, after claude.ai's web-only noise has been dropped.


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    text: str


@dataclass(slots=True)
class Stop:
    """End of the reply. ``reason`` uses Anthropic's vocabulary (``end_turn``, ``max_tokens``,
    ``stop_sequence``, ``tool_use``, ``refusal``, ...); ``sequence`` is the matched stop string."""

    reason: str = "end_turn"
    sequence: str | None = None


#: claude.ai's ``message_limit`` frame: the quota windows of the account that answered, read by
#: :func:`claude2api.core.limits.parse_message_limit` (every 2026 shape; per-model windows).
Limit = MessageLimit


@dataclass(slots=True)
class ToolCallStart:
    """The model starts tool call number ``index`` of this reply."""

    index: int
    id: str
    name: str


@dataclass(slots=True)
class ToolCallDelta:
    """More of tool call ``index``'s arguments (a piece of JSON text)."""

    index: int
    partial_json: str


@dataclass(slots=True)
class ToolCallEnd:
    index: int


@dataclass(slots=True)
class SearchCall:
    """claude.ai ran a web search (its own ``web_search`` tool; the id is its ``toolu_…`` id)."""

    id: str
    query: str


@dataclass(slots=True)
class SearchResult:
    url: str
    title: str
    #: How old the page is, as claude.ai says it (``"2 days ago"``), when it says.
    page_age: str | None = None


@dataclass(slots=True)
class SearchResults:
    """What the search ``id`` found (claude.ai's ``knowledge`` list)."""

    id: str
    results: list[SearchResult] = field(default_factory=list)


@dataclass(slots=True)
class Citation:
    """A span of the reply text backed by a search result: ``cited_text`` is that span, which runs
    from ``start`` to ``end`` (character offsets into the reply's answer text as claude.ai sent it).
    Emitted once the span is over, right after its last :class:`TextDelta`."""

    url: str
    title: str
    cited_text: str
    start: int
    end: int
    #: claude.ai's citation uuid (an opaque reference for ``encrypted_index``).
    id: str = ""


Event = (
    TextDelta | ThinkingDelta | Stop | Limit | ToolCallStart | ToolCallDelta | ToolCallEnd
    | SearchCall | SearchResults | Citation
)

#: Web-search events: only replies to requests with web search carry them.
SEARCH_EVENTS = (SearchCall, SearchResults, Citation)

#: A content event: once one of these went to the client, the response is committed.
CONTENT_EVENTS = (TextDelta, ThinkingDelta, Stop, ToolCallStart, ToolCallDelta, ToolCallEnd, *SEARCH_EVENTS)


# ---------------------------------------------------------------------------------------------
# The middleware chain.


@dataclass
class ChatContext:
    """Per-request state handed down the chat middleware chain.

    The plugin API (:mod:`claude2api.plugin`) is ``request`` (rewrite it with
    :meth:`replace_request`), ``request_id``, ``dialect`` (``"openai"``, ``"anthropic"`` or
    ``"responses"``), ``settings`` (read-only: the configuration this request started with, kept
    even when a reload swaps it), ``log``, ``turn`` and ``extras`` (free for plugins). ``record`` collects what happened for the access line and the metrics
    (:mod:`claude2api.core.record`). ``internal``,
    ``mirror_session`` and ``session`` belong to the built-in middlewares and may change without
    notice.
    """

    request: ChatRequest
    request_id: str
    dialect: str
    settings: Settings
    #: The daemon's shared state (pool, upstream client, janitor), for the built-in middlewares.
    internal: Services = field(repr=False)
    log: FilteringBoundLogger = field(default_factory=lambda: get_logger("claude2api.plugins"), repr=False)
    turn: UpstreamTurn = field(default_factory=UpstreamTurn)
    #: Session override (mirror mode: the caller's own claude.ai key).
    mirror_session: Session | None = None
    #: The account the current attempt runs on, set by session failover.
    session: Session | None = None
    record: RequestRecord = field(default_factory=RequestRecord)
    extras: dict[str, Any] = field(default_factory=dict)

    def replace_request(self, **changes: Any) -> None:
        self.request = dataclasses.replace(self.request, **changes)


#: A middleware is usually an async generator re-yielding (or rewriting) ``call_next(ctx)``'s events;
#: one that only prepares the request may be a plain function returning ``call_next(ctx)``.
ChatHandler = Callable[[ChatContext], AsyncIterator[Event]]
ChatMiddleware = Callable[[ChatContext, ChatHandler], AsyncIterator[Event]]
#: A plugin's factory, ``chat_middleware(settings, options)`` (or ``chat_middleware(settings)``):
#: returns a middleware, or ``None`` to stay out of the chain.
ChatMiddlewareFactory = Callable[..., ChatMiddleware | None]
