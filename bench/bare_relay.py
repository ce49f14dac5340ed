"""The floor: a minimal aiohttp relay (engineering notes D.3), for ``bench/run.py --floor``.

Forwards every request to the fake claude.ai and streams the body back chunk by chunk, with no
parsing, no re-rendering, no auth, no logging. Whatever it adds on this machine is what any
aiohttp relay pays here, so the benchmark can tell a slow machine from a slow daemon. The same
direct client runs through it unchanged (same paths, same frames).

Configured like the daemon: ``CLAUDE_BASE_URL`` and ``ADDRESS``; ``--uvloop`` runs it on uvloop.
"""

import asyncio
import os
import sys

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

UPSTREAM = os.environ["CLAUDE_BASE_URL"]
FORWARDED = ("cookie", "content-type", "accept")
HTTP = web.AppKey("http", ClientSession)


async def relay(request: web.Request) -> web.StreamResponse:
    if request.path == "/health":
        return web.Response(text="ok")
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED}
    async with request.app[HTTP].request(
        request.method, UPSTREAM + request.path_qs, data=body, headers=headers
    ) as up:
        response = web.StreamResponse(
            status=up.status,
            headers={"Content-Type": up.headers.get("Content-Type", "application/octet-stream")},
        )
        await response.prepare(request)
        async for chunk in up.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def session(app: web.Application):
    app[HTTP] = ClientSession(
        connector=TCPConnector(limit=0), timeout=ClientTimeout(total=None, sock_read=300)
    )
    yield
    await app[HTTP].close()


def main() -> None:
    if "--uvloop" in sys.argv:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", relay)
    host, _, port = os.environ["ADDRESS"].rpartition(":")
    web.run_app(app, host=host, port=int(port), access_log=None, print=None, handler_cancellation=True)


if __name__ == "__main__":
    main()
