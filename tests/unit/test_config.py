"""DM's config formats: every example file loads, defaults are DM's, bad files fail clearly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kdm.config import (
    ServiceConfig,
    SourceConfig,
    TaskConfig,
    load_service,
    load_source,
    load_task,
    parse_source,
    parse_task,
)
from kdm.config.decode import key_paths, parse_duration
from kdm.config.service import with_env
from kdm.config.task import resolve_units
from kdm.errors import ConfigError, KdmError

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests" / "fixtures" / "config" / "invalid").glob("*.yaml"))
LOADERS = {"source": load_source, "task": load_task, "kdm": load_service}

MINIMAL_TASK = """
name: t
task-mode: all
target-database: {host: 127.0.0.1}
mysql-instances:
  - source-id: a
"""


def config_kind(path: Path) -> str:
    """Which loader a file in config/ needs, from its name."""
    return next(kind for kind in LOADERS if path.name.startswith(kind))


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_file_loads(path: Path) -> None:
    cfg = LOADERS[config_kind(path)](path)
    assert cfg is not None


def test_config_dir_has_the_documented_examples() -> None:
    names = {p.name for p in (ROOT / "config").glob("*.yaml")}
    assert {"task-single.yaml", "task-shard-merge.yaml", "kdm.yaml"} <= names
    assert len([n for n in names if n.startswith("source-")]) >= 2


def expectation(path: Path) -> tuple[int, int]:
    """The (code, line) an invalid fixture declares in its first line."""
    match = re.match(r"# expect: (\d+) line (\d+)", path.read_text().splitlines()[0])
    assert match, f"{path.name} lacks its '# expect: CODE line N' header"
    return int(match[1]), int(match[2])


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_file_fails_with_code_and_line(path: Path) -> None:
    code, line = expectation(path)
    kind = path.name.split(".")[-2]
    with pytest.raises(KdmError) as caught:
        LOADERS[kind](path)
    assert caught.value.code == code, caught.value.render()
    assert f"{path}:{line}" in caught.value.message, caught.value.render()


def test_enough_invalid_fixtures_cover_the_issue_list() -> None:
    codes = {expectation(p)[0] for p in INVALID}
    assert {20002, 20003, 20004, 20005, 20006, 20007, 20008, 20009, 20011} <= codes


def test_missing_file_is_a_read_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_task(ROOT / "config" / "no-such-task.yaml")
    assert caught.value.code == 20001


def test_task_defaults_are_dms() -> None:
    task = parse_task(MINIMAL_TASK)
    units = resolve_units(task, task.mysql_instances[0])
    assert task.meta_schema == "dm_meta"
    assert task.shard_mode == "" and task.case_sensitive is False and task.clean_dump_file
    syncer = units.syncer
    assert (syncer.worker_count, syncer.batch, syncer.queue_size) == (16, 100, 1024)
    assert units.syncer.checkpoint_flush_interval == 30 and units.syncer.safe_mode is False
    assert (units.loader.pool_size, units.loader.dir) == (16, "./dumped_data")
    assert (units.mydumper.threads, units.mydumper.chunk_filesize) == (4, "64")
    assert task.target_database.port == 3306 and task.target_database.user == "root"


def test_thread_aliases_override_named_units() -> None:
    task = parse_task(MINIMAL_TASK.replace(
        "  - source-id: a", "  - source-id: a\n    syncer-config-name: g\n    syncer-thread: 3\n"
        "    loader-thread: 5\n    mydumper-thread: 7")
        + "syncers:\n  g: {worker-count: 9, batch: 7}\n")
    units = resolve_units(task, task.mysql_instances[0])
    assert (units.syncer.worker_count, units.syncer.batch) == (3, 7)
    assert units.loader.pool_size == 5 and units.mydumper.threads == 7


def test_deprecated_spellings_keep_dm_meaning() -> None:
    task = parse_task(MINIMAL_TASK.replace("  - source-id: a", "  - source-id: a\n"
                                           "    black-white-list: old") +
                      "is-sharding: true\nblack-white-list:\n  old: {do-dbs: [x]}\n"
                      "online-ddl-scheme: gh-ost\n")
    assert task.effective_shard_mode == "pessimistic" and task.effective_online_ddl
    assert task.mysql_instances[0].ba_list_name == "old"
    assert task.ba_lists()["old"].do_dbs == ("x",)


def test_numeric_password_stays_as_written() -> None:
    src = parse_source("source-id: s\nfrom: {host: h, password: 0123}\n")
    assert src.from_.password == "0123"


def test_source_durations_and_retention() -> None:
    src = parse_source("source-id: s\nfrom: {host: h}\npurge: {expires: 2}\n"
                       "checker: {backoff-max: 1m30s, backoff-min: 500ms}\n")
    assert src.checker.backoff_max == 90.0 and src.checker.backoff_min == 0.5
    assert src.relay_retention_ms() == 7_200_000
    assert parse_source("source-id: s\nfrom: {host: h}\n").relay_retention_ms() == -1


@pytest.mark.parametrize(("text", "seconds"), [("5m0s", 300.0), ("1h", 3600.0), ("300ms", 0.3),
                                                ("1h2m3s", 3723.0), ("soon", None), ("", None)])
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_kafka_env_overrides() -> None:
    cfg = with_env(load_service(ROOT / "config" / "kdm.yaml"),
                   {"KDM_KAFKA_BOOTSTRAP_SERVERS": "k:1", "KDM_TOPIC_PREFIX": "p"})
    assert (cfg.kafka.bootstrap_servers, cfg.kafka.topic_prefix) == ("k:1", "p")
    assert cfg.kafka.client(**{"acks": "all"})["bootstrap.servers"] == "k:1"


def test_shard_merge_example_resolves_its_rules() -> None:
    task = load_task(ROOT / "config" / "task-shard-merge.yaml")
    first = task.instance("mysql-replica-01")
    assert [task.routes[r].target_schema for r in first.route_rules] == ["shop", "shop"]
    assert task.mydumpers["global"].consistency() == "auto"
    assert task.expression_filter["skip-test-orders"].expressions() == {
        "insert-value-expr": "customer LIKE 'test-%'"}


@pytest.mark.parametrize("cls", [SourceConfig, TaskConfig, ServiceConfig],
                         ids=lambda c: c.__name__)
def test_readme_documents_every_key(cls: type[Any]) -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [k for k, _ in key_paths(cls) if f"| `{k}` |" not in readme]
    assert not missing, f"README lacks: {missing}"


def test_refused_keys_at_dm_defaults_load() -> None:
    task = parse_task(MINIMAL_TASK.replace("  - source-id: a", "  - source-id: a\n"
                                           "    loader-config-name: g\n"
                                           "    column-mapping-rules: []")
                      + "column-mappings: {}\ntidb: null\n"
                      "loaders:\n  g: {import-mode: sql, on-duplicate: replace}\n")
    assert task.loaders["g"].import_mode == "sql"


def test_dm_get_config_source_keys_load() -> None:
    src = parse_source("source-id: s\nenable: true\nauto-fix-gtid: false\nmeta-dir: ./dm_meta\n"
                       "charset: ''\ntracer: {}\nfrom: {host: h}\n")
    assert src.enable and src.meta_dir == "./dm_meta"


def test_yaml_merge_keys_and_a_trailing_document_marker() -> None:
    text = MINIMAL_TASK.replace(
        "target-database: {host: 127.0.0.1}",
        "target-database:\n  <<: {host: 127.0.0.1, port: 3306}\n  port: 4000")
    task = parse_task(text + "---\n")
    assert (task.target_database.host, task.target_database.port) == ("127.0.0.1", 4000)


@pytest.mark.parametrize(("text", "code"), [
    (MINIMAL_TASK + "---\nname: second\n", 20002),
    (MINIMAL_TASK.replace("name: t", "name: !!int abc"), 20005),
    (MINIMAL_TASK.replace("name: t", "name: ''"), 20007),
    (MINIMAL_TASK.replace("task-mode: all", "task-mode: ALL"), 20007),
    (MINIMAL_TASK + "routes:\n  unused: {schema-pattern: a, target-schema: b}\n", 20007),
    (MINIMAL_TASK.replace("  - source-id: a", "  - source-id: a\n    mydumper-config-name: g")
     + "mydumpers:\n  g: {extra-args: \"--consistency 'none\"}\n", 20006),
])
def test_more_bad_tasks_are_coded(text: str, code: int) -> None:
    with pytest.raises(KdmError) as caught:
        parse_task(text, "t.yaml")
    assert caught.value.code == code, caught.value.render()
    assert "t.yaml:" in caught.value.message


def test_source_id_must_make_a_legal_topic_name() -> None:
    with pytest.raises(KdmError, match="Kafka relay topic"):
        parse_source("source-id: 'mysql replica/01'\nfrom: {host: h}\n")
