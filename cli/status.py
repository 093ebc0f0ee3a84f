"""`query-status`: DM's status output, built from the status topic.

The shape is dmctl's (seed 002): `result`, `msg`, `sources[]` with `sourceStatus` (`source`,
`worker`, `result`, `relayStatus`) and `subTaskStatus[]`. Kafka facts (topic, partition,
offset, events) are extra fields of `relayStatus`.
"""

from __future__ import annotations

from typing import Any

import click

from cli.common import config_option, emit, kafka_config
from kdm.stages import relay_key
from kdm.status import read_status

RELAY_FIELDS = ("masterBinlog", "masterBinlogGtid", "relaySubDir", "relayBinlog",
                "relayBinlogGtid", "relayCatchUpMaster", "stage")
KAFKA_FIELDS = ("topic", "partition", "offset", "events")


def relay_status(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """DM's `relayStatus` object from a status record (None when the source has no relay)."""
    if record is None:
        return None
    status = {name: record[name] for name in RELAY_FIELDS}
    status["result"] = ({"isCanceled": False, "errors": record["errors"], "detail": None}
                        if record["errors"] else None)
    status.update({name: record[name] for name in KAFKA_FIELDS})
    return status


@click.command("query-status")
@click.argument("task", required=False)
@click.option("-s", "--source", "sources", multiple=True, help="Source id (repeatable).")
@config_option
def query_status(task: str | None, sources: tuple[str, ...], config_path: str | None) -> None:
    """Show the status of sources' relays (and, with the sync consumer, of tasks)."""
    statuses = read_status(kafka_config(config_path))
    if not sources:
        sources = tuple(sorted(key.split("/", 1)[1] for key in statuses
                               if key.startswith("relay/")))
    results = []
    for source in sources:
        record = statuses.get(relay_key(source))
        results.append({
            "result": record is not None,
            "msg": "" if record is not None else f"source {source} has no relay status",
            "sourceStatus": {"source": source, "worker": record["worker"] if record else "",
                             "result": None, "relayStatus": relay_status(record)},
            "subTaskStatus": []})
    emit({"result": all(r["result"] for r in results), "msg": "", "sources": results})
