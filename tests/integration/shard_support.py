"""A shard-merge setup for shard-DDL tests: two sources on the upstream server, each with
its own database of two shard tables, all four merged into one downstream table; the
coordinator, a producer worker and a consumer worker as processes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.control_support import Cluster, cluster, source_files, subtask
from tests.integration.relay_support import wait_for
from tests.integration.scenario_support import columns_of, databases, per_source_task_text
from tests.integration.sync_support import execute, rows

SHARDS = ("t1", "t2")
TABLE = "CREATE TABLE {t} (id INT PRIMARY KEY, c1 VARCHAR(20) NULL, v INT NOT NULL)"


@dataclass
class ShardSetup:
    """Names and the running cluster of one shard-merge test."""

    endpoints: Endpoints
    ctl: Cluster
    task: str
    names: dict[str, str]   # short name -> source id
    ups: dict[str, str]     # short name -> upstream database
    down: str               # the downstream database (table `t`)
    task_file: Path
    next_id: int = 0

    @property
    def sources(self) -> list[str]:
        return sorted(self.names.values())

    @property
    def lock(self) -> str:
        return f"{self.task}-`{self.down}`.`t`"

    def write(self, short: str, shard: str, count: int = 5) -> None:
        """Insert `count` rows into one shard, update and delete a few (ids are unique
        across the shards, as a shard merge needs)."""
        db, first = self.ups[short], self.next_id
        self.next_id += count
        cols = [c[0] for c in columns_of(self.endpoints, "up", db, shard)]
        values = ", ".join(
            "(" + ", ".join(_value(c, i) for c in cols) + ")" for i in range(first, first + count))
        execute(self.endpoints, db, f"INSERT INTO {shard} ({', '.join(cols)}) VALUES {values}",
                f"UPDATE {shard} SET v = v + 1000 WHERE id = {first}",
                f"DELETE FROM {shard} WHERE id = {first + count - 1}")

    def ddl(self, short: str, shard: str, sql: str) -> None:
        """Run a DDL on one shard (`{t}` is the shard's name)."""
        execute(self.endpoints, self.ups[short], sql.format(t=shard))

    def everywhere(self, sql: str) -> None:
        for short in self.names:
            for shard in SHARDS:
                self.ddl(short, shard, sql)

    def expected(self, columns: list[str]) -> list[tuple[Any, ...]]:
        """The merge of the four shards, projected on `columns`, sorted by id."""
        merged = []
        for db in self.ups.values():
            for shard in SHARDS:
                merged += self._project(db, shard, columns)
        return sorted(merged, key=lambda r: int(r[0]))

    def _project(self, db: str, shard: str, columns: list[str]) -> list[tuple[Any, ...]]:
        have = self.up_columns(db, shard)
        return [tuple(row[have.index(c)] if c in have else None for c in columns)
                for row in rows(self.endpoints, "up", db, shard)]

    def up_columns(self, db: str, shard: str) -> list[str]:
        return [str(c[0]) for c in columns_of(self.endpoints, "up", db, shard)]

    def down_columns(self) -> list[str]:
        return [str(c[0]) for c in columns_of(self.endpoints, "down", self.down, "t")]

    def merged(self, columns: list[str]) -> bool:
        """Whether the downstream table has exactly `columns` and the merged rows."""
        if self.down_columns() != columns:
            return False
        return sorted(rows(self.endpoints, "down", self.down, "t"),
                      key=lambda r: int(r[0])) == self.expected(columns)

    def merged_on(self, columns: list[str]) -> bool:
        """Whether the downstream rows, projected on `columns`, are the merged rows'."""
        have = self.down_columns()
        down = [tuple(row[have.index(c)] for c in columns)
                for row in rows(self.endpoints, "down", self.down, "t")]
        return sorted(down, key=lambda r: int(r[0])) == self.expected(columns)

    def wait_merged(self, columns: list[str], what: str, timeout: float = 120) -> None:
        wait_for(lambda: self.merged(columns), timeout, what)

    def status(self, source: str) -> dict[str, Any]:
        return subtask(self.ctl.ctl("query-status", self.task), source)


def _value(column: str, i: int) -> str:
    return f"'{column}-{i}'" if column == "c1" else str(i)


@contextmanager
def shard_setup(endpoints: Endpoints, kafka: KafkaConfig, unique: str, tmp_path: Path,
                mode: str, consumer_faults: str = "") -> Iterator[ShardSetup]:
    """Two sources x two shards -> `<down>`.`t`, the task started and caught up."""
    names = {"a": f"sh-a-{unique}", "b": f"sh-b-{unique}"}
    ups = {s: f"shup_{unique}_{s}" for s in names}
    down = f"shdown_{unique}"
    task = f"sh{unique}"
    body = "routes:\n" + "".join(
        f"  r-{s}: {{schema-pattern: {ups[s]}, table-pattern: 't*', target-schema: {down}, "
        f"target-table: t}}\n  rs-{s}: {{schema-pattern: {ups[s]}, target-schema: {down}}}\n"
        for s in names) + "block-allow-list:\n" + "".join(
        f"  only-{s}: {{do-dbs: [{ups[s]}]}}\n" for s in names) + f"shard-mode: {mode}\n"
    with databases(endpoints, up=tuple(ups.values()), down=(down,),
                   drop_down=(f"kdm_meta_{task}",)), cluster(kafka, tmp_path) as ctl:
        for s in names:
            for shard in SHARDS:
                execute(endpoints, ups[s], TABLE.format(t=shard))
        execute(endpoints, down, TABLE.format(t="t"), side="down")
        files = source_files(endpoints, tmp_path, names)
        task_file = tmp_path / "task.yaml"
        task_file.write_text(per_source_task_text(task, endpoints, {
            source: f"route-rules: [r-{s}, rs-{s}]\nblock-allow-list: only-{s}"
            for s, source in names.items()}, body))
        setup = ShardSetup(endpoints, ctl, task, names, ups, down, task_file)
        ctl.coordinator()
        ctl.producer("p1")
        ctl.consumer("c1", faults=consumer_faults)
        ctl.ctl("operate-source", "create", *map(str, files.values()))
        ctl.ctl("start-task", str(task_file))
        wait_for(lambda: all(setup.status(s).get("stage") == "Running" for s in setup.sources),
                 90, "both subtasks Running")
        yield setup
