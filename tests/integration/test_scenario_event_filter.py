"""Scenario: the binlog event filter (manual §6). Each table's downstream rows are the
upstream's changes replayed without the events a rule drops:

* `ledger`: Ignore `delete` — deleted rows stay downstream;
* `hist_*`: Ignore `truncate table`, `drop table` — the downstream keeps the rows and the
  table (a dropped table outside the rule, `scratch`, is dropped downstream too);
* schema-wide `sql-pattern` Ignore of `ALTER TABLE ... ADD COLUMN debug_...`: that column
  never reaches the downstream, while another ADD COLUMN does;
* `audit`: a `Do` rule listing `create table` and `insert` — updates and deletes are dropped;
* `do_*`: Do `all dml`, plus Ignore `delete` on `do_ig?` — Ignore wins on `do_ign`, while
  `do_all` gets every change.
"""

from __future__ import annotations

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import gtid_now
from tests.integration.scenario_support import (
    Dropped,
    Expected,
    barrier,
    columns_of,
    databases,
    tables_of,
)
from tests.integration.sync_support import rows, running, task_config, task_text

pytestmark = pytest.mark.integration

# Single-quoted YAML keeps the regex backslashes as they are.
FILTERS = r"""
filters:
  keep-deleted: {schema-pattern: "$U", table-pattern: "ledger", events: ["delete"],
                 action: Ignore}
  keep-tables: {schema-pattern: "$U", table-pattern: "hist_*",
                events: ["truncate table", "drop table"], action: Ignore}
  no-debug-columns: {schema-pattern: "$U",
                     sql-pattern: ['^ALTER\s+TABLE\s+\S+\s+ADD\s+COLUMN\s+`?debug_'],
                     action: Ignore}
  only-inserts: {schema-pattern: "$U", table-pattern: "audit",
                 events: ["create table", "insert"], action: Do}
  do-dml: {schema-pattern: "$U", table-pattern: "do_*", events: ["create table", "all dml"],
           action: Do}
  no-delete: {schema-pattern: "$U", table-pattern: "do_ig?", events: ["delete"], action: Ignore}
"""
RULES = "filter-rules: [keep-deleted, keep-tables, no-debug-columns, only-inserts, do-dml, " \
        "no-delete]"


def _create(table: str) -> str:
    return f"CREATE TABLE `{table}` (id INT PRIMARY KEY, v VARCHAR(20), n INT)"


def _insert(table: str, ids: range) -> str:
    return f"INSERT INTO `{table}` VALUES " + ", ".join(f"({i}, 'v{i}', {i})" for i in ids)


def _dml(table: str, first: int) -> tuple[str, ...]:
    """Inserts, updates and deletes, ids from `first`."""
    return (_insert(table, range(first, first + 30)),
            f"UPDATE `{table}` SET n = n * 10, v = CONCAT(v, '+') WHERE id % 3 = 1",
            f"DELETE FROM `{table}` WHERE id % 3 = 0",
            f"UPDATE `{table}` SET n = -n WHERE id % 5 = 0")


def _is(*ops: str) -> Dropped:
    return lambda op, old, new: op in ops


def test_event_filter_drops_the_listed_events(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    up, down = upstream_db, downstream_db
    source = f"filter-{unique}"
    body = (f"routes:\n  r: {{schema-pattern: {up}, target-schema: {down}}}\n"
            f"block-allow-list:\n  ba: {{do-dbs: [{up}]}}\n" + FILTERS.replace("$U", up))
    task = task_config(task_text(f"filter-{unique}", endpoints, [source], body,
                                 f"route-rules: [r]\nblock-allow-list: ba\n{RULES}",
                                 meta_schema=f"{down}_meta"))
    expected = Expected(endpoints, up)
    with databases(endpoints, drop_down=(f"{down}_meta",)), \
            running(endpoints, kafka, [source], gtid_now(endpoints), task):
        expected.run("ledger", _create("ledger"), *_dml("ledger", 0), dropped=_is("DELETE"))
        for table in ("hist_a", "hist_b", "scratch"):
            expected.run(table, _create(table), *_dml(table, 0))
        expected.run("hist_a", "TRUNCATE TABLE hist_a", dropped=_is("DELETE"))
        expected.run("hist_a", _insert("hist_a", range(100, 105)))
        expected.run("hist_b", "DROP TABLE hist_b", dropped=_is("DELETE"))
        expected.run("scratch", "DROP TABLE scratch")
        expected.run("wide", _create("wide"), _insert("wide", range(10)),
                     "ALTER TABLE wide ADD COLUMN debug_note VARCHAR(20) NULL",
                     "ALTER TABLE wide ADD COLUMN note VARCHAR(20) NULL")
        expected.run("audit", _create("audit"), *_dml("audit", 0), *_dml("audit", 100),
                     dropped=_is("UPDATE", "DELETE"))
        expected.run("do_ign", _create("do_ign"), *_dml("do_ign", 0), dropped=_is("DELETE"))
        expected.run("do_all", _create("do_all"), *_dml("do_all", 0))
        barrier(endpoints, up, down)

        assert tables_of(endpoints, "down", down) == {
            "ledger", "hist_a", "hist_b", "wide", "audit", "do_ign", "do_all", "zz_barrier"}
        for table in ("ledger", "hist_a", "hist_b", "audit", "do_ign", "do_all"):
            assert rows(endpoints, "down", down, table) == expected.rows(table), table
        for table in ("ledger", "hist_a", "audit", "do_ign"):  # the rules made a difference
            assert expected.rows(table) != rows(endpoints, "up", up, table), table
        assert rows(endpoints, "down", down, "do_all") == rows(endpoints, "up", up, "do_all")
        assert [c[0] for c in columns_of(endpoints, "down", down, "wide")] == [
            "id", "v", "n", "note"]
        assert rows(endpoints, "down", down, "wide") == [
            (*row[:3], row[4]) for row in expected.rows("wide")]
