"""The HTTP layer: the aiohttp app, route table, middlewares, handlers and the relay (commit point)."""
