"""The upstream server as the relay sees it: flavour, settings it needs, where it stands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from kdm.config.source import SourceConfig
from kdm.errors import ERR_RELAY_START, ERR_RELAY_UPSTREAM, ERR_RELAY_UPSTREAM_CONFIG
from kdm.position import GTIDSet, Position

# What a row-based relay needs; DM's precheck asks for the same.
REQUIRED = {"binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}


@dataclass
class Upstream:
    """Connection arguments, flavour and server_id of one upstream."""

    connect: dict[str, Any]
    mariadb: bool
    server_id: int

    @property
    def address(self) -> str:
        """host:port, for messages."""
        return f"{self.connect['host']}:{self.connect['port']}"

    @classmethod
    def probe(cls, source: SourceConfig) -> Upstream:
        """Connect once: learn the flavour and server_id, and check the binlog settings."""
        args = source.from_.connect_args()
        with _query(args) as cur:
            cur.execute("SELECT VERSION(), @@server_id")
            version, server_id = cur.fetchone()
            cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                        "('log_bin', 'binlog_format', 'binlog_row_image', "
                        "'binlog_row_metadata')")
            settings = {name.lower(): str(value).upper() for name, value in cur.fetchall()}
        upstream = cls(args, source.flavor == "mariadb" or
                       (not source.flavor and "MARIADB" in str(version).upper()), int(server_id))
        if settings.get("log_bin") != "ON":
            raise ERR_RELAY_UPSTREAM_CONFIG(address=upstream.address, problem="log_bin is OFF")
        wrong = [f"{k}={settings.get(k, 'unknown')} (needs {v})" for k, v in REQUIRED.items()
                 if settings.get(k) != v]
        if wrong:
            raise ERR_RELAY_UPSTREAM_CONFIG(address=upstream.address, problem=", ".join(wrong))
        return upstream

    def master_status(self) -> Position:
        """The upstream's current binlog file, position and executed GTID set."""
        gtid_var = "@@GLOBAL.gtid_binlog_pos" if self.mariadb else "@@GLOBAL.gtid_executed"
        with _query(self.connect) as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
            cur.execute(f"SELECT {gtid_var}")
            (gtid,) = cur.fetchone()
        if not row:
            raise ERR_RELAY_START(problem=f"SHOW MASTER STATUS on {self.address} is empty")
        text = " ".join(str(gtid or "").split())
        return Position(str(row[0]), int(row[1]), str(GTIDSet.parse(text)) if text else "")


class _query:
    """A short-lived connection's cursor, with connection errors mapped to a coded error."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        self.conn: Any = None

    def __enter__(self) -> Any:
        try:
            self.conn = pymysql.connect(**self.args)
        except pymysql.MySQLError as exc:
            raise ERR_RELAY_UPSTREAM(exc, address=f"{self.args['host']}:{self.args['port']}") \
                from exc
        return self.conn.cursor()

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self.conn.close()
        if isinstance(exc, pymysql.MySQLError):
            raise ERR_RELAY_UPSTREAM(exc, address=f"{self.args['host']}:{self.args['port']}") \
                from exc
