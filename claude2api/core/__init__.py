"""Neutral core: chat types, failures, the model catalog, reply cutting. No aiohttp, no claude.ai wire format."""
