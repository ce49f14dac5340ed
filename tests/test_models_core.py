"""Unit tests of the pure model and limit code: the catalogue, id resolution, thinking plans,
the ``app_start`` parser and the usage-limit parsers (2026 reference §4 and §5)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude2api.core.catalog import (
    FALLBACK_MODELS,
    ModelCapabilities,
    ModelCatalog,
    ThinkingIntent,
    ThinkingType,
    effort_for_budget,
    intent_from_anthropic,
    intent_from_reasoning_effort,
    intent_from_suffix,
    parse_app_start,
    plan_thinking,
)
from claude2api.core.limits import (
    ALL_MODELS,
    NOT_CHAT,
    ONE_MODEL,
    SESSION,
    WEEKLY,
    model_matches,
    parse_message_limit,
    parse_reset_time,
    parse_usage,
)
from claude2api.testing.fake_claude import fixture_bytes

CATALOG = ModelCatalog()
FALLBACK = {caps.id: caps for caps in FALLBACK_MODELS}

# Few examples: two cores are shared by several test runs.
FAST = settings(max_examples=150, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


# ---------------------------------------------------------------------------------------------
# The static catalogue


def test_fallback_catalogue_is_2026_without_retired_ids() -> None:
    assert [caps.id for caps in FALLBACK_MODELS] == [
        "claude-sonnet-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-opus-4-5-20251101",
        "claude-sonnet-4-5-20250929",
        "claude-haiku-4-5-20251001",
    ]
    listed = {info.id for info in CATALOG.models}
    for retired in ("claude-3-7-sonnet-20250219", "claude-sonnet-4-20250514", "claude-opus-4-20250514",
                    "claude-opus-4-1-20250805"):  # fmt: skip
        assert retired not in listed
        assert CATALOG.resolve(retired) is None
    assert CATALOG.default == "claude-sonnet-5"
    assert CATALOG.get("claude-opus-4-8") is not None
    assert CATALOG.get("claude-opus-4-8").created_at.startswith("2026-05-28")  # type: ignore[union-attr]


def test_fallback_thinking_facts_follow_the_reference() -> None:
    """§4.6: Sonnet 5 medium default with xhigh, Sonnet 4.6 no xhigh, Opus 4.7 xhigh default,
    Opus 4.8 high, Opus 4.6 extended + medium, Haiku mode-only."""
    sonnet5, sonnet46 = FALLBACK["claude-sonnet-5"], FALLBACK["claude-sonnet-4-6"]
    assert sonnet5.thinking_type is ThinkingType.EFFORT_AND_MODE
    assert sonnet5.efforts == ("low", "medium", "high", "xhigh", "max") and sonnet5.default_effort == "medium"
    assert "xhigh" not in sonnet46.efforts and sonnet46.thinking_modes == ("auto", "off")
    assert FALLBACK["claude-opus-4-7"].default_effort == "xhigh"
    assert FALLBACK["claude-opus-4-8"].default_effort == "high"
    assert FALLBACK["claude-opus-4-6"].thinking_modes == ("extended", "off")
    haiku = FALLBACK["claude-haiku-4-5-20251001"]
    assert haiku.thinking_type is ThinkingType.MODE and haiku.efforts == ()


def test_listing_has_think_effort_and_search_variants_where_offered() -> None:
    ids = [info.id for info in CATALOG.models]
    assert ids[:8] == [
        "claude-sonnet-5",
        "claude-sonnet-5-think",
        "claude-sonnet-5-think-low",
        "claude-sonnet-5-think-medium",
        "claude-sonnet-5-think-high",
        "claude-sonnet-5-think-xhigh",
        "claude-sonnet-5-think-max",
        "claude-sonnet-5-search",
    ]
    assert "claude-sonnet-4-6-think-max" in ids and "claude-sonnet-4-6-think-xhigh" not in ids
    assert "claude-haiku-4-5-20251001-think" in ids
    assert not [i for i in ids if i.startswith("claude-haiku") and "-think-" in i]
    assert len(ids) == len(set(ids))
    for info in CATALOG.models:  # every listed id resolves, to itself
        resolved = CATALOG.resolve(info.id)
        assert resolved is not None and resolved.requested == info.id
        assert info.id.startswith(resolved.upstream)


def test_operator_extra_ids_are_listed_once() -> None:
    catalog = ModelCatalog(("claude-new-9", "claude-new-9-think", "claude-sonnet-4-5"))
    ids = [info.id for info in catalog.models]
    assert ids.count("claude-new-9") == 1
    assert "claude-sonnet-4-5" not in ids  # already served as claude-sonnet-4-5-20250929
    resolved = catalog.resolve("claude-new-9")
    assert resolved is not None and resolved.upstream == "claude-new-9"
    assert catalog.accounts_for("claude-new-9") is None


# ---------------------------------------------------------------------------------------------
# Id resolution


@pytest.mark.parametrize(
    ("requested", "upstream", "thinking", "effort", "search"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", False, None, False),
        ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", False, None, False),
        ("claude-sonnet-4-5-latest", "claude-sonnet-4-5-20250929", False, None, False),
        ("claude-haiku-4-5", "claude-haiku-4-5-20251001", False, None, False),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001", False, None, False),
        ("claude-opus-4-5", "claude-opus-4-5-20251101", False, None, False),
        ("claude-opus-4-8", "claude-opus-4-8", False, None, False),
        ("claude-opus-4-8[1m]", "claude-opus-4-8", False, None, False),
        ("  Claude-Opus-4-8[1M]\n", "claude-opus-4-8", False, None, False),
        ("sonnet", "claude-sonnet-5", False, None, False),
        ("sonnet[1m]", "claude-sonnet-5", False, None, False),
        ("opus", "claude-opus-4-8", False, None, False),
        ("haiku", "claude-haiku-4-5-20251001", False, None, False),
        ("default", "claude-sonnet-5", False, None, False),
        ("best", "claude-opus-4-8", False, None, False),
        ("opusplan", "claude-opus-4-8", False, None, False),
        ("claude-sonnet-latest", "claude-sonnet-5", False, None, False),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5-20250929", False, None, False),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929", False, None, False),
        ("claude-sonnet-4-5-think", "claude-sonnet-4-5-20250929", True, None, False),
        ("claude-sonnet-4-6-think-high", "claude-sonnet-4-6", True, "high", False),
        ("claude-opus-4-8-think-search", "claude-opus-4-8", True, None, True),
        ("claude-opus-4-8-search-think", "claude-opus-4-8", True, None, True),
        ("claude-opus-4-8-search-think-max", "claude-opus-4-8", True, "max", True),
        ("claude-opus-4-8-think-xhigh-search", "claude-opus-4-8", True, "xhigh", True),
        ("claude-opus-4-8[1m]-think", "claude-opus-4-8", True, None, False),
        ("opus-think-low", "claude-opus-4-8", True, "low", False),
        ("claude-sonnet-5-search", "claude-sonnet-5", False, None, True),
    ],
)
def test_resolve(requested: str, upstream: str, thinking: bool, effort: str | None, search: bool) -> None:
    resolved = CATALOG.resolve(requested)
    assert resolved is not None
    assert (resolved.requested, resolved.upstream) == (requested, upstream)
    assert (resolved.thinking, resolved.effort, resolved.search) == (thinking, effort, search)
    assert resolved.model is not None and resolved.model.id == upstream and not resolved.via_default


@pytest.mark.parametrize(
    "requested",
    [
        "gpt-4o",
        "",
        "   ",
        "claude-3-7-sonnet-20250219",  # retired
        "claude-opus-4-1",  # retired
        "claude-sonnet-4-6-think-xhigh",  # Sonnet 4.6 offers no xhigh
        "claude-haiku-4-5-think-high",  # Haiku takes no effort
        "claude-sonnet-5-think-think",
        "claude-sonnet-5-search-search",
        "claude-sonnet-5-think-minimal",
        "x" * 5000,
    ],
)
def test_unknown_ids_resolve_to_none(requested: str) -> None:
    assert CATALOG.resolve(requested) is None
    assert CATALOG.get(requested) is None


def test_suggestions_name_the_closest_ids() -> None:
    assert CATALOG.suggest("claude-3-7-sonnet-20250219")[0].startswith("claude-sonnet")
    assert CATALOG.suggest("claude-opus-4-1")[:1] == ["claude-opus-4-8"]
    assert "claude-sonnet-4-6" in CATALOG.suggest("claude-sonnet-4-6-think-xhigh")
    assert CATALOG.suggest("gpt-4o") == []


def test_get_answers_for_every_spelling_and_names_it_as_asked() -> None:
    info = CATALOG.get("claude-sonnet-4-5")
    assert info is not None and info.id == "claude-sonnet-4-5" and info.display_name == "Claude Sonnet 4.5"
    assert info.created == int(datetime(2025, 9, 29, tzinfo=UTC).timestamp())


def test_operator_aliases_and_default_model() -> None:
    catalog = ModelCatalog(
        aliases={"GPT-4o": "claude-sonnet-5", "deep": "claude-opus-4-8-think-max", "broken": "nope"},
        default_model="claude-haiku-4-5",
    )
    assert catalog.resolve(" gpt-4o ").upstream == "claude-sonnet-5"  # type: ignore[union-attr]
    deep = catalog.resolve("deep")
    assert deep is not None and (deep.upstream, deep.thinking, deep.effort) == ("claude-opus-4-8", True, "max")
    searched = catalog.resolve("gpt-4o-search")
    assert searched is not None and searched.upstream == "claude-sonnet-5" and searched.search
    unknown = catalog.resolve("some-model-nobody-has")
    assert unknown is not None and unknown.via_default and unknown.upstream == "claude-haiku-4-5-20251001"
    assert unknown.requested == "some-model-nobody-has"
    assert catalog.get("some-model-nobody-has") is None  # not a model we list
    broken = catalog.resolve("broken")  # an alias to nothing falls to DEFAULT_MODEL
    assert broken is not None and broken.via_default
    assert ModelCatalog(aliases={"broken": "nope"}).resolve("broken") is None


@FAST
@given(st.text(max_size=60))
def test_resolve_never_raises_and_only_names_served_models(requested: str) -> None:
    served = {caps.id for caps in CATALOG.capabilities}
    resolved = CATALOG.resolve(requested)
    if resolved is not None:
        assert resolved.upstream in served and resolved.requested == requested
    CATALOG.suggest(requested)


@FAST
@given(
    st.sampled_from([info.id for info in CATALOG.models] + ["sonnet", "opus[1m]", "claude-haiku-4-5"]),
    st.sampled_from(["", " ", "\t", "\n "]),
    st.sampled_from([str.upper, str.lower, str.title, str.swapcase]),
)
def test_case_and_whitespace_never_matter(model_id: str, pad: str, case: object) -> None:
    plain = CATALOG.resolve(model_id)
    varied = CATALOG.resolve(pad + case(model_id) + pad)  # type: ignore[operator]
    assert plain is not None and varied is not None
    assert (plain.upstream, plain.thinking, plain.effort, plain.search) == (
        varied.upstream,
        varied.thinking,
        varied.effort,
        varied.search,
    )


@FAST
@given(
    st.sampled_from([caps.id for caps in FALLBACK_MODELS]),
    st.sampled_from(["", "-20250101", "-latest"]),
    st.sampled_from(["", "[1m]"]),
)
def test_dated_latest_and_context_forms_reach_the_same_model(model_id: str, tail: str, context: str) -> None:
    plain = CATALOG.resolve(model_id)
    base = model_id.rsplit("-2025", 1)[0]  # the undated form of the 4.5 generation
    other = CATALOG.resolve(base + tail + context)
    assert plain is not None and other is not None and other.upstream == plain.upstream


# ---------------------------------------------------------------------------------------------
# Accounts


def test_union_over_accounts_and_per_model_routing() -> None:
    free = [FALLBACK["claude-sonnet-5"], FALLBACK["claude-haiku-4-5-20251001"]]
    paid = [*free, FALLBACK["claude-opus-4-8"], ModelCapabilities("claude-fable-5", "Fable 5", disabled=True)]
    locked = [ModelCapabilities("claude-fable-5", "Fable 5")]
    catalog = ModelCatalog(("claude-extra-1",), accounts={"free": free, "paid": paid, "max": locked})
    bases = [caps.id for caps in catalog.capabilities]
    assert bases == ["claude-sonnet-5", "claude-haiku-4-5-20251001", "claude-opus-4-8", "claude-fable-5", "claude-extra-1"]
    assert catalog.accounts_for("sonnet") == {"free", "paid"}
    assert catalog.accounts_for("claude-opus-4-8-think-high") == {"paid"}
    assert catalog.accounts_for("claude-fable-5") == {"max"}  # disabled on "paid"
    assert catalog.accounts_for("gpt-4o") == frozenset()
    assert catalog.accounts_for("claude-extra-1") is None  # an operator id: any account may try
    assert catalog.resolve("best").upstream == "claude-fable-5"  # type: ignore[union-attr]
    assert catalog.resolve("claude-sonnet-4-6") is None  # nobody lists it
    assert CATALOG.accounts_for("claude-sonnet-5") is None  # static catalogue: no per-account facts


def test_empty_account_lists_fall_back_to_the_static_catalogue() -> None:
    catalog = ModelCatalog(accounts={"a": [], "b": []})
    assert [c.id for c in catalog.capabilities] == [c.id for c in FALLBACK_MODELS]
    assert catalog.accounts_for("claude-sonnet-5") is None


# ---------------------------------------------------------------------------------------------
# Thinking and effort


@pytest.mark.parametrize(
    ("model_id", "intent", "mode", "effort", "thinking"),
    [
        # §4.6, one row per model: what thinking on / off sends.
        ("claude-sonnet-5", ThinkingIntent(True), "auto", "medium", True),
        ("claude-sonnet-5", None, "off", "medium", False),
        ("claude-sonnet-4-6", ThinkingIntent(True, "max"), "auto", "max", True),
        ("claude-sonnet-4-6", ThinkingIntent(False), "off", "high", False),
        ("claude-opus-4-8", ThinkingIntent(True), "auto", "high", True),
        ("claude-opus-4-7", ThinkingIntent(True), "auto", "xhigh", True),
        ("claude-opus-4-6", ThinkingIntent(True), "extended", "medium", True),
        ("claude-opus-4-6", None, "off", "medium", False),
        ("claude-sonnet-4-5-20250929", ThinkingIntent(True, "high"), "extended", None, True),
        ("claude-haiku-4-5-20251001", ThinkingIntent(True, "high"), "extended", None, True),
        ("claude-haiku-4-5-20251001", None, "off", None, False),
        # Efforts the model lacks: the nearest it has (the lower on a tie), minimal → lowest.
        ("claude-sonnet-4-6", ThinkingIntent(True, "xhigh"), "auto", "high", True),
        ("claude-sonnet-5", ThinkingIntent(True, "minimal"), "auto", "low", True),
        ("claude-opus-4-6", ThinkingIntent(True, "max"), "extended", "medium", True),
        ("claude-opus-4-8", ThinkingIntent(False, "low"), "off", "low", False),
    ],
)
def test_plan_thinking(
    model_id: str, intent: ThinkingIntent | None, mode: str | None, effort: str | None, thinking: bool
) -> None:
    model = FALLBACK[model_id]
    plan = plan_thinking(model, intent)
    assert (plan.thinking_mode, plan.effort, plan.thinking) == (mode, effort, thinking)
    assert plan.thinking_mode is None or plan.thinking_mode in model.thinking_modes
    assert plan.effort is None or plan.effort in model.efforts
    asked = intent.effort if intent else None
    assert bool(plan.adjustments) == (asked is not None and asked != plan.effort and thinking)


def test_plan_thinking_reports_what_it_cannot_do() -> None:
    bare = ModelCapabilities("claude-new-9", "New")
    plan = plan_thinking(bare, ThinkingIntent(True, "high"))
    assert (plan.thinking_mode, plan.effort, plan.thinking) == (None, None, False)
    assert any("cannot think" in note for note in plan.adjustments)
    effort_only = ModelCapabilities("m", "M", thinking_type=ThinkingType.EFFORT, efforts=("low", "high"))
    plan = plan_thinking(effort_only, ThinkingIntent(True, "medium"))
    assert (plan.thinking_mode, plan.effort, plan.thinking) == (None, "low", True)


@FAST
@given(
    st.sampled_from(FALLBACK_MODELS),
    st.none() | st.builds(ThinkingIntent, st.booleans(), st.none() | st.sampled_from(["minimal", "low", "medium", "high", "xhigh", "max", "ultracode"])),
)
def test_plan_never_sends_an_unlisted_value(model: ModelCapabilities, intent: ThinkingIntent | None) -> None:
    plan = plan_thinking(model, intent)
    assert plan.thinking_mode is None or plan.thinking_mode in model.thinking_modes
    assert plan.effort is None or plan.effort in model.efforts
    if model.thinking_type is ThinkingType.MODE:
        assert plan.effort is None


def test_intents_from_each_dialect() -> None:
    assert intent_from_reasoning_effort("none") == ThinkingIntent(False)
    assert intent_from_reasoning_effort("minimal") == ThinkingIntent(True, "minimal")
    assert intent_from_reasoning_effort("xhigh") == ThinkingIntent(True, "xhigh")
    with pytest.raises(ValueError):
        intent_from_reasoning_effort("extreme")
    assert intent_from_anthropic({"type": "enabled", "budget_tokens": 2000}) == ThinkingIntent(True, "low")
    assert intent_from_anthropic({"type": "enabled", "budget_tokens": 20000}) == ThinkingIntent(True, "high")
    assert intent_from_anthropic({"type": "enabled", "budget_tokens": 20000}, "low") == ThinkingIntent(True, "low")
    assert intent_from_anthropic({"type": "adaptive"}) == ThinkingIntent(True, None)
    assert intent_from_anthropic({"type": "adaptive"}, "max") == ThinkingIntent(True, "max")
    assert intent_from_anthropic({"type": "disabled"}) == ThinkingIntent(False)
    assert intent_from_anthropic(None, "medium") == ThinkingIntent(False, "medium")
    assert intent_from_anthropic(None) is None
    assert intent_from_anthropic("junk", 7) is None
    assert [effort_for_budget(b) for b in (1024, 4096, 16384, 32768, 65536)] == ["low", "medium", "high", "xhigh", "max"]
    bare_think = CATALOG.resolve("claude-opus-4-7-think")
    assert bare_think is not None and intent_from_suffix(bare_think) == ThinkingIntent(True, "max")
    plan = plan_thinking(FALLBACK["claude-sonnet-4-6"], intent_from_suffix(bare_think))
    assert plan.effort == "max"  # -think: the model's strongest
    assert intent_from_suffix(CATALOG.resolve("claude-opus-4-7")) is None  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# app_start

APP_START = {
    "account": {"uuid": "acct"},
    "claude_ai_available_models": {
        "models": [
            {"model_id": "claude-sonnet-5", "minimum_tier": "free"},
            {"model_id": "claude-opus-5", "minimum_tier": "pro"},
            {"model": "claude-opus-4-8", "minimum_tier": "pro"},
            {"model_id": 7},
            "junk",
        ]
    },
    "model_selector_config": [
        {"id": "ccd", "models": [{"id": "claude-haiku-4-5-20251001", "thinking": {"type": "none"}}]},
        {
            "id": "chat",
            "models": [
                {
                    "id": "claude-sonnet-5",
                    "name": "Sonnet 5",
                    "section": "main",
                    "disabled": False,
                    "capabilities": {"mm_pdf": True, "mm_images": True, "web_search": True},
                    "thinking": {
                        "type": "effort_and_mode",
                        "mode_options": [{"id": "auto", "name": "Thinking"}, {"id": "off", "name": "Off"}],
                        "effort_options": [
                            {"id": "low", "name": "Low"},
                            {"id": "medium", "name": "Medium", "recommended": True},
                            {"id": "high", "name": "High"},
                            {"id": "xhigh", "name": "Extra"},
                            {"id": "max", "name": "Max"},
                        ],
                    },
                },
                {
                    "id": "claude-opus-5",
                    "name": "Opus 5",
                    "disabled": True,
                    "thinking": {
                        "type": "effort_and_mode",
                        "effort_options": [
                            {"id": "medium"},
                            {"id": "high", "badge": {"message": "Recommended", "variant": "x"}},
                        ],
                    },
                },
                {"id": "claude-haiku-4-5-20251001", "name": "Haiku 4.5", "section": "main", "thinking": {"type": "mode"}},
                {"id": "claude-old-1", "section": "deprecated", "capabilities": {"web_search": False},
                 "thinking": {"type": "something-new"}},
                {"name": "no id"},
            ],
        },
    ],
}


def test_app_start_reads_selector_and_catalogue() -> None:
    models = {caps.id: caps for caps in parse_app_start(APP_START)}
    assert list(models) == [
        "claude-sonnet-5",
        "claude-opus-5",
        "claude-haiku-4-5-20251001",
        "claude-old-1",
        "claude-opus-4-8",
    ]
    sonnet = models["claude-sonnet-5"]
    assert (sonnet.display_name, sonnet.minimum_tier, sonnet.default_effort) == ("Sonnet 5", "free", "medium")
    assert sonnet.thinking_modes == ("auto", "off") and sonnet.efforts[-1] == "max"
    opus5 = models["claude-opus-5"]
    assert opus5.disabled and opus5.default_effort == "high" and opus5.thinking_modes == ("auto", "off")
    haiku = models["claude-haiku-4-5-20251001"]  # the chat surface's entry, not the ccd one
    assert haiku.thinking_type is ThinkingType.MODE and haiku.thinking_modes == ("extended", "off")
    old = models["claude-old-1"]
    assert old.thinking_type is ThinkingType.NONE and not old.web_search and old.section == "deprecated"
    opus48 = models["claude-opus-4-8"]  # only in the catalogue: the static facts
    assert opus48.thinking_type is ThinkingType.EFFORT_AND_MODE and opus48.default_effort == "high"
    catalog = ModelCatalog(accounts={"a": list(models.values())})
    assert catalog.resolve("claude-opus-5") is None  # disabled on the only account
    assert catalog.resolve("opus").upstream == "claude-opus-4-8"  # type: ignore[union-attr]


def test_app_start_legacy_list_of_the_right_membership() -> None:
    def org(uuid: str, models: list[dict[str, object]]) -> dict[str, object]:
        return {"organization": {"uuid": uuid, "claude_ai_bootstrap_models_config": models}}

    body = {
        "account": {
            "memberships": [
                org("other", [{"model": "claude-wrong-1"}]),
                org(
                    "mine",
                    [
                        {"model": "claude-opus-4-8", "name": "Claude Opus 4.8", "inactive": False,
                         "overflow": False, "paprika_modes": ["extended"],
                         "thinking_modes": [{"id": "auto", "mode": "extended", "paprika_mode_value": "extended"}],
                         "capabilities": {"mm_pdf": True, "web_search": True}},
                        {"model": "claude-opus-4-1-20250805-claude-ai", "inactive": True, "overflow": True},
                    ],
                ),
            ]
        },
        "claude_ai_available_models": None,
    }
    models = parse_app_start(body, "mine")
    assert [m.id for m in models] == ["claude-opus-4-8", "claude-opus-4-1-20250805-claude-ai"]
    assert models[0].thinking_type is ThinkingType.EXTENDED and models[0].thinking_modes == ("extended", "off")
    assert models[1].disabled and models[1].section == "overflow"
    assert plan_thinking(models[0], ThinkingIntent(True, "high")).thinking_mode == "extended"


@FAST
@given(json_values)
def test_app_start_parser_never_raises(body: object) -> None:
    assert isinstance(parse_app_start(body), list)


@FAST
@given(
    st.fixed_dictionaries(
        {
            "claude_ai_available_models": json_values | st.fixed_dictionaries({"models": st.lists(json_values, max_size=4)}),
            "model_selector_config": json_values
            | st.lists(
                st.fixed_dictionaries(
                    {
                        "id": st.sampled_from(["chat", "ccd", 3]),
                        "models": st.lists(
                            st.fixed_dictionaries(
                                {
                                    "id": json_values | st.sampled_from(["claude-sonnet-5", "claude-x-1"]),
                                    "thinking": json_values
                                    | st.fixed_dictionaries(
                                        {
                                            "type": st.sampled_from(["effort_and_mode", "effort", "mode", "none", 1]),
                                            "mode_options": json_values,
                                            "effort_options": json_values,
                                        }
                                    ),
                                    "capabilities": json_values,
                                    "disabled": json_values,
                                }
                            ),
                            max_size=3,
                        ),
                    }
                ),
                max_size=2,
            ),
            "account": json_values,
        }
    )
)
def test_app_start_parser_survives_odd_fields(body: dict[str, object]) -> None:
    for caps in parse_app_start(body):
        assert isinstance(caps.id, str) and caps.id
        plan = plan_thinking(caps, ThinkingIntent(True, "max"))
        assert plan.thinking_mode is None or plan.thinking_mode in caps.thinking_modes
        assert plan.effort is None or plan.effort in caps.efforts
    ModelCatalog(accounts={"a": parse_app_start(body)})


# ---------------------------------------------------------------------------------------------
# Limits


def test_message_limit_within_limit_windows() -> None:
    raw = {"type": "within_limit", "overageStatus": "…", "resetsAt": None, "remaining": None,
           "perModelLimit": None, "representativeClaim": "five_hour", "overageResetsAt": None, "overageInUse": False,
           "windows": {"5h": {"status": "within_limit", "resets_at": 1787400000, "utilization": 0.37},
                       "7d": {"status": "within_limit", "resets_at": 1787860800, "utilization": 0.1},
                       "7d_oi": {"status": "within_limit", "resets_at": 1787860800, "utilization": 0.11},
                       "overage": {"status": "within_limit", "resets_at": 1788200000, "utilization": 0.0}},
           "resolved": {"status": "…", "limit": {"kind": "session", "group": "session", "percent": 37,
                        "severity": "normal", "resets_at": "2026-08-20T16:50:00+00:00", "scope": None,
                        "is_active": True}, "spend": None, "disabled_reason": None, "notice": None}}  # fmt: skip
    limit = parse_message_limit(raw, model="claude-fable-5")
    assert limit is not None and not limit.exceeded and limit.exhausted == ()
    by_key = {w.key: w for w in limit.windows}
    assert (by_key["5h"].period, by_key["5h"].scope, by_key["5h"].active) == (SESSION, ALL_MODELS, True)
    assert by_key["5h"].utilization == 0.37 and by_key["5h"].resets_at == 1787400000
    assert (by_key["7d_oi"].period, by_key["7d_oi"].scope, by_key["7d_oi"].model) == (WEEKLY, ONE_MODEL, "claude-fable-5")
    assert by_key["overage"].scope == NOT_CHAT
    assert limit.resolved is not None and limit.resolved.resets_at == parse_reset_time("2026-08-20T16:50:00Z")
    assert limit.blocked_until("claude-fable-5") is None


def test_message_limit_exceeded_fixture_parks_all_models() -> None:
    raw = json.loads(fixture_bytes("error-429-exceeded-limit-2026.message.json"))
    limit = parse_message_limit(raw, model="claude-sonnet-5")
    assert limit is not None and limit.exceeded and limit.resets_at == 1791210600
    (window,) = limit.exhausted
    assert (window.key, window.scope, window.utilization, window.resets_at) == ("5h", ALL_MODELS, 1.14, 1791210600)
    assert limit.blocked_until("claude-opus-4-8") == 1791210600
    assert limit.resolved is not None and limit.resolved.exceeded and limit.resolved.resets_at == 1791210600


def test_message_limit_exceeded_under_one_is_still_exceeded() -> None:
    raw = {"type": "exceeded_limit", "resetsAt": 1790012400, "representativeClaim": "five_hour",
           "windows": {"5h": {"status": "exceeded_limit", "resets_at": 1790012400, "utilization": 0.98,
                              "surpassed_threshold": 1.0},
                       "7d": {"status": "within_limit", "resets_at": 1790300000, "utilization": 0.05}},
           "resolved": {"status": "exceeded", "limit": {"kind": "session", "percent": 98, "severity": "critical",
                                                        "resets_at": "2026-09-21T15:40:00+00:00"},
                        "notice": {"title": "Limit reached"}}}  # fmt: skip
    limit = parse_message_limit(raw)
    assert limit is not None and [w.key for w in limit.exhausted] == ["5h"]
    assert limit.blocked_until(None) == 1790012400


def test_message_limit_old_shapes() -> None:
    old = parse_message_limit({"type": "exceeded_limit", "resetsAt": 1760000000})
    assert old is not None and old.exceeded
    (window,) = old.exhausted
    assert (window.scope, window.resets_at) == (ALL_MODELS, 1760000000)
    assert old.blocked_until("claude-sonnet-5") == 1760000000
    wrapped = json.loads(json.loads(fixture_bytes("error-429-exceeded-limit-extension.json"))["error"]["message"])
    limit = parse_message_limit(wrapped)
    assert limit is not None and limit.blocked_until("x") == 1755183600
    assert limit.exhausted[0].key == "5h" and limit.exhausted[0].period == SESSION
    per_model = parse_message_limit({"type": "exceeded_limit", "resetsAt": 1760000000, "perModelLimit": True},
                                    model="claude-opus-4-8")  # fmt: skip
    assert per_model is not None
    assert per_model.blocked_until("claude-opus-4-8") == 1760000000
    assert per_model.blocked_until("claude-sonnet-5") is None
    bare = parse_message_limit({"type": "exceeded_limit"})
    assert bare is not None and bare.blocked_until(None) == math.inf  # the caller's default park time
    assert parse_message_limit({"type": "within_limit", "resetsAt": None}).exceeded is False  # type: ignore[union-attr]
    assert parse_message_limit("nope") is None


def test_exhausted_model_window_parks_that_model_only() -> None:
    raw = {"type": "exceeded_limit", "resetsAt": 1790300000,
           "windows": {"5h": {"status": "within_limit", "resets_at": 1790012400, "utilization": 0.2},
                       "7d_oi": {"status": "exceeded_limit", "resets_at": "1790300000000", "utilization": 1.0}}}  # fmt: skip
    limit = parse_message_limit(raw, model="claude-fable-5")
    assert limit is not None and [w.key for w in limit.exhausted] == ["7d_oi"]
    assert limit.blocked_until("claude-fable-5") == 1790300000  # epoch ms read as ms
    assert limit.blocked_until("claude-sonnet-5") is None
    scoped = {"type": "exceeded_limit", "resetsAt": 1790300000,
              "resolved": {"status": "exceeded", "limit": {"kind": "weekly_scoped", "percent": 100,
                           "scope": {"model": {"id": None, "display_name": "Fable"}, "surface": None}}}}  # fmt: skip
    limit = parse_message_limit(scoped, model="claude-sonnet-5")
    assert limit is not None
    assert limit.blocked_until("claude-fable-5") == 1790300000
    assert limit.blocked_until("claude-sonnet-5") is None


USAGE = {
    "five_hour": {"utilization": 23.0, "resets_at": "2026-09-21T18:00:00.512345+00:00"},
    "seven_day": {"utilization": 48.0, "resets_at": "2026-09-24T09:00:00.512360+00:00"},
    "seven_day_oauth_apps": None,
    "seven_day_opus": None,
    "seven_day_sonnet": {"utilization": 6.0, "resets_at": "2026-09-24T09:00:00.512371+00:00"},
    "seven_day_cowork": None,
    "seven_day_omelette": {"utilization": 12.0, "resets_at": "2026-09-24T09:00:00.512380+00:00"},
    "tangelo": None,
    "iguana_necktie": {"utilization": 0, "resets_at": None},
    "extra_usage": {"is_enabled": False, "monthly_limit": None, "used_credits": None, "utilization": None,
                    "currency": None, "disabled_reason": None},
    "limits": [
        {"kind": "session", "group": "session", "percent": 23, "severity": "normal",
         "resets_at": "2026-09-21T18:00:00.512345+00:00", "scope": None, "is_active": False},
        {"kind": "weekly_all", "group": "weekly", "percent": 48, "severity": "normal",
         "resets_at": "2026-09-24T09:00:00.512360+00:00", "scope": None, "is_active": False},
        {"kind": "weekly_scoped", "group": "weekly", "percent": 88, "severity": "warning",
         "resets_at": "2026-09-24T09:00:00.512399Z",
         "scope": {"model": {"id": None, "display_name": "Fable"}, "surface": None}, "is_active": True},
    ],
}  # fmt: skip


def test_usage_body() -> None:
    usage = parse_usage(USAGE)
    by_key = {w.key: w for w in usage.windows}
    assert set(by_key) == {"five_hour", "seven_day", "seven_day_sonnet", "seven_day_omelette", "iguana_necktie",
                           "limits.session", "limits.weekly_all", "limits.weekly_scoped"}  # fmt: skip
    five = by_key["five_hour"]
    assert (five.period, five.scope, five.utilization) == (SESSION, ALL_MODELS, 0.23)
    assert five.resets_at == datetime(2026, 9, 21, 18, 0, 0, 512345, tzinfo=UTC).timestamp()
    assert by_key["seven_day_sonnet"].binds("claude-sonnet-4-6") and not by_key["seven_day_sonnet"].binds("claude-opus-4-8")
    assert by_key["seven_day_omelette"].scope == NOT_CHAT and not by_key["seven_day_omelette"].binds(None)
    scoped = by_key["limits.weekly_scoped"]
    assert (scoped.model, scoped.active, scoped.severity, scoped.utilization) == ("Fable", True, "warning", 0.88)
    assert scoped.binds("claude-fable-5") and not scoped.binds("claude-sonnet-5")
    assert usage.headroom("claude-fable-5") == pytest.approx(0.12)
    assert usage.headroom("claude-sonnet-5") == pytest.approx(0.52)
    assert usage.extra_usage is not None and not usage.extra_usage.enabled
    assert parse_usage({"five_hour": None, "limits": []}).headroom(None) is None  # free plan


def test_usage_exhausted_window() -> None:
    usage = parse_usage({"five_hour": {"utilization": 100, "resets_at": 1790012400}})
    assert usage.windows[0].exceeded and usage.windows[0].resets_at == 1790012400
    assert usage.headroom("claude-sonnet-5") == 0.0


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (1790012400, 1790012400),
        (1790012400000, 1790012400),
        ("1790012400", 1790012400),
        (1790012400.5, 1790012400.5),
        ("2026-09-21T15:40:00+00:00", datetime(2026, 9, 21, 15, 40, tzinfo=UTC).timestamp()),
        ("2026-09-21T15:40:00Z", datetime(2026, 9, 21, 15, 40, tzinfo=UTC).timestamp()),
        ("2026-09-21T15:40:00.123Z", datetime(2026, 9, 21, 15, 40, 0, 123000, tzinfo=UTC).timestamp()),
        ("2026-09-21T15:40:00.1234567+00:00", datetime(2026, 9, 21, 15, 40, 0, 123456, tzinfo=UTC).timestamp()),
        ("2026-09-21T17:40:00+02:00", datetime(2026, 9, 21, 15, 40, tzinfo=UTC).timestamp()),
        ("2026-09-21T15:40:00", datetime(2026, 9, 21, 15, 40, tzinfo=UTC).timestamp()),
        (None, None),
        (True, None),
        ("soon", None),
        (-5, None),
        (float("nan"), None),
        (float("inf"), None),
        ("9999-12-31T23:59:59-23:00", None),
        (10**400, None),
    ],
)
def test_parse_reset_time(raw: object, seconds: float | None) -> None:
    assert parse_reset_time(raw) == seconds


@FAST
@given(json_values, st.none() | st.text(max_size=20))
def test_limit_parsers_never_raise(raw: object, model: str | None) -> None:
    limit = parse_message_limit(raw, model)
    if limit is not None:
        limit.blocked_until(model)
    usage = parse_usage(raw)
    usage.headroom(model)
    parse_reset_time(raw)


@FAST
@given(st.floats(allow_nan=False, min_value=1e9, max_value=9e9))
def test_reset_times_round_trip(seconds: float) -> None:
    assert parse_reset_time(seconds) == seconds
    assert parse_reset_time(iso(seconds)) == pytest.approx(seconds, abs=1e-5)


def test_model_matches() -> None:
    assert model_matches("Fable", "claude-fable-5")
    assert model_matches("Opus 4.8", "claude-opus-4-8")
    assert model_matches("claude-haiku-4-5", "claude-haiku-4-5-20251001")
    assert model_matches("opus", "claude-3-opus-20240229")
    assert not model_matches("Opus 4.8", "claude-opus-4-7")
    assert not model_matches("sonnet", "claude-opus-4-8")
    assert not model_matches("", "claude-opus-4-8")
