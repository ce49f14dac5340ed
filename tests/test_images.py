import asyncio
import base64
import ipaddress
import socket
import ssl
import subprocess
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from claude2api.upstream import image_http as images
from claude2api.upstream.image_http import (
    ImageFetchError,
    decode_data_url,
    fetch_image,
    sniff_media_type,
    upload_filename,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # base64 of this uses '+' and '/'
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 16
GIF = b"GIF89a" + b"\0" * 16
WEBP = b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 16

# --- data URLs ---------------------------------------------------------------------------------


def test_decode_standard_base64():
    encoded = base64.b64encode(PNG).decode()
    assert "+" in encoded and "/" in encoded
    assert decode_data_url(f"data:image/png;base64,{encoded}") == ("image/png", PNG)


def test_decode_urlsafe_unpadded_and_wrapped():
    encoded = base64.urlsafe_b64encode(PNG[:-1]).decode()
    assert encoded.endswith("=") and "-" in encoded and "_" in encoded
    wrapped = "\n".join(encoded.rstrip("=")[i : i + 76] for i in range(0, len(encoded), 76))
    assert decode_data_url(f"DATA:Image/PNG;BASE64,{wrapped}") == ("image/png", PNG[:-1])


def test_decode_percent_encoded_padding_and_parameters():
    encoded = base64.b64encode(GIF[:-1]).decode().replace("=", "%3D")
    assert decode_data_url(f"data:image/gif;name=a.gif;base64,{encoded}") == ("image/gif", GIF[:-1])


def test_decode_sniffs_a_missing_media_type():
    assert decode_data_url("data:;base64," + base64.b64encode(JPEG).decode()) == ("image/jpeg", JPEG)
    assert decode_data_url("data:;base64,AAAA") == ("application/octet-stream", b"\0\0\0")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://example.com/a.png", "not a data: URL"),
        ("data:image/png;base64", "no ','"),
        ("data:image/png,rawbytes", "not base64-encoded"),
        ("data:image/png;base64,iVBO*w0K", "invalid base64"),
        ("data:image/png;base64,iVBOR", "invalid base64"),
        ("data:image/png;base64,", "empty"),
    ],
)
def test_decode_rejects(url, reason):
    with pytest.raises(ValueError, match=reason):
        decode_data_url(url)


# --- naming and sniffing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "media_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp"), (b"<html>", None)],
)
def test_sniff_media_type(data, media_type):
    assert sniff_media_type(data) == media_type


@pytest.mark.parametrize(
    ("media_type", "name"),
    [
        ("image/png", "image.png"),
        ("image/jpeg", "image.jpg"),
        ("image/gif", "image.gif"),
        ("image/webp", "image.webp"),
        ("application/pdf", "document.pdf"),
        ("image/svg+xml", "file"),
    ],
)
def test_upload_filename(media_type, name):
    assert upload_filename(media_type) == name


# --- address policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "127.0.0.1",
        "169.254.169.254",  # cloud metadata
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_forbidden_addresses(address):
    assert images._is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address):
    assert not images._is_forbidden_address(ipaddress.ip_address(address))


# --- fetching from a real loopback server ------------------------------------------------------

MAX = 4096


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server(aiohttp_server):
    hits = []

    async def png(request):
        return web.Response(body=PNG[:1000], content_type="image/png")

    async def declared_too_big(request):
        return web.Response(body=b"\0" * (MAX + 1), content_type="image/png")

    async def streamed_too_big(request):
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"\0" * 1024)
        return response

    async def slow_headers(request):
        await asyncio.sleep(5)
        return web.Response(body=PNG, content_type="image/png")

    async def slow_body(request):
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        await response.write(PNG[:100])
        await asyncio.sleep(5)
        return response

    async def html(request):
        return web.Response(text="<html></html>", content_type="text/html")

    async def octet(request):
        return web.Response(body=WEBP if request.query.get("kind") == "webp" else b"MZ\0\0")

    async def missing(request):
        return web.Response(status=404)

    async def redirect(request):
        raise web.HTTPFound(request.query["to"])

    async def loop_(request):
        raise web.HTTPFound("/loop")

    app = web.Application()
    for path, handler in [
        ("/img.png", png),
        ("/declared-too-big", declared_too_big),
        ("/streamed-too-big", streamed_too_big),
        ("/slow-headers", slow_headers),
        ("/slow-body", slow_body),
        ("/html", html),
        ("/octet", octet),
        ("/missing", missing),
        ("/redirect", redirect),
        ("/loop", loop_),
    ]:
        app.router.add_get(path, handler)

    @web.middleware
    async def record(request, handler):
        hits.append((request.host, request.path))
        return await handler(request)

    app.middlewares.append(record)
    srv = await aiohttp_server(app)
    srv.hits = hits
    return srv


@pytest.fixture
async def fake_dns(monkeypatch):
    """Map made-up names to addresses in the running loop's getaddrinfo, recording the lookups."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    table: dict[str, list[str]] = {}
    lookups: list[str] = []

    async def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            return await real(host, port, *args, **kwargs)
        lookups.append(host)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in table[host]
        ]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return SimpleNamespace(table=table, lookups=lookups)


@pytest.fixture
def loopback_is_public(monkeypatch):
    """Pretend 127.0.0.1 (the test server) is on the internet; everything else keeps its rule."""
    real = images._is_forbidden_address
    server_ip = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(images, "_is_forbidden_address", lambda a: a != server_ip and real(a))


async def fetch(http, url, *, max_bytes=MAX, timeout=5.0, allow_private=True):
    return await fetch_image(
        http, str(url), max_bytes=max_bytes, timeout=timeout, allow_private=allow_private
    )


async def test_fetch_allowed_with_allow_private(http, server):
    assert await fetch(http, server.make_url("/img.png")) == ("image/png", PNG[:1000])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"])
async def test_loopback_refused_by_default(http, server, host):
    with pytest.raises(ImageFetchError, match="private, loopback or reserved"):
        await fetch(http, f"http://{host}:{server.port}/img.png", allow_private=False)
    assert server.hits == []


async def test_connects_to_the_checked_address(http, server, fake_dns):
    """The name is resolved once, by us; aiohttp gets the IP, the server still sees the name."""
    fake_dns.table["cdn.test"] = ["127.0.0.1"]
    assert await fetch(http, f"http://cdn.test:{server.port}/img.png") == ("image/png", PNG[:1000])
    assert fake_dns.lookups == ["cdn.test"]
    assert server.hits == [(f"cdn.test:{server.port}", "/img.png")]


@pytest.fixture
def cdn_certificate(tmp_path):
    """A self-signed certificate for ``cdn.test`` (made with the openssl command)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=cdn.test", "-addext", "subjectAltName=DNS:cdn.test", "-days", "1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return key, cert


async def test_https_verifies_the_name_not_the_address(aiohttp_server, fake_dns, cdn_certificate):
    """TLS to the pinned IP still sends SNI and checks the certificate against the URL's name."""
    key, cert = cdn_certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server_names = []
    server_ctx.sni_callback = lambda sock, name, ctx: server_names.append(name)

    async def gif(request):
        return web.Response(body=GIF, content_type="image/gif")

    app = web.Application()
    app.router.add_get("/img.png", gif)
    server = await aiohttp_server(app, ssl=server_ctx)
    fake_dns.table["cdn.test"] = ["127.0.0.1"]
    fake_dns.table["other.test"] = ["127.0.0.1"]

    client_ctx = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as http:
        assert await fetch(http, f"https://cdn.test:{server.port}/img.png") == ("image/gif", GIF)
        with pytest.raises(ImageFetchError, match="TLS certificate verification failed"):
            await fetch(http, f"https://other.test:{server.port}/img.png")
    assert server_names[0] == "cdn.test"


async def test_any_private_answer_refuses_the_name(http, server, fake_dns, loopback_is_public):
    fake_dns.table["mixed.test"] = ["127.0.0.1", "10.0.0.5"]
    with pytest.raises(ImageFetchError, match="private, loopback or reserved"):
        await fetch(http, f"http://mixed.test:{server.port}/img.png", allow_private=False)
    assert server.hits == []


async def test_unresolvable_host(http, fake_dns):
    fake_dns.table["nowhere.test"] = []
    with pytest.raises(ImageFetchError, match="could not resolve host"):
        await fetch(http, "http://nowhere.test/a.png")


@pytest.mark.parametrize("target", ["http://127.0.0.2:{port}/img.png", "http://intranet.test:{port}/img.png"])
async def test_redirect_to_private_refused(http, server, fake_dns, loopback_is_public, target):
    fake_dns.table["intranet.test"] = ["10.0.0.5"]
    url = server.make_url("/redirect").with_query(to=target.format(port=server.port))
    assert await fetch(http, server.make_url("/img.png"), allow_private=False)  # the first hop is fine
    with pytest.raises(ImageFetchError, match="private, loopback or reserved"):
        await fetch(http, url, allow_private=False)


async def test_redirect_followed(http, server):
    url = server.make_url("/redirect").with_query(to="/img.png")
    assert await fetch(http, url) == ("image/png", PNG[:1000])
    assert [path for _, path in server.hits] == ["/redirect", "/img.png"]


async def test_at_most_three_redirects(http, server):
    with pytest.raises(ImageFetchError, match="more than 3 redirects"):
        await fetch(http, server.make_url("/loop"))
    assert len(server.hits) == 4


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "file:///etc/passwd", "data:image/png;base64,AAAA"]
)
async def test_only_http_and_https(http, url):
    with pytest.raises(ImageFetchError, match="only http and https"):
        await fetch(http, url)


async def test_redirect_to_other_scheme_refused(http, server):
    with pytest.raises(ImageFetchError, match="only http and https"):
        await fetch(http, server.make_url("/redirect").with_query(to="file:///etc/passwd"))


async def test_content_length_over_limit(http, server):
    with pytest.raises(ImageFetchError, match=f"larger than {MAX} bytes"):
        await fetch(http, server.make_url("/declared-too-big"))


async def test_streamed_body_over_limit(http, server):
    with pytest.raises(ImageFetchError, match=f"larger than {MAX} bytes"):
        await fetch(http, server.make_url("/streamed-too-big"))


@pytest.mark.parametrize("path", ["/slow-headers", "/slow-body"])
async def test_timeout_covers_the_whole_download(http, server, path):
    with pytest.raises(ImageFetchError, match=r"timed out after 0\.2 s"):
        await fetch(http, server.make_url(path), timeout=0.2)


async def test_non_image_content_type_refused(http, server):
    with pytest.raises(ImageFetchError, match=r"not an image \(Content-Type text/html\)"):
        await fetch(http, server.make_url("/html"))


async def test_untyped_body_sniffed(http, server):
    assert await fetch(http, server.make_url("/octet").with_query(kind="webp")) == ("image/webp", WEBP)
    with pytest.raises(ImageFetchError, match="unknown content"):
        await fetch(http, server.make_url("/octet"))


async def test_http_error_status(http, server):
    with pytest.raises(ImageFetchError, match="HTTP status 404"):
        await fetch(http, server.make_url("/missing"))


async def test_connection_failure_reason_has_no_url(http, server):
    port = server.port
    await server.close()
    with pytest.raises(ImageFetchError, match="could not connect") as info:
        await fetch(http, f"http://user:secret@127.0.0.1:{port}/img.png?token=t0k")
    assert "secret" not in str(info.value) and "t0k" not in str(info.value)
