"""Run the daemon exactly as ``python -m claude2api`` does, but on uvloop's event loop.

Used by ``bench/run.py --uvloop`` to measure what uvloop would change; uvloop is not a
dependency of claude2api (``pip install uvloop`` into the venv to try it).
"""

import asyncio
import sys

import uvloop

from claude2api.cli import main

if __name__ == "__main__":
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    sys.exit(main())
