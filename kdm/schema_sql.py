"""DDL text as the schema tracker reads it: normalized, then parsed by sqlglot (MySQL dialect).

sqlglot parses most MySQL DDL into trees; for the forms it leaves as an opaque `Command`
(or fails on) this module gives token-level help, so the tracker never guesses from
substrings inside quoted names or literals:

- `normalize` expands executable comments (`/*!50100 ... */`, `/*M!100100 ... */`), drops
  index types (`USING BTREE`), table partitioning of CREATE TABLE and the `IGNORE`/`ONLINE`
  words of ALTER TABLE, and rewrites `CREATE [UNIQUE|FULLTEXT|SPATIAL] INDEX i ON t (...)` and
  `DROP INDEX i ON t` as the equivalent ALTER TABLE, so one code path handles indexes.
- `alter_clauses` splits an ALTER TABLE into its table name and top-level clauses, for the
  clauses sqlglot does not parse (CONVERT TO CHARACTER SET, ADD COLUMN (...), partitions).
- `rename_pairs` reads RENAME TABLE a TO b, c TO d.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from kdm.errors import ERR_SCHEMA_PARSE, ERR_SCHEMA_UNSUPPORTED, KdmError

_DIALECT = Dialect.get_or_raise("mysql")
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!\d*(.*?)\*/", re.DOTALL)
_INDEX_TYPES = frozenset({"BTREE", "HASH", "RTREE"})
_NAME_TOKENS = frozenset({TokenType.VAR, TokenType.IDENTIFIER})
_DEPTH = {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}


T = TypeVar("T")


@dataclass(frozen=True)
class Statement:
    """One normalized DDL statement: its text, leading keywords and sqlglot tree (or None)."""

    sql: str
    text: str
    words: tuple[str, ...]
    tree: exp.Expr | None
    problem: str = ""

    def lookup(self, by_tree: Mapping[tuple[type, str], T],
               by_words: Mapping[tuple[str, ...], T]) -> T | None:
        """What a table says about this kind of statement: `by_tree` by the sqlglot node's
        type and `kind` (e.g. (exp.Create, "TABLE")), `by_words` by the two leading keywords
        where sqlglot has no structured form."""
        if self.tree is not None:
            return by_tree.get((type(self.tree), str(self.tree.args.get("kind") or "").upper()))
        return by_words.get(self.words[:2])

    def unparsed(self) -> KdmError:
        """The error for a statement no handler reads: 44001 if sqlglot failed on it, else 44002."""
        if self.problem:
            return ERR_SCHEMA_PARSE(self.problem, sql=self.sql)
        return ERR_SCHEMA_UNSUPPORTED(sql=self.sql,
                                      problem="the tracker does not follow this kind of statement")


def parse(sql: str) -> Statement:
    """Normalize and parse one statement; `tree` is None where sqlglot has no structured form."""
    text = normalize(sql)
    tokens = tokenize(text, sql)
    words = tuple(_upper_words(tokens[:4])[:4])
    try:
        trees = [t for t in sqlglot.parse(text, read="mysql") if t is not None]
    except ParseError as err:
        return Statement(sql, text, words, None, str(err).splitlines()[0])
    if len(trees) != 1:
        raise ERR_SCHEMA_UNSUPPORTED(sql=sql, problem=f"expected one statement, found {len(trees)}")
    tree = None if isinstance(trees[0], exp.Command) else trees[0]
    return Statement(sql, text, words, tree)


def parse_tree(text: str, sql: str) -> exp.Expr:
    """Parse a piece of DDL built by the tracker; a parse failure names the original `sql`."""
    try:
        tree = sqlglot.parse_one(text, read="mysql")
    except ParseError as err:
        raise ERR_SCHEMA_PARSE(err, sql=sql) from err
    return tree


def tokenize(text: str, sql: str) -> list[Token]:
    """MySQL tokens of `text`; a tokenizer failure is a parse error of `sql`."""
    # sqlglot reads everything after a leading RENAME/REPLACE as one string; a dummy first
    # token keeps the words apart, and the offsets are shifted back onto `text`
    try:
        tokens = list(_DIALECT.tokenize("_ " + text))[1:]
    except TokenError as err:
        raise ERR_SCHEMA_PARSE(err, sql=sql) from err
    for token in tokens:
        token.start, token.end = token.start - 2, token.end - 2
    return tokens


def normalize(sql: str) -> str:
    """The statement with the rewrites listed in the module docstring applied."""
    text = _EXECUTABLE_COMMENT.sub(lambda m: f" {m.group(1)} ", sql).strip().rstrip(";").strip()
    tokens = tokenize(text, sql)
    text = _drop_spans(text, _index_type_spans(tokens) + _alter_word_spans(tokens))
    tokens = tokenize(text, sql)
    head = [t.text.upper() for t in tokens[:5]]
    if head[:1] == ["CREATE"] and "TABLE" in head:
        return _strip_partitioning(text, tokens)
    return _index_statement_as_alter(text, tokens)


def alter_clauses(stmt: Statement) -> tuple[exp.Table, list[str]]:
    """The table of an ALTER TABLE and the text of each of its top-level clauses."""
    tokens = tokenize(stmt.text, stmt.sql)
    table, i = read_table(tokens, 2, stmt.sql)
    if i >= len(tokens):
        return table, []
    return table, [stmt.text[a:b] for a, b in _split_commas(tokens[i:], len(stmt.text))]


def rename_pairs(stmt: Statement) -> list[tuple[exp.Table, exp.Table]]:
    """The (from, to) tables of RENAME TABLE a TO b[, c TO d ...], in order."""
    tokens = tokenize(stmt.text, stmt.sql)
    pairs, i = [], 2
    while True:
        old, i = read_table(tokens, i, stmt.sql)
        if i >= len(tokens) or tokens[i].text.upper() != "TO":
            raise ERR_SCHEMA_PARSE("expected TO in RENAME TABLE", sql=stmt.sql)
        new, i = read_table(tokens, i + 1, stmt.sql)
        pairs.append((old, new))
        if i >= len(tokens):
            return pairs
        if tokens[i].token_type != TokenType.COMMA:
            raise ERR_SCHEMA_PARSE("expected a comma between RENAME TABLE pairs", sql=stmt.sql)
        i += 1


def read_table(tokens: list[Token], i: int, sql: str) -> tuple[exp.Table, int]:
    """The `[db.]name` starting at tokens[i], and the index after it."""
    parts = []
    while i < len(tokens) and _is_name(tokens[i]):
        parts.append(tokens[i].text)
        if i + 1 < len(tokens) and tokens[i + 1].token_type == TokenType.DOT and len(parts) < 2:
            i += 2
            continue
        i += 1
        break
    if not parts:
        raise ERR_SCHEMA_PARSE("expected a table name", sql=sql)
    return exp.table_(parts[-1], db=parts[0] if len(parts) == 2 else None), i


def clause_words(clause: str, sql: str, count: int = 4) -> tuple[str, ...]:
    """The first `count` tokens of a clause, upper-cased (quoted names keep their case)."""
    tokens = tokenize(clause, sql)[:count]
    return tuple(word for t in tokens for word in (
        [t.text] if t.token_type == TokenType.IDENTIFIER else t.text.upper().split()))[:count]


def quote_name(name: str) -> str:
    """A MySQL identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


def quote_text(value: str) -> str:
    """A MySQL string literal."""
    return exp.Literal.string(value).sql("mysql")


def _is_name(token: Token) -> bool:
    # unquoted names that happen to be keywords (`t`, `user`, `status`) tokenize as keywords
    return token.token_type in _NAME_TOKENS or token.text.isidentifier()


def _upper_words(tokens: list[Token]) -> list[str]:
    # some keyword pairs (PARTITION BY, ORDER BY) are one token
    return [word for t in tokens for word in t.text.upper().split()]


def _drop_spans(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + " " + text[end:]
    return text


def _index_type_spans(tokens: list[Token]) -> list[tuple[int, int]]:
    return [(t.start, tokens[i + 1].end + 1) for i, t in enumerate(tokens[:-1])
            if t.token_type == TokenType.USING and tokens[i + 1].text.upper() in _INDEX_TYPES]


def _alter_word_spans(tokens: list[Token]) -> list[tuple[int, int]]:
    words = [t.text.upper() for t in tokens[:3]]
    if words[:1] == ["ALTER"] and len(words) == 3 and words[1] in ("IGNORE", "ONLINE"):
        return [(tokens[1].start, tokens[1].end + 1)]
    return []


def _strip_partitioning(text: str, tokens: list[Token]) -> str:
    depth = 0
    for i, token in enumerate(tokens):
        depth += _DEPTH.get(token.token_type, 0)
        if depth == 0 and _upper_words(tokens[i:i + 2])[:2] == ["PARTITION", "BY"]:
            return text[:token.start].rstrip()
    return text


def _index_statement_as_alter(text: str, tokens: list[Token]) -> str:
    words = [t.text.upper() for t in tokens]
    if words[:1] == ["CREATE"] and "INDEX" in words[1:4] and "ON" in words:
        return _create_index_as_alter(text, tokens, words)
    if words[:2] == ["DROP", "INDEX"] and "ON" in words:
        on = words.index("ON")
        _, end = read_table(tokens, on + 1, text)
        table = text[tokens[on + 1].start:tokens[end - 1].end + 1]
        return f"ALTER TABLE {table} DROP INDEX {text[tokens[2].start:tokens[on].start]}"
    return text


def _create_index_as_alter(text: str, tokens: list[Token], words: list[str]) -> str:
    # index options after the key parts (COMMENT, ALGORITHM=, LOCK=) do not change the structure
    at, on = words.index("INDEX"), words.index("ON")
    kind = " ".join(w for w in words[1:at] if w in ("UNIQUE", "FULLTEXT", "SPATIAL"))
    _, paren = read_table(tokens, on + 1, text)
    if paren >= len(tokens):
        return text  # no key parts: left for the parser to refuse
    close = _matching_paren(tokens, paren)
    name = text[tokens[at + 1].start:tokens[on].start].strip()
    table = text[tokens[on + 1].start:tokens[paren - 1].end + 1]
    parts = text[tokens[paren].start:tokens[close].end + 1]
    return f"ALTER TABLE {table} ADD {kind} INDEX {name} {parts}"


def _matching_paren(tokens: list[Token], i: int) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        depth += _DEPTH.get(tokens[j].token_type, 0)
        if depth == 0:
            return j
    return len(tokens) - 1


def _split_commas(tokens: list[Token], end: int) -> list[tuple[int, int]]:
    spans, depth, start = [], 0, tokens[0].start
    for token in tokens:
        depth += _DEPTH.get(token.token_type, 0)
        if depth == 0 and token.token_type == TokenType.COMMA:
            spans.append((start, token.start))
            start = token.end + 1
    spans.append((start, end))
    return spans
