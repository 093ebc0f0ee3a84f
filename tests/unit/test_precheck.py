"""The task precheck against in-memory upstreams: each item passing and failing, the
task-mode and ignore-checking-items selection, the --error/--warn limits, dmctl's answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from coordinator.precheck import MSG_HEADER, PASS_MSG, run_precheck
from coordinator.precheck_items import parse_grant
from kdm.config.source import SourceConfig, parse_source
from kdm.config.task import parse_task
from kdm.errors import ERR_PRECHECK_OPEN_DB, ERR_PRECHECK_QUERY, KdmError

GOOD_VARIABLES = {"server_id": "1", "log_bin": "ON", "binlog_format": "ROW",
                  "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}
ROOT = "GRANT ALL PRIVILEGES ON *.* TO `root`@`%` WITH GRANT OPTION"
TABLE = ("CREATE TABLE `{t}` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) "
         "DEFAULT CHARSET=utf8mb4")


@dataclass
class FakeUpstream:
    """An upstream answering from memory; `broken` names a read that fails."""

    version_text: str = "10.11.6-MariaDB-log"
    settings: dict[str, str] = field(default_factory=lambda: dict(GOOD_VARIABLES))
    grant_lines: list[str] = field(default_factory=lambda: [ROOT])
    created: dict[tuple[str, str], str] = field(default_factory=dict)
    broken: str = ""
    closed: bool = False

    def _read(self, what: str) -> None:
        if what == self.broken:
            raise ERR_PRECHECK_QUERY("denied", address="fake:3306", query=what)

    def version(self) -> str:
        self._read("version")
        return self.version_text

    def variables(self) -> Mapping[str, str]:
        self._read("variables")
        return self.settings

    def grants(self) -> list[str]:
        self._read("grants")
        return self.grant_lines

    def tables(self) -> list[tuple[str, str]]:
        self._read("tables")
        return list(self.created)

    def create_table(self, schema: str, table: str) -> str:
        self._read("create_table")
        return self.created[schema, table]

    def close(self) -> None:
        self.closed = True


def with_tables(*names: str, sql: str = TABLE, **kwargs: Any) -> FakeUpstream:
    """An upstream holding `db.t` tables named `db.t`, all with `sql`."""
    created = {(schema, table): sql.format(t=table)
               for schema, table in (name.split(".") for name in names)}
    return FakeUpstream(created=created, **kwargs)


def task(body: str = "", mode: str = "all", sources: tuple[str, ...] = ("s1",),
         instance: str = "") -> Any:
    lines = ["name: t", f"task-mode: {mode}", "target-database:", "  host: 127.0.0.1",
             "mysql-instances:"]
    for source in sources:
        lines.append(f"  - source-id: {source}")
        lines.extend("    " + line for line in instance.splitlines() if line.strip())
    return parse_task("\n".join(lines) + "\n" + body)


def source(source_id: str) -> SourceConfig:
    return parse_source(f"source-id: {source_id}\nfrom:\n  host: h-{source_id}\n  port: 3306\n")


def run(cfg: Any, upstreams: Mapping[str, FakeUpstream | KdmError], **limits: int
        ) -> dict[str, Any]:
    def connect(src: SourceConfig) -> FakeUpstream:
        found = upstreams[src.source_id]
        if isinstance(found, KdmError):
            raise found
        return found

    sources = {inst.source_id: source(inst.source_id) for inst in cfg.mysql_instances}
    return run_precheck(cfg, sources, connect, **limits)


def detail(answer: dict[str, Any]) -> dict[str, Any]:
    """The checker result inside a non-pass answer."""
    msg = str(answer["msg"])
    prefix = f"{MSG_HEADER}: no errors but some warnings\n detail: "
    return dict(json.loads(msg.removeprefix(prefix)))


def only(answer: dict[str, Any], result: bool) -> dict[str, Any]:
    """The one failed or warned result of the answer."""
    assert answer["result"] is result
    (found,) = detail(answer)["results"]
    return dict(found)


def errors(found: dict[str, Any]) -> list[str]:
    return [e["short_error"] for e in found["errors"]]


# -- the answer ----------------------------------------------------------------------------

def test_everything_right_passes_and_closes_the_connection() -> None:
    upstream = with_tables("db.a")
    assert run(task(), {"s1": upstream}) == {"result": True, "msg": PASS_MSG}
    assert upstream.closed


def test_a_failure_answers_dms_checker_result_shape() -> None:
    upstream = FakeUpstream(settings={**GOOD_VARIABLES, "binlog_format": "MIXED"})
    answer = run(task(), {"s1": upstream})
    assert answer["result"] is False
    assert json.loads(answer["msg"]) == {
        "results": [{
            "id": 3, "name": "mysql_binlog_format",
            "desc": "check whether mysql binlog_format is ROW", "state": "fail",
            "errors": [{"severity": "fail",
                        "short_error": "binlog_format is MIXED, and should be ROW"}],
            "instruction": "please execute 'set global binlog_format=ROW;'",
            "extra": "address of db instance - h-s1:3306"}],
        "summary": {"passed": False, "total": 9, "successful": 8, "failed": 1, "warning": 0}}


def test_warnings_alone_pass_with_dms_message() -> None:
    answer = run(task(), {"s1": with_tables("db.a", sql="CREATE TABLE `{t}` (`v` int(11))")})
    assert answer["result"] is True
    assert answer["msg"].startswith(
        "fail to check synchronization configuration with type: no errors but some warnings\n"
        " detail: {")
    assert detail(answer)["summary"] == {"passed": True, "total": 9, "successful": 8,
                                         "failed": 0, "warning": 1}


# -- version, server_id, binlog settings -----------------------------------------------------

@pytest.mark.parametrize(("version", "state", "text"), [
    ("10.0.38-MariaDB", "fail", "version required at least 10.1.2 but got 10.0.38"),
    ("5.5.62-log", "fail", "version required at least 5.6.0 but got 5.5.62"),
    ("8.0.36", "warn", "version suggested earlier than 8.0.0 but got 8.0.36"),
    ("5.7.25-TiDB-v6.5.0", "warn", "migration from TiDB not supported"),
    ("banana", "fail", "version banana is invalid"),
])
def test_version_outside_the_supported_range(version: str, state: str, text: str) -> None:
    found = only(run(task(), {"s1": FakeUpstream(version_text=version)}), state == "warn")
    assert (found["name"], found["state"], errors(found)) == ("mysql_version", state, [text])


@pytest.mark.parametrize("version", ["5.6.0", "5.7.44-log", "10.1.2-MariaDB",
                                     "5.5.5-10.4.3-MariaDB"])
def test_supported_versions_pass(version: str) -> None:
    assert run(task(), {"s1": FakeUpstream(version_text=version)})["msg"] == PASS_MSG


@pytest.mark.parametrize(("settings", "name", "text"), [
    ({"server_id": "0"}, "mysql_server_id", "server_id is 0"),
    ({"server_id": None}, "mysql_server_id", "server_id not set"),
    ({"log_bin": "OFF"}, "mysql_binlog_enable", "log_bin is OFF, and should be ON"),
    ({"binlog_row_image": "MINIMAL"}, "mysql_binlog_row_image",
     "binlog_row_image is MINIMAL, and should be FULL"),
    ({"binlog_row_metadata": "MINIMAL"}, "mysql_binlog_row_metadata",
     "binlog_row_metadata is MINIMAL, and should be FULL"),
    ({"binlog_row_metadata": None}, "mysql_binlog_row_metadata",
     "binlog_row_metadata is not supported by this server, and should be FULL"),
])
def test_server_settings_fail(settings: dict[str, str | None], name: str, text: str) -> None:
    merged = {k: v for k, v in {**GOOD_VARIABLES, **settings}.items() if v is not None}
    found = only(run(task(), {"s1": FakeUpstream(settings=merged)}), False)
    assert (found["name"], found["state"], errors(found)) == (name, "fail", [text])


def test_a_server_without_binlog_row_image_logs_full_rows() -> None:
    settings = {k: v for k, v in GOOD_VARIABLES.items() if k != "binlog_row_image"}
    assert run(task(), {"s1": FakeUpstream(settings=settings)})["msg"] == PASS_MSG


# -- privileges ------------------------------------------------------------------------------

def test_select_only_lacks_replication_and_reload() -> None:
    upstream = with_tables("db.a", grant_lines=["GRANT SELECT ON *.* TO `u`@`%`"])
    results = detail(run(task(), {"s1": upstream}))["results"]
    assert {r["name"]: errors(r) for r in results} == {
        "source db dump privilege checker": ["lack of RELOAD privilege; "],
        "source db replication privilege checker": [
            "lack of REPLICATION SLAVE privilege; lack of REPLICATION CLIENT privilege; "]}
    assert {r["instruction"] for r in results} == {"You need grant related privileges."}


def test_table_level_select_names_the_tables_it_misses() -> None:
    grants = ["GRANT RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u`@`%`",
              "GRANT SELECT ON `db`.`a` TO `u`@`%`", "GRANT SELECT (`id`) ON `db`.`b` TO `u`@`%`",
              "GRANT ALL PRIVILEGES ON `other`.* TO `u`@`%`", "GRANT `role1` TO `u`@`%`"]
    upstream = with_tables("db.a", "db.b", "db.c", "other.x", grant_lines=grants)
    found = only(run(task(), {"s1": upstream}), False)
    assert errors(found) == ["lack of SELECT privilege: {`db`.`b`, `db`.`c`}; "]


@pytest.mark.parametrize(("grants", "passes"), [
    (["GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `u`@`%`"], True),
    (["GRANT SELECT, RELOAD, REPLICATION SLAVE, SUPER ON *.* TO `u`@`%`"], True),
    (["GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `u`@`%`",
      "GRANT RELOAD ON `db`.* TO `u`@`%`"], False),
    ([], False),
])
def test_global_privileges(grants: list[str], passes: bool) -> None:
    answer = run(task(), {"s1": with_tables("db.a", grant_lines=grants)})
    assert answer["result"] is passes


def test_no_grants_at_all() -> None:
    upstream = FakeUpstream(grant_lines=[])
    results = detail(run(task(mode="incremental"), {"s1": upstream}))["results"]
    assert [errors(r) for r in results] == [
        ["there is no such grant defined for current user on host '%'"]]


@pytest.mark.parametrize(("consistency", "needed"), [
    ("lock", "LOCK TABLES"), ("flush", "RELOAD"), ("none", None)])
def test_dump_privileges_follow_the_consistency_mode(consistency: str, needed: str | None
                                                     ) -> None:
    cfg = task(f"mydumpers:\n  d:\n    extra-args: \"--consistency {consistency}\"\n",
               mode="full", instance="mydumper-config-name: d")
    answer = run(cfg, {"s1": with_tables("db.a", grant_lines=["GRANT SELECT ON *.* TO u"])})
    if needed is None:
        assert answer["msg"] == PASS_MSG
    else:
        assert needed in errors(only(answer, False))[0]


def test_parse_grant_reads_levels_and_skips_column_grants() -> None:
    grant = parse_grant("GRANT SELECT (`a`, `b`), INSERT ON `d``b`.`t` TO `u`@`%`")
    assert grant is not None
    assert (grant.privileges, grant.schema, grant.table) == (frozenset({"INSERT"}), "d`b", "t")
    assert parse_grant("GRANT PROXY ON ''@'%' TO 'root'@'localhost'") is None


# -- table structure compatibility -----------------------------------------------------------

@pytest.mark.parametrize(("sql", "state", "text"), [
    ("CREATE TABLE `{t}` (`v` int(11))", "warn", "primary/unique key does not exist"),
    ("CREATE TABLE `{t}` (`id` int(11) NOT NULL, `p` int(11), PRIMARY KEY (`id`), "
     "CONSTRAINT `fk_p` FOREIGN KEY (`p`) REFERENCES `q` (`id`))", "warn",
     "Foreign Key fk_p is parsed but ignored by TiDB."),
    ("CREATE TABLE `{t}` (`id` int(11) NOT NULL, PRIMARY KEY (`id`)) DEFAULT CHARSET=latin2",
     "fail", "unsupport charset latin2"),
    ("CREATE TABLE `{t}` (`id` int(11) NOT NULL, `v` varchar(5) CHARACTER SET ucs2, "
     "PRIMARY KEY (`id`))", "fail", "unsupport charset ucs2"),
])
def test_table_structure_problems(sql: str, state: str, text: str) -> None:
    found = only(run(task(), {"s1": with_tables("db.a", sql=sql)}), state == "warn")
    assert (found["name"], found["state"]) == ("table structure compatibility check", state)
    assert errors(found) == [f"table `db`.`a` {text}"]
    assert found["extra"] == "address of db instance - h-s1:3306"


def test_a_unique_key_is_enough() -> None:
    sql = "CREATE TABLE `{t}` (`v` int(11), UNIQUE KEY `uk` (`v`)) DEFAULT CHARSET=latin1"
    assert run(task(), {"s1": with_tables("db.a", sql=sql)})["msg"] == PASS_MSG


def test_only_the_tables_the_block_allow_list_selects_are_checked() -> None:
    bad = "CREATE TABLE `{t}` (`v` int(11)) DEFAULT CHARSET=latin2"
    upstream = with_tables("db.a", "db.skip_me", "other.b", "mysql.user", sql=bad)
    body = ("block-allow-list:\n  ba:\n    do-dbs: [\"~^d.$\"]\n    ignore-tables:\n"
            "      - db-name: db\n        tbl-name: skip_*\n")
    found = only(run(task(body, instance="block-allow-list: ba"), {"s1": upstream}), False)
    assert [e.split(" ")[1] for e in errors(found)] == ["`db`.`a`", "`db`.`a`"]


# -- ignore-checking-items and task-mode -----------------------------------------------------

def test_ignored_items_are_not_run() -> None:
    upstream = FakeUpstream(settings={**GOOD_VARIABLES, "binlog_format": "MIXED"})
    assert run(task("ignore-checking-items: [binlog_format]\n"),
               {"s1": upstream})["msg"] == PASS_MSG


def test_all_skips_every_item_without_connecting() -> None:
    refused = ERR_PRECHECK_OPEN_DB("refused", user="u", host="h", port=1)
    assert run(task("ignore-checking-items: [all]\n"), {"s1": refused}) == {
        "result": True, "msg": PASS_MSG}


def test_full_mode_skips_the_replication_items() -> None:
    upstream = with_tables("db.a", settings={"binlog_format": "MIXED"},
                           grant_lines=["GRANT SELECT, RELOAD ON *.* TO `u`@`%`"])
    assert run(task(mode="full"), {"s1": upstream})["msg"] == PASS_MSG


def test_incremental_mode_skips_the_dump_privilege() -> None:
    grants = ["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `u`@`%`"]
    upstream = with_tables("db.a", grant_lines=grants)
    assert run(task(mode="incremental"), {"s1": upstream})["msg"] == PASS_MSG


# -- unreachable upstream, failing reads -----------------------------------------------------

def test_an_unreachable_upstream_is_one_failed_item() -> None:
    refused = ERR_PRECHECK_OPEN_DB("Can't connect", user="u", host="h-s1", port=3306)
    answer = run(task(sources=("s1", "s2")), {"s1": refused, "s2": FakeUpstream()})
    found = only(answer, False)
    assert found["name"] == "source db connection checker"
    assert errors(found)[0].startswith("[code=26001:class=task-check:scope=upstream")
    assert detail(answer)["summary"]["total"] == 1 + 9


def test_a_failing_read_fails_the_items_that_need_it() -> None:
    answer = run(task(), {"s1": FakeUpstream(broken="grants")})
    results = detail(answer)["results"]
    assert [r["name"] for r in results] == ["source db dump privilege checker",
                                            "source db replication privilege checker"]
    assert all(errors(r)[0].startswith("[code=26002:") for r in results)


# -- shard merges ----------------------------------------------------------------------------

SHARD_BODY = ("shard-mode: {mode}\nroutes:\n  r:\n    schema-pattern: db\n"
              "    table-pattern: \"t_*\"\n    target-schema: db\n    target-table: t\n")


def shards(mode: str, first: str, second: str, ignore: str = "") -> dict[str, Any]:
    body = SHARD_BODY.format(mode=mode) + (f"ignore-checking-items: [{ignore}]\n"
                                           if ignore else "")
    cfg = task(body, sources=("s1", "s2"), instance="route-rules: [r]")
    return run(cfg, {"s1": with_tables("db.t_1", sql=first),
                     "s2": with_tables("db.t_2", sql=second)})


ID_V = "CREATE TABLE `{t}` (`id` int(11) NOT NULL, `v` varchar(10), PRIMARY KEY (`id`))"
ID_V_W = ("CREATE TABLE `{t}` (`id` int(11) NOT NULL, `v` varchar(10), `w` int(11), "
          "PRIMARY KEY (`id`))")


def test_same_shards_pass() -> None:
    assert shards("pessimistic", ID_V, ID_V)["msg"] == PASS_MSG


def test_shards_with_different_columns_fail() -> None:
    found = only(shards("pessimistic", ID_V, ID_V_W), False)
    assert found["name"] == "sharding table `db`.`t` consistency checking"
    assert found["errors"] == [{
        "severity": "fail", "short_error": "column length mismatch (self: 2 vs other: 3)",
        "self": "sourceID s1 table `db`.`t_1` columns [id v]",
        "other": "sourceID s2 table `db`.`t_2` columns [id v w]"}]
    assert found["instruction"] == "please set same table structure for sharding tables"
    assert found["extra"] == "error on sharding `db`.`t`"


@pytest.mark.parametrize(("other", "text"), [
    ("CREATE TABLE `{t}` (`id` bigint(20) NOT NULL, `v` varchar(10), PRIMARY KEY (`id`))",
     "different column definition"),
    ("CREATE TABLE `{t}` (`id` int(11) NOT NULL, `v` varchar(10), PRIMARY KEY (`id`), "
     "UNIQUE KEY `u` (`v`))", "different primary key or unique keys"),
])
def test_shards_with_different_definitions_fail(other: str, text: str) -> None:
    assert errors(only(shards("pessimistic", ID_V, other), False)) == [text]


def test_optimistic_shards_need_a_join_only() -> None:
    assert shards("optimistic", ID_V, ID_V_W)["msg"] == PASS_MSG
    conflict = "CREATE TABLE `{t}` (`id` int(11) NOT NULL, `v` datetime, PRIMARY KEY (`id`))"
    found = only(shards("optimistic", ID_V, conflict), False)
    assert found["name"] == "optimistic sharding table `db`.`t` consistency checking"


def test_auto_increment_shards_warn_unless_ignored() -> None:
    auto = ("CREATE TABLE `{t}` (`id` int(11) NOT NULL AUTO_INCREMENT, `v` varchar(10), "
            "PRIMARY KEY (`id`))")
    found = only(shards("pessimistic", auto, auto), True)
    assert found["state"] == "warn"
    assert errors(found)[0] == ("sourceID s1 table `db`.`t_1` of sharding `db`.`t` have "
                                "auto-increment key, please make sure them don't conflict in "
                                "target table!")
    assert found["instruction"].startswith("If happen conflict, please handle it by yourself.")
    assert found["extra"] == "auto-increment key checking"
    assert shards("pessimistic", auto, auto, ignore="auto_increment_ID")["msg"] == PASS_MSG


def test_an_unparsable_shard_fails_the_shard_check() -> None:
    answer = shards("pessimistic", ID_V, "CREATE TABLE `{t}` (`id` int(11) NOT NULL")
    found = {r["name"]: r for r in detail(answer)["results"]}
    assert found["table structure compatibility check"]["state"] == "warn"
    (text,) = errors(found["sharding table `db`.`t` consistency checking"])
    assert text.startswith("sourceID s2 table `db`.`t_2`: ")


def test_without_shard_mode_no_shard_check_runs() -> None:
    cfg = task(SHARD_BODY.format(mode='""'), sources=("s1", "s2"), instance="route-rules: [r]")
    answer = run(cfg, {"s1": with_tables("db.t_1", sql=ID_V),
                       "s2": with_tables("db.t_2", sql=ID_V_W)})
    assert answer["msg"] == PASS_MSG


# -- --error / --warn ------------------------------------------------------------------------

def broken_everywhere() -> FakeUpstream:
    settings = {**GOOD_VARIABLES, "log_bin": "OFF", "binlog_format": "MIXED"}
    return with_tables("db.a", "db.b", "db.c", sql="CREATE TABLE `{t}` (`v` int(11))",
                       settings=settings)


def test_error_and_warn_limits_cut_the_entries_not_the_summary() -> None:
    answer = run(task(), {"s1": broken_everywhere()}, error_limit=1, warn_limit=2)
    result = detail(answer)
    assert [(r["name"], len(r["errors"])) for r in result["results"]] == [
        ("mysql_binlog_enable", 1), ("table structure compatibility check", 2)]
    assert result["summary"] == {"passed": False, "total": 9, "successful": 6, "failed": 2,
                                 "warning": 1}


def test_zero_limits_show_no_results() -> None:
    answer = run(task(), {"s1": broken_everywhere()}, error_limit=0, warn_limit=0)
    assert answer["result"] is False
    assert detail(answer)["results"] == []
