"""Telegram's formatting rules: HTML, MarkdownV2 and legacy Markdown, parsed the strict way.

Why a hand-written scanner rather than ``html.parser``: the emulator is there to catch texts that
real Telegram would refuse (an unescaped ``<``, a ``<br>``, a stray ``.`` in MarkdownV2), and a
lenient parser would accept exactly those. The result carries the plain text and the entities
with UTF-16 offsets, as the Bot API returns them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT_LENGTH = 4096


class EntityParseError(ValueError):
    """The text breaks the parse mode's rules; str() is Telegram's wording after the prefix."""


@dataclass
class Parsed:
    """Plain text (what the person sees) and its formatting entities."""

    plain_text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def utf16_len(text: str) -> int:
    """Telegram measures lengths and offsets in UTF-16 code units (emoji count twice)."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


class _Builder:
    """Accumulates plain text and open/closed entities while a scanner walks the source."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos16 = 0
        self.entities: list[dict[str, Any]] = []

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.pos16 += utf16_len(chunk)

    def close(self, entity: dict[str, Any], start16: int) -> None:
        length = self.pos16 - start16
        if length > 0 and entity.get("type"):
            self.entities.append({**entity, "offset": start16, "length": length})

    def result(self) -> Parsed:
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return Parsed("".join(self.parts), self.entities)


# --------------------------------------------------------------------------------------- HTML

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9-]*)"
    r"((?:\s+[A-Za-z][A-Za-z0-9_-]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'<>=]+))?)*)\s*/?>"
)
_ATTR = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'<>=]+))?")
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9A-Fa-f]{1,6}));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _html_entity(text: str, i: int) -> tuple[str, int] | None:
    m = _ENTITY.match(text, i)
    if not m:
        return None
    if m.group(1):
        return _NAMED[m.group(1)], m.end()
    code = int(m.group(2)) if m.group(2) else int(m.group(3), 16)
    if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), m.end()


def _attrs(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _ATTR.finditer(raw):
        value = m.group(2) or ""
        if value[:1] in "\"'":
            value = value[1:-1]
        out[m.group(1).lower()] = _unescape_attr(value)
    return out


def _unescape_attr(value: str) -> str:
    return _ENTITY.sub(lambda m: _html_entity(m.group(0), 0)[0], value)  # type: ignore[index]


def _html_start(name: str, attrs: dict[str, str], stack: list, offset: int) -> dict[str, Any]:
    kind = _HTML_TAGS[name]
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
    if name == "a":
        return {"type": "text_link", "url": attrs["href"]} if attrs.get("href") else {}
    if name == "tg-emoji":
        if "emoji-id" not in attrs:
            raise EntityParseError(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {offset}'
            )
        return {"type": "custom_emoji", "custom_emoji_id": attrs["emoji-id"]}
    if name == "blockquote" and "expandable" in attrs:
        return {"type": "expandable_blockquote"}
    if name == "code" and stack and stack[-1][0] == "pre":
        language = attrs.get("class", "")
        if language.startswith("language-"):
            stack[-1][1]["language"] = language.removeprefix("language-")
    return {"type": kind}


def parse_html(text: str) -> Parsed:
    """Parse Telegram's HTML subset; raise EntityParseError like the Bot API would."""
    out = _Builder()
    stack: list[tuple[str, dict[str, Any], int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "<":
            m = _TAG.match(text, i)
            offset = _byte_offset(text, i)
            if not m:
                raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
            closing, name = m.group(1) == "/", m.group(2).lower()
            if closing:
                if not stack:
                    raise EntityParseError(f"Unexpected end tag at byte offset {offset}")
                top = stack[-1][0]
                if top != name:
                    raise EntityParseError(
                        f'Unmatched end tag at byte offset {offset}, expected "</{top}>", '
                        f'found "</{name}>"'
                    )
                _, entity, start16 = stack.pop()
                if not (entity.get("type") == "code" and stack and stack[-1][0] == "pre"):
                    out.close(entity, start16)
            else:
                if name not in _HTML_TAGS:
                    raise EntityParseError(
                        f'Unsupported start tag "{name}" at byte offset {offset}'
                    )
                entity = _html_start(name, _attrs(m.group(3)), stack, offset)
                stack.append((name, entity, out.pos16))
            i = m.end()
        elif ch == "&":
            decoded = _html_entity(text, i)
            if decoded is None:
                raise EntityParseError(
                    f'Character "&" must be escaped as "&amp;" at byte offset {_byte_offset(text, i)}'
                )
            out.add(decoded[0])
            i = decoded[1]
        elif ch == ">":
            raise EntityParseError(
                f'Character ">" must be escaped as "&gt;" at byte offset {_byte_offset(text, i)}'
            )
        else:
            j = i
            while j < n and text[j] not in "<&>":
                j += 1
            out.add(text[i:j])
            i = j
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


# --------------------------------------------------------------------------------- MarkdownV2

_V2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_V2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
}
_V2_MARKS = [
    ("__", "underline"),
    ("||", "spoiler"),
    ("*", "bold"),
    ("_", "italic"),
    ("~", "strikethrough"),
]


def _reserved(text: str, i: int) -> EntityParseError:
    return EntityParseError(
        f"Character '{text[i]}' is reserved and must be escaped with the preceding '\\'"
    )


def _v2_code(text: str, i: int, fence: str) -> tuple[str, int]:
    """Read a code span/pre block body up to the closing fence; only ` and \\ are escaped there."""
    body: list[str] = []
    n = len(text)
    while i < n:
        if text[i] == "\\" and i + 1 < n:
            body.append(text[i + 1])
            i += 2
        elif text.startswith(fence, i):
            return "".join(body), i + len(fence)
        elif text[i] == "`":
            raise _reserved(text, i)
        else:
            body.append(text[i])
            i += 1
    raise EntityParseError("Can't find end of " + ("Pre" if fence == "```" else "Code") + " entity")


def _v2_url(text: str, i: int) -> tuple[str, int]:
    url: list[str] = []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            url.append(text[i + 1])
            i += 2
        elif c == ")":
            return "".join(url), i + 1
        else:
            url.append(c)
            i += 1
    raise EntityParseError("Can't find end of a url")


def parse_markdown_v2(text: str) -> Parsed:
    """Parse MarkdownV2; every reserved character outside an entity must be escaped."""
    out = _Builder()
    stack: list[tuple[str, dict[str, Any], int, int]] = []  # kind, entity, start16, byte offset
    quote_start: int | None = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        line_start = i == 0 or text[i - 1] == "\n"
        if line_start and quote_start is not None and ch != ">":
            out.close({"type": "blockquote"}, quote_start)
            quote_start = None
        if ch == "\\":
            if i + 1 < n and 0 < ord(text[i + 1]) < 127:
                out.add(text[i + 1])
                i += 2
                continue
            out.add(ch)
            i += 1
            continue
        if ch == ">" and line_start:
            if quote_start is None:
                quote_start = out.pos16
            i += 1
            continue
        if text.startswith("```", i):
            start = out.pos16
            end_line = text.find("\n", i + 3)
            language = text[i + 3 : end_line] if end_line != -1 else ""
            body_start = end_line + 1 if end_line != -1 and language.strip() == language else i + 3
            if not re.fullmatch(r"[\w+#.-]*", language):
                language, body_start = "", i + 3
            body, i = _v2_code(text, body_start, "```")
            out.add(body)
            out.close({"type": "pre", **({"language": language} if language else {})}, start)
            continue
        if ch == "`":
            start = out.pos16
            body, i = _v2_code(text, i + 1, "`")
            out.add(body)
            out.close({"type": "code"}, start)
            continue
        if ch == "[":
            stack.append(("text_link", {}, out.pos16, _byte_offset(text, i)))
            i += 1
            continue
        if ch == "]":
            if not stack or stack[-1][0] != "text_link" or not text.startswith("(", i + 1):
                raise _reserved(text, i)
            _, _, start16, _ = stack.pop()
            url, i = _v2_url(text, i + 2)
            out.close({"type": "text_link", "url": url}, start16)
            continue
        mark = next(((m, k) for m, k in _V2_MARKS if text.startswith(m, i)), None)
        if mark:
            token, kind = mark
            open_at = next((j for j in range(len(stack) - 1, -1, -1) if stack[j][0] == kind), None)
            if open_at is None:
                stack.append((kind, {"type": kind}, out.pos16, _byte_offset(text, i)))
            else:
                _, entity, start16, _ = stack.pop(open_at)
                out.close(entity, start16)
            i += len(token)
            continue
        if ch in _V2_RESERVED:
            raise _reserved(text, i)
        out.add(ch)
        i += 1
    if quote_start is not None:
        out.close({"type": "blockquote"}, quote_start)
    if stack:
        kind, _, _, offset = stack[-1]
        raise EntityParseError(
            f"Can't find end of {_V2_NAMES[kind]} entity at byte offset {offset}"
        )
    return out.result()


# ----------------------------------------------------------------------------- legacy Markdown

_LEGACY = {"*": "bold", "_": "italic"}


def parse_markdown(text: str) -> Parsed:
    """Legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url); no nesting."""
    out = _Builder()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        offset = _byte_offset(text, i)
        unclosed = EntityParseError(
            f"Can't find end of the entity starting at byte offset {offset}"
        )
        if ch == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
        elif ch in _LEGACY or ch == "`":
            fence = "```" if text.startswith("```", i) else ch
            end = text.find(fence, i + len(fence))
            if end == -1:
                raise unclosed
            start = out.pos16
            out.add(text[i + len(fence) : end])
            kind = {"```": "pre", "`": "code"}.get(fence) or _LEGACY[ch]
            out.close({"type": kind}, start)
            i = end + len(fence)
        elif ch == "[":
            m = re.compile(r"\[([^\]]*)\]\(([^)]*)\)").match(text, i)
            if not m:
                raise unclosed
            start = out.pos16
            out.add(m.group(1))
            out.close({"type": "text_link", "url": m.group(2)}, start)
            i = m.end()
        else:
            out.add(ch)
            i += 1
    return out.result()


def parse_text(text: str, parse_mode: str | None) -> Parsed:
    """Dispatch on parse_mode (case-insensitive, as Telegram accepts it)."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    if mode:
        raise EntityParseError(f"Unsupported parse_mode {parse_mode!r}")
    return Parsed(text)
