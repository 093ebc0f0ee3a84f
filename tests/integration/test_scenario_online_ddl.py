"""Scenario: online DDL (manual §8) with `online-ddl: true`. The statements gh-ost and
pt-osc run to alter `t` are replayed upstream by hand, with writes to `t` going on during the
row copy; the downstream `t` must end with the new structure (column and index) and the same
rows as the upstream, and no ghost or trash table may reach the downstream. The block & allow
list names `t` alone: the ghost's DDL counts as the real table's (gh-ost alters its ghost in
two statements, pt-osc in one). The real table is also routed to another name (`t_main`),
which the cut-over's ALTER must follow.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import gtid_now
from tests.integration.scenario_support import (
    barrier,
    columns_of,
    databases,
    indexes_of,
    tables_of,
)
from tests.integration.sync_support import execute, rows, running, task_config, task_text

pytestmark = pytest.mark.integration

ALTER = "ADD COLUMN extra INT NOT NULL DEFAULT 7, ADD INDEX idx_v (v)"


def _writes(t: str) -> list[str]:
    """Writes to the real table while the tool copies rows."""
    return [f"INSERT INTO {t} VALUES " + ", ".join(f"({i}, 'late{i}', {i})"
                                                   for i in range(100, 110)),
            f"UPDATE {t} SET n = n + 1, v = CONCAT(v, '*') WHERE id < 10",
            f"DELETE FROM {t} WHERE id % 10 = 5"]


def gh_ost(db: str) -> list[str]:
    """gh-ost's statements (its comments included); the ghost is kept in step by hand, as
    gh-ost does from the binlog."""
    t, gho, ghc, dl = (f"`{db}`.`{name}`" for name in ("t", "_t_gho", "_t_ghc", "_t_del"))
    ghost_writes = [f"REPLACE INTO {gho} (id, v, n) SELECT id, v, n FROM {t} WHERE id >= 100",
                    f"UPDATE {gho} g JOIN {t} r USING (id) SET g.n = r.n, g.v = r.v "
                    "WHERE id < 10",
                    f"DELETE FROM {gho} WHERE id % 10 = 5"]
    return [f"DROP /* gh-ost */ TABLE IF EXISTS {ghc}",
            f"CREATE /* gh-ost */ TABLE {ghc} (id BIGINT AUTO_INCREMENT, last_update TIMESTAMP "
            "NOT NULL DEFAULT CURRENT_TIMESTAMP, hint VARCHAR(64) NOT NULL, value "
            "VARCHAR(4096) NOT NULL, PRIMARY KEY (id), UNIQUE KEY hint_uidx (hint))",
            f"INSERT /* gh-ost */ INTO {ghc} (hint, value) VALUES ('state', 'GhostTableCreated')",
            f"CREATE /* gh-ost */ TABLE {gho} LIKE {t}",
            *(f"ALTER /* gh-ost */ TABLE {gho} {part}" for part in ALTER.split(", ")),
            f"INSERT /* gh-ost */ IGNORE INTO {gho} (id, v, n) SELECT id, v, n FROM {t} "
            "FORCE INDEX (PRIMARY) LOCK IN SHARE MODE",
            *[sql for pair in zip(_writes(t), ghost_writes, strict=True) for sql in pair],
            f"RENAME /* gh-ost */ TABLE {t} TO {dl}, {gho} TO {t}",
            f"DROP /* gh-ost */ TABLE IF EXISTS {dl}",
            f"DROP /* gh-ost */ TABLE IF EXISTS {ghc}"]


def pt_osc(db: str) -> list[str]:
    """pt-online-schema-change's statements; its triggers keep `_t_new` in step."""
    t, new, old = (f"`{db}`.`{name}`" for name in ("t", "_t_new", "_t_old"))
    trigger = f"`{db}`.`pt_osc_{db}_t"
    copy = f"REPLACE INTO {new} (id, v, n) VALUES (NEW.id, NEW.v, NEW.n)"
    return [f"CREATE TABLE {new} (id INT NOT NULL, v VARCHAR(20), n INT, PRIMARY KEY (id))",
            f"ALTER TABLE {new} {ALTER}",
            f"CREATE TRIGGER {trigger}_del` AFTER DELETE ON {t} FOR EACH ROW "
            f"DELETE IGNORE FROM {new} WHERE {new}.`id` <=> OLD.`id`",
            f"CREATE TRIGGER {trigger}_upd` AFTER UPDATE ON {t} FOR EACH ROW BEGIN "
            f"DELETE IGNORE FROM {new} WHERE !(OLD.id <=> NEW.id) AND {new}.id <=> OLD.id; "
            f"{copy}; END",
            f"CREATE TRIGGER {trigger}_ins` AFTER INSERT ON {t} FOR EACH ROW {copy}",
            f"INSERT LOW_PRIORITY IGNORE INTO {new} (id, v, n) SELECT id, v, n FROM {t} "
            "FORCE INDEX(`PRIMARY`) LOCK IN SHARE MODE",
            *_writes(t),
            f"RENAME TABLE {t} TO {old}, {new} TO {t}",
            f"DROP TABLE IF EXISTS {old}",
            *(f"DROP TRIGGER IF EXISTS {trigger}_{kind}`" for kind in ("del", "upd", "ins"))]


@pytest.mark.parametrize("target", ["t", "t_main"])
@pytest.mark.parametrize("tool", [gh_ost, pt_osc], ids=["gh-ost", "pt-osc"])
def test_online_ddl_alters_the_real_table_only(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str, tool: Callable[[str], list[str]], target: str) -> None:
    up, down = upstream_db, downstream_db
    source = f"online-{unique}"
    body = (f"online-ddl: true\nroutes:\n  r: {{schema-pattern: {up}, target-schema: {down}}}\n"
            f"  rt: {{schema-pattern: {up}, table-pattern: t, target-schema: {down}, "
            f"target-table: {target}}}\n"
            f"block-allow-list:\n  ba:\n    do-dbs: [{up}]\n"
            f"    do-tables: [{{db-name: {up}, tbl-name: t}}, {{db-name: {up}, tbl-name: zz_*}}]\n")
    task = task_config(task_text(f"online-{unique}", endpoints, [source], body,
                                 "route-rules: [r, rt]\nblock-allow-list: ba",
                                 meta_schema=f"{down}_meta"))
    with databases(endpoints, drop_down=(f"{down}_meta",)), \
            running(endpoints, kafka, [source], gtid_now(endpoints), task):
        execute(endpoints, up, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), n INT)",
                "INSERT INTO t VALUES " + ", ".join(f"({i}, 'v{i}', {i})" for i in range(100)))
        execute(endpoints, up, *tool(up))
        execute(endpoints, up, "INSERT INTO t VALUES (1000, 'after', 1, 42)",
                "UPDATE t SET extra = 8 WHERE id = 1", "DELETE FROM t WHERE id = 2")
        barrier(endpoints, up, down)

        assert tables_of(endpoints, "down", down) == {target, "zz_barrier"}
        assert [c[0] for c in columns_of(endpoints, "up", up, "t")] == ["id", "v", "n", "extra"]
        assert columns_of(endpoints, "down", down, target) == columns_of(endpoints, "up", up,
                                                                         "t")
        assert indexes_of(endpoints, "down", down, target) == indexes_of(endpoints, "up", up,
                                                                         "t")
        assert rows(endpoints, "down", down, target) == rows(endpoints, "up", up, "t")
        assert len(rows(endpoints, "up", up, "t")) == 100 + 10 - 11 + 1 - 1
