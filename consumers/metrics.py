"""Prometheus metrics of the sync consumer (DM's dm_syncer_* family, under `kdm_syncer_`).

Alert on: `kdm_syncer_exit_with_error_count` (changes: a subtask paused on an error),
`kdm_syncer_replication_lag_seconds > 30` for 5m, and `kdm_syncer_consumer_lag` growing.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LABELS = ["task", "source"]
ROWS = Counter("kdm_syncer_rows_total", "Row changes applied downstream.", LABELS)
DDLS = Counter("kdm_syncer_ddl_total", "DDL statements applied downstream.", LABELS)
ROUND_SECONDS = Histogram("kdm_syncer_round_duration_seconds", "Time from a round's "
                          "submission to its last worker's commit.", LABELS)
# alert: a subtask stopped on an error
EXIT_WITH_ERROR = Counter("kdm_syncer_exit_with_error_count", "Times a subtask paused or "
                          "retried on an error.", [*LABELS, "resumable_err"])
# alert: sustained lag
LAG_SECONDS = Gauge("kdm_syncer_replication_lag_seconds", "Upstream time of the newest relay "
                    "record read minus that of the last one applied.", LABELS)
CONSUMER_LAG = Gauge("kdm_syncer_consumer_lag", "Relay records not yet applied.", LABELS)
BINLOG_FILE = Gauge("kdm_syncer_binlog_file", "Binlog file index applied (node=syncer) and "
                    "published by the relay (node=master).", [*LABELS, "node"])
SAFE_MODE = Gauge("kdm_syncer_safe_mode", "1 while the subtask writes in safe mode.", LABELS)
