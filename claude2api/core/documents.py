"""Documents clients send (PDFs, office and text files): which types claude.ai reads, decoding, naming.

Every dialect calls these (Anthropic ``document`` blocks, OpenAI ``file`` parts, Responses
``input_file``) so the rules are one: a document's type comes from its declaration, else its file
name's extension, else its magic bytes. PDFs and office files are *uploaded* (claude.ai reads them
natively, docs/protocol.md §8.2). Text files (``text/*``, JSON, YAML, code…) are sent
*inline* as a completion attachment, the way claude.ai's own page hands the model a text file's
``extracted_content`` (pattern B): no upload round trip, nothing left in the account, and it works
on both protocol generations. Anything else is refused, naming the type. Errors are
:class:`DocumentError`, whose text is safe to show the client.
"""

from __future__ import annotations

import re
from typing import Literal

from claude2api.core.dataurl import decode_base64, decode_data_url, is_media_type, sniff_media_type
from claude2api.core.failures import clip
from claude2api.core.types import DocumentPart, ImagePart

#: Binary documents claude.ai reads once uploaded.
UPLOADED_TYPES = frozenset(
    {
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }
)
#: Non-``text/*`` types that are text all the same.
_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/javascript",
        "application/x-javascript",
        "application/typescript",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
        "application/sql",
        "application/x-python",
        "application/x-sh",
        "application/x-httpd-php",
    }
)
#: Extension -> type, for documents sent without a (useful) type.
_EXTENSION_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "md": "text/markdown",
    "markdown": "text/markdown",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "html": "text/html",
    "htm": "text/html",
    "css": "text/css",
    "json": "application/json",
    "xml": "application/xml",
    "yaml": "application/x-yaml",
    "yml": "application/x-yaml",
    **dict.fromkeys(
        ("txt", "log", "ini", "toml", "cfg", "conf", "sql", "py", "js", "mjs", "ts", "tsx", "jsx", "go", "rs"),
        "text/plain",
    ),
    **dict.fromkeys(
        ("java", "kt", "c", "h", "cc", "cpp", "hpp", "cs", "rb", "php", "sh", "bash", "swift", "lua", "tex", "rst"),
        "text/plain",
    ),
}
_UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})
#: Characters kept in a file name: it travels in a multipart header and in the completion body.
_UNSAFE_NAME = re.compile(r"[^\w .()+,=@\[\]-]+")
MAX_FILENAME_CHARS = 120

DocumentKind = Literal["upload", "text"]


class DocumentError(ValueError):
    """A document claude.ai cannot take; ``str(exc)`` says why, naming the type."""


def document_kind(media_type: str) -> DocumentKind | None:
    """``"upload"`` for PDFs and office files, ``"text"`` for text files, ``None`` for the rest."""
    if media_type in UPLOADED_TYPES:
        return "upload"
    if media_type.startswith("text/") or media_type in _TEXT_APPLICATION_TYPES or media_type.endswith("+json"):
        return "text"
    return None


def resolve_media_type(declared: str | None, filename: str | None, data: bytes = b"") -> str:
    """The document's type: the declared one, unless missing or ``octet-stream``; then the file
    name's extension; then the magic bytes; ``application/octet-stream`` when nothing tells."""
    media_type = (declared or "").split(";")[0].strip().lower()
    if media_type not in _UNTYPED:
        return media_type
    extension = filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    return _EXTENSION_TYPES.get(extension) or sniff_media_type(data) or "application/octet-stream"


def document_from_bytes(data: bytes, declared: str | None, filename: str | None) -> DocumentPart | ImagePart:
    """A document (or an image sent as a file) from its bytes; raises :class:`DocumentError`.

    Text documents are decoded (UTF-8, BOM dropped) into ``text``; uploaded ones keep ``data``.
    """
    if not data:
        raise DocumentError("the document is empty")
    media_type = resolve_media_type(declared, filename, data)
    if media_type.startswith("image/") and is_media_type(media_type):
        return ImagePart(media_type=media_type, data=data)
    kind = _kind_or_refuse(media_type)
    name = safe_filename(filename, media_type)
    if kind == "upload":
        return DocumentPart(media_type=media_type, data=data, filename=name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentError(f"the {clip(media_type)} document {clip(name)} is not UTF-8 text") from None
    return DocumentPart(media_type=media_type, text=text, filename=name)


def document_from_data_url(url: str, filename: str | None) -> DocumentPart | ImagePart:
    """A document from a ``data:`` URL, or from bare base64 (some clients leave the prefix out)."""
    try:
        if url[:5].lower() == "data:":
            declared, data = decode_data_url(url)
        else:
            declared, data = "", decode_base64(url)
    except ValueError as exc:
        raise DocumentError(f"invalid file data: {exc}") from None
    return document_from_bytes(data, declared, filename)


def document_from_base64(data: str, declared: str | None, filename: str | None) -> DocumentPart | ImagePart:
    """A document from a base64 string and its declared type (Anthropic's ``base64`` source)."""
    try:
        decoded = decode_base64(data)
    except ValueError:
        raise DocumentError("invalid base64 document data") from None
    return document_from_bytes(decoded, declared, filename)


def document_from_text(text: str, declared: str | None, filename: str | None) -> DocumentPart:
    """A text document given as text (Anthropic's ``text`` source); its type must be a text type."""
    media_type = resolve_media_type(declared or "text/plain", filename)
    if _kind_or_refuse(media_type) != "text":
        raise DocumentError(f"a text source must have a text media type, not {clip(media_type)}")
    return DocumentPart(media_type=media_type, text=text, filename=safe_filename(filename, media_type))


def document_size(document: DocumentPart) -> int:
    """Bytes the document takes: its data, or its text as UTF-8 (0 while still a URL)."""
    if document.data is not None:
        return len(document.data)
    return len(document.text.encode()) if document.text is not None else 0


def safe_filename(filename: str | None, media_type: str) -> str:
    """A file name fit for a multipart header and the completion: no directories, no control or
    quote characters, at most :data:`MAX_FILENAME_CHARS`; ``document.<ext>`` when none is left."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip(" .")[:MAX_FILENAME_CHARS]
    return name or "document." + _default_extension(media_type)


def _default_extension(media_type: str) -> str:
    for extension, known in _EXTENSION_TYPES.items():
        if known == media_type and extension != "markdown":
            return extension
    return "txt"


def _kind_or_refuse(media_type: str) -> DocumentKind:
    kind = document_kind(media_type)
    if kind is None:
        raise DocumentError(
            f"unsupported document type {clip(media_type)}: claude.ai reads PDF, Word, Excel, PowerPoint"
            " and text files (text/*, JSON, YAML, code)"
        )
    return kind
