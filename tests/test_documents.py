"""Documents end to end: PDFs and text files through both dialects' real SDKs, to the fake claude.ai.

The fake's default reply ends with ``[file NAME: TEXT]`` for every document the model read (an
uploaded file, or a text attachment), so the reply itself shows what reached the model.
"""

from __future__ import annotations

import base64

import anthropic
import openai
import pytest
from aiohttp import web

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon
from tests.support import MODEL, raw_post, sdk


def tiny_pdf(text: str) -> bytes:
    """A minimal one-page PDF whose uncompressed content stream shows ``text``."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PDF = tiny_pdf("Quarterly revenue grew by seven percent")
NOTES = "remember: the answer is teal\n"
PDF_SEEN = "[file report.pdf: Quarterly revenue grew by seven percent]"
NOTES_SEEN = "[file notes.md: remember: the answer is teal]"


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def openai_files(*extra: dict) -> list[dict]:
    return [
        {"role": "user", "content": [
            {"type": "text", "text": "Summarise these."},
            {"type": "file", "file": {"file_data": data_url("application/pdf", PDF), "filename": "report.pdf"}},
            {"type": "file", "file": {"file_data": data_url("text/markdown", NOTES.encode()), "filename": "notes.md"}},
            *extra,
        ]}
    ]


def anthropic_documents() -> list[dict]:
    pdf = {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(PDF).decode()}
    return [
        {"role": "user", "content": [
            {"type": "document", "title": "report.pdf", "source": pdf},
            {"type": "document", "title": "notes.md",
             "source": {"type": "text", "media_type": "text/markdown", "data": NOTES}},
            {"type": "text", "text": "Summarise these."},
        ]}
    ]


def anthropic_sdk(daemon: Daemon) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=daemon.url, api_key=daemon.api_key, max_retries=0)


def assert_reached_the_model(fake: FakeClaude, reply: str) -> None:
    assert PDF_SEEN in reply and NOTES_SEEN in reply, reply
    [upload] = fake.calls_to("/wiggle/upload-file")  # the PDF; the text file went inline
    assert upload.file["content_type"] == "application/pdf"
    completion = fake.calls_to("/completion")[-1]
    assert completion.json["files"] == [upload.file["file_uuid"]]
    assert upload.file["conversation"] in completion.path
    [attachment] = completion.json["attachments"]
    assert attachment["file_name"] == "notes.md" and attachment["file_type"] == "text/markdown"
    assert "[document 1: report.pdf]" in completion.json["prompt"]


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_file_parts(fake: FakeClaude, daemon: Daemon, stream: bool) -> None:
    async with sdk(daemon) as client:
        if stream:
            chunks = await client.chat.completions.create(model=MODEL, messages=openai_files(), stream=True)
            reply = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            completion = await client.chat.completions.create(model=MODEL, messages=openai_files())
            reply = completion.choices[0].message.content or ""
    assert_reached_the_model(fake, reply)


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_document_blocks(fake: FakeClaude, daemon: Daemon, stream: bool) -> None:
    async with anthropic_sdk(daemon) as client:
        if stream:
            async with client.messages.stream(model=MODEL, max_tokens=500, messages=anthropic_documents()) as events:
                reply = "".join([text async for text in events.text_stream])
        else:
            message = await client.messages.create(model=MODEL, max_tokens=500, messages=anthropic_documents())
            reply = "".join(block.text for block in message.content if block.type == "text")
    assert_reached_the_model(fake, reply)


async def test_wiggle_404_falls_back_to_the_legacy_upload_and_is_remembered(
    fake: FakeClaude, make_daemon
) -> None:
    account = fake.add_account()
    account.wiggle_upload = False
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        for _ in range(2):
            completion = await client.chat.completions.create(model=MODEL, messages=openai_files())
            assert PDF_SEEN in (completion.choices[0].message.content or "")
    assert len(fake.calls_to("/wiggle/upload-file")) == 1  # the 404 is remembered for the account
    assert len(fake.calls_to(f"/api/{account.org_id}/upload")) == 2


async def test_a_failed_request_leaves_no_upload_and_no_conversation(fake: FakeClaude, make_daemon) -> None:
    account = fake.add_account()
    account.behaviour = "server_error"  # the completion fails after the uploads
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model=MODEL, messages=openai_files())
    [upload] = fake.calls_to("/wiggle/upload-file")
    await daemon.idle()
    assert fake.uploads_of(account) == {}
    assert upload.file["conversation"] not in fake.conversations


async def test_unsupported_type_is_a_400_naming_it(daemon: Daemon) -> None:
    zip_part = {"type": "file", "file": {"file_data": data_url("application/zip", b"PK\x03\x04"), "filename": "a.zip"}}
    status, _, raw = await raw_post(daemon, "/v1/chat/completions", {"model": MODEL, "messages": openai_files(zip_part)})
    assert status == 400 and b"unsupported document type application/zip" in raw, raw
    block = {"type": "document", "source": {"type": "base64", "media_type": "application/x-msdownload", "data": "TVo="}}
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [block]}]}
    status, _, raw = await raw_post(daemon, "/v1/messages", body)
    assert status == 400 and b"application/x-msdownload" in raw and b"invalid_request_error" in raw, raw


async def test_file_ids_are_a_400_saying_there_is_no_files_api(daemon: Daemon) -> None:
    part = {"type": "file", "file": {"file_id": "file-abc123"}}
    status, _, raw = await raw_post(daemon, "/v1/chat/completions", {"model": MODEL, "messages": openai_files(part)})
    assert status == 400 and b"no Files API" in raw, raw


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"MAX_DOCUMENTS_PER_REQUEST": "1"}, "MAX_DOCUMENTS_PER_REQUEST"),
        ({"MAX_DOCUMENT_BYTES_PER_REQUEST": str(len(PDF))}, "MAX_DOCUMENT_BYTES_PER_REQUEST"),
    ],
)
async def test_caps_are_a_400(fake: FakeClaude, make_daemon, env: dict[str, str], setting: str) -> None:
    daemon = await make_daemon(env=env)
    for path, body in [
        ("/v1/chat/completions", {"model": MODEL, "messages": openai_files()}),
        ("/v1/messages", {"model": MODEL, "max_tokens": 10, "messages": anthropic_documents()}),
    ]:
        status, _, raw = await raw_post(daemon, path, body)
        assert status == 400 and setting.encode() in raw, raw
    assert fake.calls_to("/completion") == [] and fake.uploads == {}


async def test_url_documents_are_downloaded_with_the_image_rules(fake: FakeClaude, make_daemon, aiohttp_server) -> None:
    async def report(_: web.Request) -> web.Response:
        return web.Response(body=PDF, content_type="application/pdf")

    app = web.Application()
    app.router.add_get("/files/report.pdf", report)
    server = await aiohttp_server(app)
    block = {"type": "document", "source": {"type": "url", "url": str(server.make_url("/files/report.pdf"))}}
    body = {"model": MODEL, "max_tokens": 500, "messages": [{"role": "user", "content": [block]}]}
    refused = await make_daemon()  # loopback: refused unless IMAGE_FETCH_ALLOW_PRIVATE
    status, _, raw = await raw_post(refused, "/v1/messages", body)
    assert status == 400 and b"private, loopback or reserved" in raw, raw
    allowed = await make_daemon(env={"IMAGE_FETCH_ALLOW_PRIVATE": "true"})
    status, _, raw = await raw_post(allowed, "/v1/messages", body)
    assert status == 200 and PDF_SEEN.encode() in raw, raw
