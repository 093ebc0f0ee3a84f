"""Config pieces that source.yaml and task.yaml share: database endpoints and event filters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from kdm.config.decode import key
from kdm.config.secret import decrypt_or_plain


@dataclass(frozen=True)
class Security:
    """TLS to a database."""

    ssl_ca: str = key("ssl-ca", "Path of the CA certificate.", default="")
    ssl_cert: str = key("ssl-cert", "Path of the client certificate (PEM).", default="")
    ssl_key: str = key("ssl-key", "Path of the client key (PEM).", default="")
    cert_allowed_cn: tuple[str, ...] = key("cert-allowed-cn", "Accepted certificate CNs.",
                                           default=())


@dataclass(frozen=True)
class DBConfig:
    """A MySQL-protocol endpoint: `from` in source.yaml, `target-database` in task.yaml."""

    host: str = key("host", "Host name or address.", required=True, default="")
    port: int = key("port", "TCP port.", default=3306)
    user: str = key("user", "User name.", default="root")
    password: str = key("password", "Plaintext, or ciphertext from `kdm encrypt`.", default="")
    max_allowed_packet: int | None = key(
        "max-allowed-packet", "Deprecated in DM and without effect (the server's value is used).",
        default=None)
    session: dict[str, str] = key("session", "Session variables set on every connection.",
                                  factory=dict)
    security: Security | None = key("security", "TLS settings.", default=None)

    def plain_password(self) -> str:
        """The password to connect with: decrypted when it is a kdm ciphertext."""
        return decrypt_or_plain(self.password)

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for `pymysql.connect` (TLS included when configured)."""
        args: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user,
                                "password": self.plain_password(), "charset": "utf8mb4",
                                "connect_timeout": 10}
        if self.security is None:
            args["ssl_disabled"] = True  # pymysql would build a TLS context on every connect
        else:
            args["ssl"] = {k: v for k, v in (("ca", self.security.ssl_ca),
                                             ("cert", self.security.ssl_cert),
                                             ("key", self.security.ssl_key)) if v}
        return args


FILTER_EVENTS = frozenset({
    "all", "all dml", "all ddl", "none", "none dml", "none ddl",
    "insert", "update", "delete",
    "create database", "drop database", "alter database",
    "create table", "create index", "drop table", "truncate table", "rename table",
    "drop index", "alter table", "create view", "drop view",
})


@dataclass(frozen=True)
class BinlogEventRule:
    """One binlog event filter rule (`filters` in task.yaml and source.yaml)."""

    schema_pattern: str = key("schema-pattern", "Upstream schema pattern; wildcards * and ?.",
                              required=True, default="")
    table_pattern: str = key("table-pattern", "Upstream table pattern; empty = schema rule.",
                             default="")
    events: tuple[str, ...] = key("events", "Event types the rule matches (insert, all ddl...).",
                                  default=())
    sql_pattern: tuple[str, ...] = key("sql-pattern", "Regexes matched against DDL text.",
                                       default=())
    action: Literal["Do", "Ignore"] = key("action", "Do (migrate) or Ignore.", required=True,
                                          default="Do")

    def problems(self) -> list[tuple[str, str]]:
        """(key, problem) for each invalid event name or regex."""
        known = ", ".join(sorted(FILTER_EVENTS))
        found = [("events", f"unknown event type `{event}`; known: {known}")
                 for event in self.events if event.lower() not in FILTER_EVENTS]
        for pattern in self.sql_pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                found.append(("sql-pattern", f"`{pattern}` is not a valid regex: {exc}"))
        return found
