from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from claude2api.config import Settings
from claude2api.core.failures import APIError
from claude2api.core.types import (
    Attachment,
    ChatContext,
    ChatRequest,
    ImagePart,
    Message,
    TextDelta,
    TextPart,
    ToolCall,
    ToolResult,
)
from claude2api.pipeline.history_file import HISTORY_FILE_INSTRUCTION, history_to_file_factory
from claude2api.pipeline.images import fetch_images_factory
from claude2api.pipeline.transcript import ARTIFACTS_PREAMBLE, build_prompt, transcript_factory
from claude2api.upstream.protocol import attachment_wire

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def settings(**overrides):
    values = {
        "no_role_prefix": False,
        "prompt_disable_artifacts": False,
        "max_chat_history_length": 10000,
        "image_max_bytes": 10 * 1024 * 1024,
        "image_fetch_timeout": 20.0,
        "image_fetch_allow_private": True,
        "max_images_per_request": 20,
        "max_image_bytes_per_request": 50 * 1024 * 1024,
        "max_documents_per_request": 20,
        "max_document_bytes_per_request": 30 * 1024 * 1024,
    }
    return SimpleNamespace(**(values | overrides))


def msg(role, *parts):
    return Message(role, [TextPart(p) if isinstance(p, str) else p for p in parts])


def make_ctx(messages, *, instructions=(), http=None):
    request = ChatRequest(
        model="claude-sonnet-4-5", upstream_model=None, messages=messages, instructions=list(instructions)
    )
    services = SimpleNamespace(http=http)
    return ChatContext(request=request, request_id="req", dialect="openai", settings=Settings(), internal=services)


async def run_chain(ctx, *middlewares):
    """Run ``middlewares`` over a terminal handler that records the ctx it got; returns the events."""
    seen = []

    async def terminal(c):
        seen.append(c)
        yield TextDelta("ok")

    handler = terminal
    for mw in reversed(middlewares):
        handler = (lambda m, nxt: lambda c: m(c, nxt))(mw, handler)
    events = [event async for event in handler(ctx)]
    assert seen == [ctx]
    return events


# --- build_prompt ------------------------------------------------------------------------------


def test_original_example():
    prompt, images = build_prompt([msg("system", "Be brief"), msg("user", "Hi")])
    assert prompt == "System: Be brief\n\nHuman: Hi\n\n"
    assert images == []


def test_all_roles_and_multi_part_text():
    prompt, _ = build_prompt(
        [
            msg("system", "S"),
            msg("user", "a", "b"),
            Message("assistant", [TextPart("A"), ToolCall("toolu_1", "f", '{"x":1}')]),
            Message("tool", [ToolResult("toolu_1", [TextPart('{"t": 1}')])]),
        ]
    )
    assert prompt == (
        "System: S\n\nHuman: a\n\nb\n\nAssistant: A\n\n"
        '<tool_call id="toolu_1" name="f">{"x":1}</tool_call>\n\n'
        'Human: <tool_result id="toolu_1" name="f">\n{"t": 1}\n</tool_result>\n\n'
    )


def test_tool_results_keep_the_error_flag_and_number_their_images():
    image = ImagePart(media_type="image/png", data=b"png")
    prompt, images = build_prompt(
        [
            Message("user", [TextPart("look"), image]),
            Message("assistant", [ToolCall("toolu_2", "shot", "{}")]),
            Message("user", [ToolResult("toolu_2", [TextPart("failed"), image], is_error=True)]),
        ]
    )
    assert '<tool_result id="toolu_2" name="shot" is_error="true">\nfailed\n[image 2]\n</tool_result>' in prompt
    assert images == [image, image]


def test_no_role_prefix_keeps_separators():
    prompt, _ = build_prompt(
        [msg("system", "Be brief"), msg("user", "Hi"), Message("tool", [ToolResult("c", [TextPart("42")])])],
        no_role_prefix=True,
        instructions=["Reply in JSON."],
    )
    assert prompt == 'Be brief\n\nHi\n\n<tool_result id="c" name="c">\n42\n</tool_result>\n\nReply in JSON.\n\n'


def test_artifacts_preamble_first_even_without_prefixes():
    assert ARTIFACTS_PREAMBLE == (
        "System: Forbidden to use <antArtifact> </antArtifact> to wrap code blocks, use markdown syntax "
        "instead, which means wrapping code blocks with ``` ```\n\n"
    )
    prompt, _ = build_prompt([msg("user", "Hi")], disable_artifacts=True)
    assert prompt == ARTIFACTS_PREAMBLE + "Human: Hi\n\n"
    prompt, _ = build_prompt([msg("user", "Hi")], disable_artifacts=True, no_role_prefix=True)
    assert prompt == ARTIFACTS_PREAMBLE + "Hi\n\n"


def test_instructions_go_last_as_system_paragraphs():
    prompt, _ = build_prompt([msg("user", "Hi")], instructions=["Reply in JSON.", "No prose."])
    assert prompt == "Human: Hi\n\nSystem: Reply in JSON.\n\nSystem: No prose.\n\n"


def test_images_keep_order_and_position():
    first, second, third = ImagePart("image/png", PNG), ImagePart(url="https://x/b.png"), ImagePart(url="u3")
    prompt, images = build_prompt(
        [msg("user", first, "compare with", second), msg("assistant", "ok"), msg("user", third)]
    )
    assert prompt == "Human: [image 1]\n\ncompare with\n\n[image 2]\n\nAssistant: ok\n\nHuman: [image 3]\n\n"
    assert images[0] is first and images[1] is second and images[2] is third


def test_message_without_parts_is_left_out():
    prompt, _ = build_prompt([msg("user", "Hi"), Message("assistant", []), msg("user", "again")])
    assert prompt == "Human: Hi\n\nHuman: again\n\n"


# --- middlewares -------------------------------------------------------------------------------


async def test_role_prefix_middleware_fills_turn():
    image = ImagePart("image/png", PNG)
    ctx = make_ctx([msg("system", "Be brief"), msg("user", "Hi", image)], instructions=["JSON only."])
    events = await run_chain(ctx, transcript_factory(settings()))
    assert events == [TextDelta("ok")]
    assert ctx.turn.prompt == "System: Be brief\n\nHuman: Hi\n\n[image 1]\n\nSystem: JSON only.\n\n"
    assert ctx.turn.images == [image]


async def test_role_prefix_middleware_uses_settings():
    ctx = make_ctx([msg("user", "Hi")])
    await run_chain(ctx, transcript_factory(settings(no_role_prefix=True, prompt_disable_artifacts=True)))
    assert ctx.turn.prompt == ARTIFACTS_PREAMBLE + "Hi\n\n"


async def test_short_history_stays_in_prompt():
    ctx = make_ctx([msg("user", "Hi")])
    cfg = settings(max_chat_history_length=len("Human: Hi\n\n"))
    await run_chain(ctx, transcript_factory(cfg), history_to_file_factory(cfg))
    assert ctx.turn.prompt == "Human: Hi\n\n"
    assert ctx.turn.attachments == []


@pytest.mark.parametrize("disable_artifacts", [False, True])
async def test_long_history_moves_to_context_txt(disable_artifacts):
    limit = 1000
    cfg = settings(max_chat_history_length=limit, prompt_disable_artifacts=disable_artifacts)
    ctx = make_ctx([msg("system", "Be brief"), msg("user", "é" * limit)])  # 2 UTF-8 bytes each
    await run_chain(ctx, transcript_factory(cfg), history_to_file_factory(cfg))

    transcript, _ = build_prompt(ctx.request.messages, disable_artifacts=disable_artifacts)
    assert ctx.turn.attachments == [Attachment("context.txt", transcript, "text/plain")]
    assert attachment_wire(ctx.turn.attachments[0])["file_size"] == len(transcript.encode())
    preamble = ARTIFACTS_PREAMBLE if disable_artifacts else ""
    assert ctx.turn.prompt == preamble + HISTORY_FILE_INSTRUCTION
    assert len(ctx.turn.prompt.encode()) <= limit


async def test_limit_counts_utf8_bytes_not_characters():
    cfg = settings(max_chat_history_length=15)
    ctx = make_ctx([msg("user", "ééééé")])  # "Human: ééééé\n\n": 14 characters, 19 bytes
    await run_chain(ctx, transcript_factory(cfg), history_to_file_factory(cfg))
    assert [a.file_name for a in ctx.turn.attachments] == ["context.txt"]


async def test_tiny_limit_still_sends_the_instruction():
    cfg = settings(max_chat_history_length=0)
    ctx = make_ctx([msg("user", "Hi")])
    await run_chain(ctx, transcript_factory(cfg), history_to_file_factory(cfg))
    assert ctx.turn.prompt == HISTORY_FILE_INSTRUCTION
    assert ctx.turn.attachments[0].content == "Human: Hi\n\n"


def test_history_instruction_is_the_original_text():
    assert HISTORY_FILE_INSTRUCTION == (
        "You must immerse yourself in the role of assistant in context.txt, cannot respond as a user, "
        "cannot reply to this message, cannot mention this message, and ignore this message in your "
        "response.\n\n"
    )


# --- fetch_images ------------------------------------------------------------------------------


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def image_server(aiohttp_server):
    hits = []

    async def png(request):
        hits.append(request.path)
        return web.Response(body=PNG, content_type="image/png")

    async def html(request):
        return web.Response(text="<html></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/a.png", png)
    app.router.add_get("/page", html)
    server = await aiohttp_server(app)
    server.hits = hits
    return server


async def test_fetch_images_downloads_each_url_once(image_server, http):
    url = str(image_server.make_url("/a.png"))
    inline = ImagePart("image/gif", b"GIF89a")
    first, again = ImagePart(url=url), ImagePart(url=url)
    ctx = make_ctx([msg("user", first, inline, again)], http=http)
    cfg = settings()
    await run_chain(ctx, transcript_factory(cfg), fetch_images_factory(cfg))
    assert image_server.hits == ["/a.png"]
    assert (first.media_type, first.data) == (again.media_type, again.data) == ("image/png", PNG)
    assert (inline.media_type, inline.data) == ("image/gif", b"GIF89a")
    assert ctx.turn.images == [first, inline, again]


async def test_fetch_images_failure_is_a_400_without_query_or_credentials(image_server, http):
    url = image_server.make_url("/page").with_user("me").with_password("secret").with_query(token="t0k")
    ctx = make_ctx([msg("user", ImagePart(url=str(url)))], http=http)
    cfg = settings()
    with pytest.raises(APIError) as info:
        await run_chain(ctx, transcript_factory(cfg), fetch_images_factory(cfg))
    error = info.value
    assert (error.status, error.param) == (400, "messages")
    assert error.message == (
        f"could not fetch the image at {image_server.make_url('/page')}: not an image (Content-Type text/html)"
    )
    assert "secret" not in error.message and "t0k" not in error.message


async def test_fetch_images_refuses_loopback_by_default(image_server, http):
    ctx = make_ctx([msg("user", ImagePart(url=str(image_server.make_url("/a.png"))))], http=http)
    cfg = settings(image_fetch_allow_private=False)
    with pytest.raises(APIError, match="private, loopback or reserved"):
        await run_chain(ctx, transcript_factory(cfg), fetch_images_factory(cfg))
    assert image_server.hits == []
