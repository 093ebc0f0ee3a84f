"""DM's schema and table name patterns, compiled once each.

A pattern is a wildcard, or (where DM accepts one: block & allow lists only) a regular
expression written with a leading `~`. The wildcard grammar is tidb-tools'
`table-rule-selector`, the engine behind DM's routing, event filter and BA list (manual §3):

* `*` matches zero or more characters and may only be the last character (`doc*` matches
  `doc` and `document`; `do*c` is refused);
* `?` matches exactly one character;
* `[abc]`, `[a-z]` match one character of the set, `[!a-z]` one character outside it; a `[`
  with no closing `]` is a literal `[`, and `[!]` is a literal `!`;
* every other character matches itself, and the pattern must match the whole name.

A `~regex` is searched for anywhere in the name (Go's `MatchString`, not a full match).

Unless the task is case-sensitive, a wildcard and the name are both lower-cased before
matching, as DM does; a regex is compiled with `re.IGNORECASE` (DM's `(?i)`) but its text is
left alone, so escapes such as `\\D` keep their meaning (DM lower-cases it to `\\d`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kdm.errors import ERR_SYNC_RULE_DUPLICATE, ERR_SYNC_RULE_INVALID

REGEX_PREFIX = "~"
_NOTHING = "(?!)"


@dataclass(frozen=True)
class NameMatcher:
    """One compiled schema or table pattern."""

    pattern: str
    regex: re.Pattern[str]
    fold: bool
    search: bool

    def matches(self, name: str) -> bool:
        """Whether `name` matches the pattern."""
        if self.search:
            return self.regex.search(name) is not None
        return self.regex.fullmatch(name.lower() if self.fold else name) is not None


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str, case_sensitive: bool, allow_regex: bool = False) -> NameMatcher:
    """The cached matcher of `pattern`; `~regex` only when `allow_regex` (else `~` is literal)."""
    if allow_regex and pattern.startswith(REGEX_PREFIX):
        return _regex_matcher(pattern, case_sensitive)
    text = pattern if case_sensitive else pattern.lower()
    return NameMatcher(pattern, re.compile(wildcard_regex(text), re.DOTALL),
                       not case_sensitive, False)


def _regex_matcher(pattern: str, case_sensitive: bool) -> NameMatcher:
    flags = 0 if case_sensitive else re.IGNORECASE
    try:
        regex = re.compile(pattern[len(REGEX_PREFIX):], flags)
    except re.error as exc:
        raise ERR_SYNC_RULE_INVALID(exc, what=f"regex `{pattern}`",
                                    problem=f"not a valid regular expression: {exc}") from exc
    return NameMatcher(pattern, regex, False, True)


def wildcard_regex(pattern: str) -> str:
    """The Python regex equivalent to a DM wildcard; refuses a `*` that is not last."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern[index] == "*" and index != len(pattern) - 1:
            raise ERR_SYNC_RULE_INVALID(what=f"pattern `{pattern}`",
                                        problem="`*` may only be the last character")
        piece, index = _TOKENS.get(pattern[index], _literal)(pattern, index)
        parts.append(piece)
    return "".join(parts)


def _literal(pattern: str, index: int) -> tuple[str, int]:
    return re.escape(pattern[index]), index + 1


def _char_set(pattern: str, index: int) -> tuple[str, int]:
    """`[...]` as DM reads it: the first `]` closes, `a-b` is a range, `!` first negates."""
    close = pattern.find("]", index + 1)
    if close == -1:
        return _literal(pattern, index)
    body = pattern[index + 1:close]
    negate = body.startswith("!")
    ranges = _ranges(body[1:] if negate else body)
    if not ranges and negate:
        return re.escape("!"), close + 1
    return _class_regex(ranges, negate), close + 1


def _ranges(body: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    index = 0
    while index < len(body):
        if index + 2 < len(body) and body[index + 1] == "-":
            found.append((body[index], body[index + 2]))
            index += 3
        else:
            found.append((body[index], body[index]))
            index += 1
    return found


def _class_regex(ranges: list[tuple[str, str]], negate: bool) -> str:
    """A character class; reversed ranges match nothing, as in DM."""
    usable = [(low, high) for low, high in ranges if low <= high]
    if not usable:
        return "." if negate else _NOTHING
    items = "".join(re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}"
                    for low, high in usable)
    return f"[{'^' if negate else ''}{items}]"


def refuse_duplicates(kind: str, pairs: Sequence[tuple[str, str]], case_sensitive: bool) -> None:
    """Refuse two rules with the same (schema, table) patterns, as DM's rule selector does."""
    seen: set[tuple[str, str]] = set()
    for schema, table in pairs:
        folded = (schema, table) if case_sensitive else (schema.lower(), table.lower())
        if folded in seen:
            raise ERR_SYNC_RULE_DUPLICATE(kind=kind, patterns=f"`{schema}`.`{table}`")
        seen.add(folded)


_TOKENS: dict[str, Callable[[str, int], tuple[str, int]]] = {
    "*": lambda pattern, index: (".*", index + 1),
    "?": lambda pattern, index: (".", index + 1),
    "[": _char_set,
}
