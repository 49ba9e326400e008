"""The visible part of a plain-text reply: the text without the quoted message below it (pure)."""
from __future__ import annotations

import re

# "On <date>, <name> wrote:" and its usual translations; a long one is often wrapped over two
# lines, so a candidate is tried alone and joined with the next line.
_ATTRIBUTION = re.compile(
    r"^\s*(on\s.+\swrote|am\s.+\sschrieb\s.+|le\s.+\sa\s+écrit|el\s.+\sescribió|"
    r"den\s.+\sskrev\s.+|op\s.+\sschreef\s.+|il\s.+\sha\s+scritto)\s*:\s*$", re.I)
# Outlook and friends put a separator line above the quoted message instead of ">" prefixes.
_SEPARATOR = re.compile(r"^\s*(-{2,}\s*original message\s*-{2,}|_{10,})\s*$", re.I)
_QUOTED = re.compile(r"^\s*>")
_HEADER = re.compile(r"^\s*(from|von|de|van)\s*:", re.I)


def _is_blank(line: str) -> bool:
    return not line.strip()


def _attribution_at(lines: list[str], i: int) -> bool:
    """An attribution line (or two wrapped lines) at i with only quoted text after it."""
    line = lines[i].strip()
    candidates = [line]
    if i + 1 < len(lines) and lines[i + 1].strip():
        candidates.append(f"{line} {lines[i + 1].strip()}")
    if not any(_ATTRIBUTION.match(c) for c in candidates):
        return False
    rest = [x for x in lines[i + 1:] if not _is_blank(x)]
    if rest and not _QUOTED.match(rest[0]) and len(candidates) == 2:
        rest = rest[1:]   # the wrapped second half of the attribution
    # a sentence ending in "wrote:" is not a quote, and with answers between the quotes
    # (inline replying) cutting here would drop them
    return bool(rest) and all(_QUOTED.match(x) for x in rest)


def _separator_at(lines: list[str], i: int) -> bool:
    if not _SEPARATOR.match(lines[i]):
        return False
    if "original message" in lines[i].lower():
        return True
    # a bare underscore rule is quoting only when a "From:" header block comes next
    following = [x for x in lines[i + 1:i + 3] if not _is_blank(x)]
    return bool(following) and bool(_HEADER.match(following[0]))


def _trailing_quote_start(lines: list[str]) -> int | None:
    """Index where a block of only quoted and blank lines runs to the end (bottom quoting)."""
    start, quoted = None, False
    for i in range(len(lines) - 1, -1, -1):
        if _QUOTED.match(lines[i]):
            start, quoted = i, True
        elif _is_blank(lines[i]):
            continue
        else:
            break
    return start if quoted else None


def visible_text(text: str) -> str:
    """`text` up to where the quoted original starts: an attribution line ("On ... wrote:")
    followed only by quoted lines, an "Original Message" separator, or trailing ">" lines.
    Answers written between quotes are kept (with the quotes they answer)."""
    lines = text.splitlines(keepends=True)
    cut = next((i for i in range(len(lines))
                if _attribution_at(lines, i) or _separator_at(lines, i)), None)
    if cut is None:
        cut = _trailing_quote_start(lines)
    if cut is None:
        return text.rstrip()
    return "".join(lines[:cut]).rstrip()
