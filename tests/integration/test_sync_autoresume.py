"""Errors pause a subtask; the source's `checker` resumes it by itself after a resumable one
(the relay had not reached `meta` yet), and leaves it Paused after a non-resumable one (a
`meta` older than the relay) or when the checker is off, until `resume-task`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from consumers.runner import SubtaskRunner
from kdm.config.decode import Duration
from kdm.config.service import KafkaConfig
from kdm.config.source import Checker
from kdm.errors import ERR_SYNC_META, ERR_SYNC_META_AHEAD, KdmError
from kdm.relay_log import TopicReader
from kdm.stack.stack import Endpoints
from kdm.stages import Stage, read_requests, request, subtask_key
from kdm.topics import Topics
from tests.integration.relay_support import gtid_now, wait_for
from tests.integration.sync_support import (
    execute,
    rows,
    running,
    same_tables,
    task_config,
    task_text,
)

pytestmark = pytest.mark.integration

FAST = Checker(backoff_min=Duration(0.5), backoff_max=Duration(2), backoff_jitter=False)


def next_gtid(gtid: str) -> str:
    """The upstream's GTID set after its next transaction (one MariaDB domain)."""
    assert "," not in gtid, f"the test stack has one GTID domain, not {gtid}"
    domain, server, seq = gtid.split("-")
    return f"{domain}-{server}-{int(seq) + 1}"


def history(kafka: KafkaConfig, key: str) -> list[dict[str, Any]]:
    """Every status record published for `key`, oldest first (empty before the first)."""
    topic = Topics(kafka.topic_prefix).compacted("status").name
    try:
        with TopicReader(kafka, topic) as reader:
            return [m.value for m in reader.read(reader.bounds()[0]) if m.key == key]
    except KdmError:
        return []


def codes(record: dict[str, Any]) -> list[int]:
    """The error codes of a status record."""
    return [error["ErrCode"] for error in record["errors"]]


def paused_with(kafka: KafkaConfig, key: str, code: int) -> int | None:
    """The index of the first published Paused status carrying `code`, if any."""
    return next((i for i, r in enumerate(history(kafka, key))
                 if r["stage"] == "Paused" and codes(r) == [code]), None)


def pauses(kafka: KafkaConfig, key: str, code: int) -> int:
    """How many times a Paused status carrying `code` was published (not repeats)."""
    stages = [(r["stage"], codes(r)) for r in history(kafka, key)]
    return sum(1 for i, s in enumerate(stages) if s == ("Paused", [code])
               and (i == 0 or stages[i - 1] != s))


def meta_task(endpoints: Endpoints, name: str, source: str, up: str, down: str,
              meta: str) -> Any:
    """An incremental task of `up` routed to `down`, starting after GTID set `meta`."""
    body = (f"routes:\n  r:\n    schema-pattern: {up}\n    target-schema: {down}\n"
            f"block-allow-list:\n  ba:\n    do-dbs: [{up}]\n")
    instance = f'route-rules: [r]\nblock-allow-list: ba\nmeta:\n  binlog-gtid: "{meta}"'
    return task_config(task_text(name, endpoints, [source], body, instance, 2))


@contextmanager
def subtask(endpoints: Endpoints, kafka: KafkaConfig, source: str, up: str, down: str,
            meta: str, checker: Checker) -> Iterator[SubtaskRunner]:
    """A relay from now and, under it, a subtask of a task starting after `meta`; an empty
    `meta` is the upstream's next transaction, which the relay cannot have yet."""
    execute(endpoints, up, "CREATE TABLE t (id INT PRIMARY KEY)")
    execute(endpoints, down, "CREATE TABLE t (id INT PRIMARY KEY)", side="down")
    start = gtid_now(endpoints)
    task = meta_task(endpoints, f"ar-{source}", source, up, down, meta or next_gtid(start))
    with running(endpoints, kafka, [source], start) as units:
        runner = SubtaskRunner(task, source, kafka, checker=checker)
        thread = threading.Thread(target=runner.run, args=(units["stop"],), daemon=True)
        thread.start()
        try:
            yield runner
        finally:
            units["stop"].set()
            thread.join(30)


def write_past_meta(endpoints: Endpoints, up: str) -> None:
    """Upstream transactions that reach (and pass) a meta one transaction ahead.

    The first is a throwaway: it is the meta transaction itself (skipped) unless another
    client of the stack took that GTID, in which case it is applied; either way harmless."""
    execute(endpoints, up, "CREATE TABLE pad (id INT PRIMARY KEY)")
    execute(endpoints, up, *[f"INSERT INTO t VALUES ({i})" for i in range(1, 6)])


def test_a_resumable_error_pauses_then_resumes_by_itself(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    source = f"ar-{unique}"
    key = subtask_key(f"ar-{source}", source)
    with subtask(endpoints, kafka, source, upstream_db, downstream_db, "", FAST) as runner:
        wait_for(lambda: pauses(kafka, key, ERR_SYNC_META_AHEAD.code) >= 2, 60,
                 "a Paused status with the meta-ahead error, then another after a retry")
        write_past_meta(endpoints, upstream_db)
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t")), 60,
                 "the rows after meta")
        wait_for(lambda: history(kafka, key)[-1]["stage"] == "Running", 30, "Running")
        published = history(kafka, key)
        first_pause = paused_with(kafka, key, ERR_SYNC_META_AHEAD.code)
        assert first_pause is not None
        assert any(r["stage"] == "Running" and not r["errors"]
                   for r in published[first_pause:])
        assert runner.stage.value == "Running" and runner.errors == []
        assert key not in read_requests(kafka), "resumed without any request"
    assert [r[0] for r in rows(endpoints, "down", downstream_db, "t")] \
        in (["1", "2", "3", "4", "5"], [b"1", b"2", b"3", b"4", b"5"])


def test_a_non_resumable_error_stays_paused(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    source = f"nr-{unique}"
    key = subtask_key(f"ar-{source}", source)
    with subtask(endpoints, kafka, source, upstream_db, downstream_db, "0-1-1", FAST) \
            as runner:
        wait_for(lambda: paused_with(kafka, key, ERR_SYNC_META.code) is not None, 60,
                 "a published Paused status with the too-old-meta error")
        time.sleep(3 * float(FAST.backoff_max))  # several auto-resume periods go by
        pause = paused_with(kafka, key, ERR_SYNC_META.code)
        assert pause is not None
        assert all(r["stage"] == "Paused" and codes(r) == [ERR_SYNC_META.code]
                   for r in history(kafka, key)[pause:])
        assert runner.stage.value == "Paused"
        assert [e.code for e in runner.errors] == [ERR_SYNC_META.code]


def test_with_the_checker_off_a_resumable_error_waits_for_resume_task(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    source = f"off-{unique}"
    key = subtask_key(f"ar-{source}", source)
    off = Checker(check_enable=False, backoff_min=Duration(0.5), backoff_jitter=False)
    with subtask(endpoints, kafka, source, upstream_db, downstream_db, "", off) as runner:
        wait_for(lambda: paused_with(kafka, key, ERR_SYNC_META_AHEAD.code) is not None, 60,
                 "a published Paused status with the meta-ahead error")
        write_past_meta(endpoints, upstream_db)
        time.sleep(3)  # the relay has the rows by now; nothing resumes the subtask
        assert runner.stage.value == "Paused"
        assert rows(endpoints, "down", downstream_db, "t") == []
        request(kafka, key, Stage.RUNNING, "resume-task")  # what resume-task writes
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t")), 60,
                 "the rows after resume-task")
        assert runner.stage.value == "Running"
