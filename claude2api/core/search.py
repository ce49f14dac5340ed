"""claude.ai's own web search, dialect-neutral: the operator's switch, what the model is told, the footer.

Every dialect parses its own way of asking (Anthropic's ``web_search_*`` server tool, OpenAI chat's
``web_search_options``, the Responses ``web_search`` tool, the ``-search`` model suffix) into
:attr:`ChatRequest.web_search <claude2api.core.types.ChatRequest.web_search>`. Then:

* :func:`apply_search_policy` applies ``WEB_SEARCH``: ``off`` refuses a request that asks (a 400,
  never a silent answer without search), ``on_request`` keeps what the client asked, ``always``
  turns search on for every request (the Go original's behaviour).
* claude.ai's completion takes no search options, so ``max_uses``, the domain lists and the user's
  location reach the model as prompt paragraphs (:func:`search_instructions`); the request's
  warning line says so (:func:`search_notes`). Nothing is cut: claude.ai decides when to search
  inside one turn, and cutting the reply after N searches would cut the answer that follows them.
* :func:`sources_footer`: the sources as Markdown, for clients that read no structured citations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from claude2api.core.failures import bad_request
from claude2api.core.types import ChatRequest, SearchResult, WebSearch

#: claude.ai's ``tools`` entry for its search (``docs/protocol.md`` §7.1, exact).
WEB_SEARCH_TOOL: dict[str, Any] = {"type": "web_search_v0", "name": "web_search"}

WEB_SEARCH_MODES = ("off", "on_request", "always")
#: ``SEARCH_SOURCES``: ``auto`` adds the footer only when the client did not ask in its own dialect.
SEARCH_SOURCES_MODES = ("auto", "footer", "off")


def apply_search_policy(request: ChatRequest, mode: str) -> ChatRequest:
    """``request`` with ``WEB_SEARCH`` applied (changed in place); a 400 when search is off and asked."""
    if mode == "off" and request.web_search is not None:
        raise bad_request(
            "Web search is turned off on this server (setting WEB_SEARCH=off); "
            "drop the web search tool, web_search_options or the -search model suffix."
        )
    if mode == "always" and request.web_search is None:
        request.web_search = WebSearch(native=False)
    return request


def search_instructions(search: WebSearch) -> list[str]:
    """Prompt paragraphs for the search options claude.ai has no field for."""
    lines = []
    if search.max_uses is not None:
        lines.append(f"Search the web at most {search.max_uses} time{'s' if search.max_uses != 1 else ''} in this reply.")
    if search.allowed_domains:
        lines.append("When searching the web, use only results from these domains: " + ", ".join(search.allowed_domains) + ".")
    if search.blocked_domains:
        lines.append("When searching the web, never use results from these domains: " + ", ".join(search.blocked_domains) + ".")
    if search.user_location:
        lines.append(f"The user is located in {search.user_location}.")
    return [" ".join(lines)] if lines else []


def search_notes(search: WebSearch | None) -> list[str]:
    """Warning-line notes: the options that are only instructions to the model, not enforced."""
    if search is None:
        return []
    named = [
        name
        for name, given in (
            ("max_uses", search.max_uses is not None),
            ("allowed_domains", bool(search.allowed_domains)),
            ("blocked_domains", bool(search.blocked_domains)),
            ("user_location", search.user_location is not None),
        )
        if given
    ]
    return [f"web_search {name} sent as an instruction, not enforced" for name in named]


def location_text(raw: Any) -> str | None:
    """An Anthropic/OpenAI ``user_location`` object (``city``, ``region``, ``country``, ``timezone``,
    possibly under ``approximate``) as one short line, or ``None``."""
    if not isinstance(raw, dict):
        return None
    approximate = raw.get("approximate")
    inner: dict[str, Any] = approximate if isinstance(approximate, dict) else raw
    parts = [inner.get(key) for key in ("city", "region", "country")]
    text = ", ".join(p.strip()[:80] for p in parts if isinstance(p, str) and p.strip())
    timezone = inner.get("timezone")
    if isinstance(timezone, str) and timezone.strip():
        text += f" (time zone {timezone.strip()[:64]})"
    return text or None


def sources_footer(results: Sequence[SearchResult]) -> str:
    """The sources as a Markdown list, one line per distinct URL, after a blank line."""
    seen: set[str] = set()
    lines = []
    for result in results:
        if result.url in seen:
            continue
        seen.add(result.url)
        lines.append(f"- [{result.title or result.url}]({result.url})")
    return "\n\nSources:\n" + "\n".join(lines) if lines else ""
