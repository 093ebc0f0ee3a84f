"""source.yaml: one upstream MySQL/MariaDB instance, in DM's format.

Stages: parse (decode.py) → defaults (field defaults) → validate (`validate`, pure). Keys
DM has deprecated into no-ops (`enable-relay`, `relay-dir`) are accepted as no-ops: the relay
is always on and lives in Kafka.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kdm.config.common import BinlogEventRule, DBConfig
from kdm.config.decode import Duration, Locations, decode_document, dotted, key, read_text
from kdm.errors import ERR_CONFIG_INVALID_VALUE, KdmError
from kdm.position import GTIDSet

MAX_SOURCE_ID = 32
SOURCE_ID_RE = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_SOURCE_ID}}}")


@dataclass(frozen=True)
class Purge:
    """Relay purge policy; on Kafka it sets the relay topic's retention."""

    interval: int = key("interval", "Seconds between expiry checks (DM); kept for compatibility.",
                        default=3600)
    expires: int = key("expires", "Hours a relay event is kept; 0 keeps it forever.", default=0)
    remain_space: int = key("remain-space", "DM's free-disk floor in GB; Kafka's disk is the "
                            "broker's, so this is only recorded.", default=15)


@dataclass(frozen=True)
class Checker:
    """Automatic resume of paused tasks after resumable errors, with exponential backoff."""

    check_enable: bool = key("check-enable", "Enable automatic resume.", default=True)
    backoff_rollback: Duration = key("backoff-rollback", "Shrink the backoff after this "
                                     "long healthy.", default=Duration(300))
    backoff_max: Duration = key("backoff-max", "Upper bound of the backoff (>= 1s).",
                                default=Duration(300))
    check_interval: Duration = key("check-interval", "How often task states are checked.",
                                   default=Duration(5))
    backoff_min: Duration = key("backoff-min", "First backoff interval.", default=Duration(1))
    backoff_jitter: bool = key("backoff-jitter", "Randomise backoff intervals.", default=True)
    backoff_factor: float = key("backoff-factor", "Backoff growth factor.", default=2.0)


@dataclass(frozen=True)
class SourceConfig:
    """One upstream source."""

    source_id: str = key("source-id", "Unique id of the source, at most 32 characters.",
                         required=True, default="")
    enable: bool = key("enable", "Printed by DM's get-config; sources are enabled by "
                       "operate-source, so without effect here.", default=True)
    enable_gtid: bool = key("enable-gtid", "Replicate by GTID rather than file/pos.",
                            default=False)
    enable_relay: bool = key("enable-relay", "Deprecated in DM; the Kafka relay is always on.",
                             default=False)
    relay_binlog_name: str = key("relay-binlog-name", "Binlog file the relay starts from when "
                                 "it has no resume point.", default="")
    relay_binlog_gtid: str = key("relay-binlog-gtid", "GTID set the relay starts after when it "
                                 "has no resume point (enable-gtid).", default="")
    relay_dir: str = key("relay-dir", "DM's relay directory; the relay is a Kafka topic here.",
                         default="")
    flavor: Literal["", "mysql", "mariadb"] = key("flavor", "Upstream flavour; detected when "
                                                  "empty.", default="")
    server_id: int = key("server-id", "server_id the relay uses as a replica; 0 = derived.",
                         default=0)
    auto_fix_gtid: bool = key("auto-fix-gtid", "Deprecated in DM; without effect.",
                              default=False)
    meta_dir: str = key("meta-dir", "DM's local meta directory; without effect (state lives "
                        "in Kafka).", default="")
    charset: str = key("charset", "Deprecated in DM; without effect.", default="")
    tracer: dict[str, str] = key("tracer", "DM-tracer settings.", refused="DM-tracer is not "
                                 "supported", factory=dict)
    from_: DBConfig = key("from", "Upstream connection.", required=True, factory=DBConfig)
    purge: Purge = key("purge", "Relay retention.", factory=Purge)
    checker: Checker = key("checker", "Automatic task resume.", factory=Checker)
    case_sensitive: bool = key("case-sensitive", "Whether filter identifiers are case "
                               "sensitive.", default=False)
    filters: tuple[BinlogEventRule, ...] = key("filters", "Binlog event filter rules applied "
                                               "to every task of this source.", default=())

    def relay_retention_ms(self) -> int:
        """retention.ms for the relay topic: `purge.expires` hours, or -1 (forever) when 0."""
        return self.purge.expires * 3_600_000 if self.purge.expires > 0 else -1


def validate(cfg: SourceConfig, locs: Locations) -> SourceConfig:
    """Check what types alone cannot; return `cfg` unchanged when it is valid."""
    def fail(at: tuple[str | int, ...], problem: str) -> Exception:
        where = locs.where(at)
        return ERR_CONFIG_INVALID_VALUE(where=where, key=dotted(at), problem=problem,
                                        path=locs.path)

    if not SOURCE_ID_RE.fullmatch(cfg.source_id):
        raise fail(("source-id",), f"must be 1 to {MAX_SOURCE_ID} characters of a-z A-Z 0-9 "
                   "'.' '_' '-' (it names the source's Kafka relay topic)")
    if cfg.relay_binlog_gtid:
        try:
            GTIDSet.parse(cfg.relay_binlog_gtid)
        except KdmError as exc:
            raise fail(("relay-binlog-gtid",), exc.message) from exc
    if cfg.checker.backoff_max < 1:
        raise fail(("checker", "backoff-max"), "must be at least 1s")
    for index, rule in enumerate(cfg.filters):
        for field_key, problem in rule.problems():
            raise fail(("filters", index, field_key), problem)
    return cfg


def parse_source(text: str, path: str = "<source.yaml>") -> SourceConfig:
    """Parse, default and validate a source.yaml text."""
    cfg, locs = decode_document(SourceConfig, text, path)
    return validate(cfg, locs)


def load_source(path: str | Path) -> SourceConfig:
    """Read and parse a source.yaml file."""
    return parse_source(read_text(path), str(path))
