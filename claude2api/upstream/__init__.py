"""The claude.ai side: the web API client, its SSE parser and its failure classification."""
