"""Test helpers shipped with claude2api: a fake claude.ai server and its pytest fixture."""

from claude2api.testing.fake_claude import (
    Account,
    Call,
    Conversation,
    FakeClaude,
    FakeModel,
    Framing,
    Reply,
    ToolCall,
)

__all__ = ["Account", "Call", "Conversation", "FakeClaude", "FakeModel", "Framing", "Reply", "ToolCall"]
