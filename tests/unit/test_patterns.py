"""DM's name patterns: wildcards, `~regex`, case folding, refused patterns."""

from __future__ import annotations

import pytest

from consumers.patterns import compile_pattern, refuse_duplicates, wildcard_regex
from kdm.errors import KdmError

# (pattern, name, matches) for case-insensitive matching.
WILDCARDS = [
    # Manual §3 / tidb-tools table-rule-selector: `*` is zero or more characters, at the end.
    ("doc*", "doc", True), ("doc*", "document", True), ("doc*", "dodo", False),
    ("*", "", True), ("*", "anything", True),
    # `?` is exactly one character.
    ("t?", "t1", True), ("t?", "t", False), ("t?", "t12", False), ("t_?", "t_a", True),
    # Manual §5 rule-1: `test[123]` is test1..test3, `t[1-5]` is t1..t5.
    ("test[123]", "test2", True), ("test[123]", "test4", False), ("t[1-5]", "t5", True),
    ("t[1-5]", "t6", False), ("t[1-5]", "t", False),
    # `[!...]` negates; `[!]` is a literal `!`; an unclosed `[` is literal.
    ("t[!a-z]", "t1", True), ("t[!a-z]", "tb", False), ("a[!]", "a!", True),
    ("a[!]", "ab", False), ("a[b", "a[b", True), ("a[b", "ab", False),
    ("[a-]", "-", True), ("[a-]", "a", True), ("x[]", "x", False),
    # A reversed range matches nothing; negated, it matches anything.
    ("[z-a]", "m", False), ("[!z-a]", "m", True),
    # Literal characters, regex metacharacters included, match only themselves.
    ("a.b", "a.b", True), ("a.b", "axb", False), ("a+b", "a+b", True), ("^m$", "^m$", True),
    # The whole name must match.
    ("test", "test_1", False), ("test", "test", True),
    # Case-insensitive by default: pattern and name are lower-cased.
    ("Test_*", "TEST_1", True), ("t[A-C]", "tb", True),
    # Outside BA lists `~` is an ordinary character.
    ("~^t", "~^t", True), ("~^t", "t1", False),
]


@pytest.mark.parametrize(("pattern", "name", "matches"), WILDCARDS)
def test_wildcards(pattern: str, name: str, matches: bool) -> None:
    assert compile_pattern(pattern, False).matches(name) is matches


@pytest.mark.parametrize(("pattern", "name", "matches"), [
    ("Test_*", "test_1", False), ("Test_*", "Test_1", True), ("t[A-C]", "tb", False),
    ("~^Test", "test", False),
])
def test_case_sensitive(pattern: str, name: str, matches: bool) -> None:
    assert compile_pattern(pattern, True, allow_regex=True).matches(name) is matches


@pytest.mark.parametrize(("pattern", "name", "matches"), [
    # Manual §5: a leading `~` makes a regex, searched anywhere in the name (Go MatchString).
    ("~^test.*", "test_1", True), ("~^test.*", "my_test", False),
    ("~_2018$", "messages_2018", True), ("~_2018$", "messages_2017", False),
    ("~forum", "old_forum_x", True),
    ("~^forum_backup_", "FORUM_BACKUP_2016", True),  # (?i) when not case-sensitive
    ("~\\D", "1a", True), ("~^\\D+$", "123", False),  # escapes keep their meaning
])
def test_regexes(pattern: str, name: str, matches: bool) -> None:
    assert compile_pattern(pattern, False, allow_regex=True).matches(name) is matches


def test_matchers_are_cached() -> None:
    assert compile_pattern("db_*", False) is compile_pattern("db_*", False)
    assert compile_pattern("db_*", False) is not compile_pattern("db_*", True)


@pytest.mark.parametrize("pattern", ["do*c", "**", "a*b*"])
def test_star_must_be_last(pattern: str) -> None:
    with pytest.raises(KdmError, match="`\\*` may only be the last character") as caught:
        compile_pattern(pattern, False)
    assert caught.value.code == 36101


def test_bad_regex_is_coded() -> None:
    with pytest.raises(KdmError, match="not a valid regular expression") as caught:
        compile_pattern("~(unclosed", False, allow_regex=True)
    assert caught.value.code == 36101


def test_wildcard_regex_form() -> None:
    assert wildcard_regex("t?_[!0-9].*") == "t._[^0-9]\\..*"


def test_duplicates_are_refused_after_case_folding() -> None:
    refuse_duplicates("route", [("a", "t"), ("a", ""), ("b", "t")], False)
    refuse_duplicates("route", [("A", "t"), ("a", "t")], True)
    with pytest.raises(KdmError, match="two route rules") as caught:
        refuse_duplicates("route", [("A", "t"), ("a", "T")], False)
    assert caught.value.code == 36102
