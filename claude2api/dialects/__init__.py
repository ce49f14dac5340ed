"""Client dialects: each parses its wire request into a :class:`claude2api.chat.ChatRequest` and
renders the pipeline's events back into its own wire format."""
