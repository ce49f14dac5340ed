"""Client dialects: each parses its wire request into a :class:`claude2api.core.types.ChatRequest` and
renders the pipeline's events back into its own wire format."""
