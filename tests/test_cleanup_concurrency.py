"""Many streams ending at once: clean-up keeps up, but never opens a connection storm to claude.ai.

The load test (5,000 held streams cut together) left conversations behind: every first attempt
started at once, thousands of connections to claude.ai opened together. Clean-ups now share one
bound, ``CLEANUP_CONCURRENCY``, and the rest wait their turn.
"""

from __future__ import annotations

import asyncio

from claude2api.testing import FakeClaude
from claude2api.upstream.client import Account


async def test_cleanups_run_at_most_cleanup_concurrency_at_once_and_all_finish(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"CLEANUP_CONCURRENCY": "3"})
    janitor = daemon.services.janitor
    real_delete = janitor.client.delete_conversation
    in_flight = peak = done = 0

    async def counted_delete(account: Account, conversation: str) -> None:
        nonlocal in_flight, peak, done
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01)  # long enough for the others to pile up if nothing bounds them
            await real_delete(account, conversation)  # over the socket; the fake answers 404
        finally:
            in_flight -= 1
            done += 1

    janitor.client.delete_conversation = counted_delete  # type: ignore[method-assign]
    account = Account(fake.accounts[0].session_key, fake.accounts[0].org_id)
    for n in range(40):
        janitor.schedule(account, f"00000000-0000-4000-8000-{n:012d}", stop=False, delete=True)
    await daemon.idle()

    assert done == 40
    assert peak == 3
