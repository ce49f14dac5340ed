"""claude2api: an OpenAI- and Anthropic-compatible API over claude.ai web sessions."""

__version__ = "0.1.0"
