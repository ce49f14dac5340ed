"""pytest plugin (entry point ``pytest11``): the ``fake_claude`` fixture.

``fake_claude`` is a started :class:`~claude2api.testing.FakeClaude` on loopback with one ``"ok"``
account (``fake_claude.accounts[0]``), closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from claude2api.testing.fake_claude import FakeClaude

try:
    import pytest_asyncio
except ImportError:  # claude2api installed next to a pytest without pytest-asyncio: offer no fixture
    pass
else:

    @pytest_asyncio.fixture
    async def fake_claude() -> AsyncIterator[FakeClaude]:
        """A running FakeClaude with one "ok" account."""
        async with FakeClaude() as fake:
            fake.add_account()
            yield fake

    try:  # TLS and Cloudflare-mode fixtures, when trustme (test extra) is installed
        from claude2api.testing.cloudflare import ca_file, cloudflare_claude, tls_ca  # noqa: F401
    except ImportError:
        pass
