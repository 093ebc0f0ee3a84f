"""Prometheus metrics of the relay producer (DM's dm_relay_* family, under `kdm_relay_`).

Alert on: `kdm_relay_exit_with_error_count` (changes), `kdm_relay_read_error_count` and
`kdm_relay_write_error_count` (increase), and the file gap
`kdm_relay_binlog_file{node="master"} - kdm_relay_binlog_file{node="relay"} > 1` for 10m.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BINLOG_FILE = Gauge("kdm_relay_binlog_file", "Binlog file index of the upstream (node=master) "
                    "and of the last committed relay record (node=relay).", ["source", "node"])
BINLOG_POS = Gauge("kdm_relay_binlog_pos", "Binlog position of the upstream and of the relay.",
                   ["source", "node"])
EVENTS = Counter("kdm_relay_events_total", "Relay records produced, by kind.",
                 ["source", "kind"])
# alert: any increase means the relay could not read the upstream
READ_ERRORS = Counter("kdm_relay_read_error_count", "Errors reading the upstream binlog.",
                      ["source"])
# alert: any increase means the relay could not write to Kafka
WRITE_ERRORS = Counter("kdm_relay_write_error_count", "Errors writing to the relay topic.",
                       ["source"])
# alert: a non-resumable error paused the relay
EXIT_WITH_ERROR = Counter("kdm_relay_exit_with_error_count", "Times the relay stopped on an "
                          "error.", ["source", "resumable_err"])
COMMIT_SECONDS = Histogram("kdm_relay_commit_duration_seconds", "Time to commit one Kafka "
                           "transaction of relay records.", ["source"])
STAGE = Gauge("kdm_relay_stage", "Relay stage: 0 New, 1 Running, 2 Paused, 3 Stopped.",
              ["source"])
