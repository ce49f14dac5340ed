"""The model catalogue: which models claude.ai offers, which ids we accept, what to send for thinking.

Pure code (no sockets); the pieces, in the order a request meets them:

* :class:`ModelCapabilities` — one claude.ai model as its model picker describes it: thinking type,
  thinking modes, effort options, section, capabilities. :data:`FALLBACK_MODELS` is the static list
  used when an account's live list cannot be read (and for ``--demo``); :func:`parse_app_start`
  reads the live list from the ``app_start`` bootstrap body (docs/protocol.md §9).
* :class:`ModelCatalog` — the union of the accounts' models plus the operator's extra ``MODELS``:
  ``models`` is the ``/v1/models`` listing, :meth:`ModelCatalog.resolve` maps any id a client sends
  (dated or not, ``-latest``, Claude Code's aliases and ``[1m]``, ``MODEL_ALIASES``, our ``-think``,
  ``-think-<effort>`` and ``-search`` suffixes) to a :class:`ResolvedModel`,
  :meth:`ModelCatalog.suggest` names the closest ids for a 404, :meth:`ModelCatalog.accounts_for`
  says which accounts can serve a model.
* :func:`plan_thinking` — turns a :class:`ThinkingIntent` (from ``reasoning_effort``, Anthropic's
  ``thinking`` / ``output_config.effort`` or the id's suffix) into the exact ``thinking_mode`` and
  ``effort`` claude.ai's completion body takes for that model, never a value the model does not list.

The suffixes are ours: claude.ai never sees them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

THINK_SUFFIX = "-think"
SEARCH_SUFFIX = "-search"

#: claude.ai's effort ids, weakest first. ``xhigh`` is shown as "Extra" in the picker.
EFFORT_LADDER: tuple[str, ...] = ("low", "medium", "high", "xhigh", "max")
#: OpenAI's ``reasoning_effort`` values that turn thinking on (``none`` turns it off); ``minimal``
#: means the model's lowest effort.
REASONING_EFFORTS: frozenset[str] = frozenset({"minimal", *EFFORT_LADDER})
#: The effort a bare ``-think`` asks for: the model's strongest (nearest offered to ``max``).
STRONGEST_EFFORT = "max"

#: Release date given to models whose date we do not know (live-list newcomers, operator ids).
UNKNOWN_RELEASE = "2026-01-01T00:00:00Z"

#: Longest model id we look at; longer input is not a model id.
MAX_MODEL_ID_LENGTH = 200
#: Most models read from one ``app_start`` body (bounded work for any input).
MAX_LIVE_MODELS = 256


class ThinkingType(StrEnum):
    """How a model's thinking is switched (``model_selector_config[].models[].thinking.type``)."""

    #: ``thinking_mode`` ``auto``/``off`` plus an ``effort`` (2026 models).
    EFFORT_AND_MODE = "effort_and_mode"
    #: ``effort`` only, no mode switch (seen on code surfaces).
    EFFORT = "effort"
    #: a mode switch only, no effort (Haiku).
    MODE = "mode"
    #: no thinking at all.
    NONE = "none"
    #: the older generation: ``thinking_mode`` ``extended``/``off`` (legacy list's ``paprika_modes``).
    EXTENDED = "extended"


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    """One claude.ai model and what its picker entry allows.

    ``id`` is exactly what claude.ai's completion ``model`` field takes. ``thinking_modes`` and
    ``efforts`` are the ids claude.ai lists, in its order; :func:`plan_thinking` never sends others.
    """

    id: str
    display_name: str
    created_at: str = UNKNOWN_RELEASE  # RFC 3339, for the listings' ``created``/``created_at``
    thinking_type: ThinkingType = ThinkingType.NONE
    thinking_modes: tuple[str, ...] = ()
    efforts: tuple[str, ...] = ()
    default_effort: str | None = None
    section: str = "main"  # "main", "overflow" (behind "more models") or "deprecated"
    disabled: bool = False  # locked on this account's plan
    pdf: bool = True
    images: bool = True
    web_search: bool = True
    minimum_tier: str | None = None

    @property
    def can_think(self) -> bool:
        """Whether some request can make this model think."""
        if self.thinking_type is ThinkingType.EFFORT:
            return bool(self.efforts)
        return _thinking_on_mode(self) is not None

    @property
    def think_efforts(self) -> tuple[str, ...]:
        """Efforts a client may pick with ``-think-<effort>`` (the model's options on our ladder)."""
        if not self.can_think or self.thinking_type in (ThinkingType.MODE, ThinkingType.NONE):
            return ()
        return tuple(e for e in EFFORT_LADDER if e in self.efforts)


def _effort_and_mode(
    model_id: str, name: str, released: str, efforts: tuple[str, ...], default: str
) -> ModelCapabilities:
    return ModelCapabilities(
        model_id,
        name,
        f"{released}T00:00:00Z",
        ThinkingType.EFFORT_AND_MODE,
        ("auto", "off"),
        efforts,
        default,
    )


_ALL_EFFORTS = EFFORT_LADDER
_NO_XHIGH = ("low", "medium", "high", "max")

#: The static catalogue: claude.ai's web models as of 2026 (docs/protocol.md §9.4), newest first, with the
#: thinking each model's picker offers (docs/protocol.md §9.3). Used when an account's live list
#: cannot be read and for ``--demo``. Retired ids (3-7-sonnet, sonnet-4, opus-4, opus-4-1) are gone;
#: clients asking for them get a 404 naming the closest current ids. Release dates are public
#: announcement dates. The first model is the default for requests that name none.
FALLBACK_MODELS: tuple[ModelCapabilities, ...] = (
    _effort_and_mode("claude-sonnet-5", "Claude Sonnet 5", "2026-06-30", _ALL_EFFORTS, "medium"),
    _effort_and_mode("claude-opus-4-8", "Claude Opus 4.8", "2026-05-28", _ALL_EFFORTS, "high"),
    _effort_and_mode("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16", _ALL_EFFORTS, "xhigh"),
    # HAR-0812 sends ``extended`` + ``medium`` for Opus 4.6; no other effort is on record for it.
    ModelCapabilities(
        "claude-opus-4-6",
        "Claude Opus 4.6",
        "2026-02-05T00:00:00Z",
        ThinkingType.EXTENDED,
        ("extended", "off"),
        ("medium",),
        "medium",
    ),
    # No ``xhigh`` on Sonnet 4.6 (HAR-0812); its default effort is not on record: high, as the API's.
    _effort_and_mode("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17", _NO_XHIGH, "high"),
    ModelCapabilities(
        "claude-opus-4-5-20251101",
        "Claude Opus 4.5",
        "2025-11-24T00:00:00Z",
        ThinkingType.EXTENDED,
        ("extended", "off"),
        section="overflow",
    ),
    ModelCapabilities(
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        "2025-09-29T00:00:00Z",
        ThinkingType.EXTENDED,
        ("extended", "off"),
        section="overflow",
    ),
    # Mode-only schema: the completion omits ``effort`` (HAR-0812).
    ModelCapabilities(
        "claude-haiku-4-5-20251001",
        "Claude Haiku 4.5",
        "2025-10-15T00:00:00Z",
        ThinkingType.MODE,
        ("extended", "off"),
    ),
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One entry of the ``/v1/models`` listing."""

    id: str
    display_name: str
    created_at: str  # RFC 3339 date the model was released

    @property
    def created(self) -> int:
        """Unix seconds, as OpenAI's ``created`` field wants."""
        moment = datetime.fromisoformat(self.created_at)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """What a request needs from the model id its client sent.

    ``requested`` is the id exactly as sent (responses echo it); ``upstream`` the claude.ai model id.
    ``thinking`` says the id asked for thinking (``-think…``), ``effort`` the effort it named
    (``-think-high``; ``None`` for a bare ``-think``, which means the model's strongest — feed
    :func:`intent_from_suffix` to :func:`plan_thinking`). ``search`` asks for claude.ai's web search.
    ``via_default`` marks an id nobody has that ``DEFAULT_MODEL`` serves.
    """

    requested: str
    upstream: str
    thinking: bool
    effort: str | None = None
    search: bool = False
    model: ModelCapabilities | None = None
    via_default: bool = False


# ---------------------------------------------------------------------------------------------
# Thinking and effort


@dataclass(frozen=True, slots=True)
class ThinkingIntent:
    """What the client asked for, before the model's options are known.

    ``effort`` is a ladder value, ``minimal`` (the model's lowest), or ``None`` (the model's default).
    """

    enabled: bool
    effort: str | None = None


@dataclass(frozen=True, slots=True)
class ThinkingPlan:
    """Exactly what goes into the completion body: ``thinking_mode`` and ``effort`` (``None``: omit
    the field). ``thinking`` says whether the model will think; ``adjustments`` say where the plan
    departs from the intent (an effort the model lacks, thinking it cannot do), for a debug log line."""

    thinking_mode: str | None
    effort: str | None
    thinking: bool
    adjustments: tuple[str, ...] = ()


#: ``thinking.budget_tokens`` → effort: the upper bound (exclusive) of each effort's budgets.
_BUDGET_EFFORTS = ((4096, "low"), (16384, "medium"), (32768, "high"), (65536, "xhigh"))


def effort_for_budget(budget_tokens: int) -> str:
    """The claude.ai effort closest to an Anthropic thinking budget (claude.ai takes no budget)."""
    for bound, effort in _BUDGET_EFFORTS:
        if budget_tokens < bound:
            return effort
    return "max"


def intent_from_suffix(resolved: ResolvedModel) -> ThinkingIntent | None:
    """The intent a ``-think`` / ``-think-<effort>`` id carries; ``None`` for a plain id."""
    if not resolved.thinking:
        return None
    return ThinkingIntent(True, resolved.effort or STRONGEST_EFFORT)


def intent_from_reasoning_effort(value: str) -> ThinkingIntent:
    """OpenAI's ``reasoning_effort``: ``none`` turns thinking off, the rest pick an effort.

    Raises :class:`ValueError` for other values (the dialect answers those with a 400).
    """
    if value == "none":
        return ThinkingIntent(False)
    if value not in REASONING_EFFORTS:
        raise ValueError(f"unknown reasoning_effort {value!r}")
    return ThinkingIntent(True, value)


def intent_from_anthropic(thinking: object, output_effort: object = None) -> ThinkingIntent | None:
    """Anthropic's ``thinking`` object and ``output_config.effort``; ``None`` when neither says anything.

    ``enabled`` with ``budget_tokens`` maps the budget through :func:`effort_for_budget`,
    ``adaptive`` takes the model's default effort, ``disabled`` turns thinking off. An explicit
    ``output_config.effort`` wins over the budget and also applies with thinking off (claude.ai
    takes an effort with ``thinking_mode: off``). Shapes the dialect has not validated are ignored.
    """
    effort = output_effort if isinstance(output_effort, str) and output_effort in EFFORT_LADDER else None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return ThinkingIntent(False, effort)
    if kind == "enabled":
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if effort is None and type(budget) is int and budget > 0:
            effort = effort_for_budget(budget)
        return ThinkingIntent(True, effort)
    if kind == "adaptive":
        return ThinkingIntent(True, effort)
    return ThinkingIntent(False, effort) if effort else None


def plan_thinking(model: ModelCapabilities, intent: ThinkingIntent | None) -> ThinkingPlan:
    """The ``thinking_mode`` and ``effort`` to send for ``model`` given the client's ``intent``.

    Modes: effort_and_mode models get ``auto``/``off``, the older ones ``extended``/``off`` — always
    one the model lists, and omitted when it lists none. Effort: only from the model's options
    (never for mode-only or thinking-less models), the nearest one when the asked effort is absent,
    the model's default when none is asked (also with thinking off, as claude.ai's own page does).
    """
    want = intent.enabled if intent else False
    asked = intent.effort if intent else None
    notes: list[str] = []
    kind = model.thinking_type

    mode: str | None = None
    thinking = False
    if kind is ThinkingType.EFFORT:
        thinking = bool(model.efforts)
    elif kind is not ThinkingType.NONE:
        on_mode = _thinking_on_mode(model)
        if want and on_mode:
            mode, thinking = on_mode, True
        else:
            mode = "off" if "off" in model.thinking_modes else None
    if want and not thinking:
        notes.append(f"{model.id} cannot think; sending it without thinking")

    effort: str | None = None
    if model.efforts and kind in (ThinkingType.EFFORT_AND_MODE, ThinkingType.EFFORT, ThinkingType.EXTENDED):
        effort = _default_effort(model) if asked is None else _nearest_effort(asked, model)
        if asked is not None and effort != asked:
            notes.append(f"{model.id} offers no effort {asked!r}; sending {effort!r}")
    elif asked is not None and want:
        notes.append(f"{model.id} takes no effort; leaving out {asked!r}")
    return ThinkingPlan(mode, effort, thinking, tuple(notes))


def _thinking_on_mode(model: ModelCapabilities) -> str | None:
    """The mode id that turns thinking on: ``auto``, else ``extended``, else any non-``off`` one."""
    modes = [m for m in model.thinking_modes if m != "off"]
    for preferred in ("auto", "extended"):
        if preferred in modes:
            return preferred
    return modes[0] if modes else None


def _default_effort(model: ModelCapabilities) -> str:
    default = model.default_effort
    if default is not None and default in model.efforts:
        return default
    if "high" in model.efforts:
        return "high"
    return model.efforts[len(model.efforts) // 2]


def _nearest_effort(asked: str, model: ModelCapabilities) -> str:
    """``asked`` if offered, else the offered ladder effort nearest to it (the lower one on a tie)."""
    if asked in model.efforts:
        return asked
    on_ladder = [e for e in EFFORT_LADDER if e in model.efforts]
    if not on_ladder:
        return _default_effort(model)
    if asked == "minimal":
        return on_ladder[0]
    if asked not in EFFORT_LADDER:
        return _default_effort(model)
    rank = EFFORT_LADDER.index(asked)
    return min(on_ladder, key=lambda e: (abs(EFFORT_LADDER.index(e) - rank), EFFORT_LADDER.index(e)))


# ---------------------------------------------------------------------------------------------
# The live list: ``GET /edge-api/bootstrap/{org}/app_start``


def parse_app_start(body: object, org_uuid: str | None = None) -> list[ModelCapabilities]:
    """The models an ``app_start`` body describes, in the picker's order; never raises.

    Reads ``claude_ai_available_models.models[]`` (the catalogue, ``model_id``/``model``,
    ``minimum_tier``) and the ``chat`` surface of ``model_selector_config`` (names, section,
    ``disabled``, capabilities, thinking). A model only in the catalogue borrows the static facts of
    :data:`FALLBACK_MODELS` when its id is one of them, else gets no thinking (we send no value we
    cannot vouch for). Without either, the legacy ``claude_ai_bootstrap_models_config`` of the
    membership whose organisation is ``org_uuid`` is read (``inactive`` → disabled). Odd fields are
    skipped; an unusable body gives ``[]``. Callers route only to models that are not ``disabled``.
    """
    if not isinstance(body, dict):
        return []
    selector = _selector_models(body.get("model_selector_config"))
    available = _available_models(body.get("claude_ai_available_models"))
    if not selector and not available:
        return _legacy_models(body.get("account"), org_uuid)
    found: dict[str, ModelCapabilities] = {}
    for caps in selector:
        found.setdefault(caps.id, caps)
    for model_id, tier in available:
        if model_id in found:
            found[model_id] = replace(found[model_id], minimum_tier=tier)
        else:
            found[model_id] = replace(_static_or_bare(model_id), minimum_tier=tier)
    return list(found.values())[:MAX_LIVE_MODELS]


def _items(raw: object) -> list[Any]:
    return raw[:MAX_LIVE_MODELS] if isinstance(raw, list) else []


def _text(raw: object) -> str | None:
    if isinstance(raw, str) and raw.strip() and len(raw) <= MAX_MODEL_ID_LENGTH:
        return raw.strip()
    return None


def _flag(raw: object, default: bool) -> bool:
    return raw if isinstance(raw, bool) else default


def _ids(raw: object) -> tuple[str, ...]:
    """The ``id`` of each option object (``mode_options``/``effort_options``), in order, once each."""
    ids: list[str] = []
    for option in _items(raw):
        option_id = _text(option.get("id")) if isinstance(option, dict) else _text(option)
        if option_id and option_id not in ids:
            ids.append(option_id)
    return tuple(ids)


def _available_models(raw: object) -> list[tuple[str, str | None]]:
    models = raw.get("models") if isinstance(raw, dict) else None
    found: list[tuple[str, str | None]] = []
    for entry in _items(models):
        if isinstance(entry, dict):
            model_id = _text(entry.get("model_id")) or _text(entry.get("model"))
            if model_id:
                found.append((model_id, _text(entry.get("minimum_tier"))))
    return found


def _selector_models(raw: object) -> list[ModelCapabilities]:
    chat = next((s for s in _items(raw) if isinstance(s, dict) and s.get("id") == "chat"), None)
    if chat is None:
        return []
    return [caps for entry in _items(chat.get("models")) if (caps := _selector_entry(entry))]


def _selector_entry(entry: object) -> ModelCapabilities | None:
    if not isinstance(entry, dict) or not (model_id := _text(entry.get("id"))):
        return None
    static = _static_or_bare(model_id)
    thinking = entry.get("thinking")
    if isinstance(thinking, dict):
        kind, modes, efforts, default = _selector_thinking(thinking)
    else:  # no thinking object: keep what we know of the model
        kind, modes, efforts, default = (
            static.thinking_type,
            static.thinking_modes,
            static.efforts,
            static.default_effort,
        )
    caps = entry.get("capabilities")
    caps = caps if isinstance(caps, dict) else {}
    return ModelCapabilities(
        id=model_id,
        display_name=_text(entry.get("name")) or static.display_name,
        created_at=static.created_at,
        thinking_type=kind,
        thinking_modes=modes,
        efforts=efforts,
        default_effort=default,
        section=_text(entry.get("section")) or "main",
        disabled=_flag(entry.get("disabled"), False),
        pdf=_flag(caps.get("mm_pdf"), True),
        images=_flag(caps.get("mm_images"), True),
        web_search=_flag(caps.get("web_search"), True),
    )


def _selector_thinking(thinking: dict[str, Any]) -> tuple[ThinkingType, tuple[str, ...], tuple[str, ...], str | None]:
    """(type, modes, efforts, default effort) of a selector entry's ``thinking`` object.

    Missing mode lists get the type's documented ids (``auto``/``off``; ``extended``/``off`` for a
    mode-only model, as the legacy list names Haiku's mode). The default effort is the option marked
    ``recommended`` or carrying a ``badge``.
    """
    raw_type = thinking.get("type")
    try:
        kind = ThinkingType(raw_type) if isinstance(raw_type, str) else ThinkingType.NONE
    except ValueError:
        kind = ThinkingType.NONE
    if kind is ThinkingType.NONE:
        return kind, (), (), None
    modes = _ids(thinking.get("mode_options"))
    if not modes and kind is ThinkingType.EFFORT_AND_MODE:
        modes = ("auto", "off")
    elif not modes and kind in (ThinkingType.MODE, ThinkingType.EXTENDED):
        modes = ("extended", "off")
    if kind is ThinkingType.EFFORT:
        modes = ()
    efforts: tuple[str, ...] = ()
    default: str | None = None
    if kind is not ThinkingType.MODE:
        options = _items(thinking.get("effort_options"))
        efforts = _ids(options)
        marked = [
            _text(o.get("id"))
            for o in options
            if isinstance(o, dict) and (o.get("recommended") is True or isinstance(o.get("badge"), dict))
        ]
        default = next((m for m in marked if m in efforts), None)
    return kind, modes, efforts, default


def _legacy_models(account: object, org_uuid: str | None) -> list[ModelCapabilities]:
    memberships = _items(account.get("memberships")) if isinstance(account, dict) else []
    orgs: list[dict[str, Any]] = [
        org for m in memberships if isinstance(m, dict) and isinstance(org := m.get("organization"), dict)
    ]
    if org_uuid is not None:
        orgs = [o for o in orgs if o.get("uuid") == org_uuid]
    found: dict[str, ModelCapabilities] = {}
    for org in orgs[:1]:
        for entry in _items(org.get("claude_ai_bootstrap_models_config")):
            if isinstance(entry, dict) and (caps := _legacy_entry(entry)) and caps.id not in found:
                found[caps.id] = caps
    return list(found.values())


def _legacy_entry(entry: dict[str, Any]) -> ModelCapabilities | None:
    model_id = _text(entry.get("model"))
    if not model_id:
        return None
    static = _static_or_bare(model_id)
    modes = [_text(m) for m in _items(entry.get("paprika_modes"))]
    for option in _items(entry.get("thinking_modes")):
        if isinstance(option, dict):
            modes.append(_text(option.get("mode")) or _text(option.get("paprika_mode_value")))
    on_modes = tuple(dict.fromkeys(m for m in modes if m and m != "off"))
    caps = entry.get("capabilities")
    caps = caps if isinstance(caps, dict) else {}
    return ModelCapabilities(
        id=model_id,
        display_name=_text(entry.get("name")) or static.display_name,
        created_at=static.created_at,
        thinking_type=ThinkingType.EXTENDED if on_modes else ThinkingType.NONE,
        thinking_modes=(*on_modes, "off") if on_modes else (),
        section="overflow" if entry.get("overflow") is True else "main",
        disabled=entry.get("inactive") is True,
        pdf=_flag(caps.get("mm_pdf"), True),
        images=_flag(caps.get("mm_images"), True),
        web_search=_flag(caps.get("web_search"), True),
    )


def _static_or_bare(model_id: str) -> ModelCapabilities:
    """The static facts of ``model_id`` (dated or not) if we know it, else a thinking-less record."""
    key = _canonical(model_id.lower())
    for caps in FALLBACK_MODELS:
        if _canonical(caps.id) == key:
            return replace(caps, id=model_id)
    return ModelCapabilities(model_id, _display_name(model_id))


def _display_name(model_id: str) -> str:
    """``claude-opus-5-5`` → ``Claude Opus 5.5`` (a guess for ids the picker does not name)."""
    match = _FAMILY_ID.fullmatch(_canonical(model_id.lower()))
    if not match:
        return model_id
    version = match["major"] + (f".{match['minor']}" if match["minor"] else "")
    return f"Claude {match['family'].capitalize()} {version}"


# ---------------------------------------------------------------------------------------------
# Id resolution

_CONTEXT_SUFFIX = re.compile(r"\[[0-9a-z]{1,8}\]$")  # Claude Code's ``[1m]``
_THINK = re.compile(r"-think(?:-(low|medium|high|xhigh|max))?$")
_DATE = re.compile(r"-(?:20\d{6}|latest)(?=$|-)")
_FAMILY_ID = re.compile(r"claude-(?P<family>[a-z]+)-(?P<major>\d+)(?:-(?P<minor>\d{1,2}))?")
_LEGACY_ID = re.compile(r"claude-(?P<major>\d+)(?:-(?P<minor>\d{1,2}))?-(?P<family>[a-z]+)")
_FAMILY_ONLY = re.compile(r"(?:claude-)?(?P<family>sonnet|opus|haiku|fable)(?:-latest)?")

#: Claude Code's aliases that are not a family name, and what they stand for here. ``opusplan`` is
#: Opus while planning, Sonnet otherwise; a proxy cannot tell, so it gets Opus.
_FAMILY_ALIASES: dict[str, str] = {"opusplan": "opus"}
#: Families from most to least capable, for ``best``.
_BEST_FAMILIES = ("fable", "opus", "sonnet", "haiku")


def _canonical(model_id: str) -> str:
    """A lower-case id reduced to ``claude-<family>-<major>[-<minor>]`` where it has that shape.

    Drops the date and ``-latest`` (``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4-5``), the
    emulator's ``-claude-ai``, Bedrock's ``anthropic.`` and ``-v1:0``, a ``anthropic/`` router prefix,
    dots in versions (``claude-sonnet-4.5``), a ``-0`` minor (``claude-opus-4-0``), and reorders the
    3.x form (``claude-3-7-sonnet`` → ``claude-sonnet-3-7``).
    """
    key = model_id.removeprefix("anthropic/").removeprefix("anthropic.")
    key = re.sub(r"-v\d+(?::\d+)?$", "", key).removesuffix("-claude-ai")
    key = _DATE.sub("", key).replace(".", "-")
    if legacy := _LEGACY_ID.fullmatch(key):
        key = f"claude-{legacy['family']}-{legacy['major']}" + (f"-{legacy['minor']}" if legacy["minor"] else "")
    return key.removesuffix("-0") if _FAMILY_ID.fullmatch(key) else key


def _family_version(model_id: str) -> tuple[str, tuple[int, int]] | None:
    match = _FAMILY_ID.fullmatch(_canonical(model_id.lower()))
    if not match:
        return None
    return match["family"], (int(match["major"]), int(match["minor"] or 0))


def _split_suffixes(key: str) -> tuple[str, bool, str | None, bool]:
    """(base, thinking, effort, search) of a lower-case id: ``-think[-<effort>]`` and ``-search`` in
    either order, each at most once, with Claude Code's ``[1m]`` tolerated around them."""
    thinking, effort, search = False, None, False
    key = _CONTEXT_SUFFIX.sub("", key)
    while True:
        if not search and key.endswith(SEARCH_SUFFIX):
            key, search = key.removesuffix(SEARCH_SUFFIX), True
        elif not thinking and (match := _THINK.search(key)):
            key, thinking, effort = key[: match.start()], True, match[1]
        else:
            return _CONTEXT_SUFFIX.sub("", key), thinking, effort, search


class ModelCatalog:
    """The models we advertise and how any requested id maps to one of them.

    Built from each account's live list (``accounts``: opaque account id → that account's models, as
    :func:`parse_app_start` gives them; disabled ones are left out), or from ``models``, or from
    :data:`FALLBACK_MODELS`; plus ``extra_ids`` (the operator's ``MODELS``, ids claude.ai may serve
    that no list names). ``aliases`` is ``MODEL_ALIASES`` (any id → any id we resolve, suffixes
    allowed); ``default_model`` is ``DEFAULT_MODEL``, which serves ids nobody has (off when ``None``).

    Immutable once built: on a list refresh, build a new catalogue and swap it in.
    """

    def __init__(
        self,
        extra_ids: Iterable[str] = (),
        *,
        models: Sequence[ModelCapabilities] | None = None,
        accounts: Mapping[str, Sequence[ModelCapabilities]] | None = None,
        aliases: Mapping[str, str] | None = None,
        default_model: str | None = None,
    ) -> None:
        holders: dict[str, set[str]] = {}
        base: dict[str, ModelCapabilities] = {}
        for account, account_models in (accounts or {}).items():
            for caps in account_models:
                if not caps.disabled:
                    base.setdefault(caps.id, caps)
                    holders.setdefault(caps.id, set()).add(account)
        if not base:
            holders = {}
            for caps in FALLBACK_MODELS if models is None else models:
                base.setdefault(caps.id, caps)
        known_keys = {_canonical(m.lower()) for m in base}
        for raw in extra_ids:
            model_id = _split_suffixes(raw.strip())[0]
            if model_id and model_id not in base and _canonical(model_id.lower()) not in known_keys:
                base[model_id] = _static_or_bare(model_id)
                known_keys.add(_canonical(model_id.lower()))
        if not base:
            base = {caps.id: caps for caps in FALLBACK_MODELS}
        self._base: tuple[ModelCapabilities, ...] = tuple(base.values())
        self._holders = {model_id: frozenset(accounts) for model_id, accounts in holders.items()}
        self._per_account = bool(self._holders)
        self._aliases = {k.strip().lower(): v for k, v in (aliases or {}).items() if k.strip()}
        self._default_model = default_model
        self._by_id = {caps.id.lower(): caps for caps in self._base}
        self._by_key: dict[str, ModelCapabilities] = {}
        for caps in self._base:
            self._by_key.setdefault(_canonical(caps.id.lower()), caps)
        self.models: tuple[ModelInfo, ...] = tuple(info for caps in self._base for info in _listing(caps))
        self._listed = {info.id: info for info in self.models}

    @property
    def default(self) -> str:
        """The model for requests that name none: the first of the list."""
        return self._base[0].id

    @property
    def capabilities(self) -> tuple[ModelCapabilities, ...]:
        """The underlying claude.ai models, in listing order."""
        return self._base

    def get(self, model_id: str) -> ModelInfo | None:
        """The listing entry of ``model_id``, or of the model it resolves to (named as asked)."""
        if model_id in self._listed:
            return self._listed[model_id]
        resolved = self.resolve(model_id)
        if resolved is None or resolved.via_default or resolved.model is None:
            return None
        return ModelInfo(model_id, resolved.model.display_name, resolved.model.created_at)

    def resolve(self, model_id: str) -> ResolvedModel | None:
        """What ``model_id`` means, or ``None`` if we serve nothing by that name.

        In order: ``MODEL_ALIASES`` on the whole id; our suffixes (``-think``, ``-think-<effort>``
        where the model offers that effort, ``-search`` where it searches); ``MODEL_ALIASES`` on the
        rest; an exact id; Claude Code's aliases (``sonnet``/``opus``/``haiku``/``fable`` → the
        newest of that family we have, ``best``, ``default``, ``opusplan``) and its ``[1m]``; the
        same model under another spelling (dated/undated, ``-latest``, see :func:`_canonical`);
        finally ``DEFAULT_MODEL``. Case and surrounding whitespace never matter.
        """
        key = model_id.strip().lower()
        if not key or len(key) > MAX_MODEL_ID_LENGTH:
            return None
        resolved = self._resolve_key(key, model_id, allow_alias=True)
        if resolved is None and self._default_model:
            fallback = self._resolve_key(self._default_model.strip().lower(), model_id, allow_alias=True)
            if fallback is not None:
                resolved = replace(fallback, via_default=True)
        return resolved

    def suggest(self, model_id: str, limit: int = 3) -> list[str]:
        """The listed ids closest to ``model_id``, for a 404 message (best first; may be empty)."""
        key = model_id.strip().lower()[:MAX_MODEL_ID_LENGTH]
        # Compare spelling-free keys first (a dated id is close to its undated twin), then raw ids.
        by_key = {_canonical(caps.id.lower()): caps.id for caps in reversed(self._base)}
        by_lower = {info.id.lower(): info.id for info in self.models}
        close = difflib.get_close_matches(_canonical(_split_suffixes(key)[0]), list(by_key), n=limit, cutoff=0.5)
        names = [by_key[c] for c in close]
        names += [by_lower[c] for c in difflib.get_close_matches(key, list(by_lower), n=limit, cutoff=0.5)]
        return list(dict.fromkeys(names))[:limit]

    def accounts_for(self, model_id: str) -> frozenset[str] | None:
        """The accounts whose live list has the model ``model_id`` resolves to.

        ``None`` means no restriction: the catalogue was not built from per-account lists, or the
        model is an operator extra no list names. An empty set means nobody serves the id.
        """
        if not self._per_account:
            return None
        resolved = self.resolve(model_id)
        if resolved is None:
            return frozenset()
        return self._holders.get(resolved.upstream)

    # -- internals ----------------------------------------------------------------------------

    def _resolve_key(self, key: str, requested: str, *, allow_alias: bool) -> ResolvedModel | None:
        if allow_alias and key in self._aliases:
            return self._resolve_key(self._aliases[key].strip().lower(), requested, allow_alias=False)
        if key in self._by_id:  # an upstream id that happens to end like a suffix
            return ResolvedModel(requested, self._by_id[key].id, False, model=self._by_id[key])
        base, thinking, effort, search = _split_suffixes(key)
        if allow_alias and base in self._aliases:
            target = self._resolve_key(self._aliases[base].strip().lower(), requested, allow_alias=False)
            if target is None:
                return None
            thinking, effort, search = thinking or target.thinking, effort or target.effort, search or target.search
            caps = target.model
        else:
            caps = self._find(base)
        if caps is None:
            return None
        if thinking and not caps.can_think:
            return None
        if effort is not None and effort not in caps.think_efforts:
            return None
        if search and not caps.web_search:
            return None
        return ResolvedModel(requested, caps.id, thinking, effort, search, caps)

    def _find(self, base: str) -> ModelCapabilities | None:
        if base in self._by_id:
            return self._by_id[base]
        if base == "default":
            return self._base[0]
        if base == "best":
            for best in _BEST_FAMILIES:
                if newest := self._newest(best):
                    return newest
            return self._base[0]
        family = _FAMILY_ALIASES.get(base)
        if family is None and (only := _FAMILY_ONLY.fullmatch(base)):
            family = only["family"]
        if family is not None:
            return self._newest(family)
        return self._by_key.get(_canonical(base))

    def _newest(self, family: str) -> ModelCapabilities | None:
        """The model of ``family`` with the highest version, preferring the picker's main section."""
        ranked = [
            (caps.section != "deprecated", fv[1], caps)
            for caps in self._base
            if (fv := _family_version(caps.id)) and fv[0] == family
        ]
        if not ranked:
            return None
        return max(ranked, key=lambda item: (item[0], item[1]))[2]


def _listing(caps: ModelCapabilities) -> list[ModelInfo]:
    """A model's ``/v1/models`` entries: plain, ``-think``, ``-think-<effort>``, ``-search``."""
    entries = [ModelInfo(caps.id, caps.display_name, caps.created_at)]
    if caps.can_think:
        entries.append(ModelInfo(caps.id + THINK_SUFFIX, caps.display_name + " (thinking)", caps.created_at))
        for effort in caps.think_efforts:
            entries.append(
                ModelInfo(
                    f"{caps.id}{THINK_SUFFIX}-{effort}",
                    f"{caps.display_name} (thinking, {effort} effort)",
                    caps.created_at,
                )
            )
    if caps.web_search:
        entries.append(ModelInfo(caps.id + SEARCH_SUFFIX, caps.display_name + " (web search)", caps.created_at))
    return entries
