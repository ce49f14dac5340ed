"""The model catalogue: which ids we advertise and how a requested id maps to claude.ai.

Every model is listed twice, plainly and with the ``-think`` suffix (the original program's
convention for extended thinking). The suffix is ours: claude.ai never sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

THINK_SUFFIX = "-think"

#: (id, display name, release date) of the models claude.ai's web app serves or served.
DEFAULT_MODELS: tuple[tuple[str, str, str], ...] = (
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17"),
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01"),
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05"),
    ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-14"),
    ("claude-opus-4-20250514", "Claude Opus 4", "2025-05-14"),
    ("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-19"),
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    display_name: str
    created_at: str  # RFC 3339 date the model was released

    @property
    def created(self) -> int:
        """Unix seconds, as OpenAI's ``created`` field wants."""
        from datetime import datetime

        return int(datetime.fromisoformat(self.created_at).replace(tzinfo=UTC).timestamp())


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    requested: str
    upstream: str
    thinking: bool


class ModelCatalog:
    """The advertised models; ``resolve`` maps a requested id to the upstream id."""

    def __init__(self, extra_ids: tuple[str, ...] = ()) -> None:
        infos = [ModelInfo(mid, name, f"{date}T00:00:00Z") for mid, name, date in DEFAULT_MODELS]
        known = {i.id for i in infos}
        for mid in extra_ids:
            mid = mid.removesuffix(THINK_SUFFIX)
            if mid not in known:
                known.add(mid)
                infos.append(ModelInfo(mid, mid, "2026-01-01T00:00:00Z"))
        self._base = infos
        listed: list[ModelInfo] = []
        for info in infos:
            listed.append(info)
            listed.append(ModelInfo(info.id + THINK_SUFFIX, info.display_name + " (thinking)", info.created_at))
        self.models: tuple[ModelInfo, ...] = tuple(listed)
        self._by_id = {m.id: m for m in listed}

    def get(self, model_id: str) -> ModelInfo | None:
        return self._by_id.get(model_id)

    def resolve(self, model_id: str) -> ResolvedModel | None:
        """The upstream id for ``model_id``, or ``None`` if we do not serve it."""
        if model_id not in self._by_id:
            return None
        if model_id.endswith(THINK_SUFFIX):
            return ResolvedModel(model_id, model_id.removesuffix(THINK_SUFFIX), True)
        return ResolvedModel(model_id, model_id, False)

    @property
    def default(self) -> str:
        return self._base[0].id
