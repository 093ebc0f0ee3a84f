"""consumers.ddl against the SQL fixtures in tests/fixtures/ddl, and what rendering preserves.

Each fixture case is checked three ways: the statements, events, tables and rendered SQL it
lists; the rendered SQL parses again to the routed tables; and wherever sqlglot reads a
statement, the rendered SQL's syntax tree equals the original's with only the names changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlglot
import sqlglot.errors
from sqlglot import exp

from consumers.ddl import DDL, TableRef, parse_ddl, quote
from consumers.ddl_scan import (
    Cursor,
    Name,
    ScanError,
    Token,
    lex,
    scan_alter_table,
    scan_create_table,
    scan_database,
    scan_drop,
    scan_index,
)
from kdm.errors import KdmError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ddl"


@dataclass(frozen=True)
class Expected:
    """One statement a fixture case expects."""

    event: str
    tables: tuple[tuple[str, str], ...]
    sql: str


@dataclass(frozen=True)
class Case:
    """One fixture case: an input statement and its expected statements or error code."""

    file: str
    title: str
    schema: str
    sql: str
    expected: tuple[Expected, ...]
    error: int | None

    def __str__(self) -> str:
        return f"{self.file}:{self.title}"


def _blocks(lines: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The input lines of a case and its `-- expect:` blocks."""
    starts = [i for i, line in enumerate(lines) if line.startswith(("-- expect:", "-- error:"))]
    ends = [*starts[1:], len(lines)]
    return list(lines[:starts[0]]), [list(lines[s:e]) for s, e in zip(starts, ends, strict=True)]


def _expected(block: Sequence[str]) -> Expected:
    event = block[0].removeprefix("-- expect:").strip()
    tables = json.loads(block[1].removeprefix("-- tables:"))
    return Expected("" if event == "skip" else event, tuple(map(tuple, tables)),
                    "\n".join(block[2:]).strip())


def _case(file: str, lines: Sequence[str]) -> Case:
    title = lines[0].removeprefix("-- case:").strip()
    schema, body = "db", list(lines[1:])
    if body and body[0].startswith("-- use:"):
        schema, body = body[0].removeprefix("-- use:").strip(), body[1:]
    source, blocks = _blocks(body)
    if blocks[0][0].startswith("-- error:"):
        code = int(blocks[0][0].removeprefix("-- error:"))
        return Case(file, title, schema, "\n".join(source), (), code)
    return Case(file, title, schema, "\n".join(source), tuple(map(_expected, blocks)), None)


def load_cases() -> list[Case]:
    """Every case of every fixture file."""
    cases = []
    for path in sorted(FIXTURES.glob("*.sql")):
        lines = path.read_text().splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("-- case:")]
        for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
            cases.append(_case(path.name, [ln for ln in lines[start:end] if ln.strip()]))
    return cases


def route(schema: str, table: str) -> tuple[str, str]:
    """The routing all fixtures use."""
    return "r_" + schema, ("r_" + table if table else "")


CASES = load_cases()
PARSED = [(case, ddl) for case in CASES if case.error is None
          for ddl in parse_ddl(case.sql, case.schema) if ddl.is_schema_change]


def _sqlglot(sql: str) -> exp.Expr | None:
    try:
        node = sqlglot.parse_one(lex(sql).code, read="mysql")
    except sqlglot.errors.SqlglotError:
        return None
    return None if isinstance(node, exp.Command) else node


READABLE = [(case, ddl) for case, ddl in PARSED if _sqlglot(ddl.sql) is not None]


def test_fixtures_cover_the_brief() -> None:
    files = {case.file for case in CASES}
    assert {"create_table.sql", "alter_table.sql", "index.sql", "view.sql", "database.sql",
            "drop_truncate_rename.sql", "mariadb.sql", "skip.sql", "errors.sql"} <= files
    events = {ddl.event for _, ddl in PARSED}
    assert events == {"create database", "drop database", "alter database", "create table",
                      "create index", "drop table", "truncate table", "rename table",
                      "drop index", "alter table", "create view", "drop view"}
    assert len(READABLE) >= 60 and len(PARSED) - len(READABLE) >= 20


@pytest.mark.parametrize("case", CASES, ids=str)
def test_fixture(case: Case) -> None:
    if case.error is not None:
        with pytest.raises(KdmError) as raised:
            parse_ddl(case.sql, case.schema)
        assert raised.value.code == case.error
        return
    got = parse_ddl(case.sql, case.schema)
    assert [(d.event, d.tables, d.render(route)) for d in got] == [
        (e.event, e.tables, e.sql) for e in case.expected]


@pytest.mark.parametrize(("case", "ddl"), PARSED, ids=[str(c) for c, _ in PARSED])
def test_rendered_sql_parses_to_the_routed_tables(case: Case, ddl: DDL) -> None:
    again = parse_ddl(ddl.render(route))
    assert [(d.event, d.tables) for d in again] == [
        (ddl.event, tuple(dict.fromkeys(route(*t) for t in ddl.tables)))]


def _routed(tree: exp.Expr, refs: Sequence[TableRef]) -> exp.Expr:
    """`tree` with the tables at `refs` routed as `render` does it."""
    by_start = {ref.start: ref for ref in refs}

    def swap(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Table) or not node.parts:
            return node
        ref = by_start.get(node.parts[0].meta.get("start", -1))
        if ref is None:
            return node
        return _routed_table(node.copy(), ref)

    return tree.transform(swap)


def _routed_table(table: exp.Table, ref: TableRef) -> exp.Table:
    schema, name = route(ref.schema, ref.table)
    if not ref.table:
        table.parts[0].set("this", schema)
        table.parts[0].set("quoted", True)
        return table
    table.set("db", exp.to_identifier(schema, quoted=True))
    table.set("this", exp.to_identifier(name, quoted=True))
    if ref.bare and name != ref.table:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(ref.table, quoted=True)))
    return table


@pytest.mark.parametrize(("case", "ddl"), READABLE, ids=[str(c) for c, _ in READABLE])
def test_rendered_sql_equals_the_original_apart_from_names(case: Case, ddl: DDL) -> None:
    original = _sqlglot(ddl.sql)
    rendered = _sqlglot(ddl.render(route))
    assert original is not None and rendered is not None
    assert rendered == _routed(original, ddl.refs)


SCANNERS: dict[tuple[str, str], Callable[[Sequence[Token]], list[Name]]] = {
    ("create table", "CREATE"): scan_create_table,
    ("alter table", "ALTER"): scan_alter_table, ("rename table", "ALTER"): scan_alter_table,
    ("create index", "CREATE"): scan_index, ("drop index", "DROP"): scan_index,
    ("drop table", "DROP"): scan_drop, ("drop view", "DROP"): scan_drop,
    ("create database", "CREATE"): scan_database, ("drop database", "DROP"): scan_database,
}
SCANNABLE = [(case, ddl) for case, ddl in READABLE
             if (ddl.event, lex(ddl.sql).tokens[0].upper) in SCANNERS]


@pytest.mark.parametrize(("case", "ddl"), SCANNABLE, ids=[str(c) for c, _ in SCANNABLE])
def test_fallback_scanner_agrees_with_sqlglot(case: Case, ddl: DDL) -> None:
    tokens = lex(ddl.sql).tokens
    names = SCANNERS[(ddl.event, tokens[0].upper)](tokens)
    assert sorted({(n.start, n.end) for n in names}) == [(r.start, r.end) for r in ddl.refs]


def test_split_statements_carry_their_own_offsets() -> None:
    first, second = parse_ddl("DROP TABLE a, `b` -- gone", "db")
    assert (first.sql, second.sql) == ("DROP TABLE a -- gone", "DROP TABLE `b` -- gone")
    assert second.render(lambda s, t: (s, t)) == "DROP TABLE `db`.`b` -- gone"


def test_skipped_statement_renders_unchanged() -> None:
    (ddl,) = parse_ddl("GRANT ALL ON *.* TO u")
    assert not ddl.is_schema_change and ddl.tables == () and ddl.render(route) == ddl.sql


def test_errors_name_the_statement() -> None:
    with pytest.raises(KdmError) as raised:
        parse_ddl("CREATE TABLE t SELECT 1", "db")
    assert raised.value.fields["sql"] == "CREATE TABLE t SELECT 1"
    assert "CREATE TABLE ... SELECT" in raised.value.message


def test_quote_doubles_backquotes() -> None:
    assert quote("a`b") == "`a``b`"


def test_lexer_blanks_executable_comments_in_place() -> None:
    text = "CREATE TABLE t (a INT) /*!50100 PARTITION BY KEY (a) */ -- c"
    lexed = lex(text)
    assert len(lexed.code) == len(text)
    assert "/*" not in lexed.code and "PARTITION BY KEY (a)" in lexed.code
    assert [t.text for t in lexed.tokens][-3:] == ["(", "a", ")"]


def test_lexer_reads_mysql_comments_and_strings() -> None:
    tokens = lex("a--1 'x''y' \"q\\\"\" # c\n`b``c` -- d").tokens
    assert [(t.kind, t.text) for t in tokens] == [
        ("word", "a"), ("punct", "-"), ("punct", "-"), ("word", "1"), ("string", "'x''y'"),
        ("string", '"q\\""'), ("quoted", "`b``c`")]
    assert tokens[-1].value == "b`c"


def test_lexer_refuses_an_unterminated_quote() -> None:
    with pytest.raises(ScanError, match="unterminated"):
        lex("SELECT 'x")


def test_cursor_names() -> None:
    cursor = Cursor(lex("`a`.b , c.d.e").tokens)
    assert cursor.name() == Name(0, 5, ("a", "b"))
    cursor.expect(",")
    with pytest.raises(ScanError, match="too many qualifiers"):
        cursor.name()
    with pytest.raises(ScanError, match="expected a name"):
        Cursor(lex("TABLE").tokens).name()
