"""Relay stages and status as DM reports them: pause-relay/resume-relay, query-status,
a purged binlog and an unsupported event pausing the relay with a coded error, and
read-topic printing the relay from an offset, a time, a binlog position or a GTID set."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from kdm.config.service import KafkaConfig
from kdm.config.source import SourceConfig
from kdm.kafka_admin import delete_topics
from kdm.stack.stack import Endpoints
from kdm.topics import Topics
from producers.relay import Relay
from producers.settings import RelaySettings
from tests.integration.relay_support import (
    changes_of,
    connect,
    gtid_now,
    relay_records,
    source_config,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("master_addr")]
FAST = RelaySettings(commit_seconds=0.05, status_seconds=0.2, backoff_min=0.2)


class RunningRelay:
    """A Relay in a thread of this process."""

    def __init__(self, source: SourceConfig, kafka: KafkaConfig) -> None:
        self.relay = Relay(source, kafka, FAST)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.relay.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def run_relay(kafka: KafkaConfig) -> Iterator[Any]:
    started: list[RunningRelay] = []

    def start(source: SourceConfig) -> RunningRelay:
        started.append(RunningRelay(source, kafka))
        return started[-1]
    yield start
    for relay in started:
        relay.close()
    topics = Topics(kafka.topic_prefix)
    delete_topics(kafka, [topics.relay(r.relay.source.source_id).name for r in started]
                  + [topics.compacted("stages").name, topics.compacted("status").name])


def cli(kafka: KafkaConfig, *args: str, codes: tuple[int, ...] = (0,)) -> Any:
    result = CliRunner().invoke(main, list(args), env={
        "KDM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KDM_TOPIC_PREFIX": kafka.topic_prefix})
    assert result.exit_code in codes, result.output
    return result.output


def relay_status(kafka: KafkaConfig, source_id: str) -> dict[str, Any]:
    """The relay's status ({} while it has reported none: query-status then fails, exit 1)."""
    out = json.loads(cli(kafka, "query-status", "-s", source_id, codes=(0, 1)))
    status: dict[str, Any] = out["sources"][0]["sourceStatus"]["relayStatus"] or {}
    return status


def insert(endpoints: Endpoints, db: str, ids: range) -> None:
    with connect(endpoints, db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, v INT)")
        for i in ids:
            cur.execute("INSERT INTO t VALUES (%s, 0)", [i])


def test_pause_and_resume_relay_and_query_status(
        run_relay: Any, endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str,
        unique: str) -> None:
    source_id = f"ctl-{unique}"
    run_relay(source_config(endpoints, source_id, gtid=gtid_now(endpoints)))
    insert(endpoints, upstream_db, range(1, 11))
    wait_for(lambda: len(changes_of(relay_records(kafka, source_id), upstream_db)) == 10, 30,
             "the first rows")
    wait_for(lambda: relay_status(kafka, source_id).get("relayCatchUpMaster") is True, 30,
             "relayCatchUpMaster")
    out = json.loads(cli(kafka, "query-status", "-s", source_id))
    source = out["sources"][0]
    assert out["result"] is True and source["result"] is True
    assert set(source["sourceStatus"]) == {"source", "worker", "result", "relayStatus"}
    status = source["sourceStatus"]["relayStatus"]
    assert {"masterBinlog", "masterBinlogGtid", "relaySubDir", "relayBinlog", "relayBinlogGtid",
            "relayCatchUpMaster", "stage", "result"} <= set(status)
    assert status["stage"] == "Running" and status["result"] is None
    assert status["relayBinlog"] == status["masterBinlog"]
    assert status["relayBinlogGtid"] == status["masterBinlogGtid"] == gtid_now(endpoints)

    paused = json.loads(cli(kafka, "pause-relay", "-s", source_id))
    assert paused["result"] is True and paused["sources"][0]["source"] == source_id
    wait_for(lambda: relay_status(kafka, source_id).get("stage") == "Paused", 30, "Paused")
    insert(endpoints, upstream_db, range(11, 21))
    threading.Event().wait(2.0)
    assert len(changes_of(relay_records(kafka, source_id), upstream_db)) == 10
    assert relay_status(kafka, source_id)["relayCatchUpMaster"] is False

    cli(kafka, "resume-relay", "-s", source_id)
    wait_for(lambda: len(changes_of(relay_records(kafka, source_id), upstream_db)) >= 20, 30,
             "the rows written while paused")
    assert changes_of(relay_records(kafka, source_id), upstream_db) == [
        ("INSERT", i) for i in range(1, 21)]
    assert relay_status(kafka, source_id)["stage"] == "Running"


@pytest.mark.parametrize("use_gtid", [True, False], ids=["gtid", "position"])
def test_purged_binlog_pauses_with_coded_error(
        run_relay: Any, endpoints: Endpoints, kafka: KafkaConfig, unique: str,
        use_gtid: bool) -> None:
    with connect(endpoints) as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        first = cur.fetchone()[0]
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        current = cur.fetchone()[0]

        def purged() -> bool:
            # a replica that just disconnected may still hold the file for a moment
            cur.execute(f"PURGE BINARY LOGS TO '{current}'")
            cur.execute("SHOW BINARY LOGS")
            return first not in [row[0] for row in cur.fetchall()]
        wait_for(purged, 30, f"{first} to be purged")
    source_id = f"purged-{unique}"
    source = (source_config(endpoints, source_id, gtid="0-1-1") if use_gtid else
              source_config(endpoints, source_id, use_gtid=False, binlog_name=first))
    running = run_relay(source)
    wait_for(lambda: relay_status(kafka, source_id).get("stage") == "Paused", 30, "Paused")
    status = relay_status(kafka, source_id)
    errors = status["result"]["errors"]
    assert [e["ErrCode"] for e in errors] == [30004]
    assert "no longer holds the binlog" in errors[0]["Message"]
    assert errors[0]["Workaround"]
    assert relay_records(kafka, source_id) == [], "a relay with a gap published something"
    assert running.relay.stage.value == "Paused"


def test_statement_based_dml_pauses_the_relay_at_that_event(
        run_relay: Any, endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str,
        unique: str) -> None:
    source_id = f"stmt-{unique}"
    run_relay(source_config(endpoints, source_id, gtid=gtid_now(endpoints)))
    insert(endpoints, upstream_db, range(1, 4))
    with connect(endpoints, upstream_db) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("INSERT INTO t VALUES (100, 1)")
    insert(endpoints, upstream_db, range(4, 6))
    wait_for(lambda: relay_status(kafka, source_id).get("stage") == "Paused", 30, "Paused")
    errors = relay_status(kafka, source_id)["result"]["errors"]
    assert [e["ErrCode"] for e in errors] == [30002]
    assert "mysql-bin." in errors[0]["Message"]
    assert changes_of(relay_records(kafka, source_id), upstream_db) == [
        ("INSERT", i) for i in range(1, 4)]
    cli(kafka, "resume-relay", "-s", source_id)
    threading.Event().wait(2.0)
    wait_for(lambda: relay_status(kafka, source_id).get("stage") == "Paused", 30,
             "Paused again on the same event")
    assert changes_of(relay_records(kafka, source_id), upstream_db) == [
        ("INSERT", i) for i in range(1, 4)], "the relay skipped the unsupported event"


def test_read_topic_from_offset_time_position_and_gtid(
        run_relay: Any, endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str,
        unique: str) -> None:
    source_id = f"read-{unique}"
    run_relay(source_config(endpoints, source_id, gtid=gtid_now(endpoints)))
    insert(endpoints, upstream_db, range(1, 6))
    wait_for(lambda: len(changes_of(relay_records(kafka, source_id), upstream_db)) == 5, 30,
             "rows")
    records = relay_records(kafka, source_id)
    commits = [r for r in records if r["kind"] == "COMMIT"]
    third_commit = commits[2]

    def ids(output: str) -> list[int]:
        lines = [json.loads(line) for line in output.splitlines()]
        return [line["value"]["after"][0] for line in lines
                if line["value"]["kind"] == "ROW" and line["value"]["schema"] == upstream_db]

    everything = cli(kafka, "read-topic", "-s", source_id)
    assert ids(everything) == [1, 2, 3, 4, 5]
    first = json.loads(everything.splitlines()[0])
    assert set(first) == {"topic", "partition", "offset", "timestamp", "key", "schema", "value"}
    pos = third_commit["position"]
    after_pos = cli(kafka, "read-topic", "-s", source_id, "--position",
                    f"{pos['file']}:{pos['pos']}")
    assert ids(after_pos) == [4, 5]
    after_gtid = cli(kafka, "read-topic", "-s", source_id, "--gtid", pos["gtid"])
    assert ids(after_gtid) == [4, 5]
    lines = [json.loads(line) for line in everything.splitlines()]
    row4 = next(line for line in lines if line["value"]["kind"] == "ROW"
                and line["value"]["after"][0] == 4)
    from_offset = cli(kafka, "read-topic", "-s", source_id, "--offset", str(row4["offset"]),
                      "-n", "1")
    assert ids(from_offset) == [4]
    from_time = cli(kafka, "read-topic", "-s", source_id, "--timestamp", str(row4["timestamp"]))
    assert ids(from_time)[-1] == 5 and 4 in ids(from_time)
    topic = Topics(kafka.topic_prefix).relay(source_id).name
    by_name = cli(kafka, "read-topic", topic, "-n", "2")
    assert len(by_name.splitlines()) == 2
