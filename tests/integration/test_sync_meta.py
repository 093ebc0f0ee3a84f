"""A subtask without a checkpoint starts at its `meta` (mapped to a relay offset); a meta
the relay no longer holds pauses it with a coded error instead of skipping anything."""

from __future__ import annotations

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import gtid_now, wait_for
from tests.integration.sync_support import execute, rows, running, task_config, task_text

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("master_addr")]


def test_meta_gtid_starts_after_it_and_too_old_a_meta_pauses(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    source = f"meta-{unique}"
    start = gtid_now(endpoints)
    execute(endpoints, upstream_db, "CREATE TABLE t (id INT PRIMARY KEY)")
    execute(endpoints, downstream_db, "CREATE TABLE t (id INT PRIMARY KEY)", side="down")
    body = (f"routes:\n  r:\n    schema-pattern: {upstream_db}\n"
            f"    target-schema: {downstream_db}\n")
    with running(endpoints, kafka, [source], start) as units:
        execute(endpoints, upstream_db, "INSERT INTO t VALUES (1), (2)")
        meta = gtid_now(endpoints)
        execute(endpoints, upstream_db, "INSERT INTO t VALUES (3), (4)")
        import threading

        from consumers.runner import SubtaskRunner

        good = task_config(task_text(f"meta-{unique}", endpoints, [source], body,
                                     f'route-rules: [r]\nmeta:\n  binlog-gtid: "{meta}"'))
        old = task_config(task_text(f"old-{unique}", endpoints, [source], body,
                                    'route-rules: [r]\nmeta:\n  binlog-gtid: "0-1-1"'))
        runners = [SubtaskRunner(good, source, kafka), SubtaskRunner(old, source, kafka)]
        threads = [threading.Thread(target=r.run, args=(units["stop"],), daemon=True)
                   for r in runners]
        for thread in threads:
            thread.start()
        wait_for(lambda: [r[0] for r in rows(endpoints, "down", downstream_db, "t")]
                 in (["3", "4"], [b"3", b"4"]), 60, "the rows after meta only")
        wait_for(lambda: runners[1].stage.value == "Paused", 60, "the old meta to pause")
        assert [e.code for e in runners[1].errors] == [36003]
        units["stop"].set()
        for thread in threads:
            thread.join(30)


def test_a_checkpoint_the_relay_no_longer_holds_pauses_with_a_coded_error(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    from confluent_kafka import TopicPartition

    from kdm.kafka_admin import admin_client
    from kdm.relay_log import TopicReader
    from kdm.topics import Topics
    from tests.integration.sync_support import same_tables

    source, name = f"gap-{unique}", f"gap-{unique}"
    body = (f"routes:\n  r:\n    schema-pattern: {upstream_db}\n"
            f"    target-schema: {downstream_db}\n")
    task = task_config(task_text(name, endpoints, [source], body, "route-rules: [r]", 2))
    with running(endpoints, kafka, [source], gtid_now(endpoints), task) as units:
        runner = units["runners"][0]
        execute(endpoints, upstream_db, "CREATE TABLE t (id INT PRIMARY KEY)",
                "INSERT INTO t VALUES (1)")
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t")),
                 60, "the first row")
        from click.testing import CliRunner

        from cli.main import main
        env = {"KDM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
               "KDM_TOPIC_PREFIX": kafka.topic_prefix}
        assert CliRunner().invoke(main, ["pause-task", name, "-s", source], env=env)\
            .exit_code == 0
        wait_for(lambda: runner.stage.value == "Paused", 30, "Paused")
        execute(endpoints, upstream_db, *[f"INSERT INTO t VALUES ({i})" for i in range(2, 50)])
        topic = Topics(kafka.topic_prefix).relay(source).name

        def relay_has_all() -> bool:
            with TopicReader(kafka, topic) as reader:
                last = reader.last()
            return last is not None and last.value["kind"] in ("COMMIT", "HEARTBEAT")
        wait_for(relay_has_all, 30, "the relay")
        with TopicReader(kafka, topic) as reader:
            _, high = reader.bounds()
        admin = admin_client(kafka)  # keep it alive until its futures complete
        futures = admin.delete_records([TopicPartition(topic, 0, high)], request_timeout=30)
        for future in futures.values():
            future.result(timeout=60)
        assert CliRunner().invoke(main, ["resume-task", name, "-s", source], env=env)\
            .exit_code == 0
        wait_for(lambda: bool(runner.errors) and runner.stage.value == "Paused", 60,
                 "the pause on the gap")
        assert [e.code for e in runner.errors] == [36010]
