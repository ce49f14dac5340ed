"""The package's docstrings and comments cite ``docs/protocol.md §N`` and
``docs/client-contract.md §N``: every citation names a heading that exists, and nothing cites the
reference documents that are not in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "claude2api"
DOCS = ("protocol.md", "client-contract.md")
#: ``docs/protocol.md §5.1``, ``docs/protocol.md §6.2, §6.4``, ``… §6.2 and §12``, ``… §9.1 to §9.3``.
CITATION = re.compile(r"docs/([\w-]+\.md)(?:``)?((?:(?:,| and| to| or)? §\d+(?:\.\d+)?)+)")
SECTION = re.compile(r"§(\d+(?:\.\d+)?)")
#: How the old, unshipped references were cited.
OLD_CITATION = re.compile(
    r"claude-web-protocol\.md|claude-web-2026|(?<!docs/)client-contract\.md|"
    r"\breference (?:\d|§|section|20\d\d)|\b20\d\d reference|base reference|the reference\b",
    re.IGNORECASE,
)


def headings(doc: str) -> set[str]:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, re.MULTILINE))


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_citation_names_an_existing_section() -> None:
    sections = {doc: headings(doc) for doc in DOCS}
    assert all(sections.values()), "docs/ headings are '## N. Title' / '### N.M Title'"
    cited = 0
    broken = []
    for path in sources():
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            doc = match[1]
            for number in SECTION.findall(match[2]):
                cited += 1
                if number not in sections.get(doc, set()):
                    broken.append(f"{path.relative_to(ROOT)}: docs/{doc} §{number}")
    assert not broken, broken
    assert cited > 40  # the package does cite: the regex has not gone blind


def test_no_section_sign_outside_a_citation() -> None:
    """A bare ``§4.5`` is ambiguous: every section number is written with its document."""
    stray = []
    for path in sources():
        text = CITATION.sub("", path.read_text(encoding="utf-8"))
        stray += [f"{path.relative_to(ROOT)}: …{text[max(0, m.start() - 40) : m.end()]}" for m in SECTION.finditer(text)]
    assert not stray, stray


def test_nothing_cites_the_old_references() -> None:
    old = [
        f"{path.relative_to(ROOT)}: {match[0]}"
        for path in sources()
        for match in OLD_CITATION.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not old, old


def test_section_headings_are_numbered_in_order() -> None:
    """Stable numbering: chapters 1, 2, 3… and within each, N.1, N.2… with no gap or repeat."""
    for doc in DOCS:
        text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
        chapters = re.findall(r"^## (\d+)\. ", text, re.MULTILINE)
        assert chapters == [str(n) for n in range(1, len(chapters) + 1)], doc
        for chapter in chapters:
            subs = re.findall(rf"^### {chapter}\.(\d+) ", text, re.MULTILINE)
            assert subs == [str(n) for n in range(1, len(subs) + 1)], f"{doc} §{chapter}"
