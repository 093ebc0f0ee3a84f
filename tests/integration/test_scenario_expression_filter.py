"""Scenario: expression filters (manual §9). A row change for which a rule's expression is
true is not migrated; the expected downstream rows replay the upstream's changes less those,
with the rules written again in Python:

* `e_ins`: `c % 2 = 0` or `NOTE IS NULL` on inserts (two rules: either drops; the second
  names the table and column in upper case, which match case-insensitively);
* `e_upd`: an update from `c < 10` (old row) to `c >= 100` (new row), both must hold; or any
  update whose new row has `note = 'secret'` (a rule with the new-row expression alone);
* `e_del`: deletes of rows with `note LIKE 'keep%'`;
* `e_other`: the same changes as `e_ins` with no rule, all migrated.
"""

from __future__ import annotations

from typing import Any

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import gtid_now
from tests.integration.scenario_support import Expected, barrier, databases
from tests.integration.sync_support import execute, rows, running, task_config, task_text

pytestmark = pytest.mark.integration

RULES = """\
expression-filter:
  even-c: {schema: $U, table: e_ins, insert-value-expr: "c % 2 = 0"}
  null-note: {schema: $U, table: E_INS, insert-value-expr: "NOTE IS NULL"}
  small-to-big: {schema: $U, table: e_upd, update-old-value-expr: "c < 10",
                 update-new-value-expr: "c >= 100"}
  secret: {schema: $U, table: e_upd, update-new-value-expr: "note = 'secret'"}
  kept: {schema: $U, table: e_del, delete-value-expr: "note LIKE 'keep%'"}
"""
NAMES = "expression-filters: [even-c, null-note, small-to-big, secret, kept]"
TABLE = "(id INT PRIMARY KEY, c INT, note VARCHAR(20))"
Row = tuple[Any, ...]


def _insert_dropped(op: str, old: Row | None, new: Row | None) -> bool:
    return op == "INSERT" and new is not None and (int(new[1]) % 2 == 0 or new[2] is None)


def _update_dropped(op: str, old: Row | None, new: Row | None) -> bool:
    if op != "UPDATE" or old is None or new is None:
        return False
    return (int(old[1]) < 10 and int(new[1]) >= 100) or new[2] == "secret"


def _delete_dropped(op: str, old: Row | None, new: Row | None) -> bool:
    return op == "DELETE" and old is not None and str(old[2]).startswith("keep")


def test_expression_filters_drop_matching_row_changes(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    up, down = upstream_db, downstream_db
    source = f"expr-{unique}"
    body = (f"routes:\n  r: {{schema-pattern: {up}, target-schema: {down}}}\n"
            f"block-allow-list:\n  ba: {{do-dbs: [{up}]}}\n" + RULES.replace("$U", up))
    task = task_config(task_text(f"expr-{unique}", endpoints, [source], body,
                                 f"route-rules: [r]\nblock-allow-list: ba\n{NAMES}",
                                 meta_schema=f"{down}_meta"))
    expected = Expected(endpoints, up)
    inserts = ("INSERT INTO {t} VALUES " + ", ".join(
        f"({i}, {i}, {'NULL' if i % 5 == 0 else repr(f'n{i}')})" for i in range(1, 41)),
        "UPDATE {t} SET c = c + 2 WHERE id % 2 = 1 AND id % 5 <> 0",
        "DELETE FROM {t} WHERE id % 3 = 0 AND id % 2 = 1 AND id % 5 <> 0")
    with databases(endpoints, drop_down=(f"{down}_meta",)), \
            running(endpoints, kafka, [source], gtid_now(endpoints), task):
        for table, dropped in (("e_ins", _insert_dropped), ("e_other", None)):
            expected.run(table, f"CREATE TABLE {table} {TABLE}",
                         *(sql.format(t=table) for sql in inserts), dropped=dropped)
        expected.run("e_upd", f"CREATE TABLE e_upd {TABLE}",
                     "INSERT INTO e_upd VALUES " + ", ".join(f"({i}, {i}, 'n')"
                                                             for i in range(1, 21)),
                     "UPDATE e_upd SET c = c + 100 WHERE id <= 12",
                     "UPDATE e_upd SET note = 'secret' WHERE id % 4 = 0",
                     "UPDATE e_upd SET c = c + 1 WHERE id > 15",
                     "UPDATE e_upd SET note = 'public', c = 200 WHERE id = 13",
                     dropped=_update_dropped)
        expected.run("e_del", f"CREATE TABLE e_del {TABLE}",
                     "INSERT INTO e_del VALUES " + ", ".join(
                         f"({i}, {i}, '{'keep' if i % 2 == 0 else 'drop'}-{i}')"
                         for i in range(1, 21)),
                     "DELETE FROM e_del WHERE id > 10", "DELETE FROM e_del WHERE id = 2",
                     dropped=_delete_dropped)
        barrier(endpoints, up, down)

        for table in ("e_ins", "e_upd", "e_del", "e_other"):
            assert rows(endpoints, "down", down, table) == expected.rows(table), table
        for table in ("e_ins", "e_upd", "e_del"):  # the rules made a difference
            assert expected.rows(table) != rows(endpoints, "up", up, table), table
        assert rows(endpoints, "down", down, "e_other") == rows(endpoints, "up", up, "e_other")


TEMPORAL = """\
expression-filter:
  day: {schema: $U, table: e_time, insert-value-expr: "d = '2021-06-01'"}
  zoned: {schema: $U, table: e_time, insert-value-expr: "ts = '2021-01-01 12:34:56.5678+08:00'"}
"""


def test_expression_filters_compare_temporal_columns_as_times(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    # TiDB reads `d = '2021-06-01'` as a DATETIME comparison (true for midnight) and, as the
    # manual's own example says, a literal with a zone as that instant (TIMESTAMPs are UTC).
    up, down = upstream_db, downstream_db
    source = f"expr-{unique}"
    body = (f"routes:\n  r: {{schema-pattern: {up}, target-schema: {down}}}\n"
            f"block-allow-list:\n  ba: {{do-dbs: [{up}]}}\n" + TEMPORAL.replace("$U", up))
    task = task_config(task_text(f"expr-{unique}", endpoints, [source], body,
                                 "route-rules: [r]\nblock-allow-list: ba\n"
                                 "expression-filters: [day, zoned]",
                                 meta_schema=f"{down}_meta"))
    with databases(endpoints, drop_down=(f"{down}_meta",)), \
            running(endpoints, kafka, [source], gtid_now(endpoints), task):
        execute(endpoints, up, "SET time_zone = '+00:00'",
                "CREATE TABLE e_time (id INT PRIMARY KEY, d DATETIME, ts TIMESTAMP(4) NULL)",
                "INSERT INTO e_time VALUES "
                "(1, '2021-06-01 00:00:00', NULL), "            # d matches: dropped
                "(2, '2021-06-02 00:00:00', '2021-01-01 04:34:56.5678'), "  # ts matches
                "(3, '2021-06-01 00:00:01', '2021-01-01 04:34:56.5679'), "
                "(4, '2021-06-02 00:00:00', '2021-01-01 12:34:56.5678')")
        barrier(endpoints, up, down)

        assert [row[0] for row in rows(endpoints, "down", down, "e_time")] == ["3", "4"]
