"""Binlog events of one upstream, as relay records, from a resume point on.

mysql-replication speaks the replication protocol and parses headers and table maps; this
module turns its events into relay records (the `RelayEvent` Avro record as a dict) and
keeps the position each record stands for.

Positions follow `kdm.position`: a record's position is the point *after* it.

========  =====================================================================================
record    position
========  =====================================================================================
BEGIN     the transaction's first event (its GTID event), GTID set before it, `#0.0`
ROW       same file:pos and GTID set as its BEGIN; `#e.r` = after row r of the e-th row event
COMMIT    after the XID (or COMMIT) event; the GTID set now includes the transaction
DDL       after the QUERY event; the GTID set includes the statement's GTID
ROTATE    the new file at its first event
========  =====================================================================================

So a relay that restarts from a record inside a transaction re-reads that transaction from
its start (row events need their table map) and skips the rows it already published. The
same skip protects against a stream the library silently re-opened: nothing at or before the
last record handed out is handed out again (`Resume`).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication import event as ev
from pymysqlreplication import row_event as rv
from pymysqlreplication.constants import BINLOG

from kdm.config.source import SourceConfig
from kdm.errors import (
    ERR_RELAY_BINLOG_PURGED,
    ERR_RELAY_DECODE,
    ERR_RELAY_UNSUPPORTED_EVENT,
    ERR_RELAY_UPSTREAM,
    KdmError,
)
from kdm.position import GTIDSet, Position
from producers.decoder import TableDecoder, keep_raw_members
from producers.upstream import Upstream

Record = dict[str, Any]
keep_raw_members()
ROW_KINDS = frozenset({"BEGIN", "ROW"})
# MySQL error numbers that mean the binlog the relay asked for is gone (ER_MASTER_FATAL_...).
PURGED_ERRNOS = frozenset({1236})
# Event types without data that the relay passes over (everything else must be understood).
_HARMLESS_TYPES = frozenset({
    BINLOG.ANONYMOUS_GTID_LOG_EVENT, BINLOG.IGNORABLE_LOG_EVENT, BINLOG.ROWS_QUERY_LOG_EVENT,
    BINLOG.PREVIOUS_GTIDS_LOG_EVENT, 36, 37, 41,  # transaction context, view change, heartbeat v2
    BINLOG.INTVAR_EVENT, BINLOG.RAND_EVENT, BINLOG.USER_VAR_EVENT, BINLOG.STOP_EVENT,
    BINLOG.MARIADB_ANNOTATE_ROWS_EVENT, BINLOG.MARIADB_BINLOG_CHECKPOINT_EVENT,
    BINLOG.MARIADB_START_ENCRYPTION_EVENT, BINLOG.FORMAT_DESCRIPTION_EVENT,
})
_STATEMENT_DML = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|LOAD\s+DATA)\b", re.I)
_XA = re.compile(r"^\s*XA\b", re.I)
_SAVEPOINT = re.compile(r"^(SAVEPOINT|ROLLBACK\s+(WORK\s+)?TO|RELEASE\s+SAVEPOINT)\b")
_MARIADB_FL_STANDALONE = 1


@dataclass(frozen=True)
class Resume:
    """Where the relay continues: just after the last record it published."""

    position: Position
    in_txn: bool = False
    txn_gtid: str = ""

    @classmethod
    def after(cls, record: Record) -> Resume:
        """The resume point after a published record."""
        return cls(Position.from_dict(record["position"]), record["kind"] in ROW_KINDS,
                   record.get("txn_gtid") or "")


@dataclass
class _Txn:
    """The transaction being read."""

    gtid: str
    start: int
    gtid_before: str
    skip_all: bool = False
    skip_upto: tuple[int, int] = (0, 0)
    event_index: int = 0


def replica_server_id(source: SourceConfig) -> int:
    """The server_id the relay registers with: source.yaml's, or one derived from the id."""
    return source.server_id or 400_000_000 + zlib.crc32(source.source_id.encode()) % 100_000_000


@dataclass
class BinlogReader:
    """Reads one upstream's binlog from `resume` on and yields relay records.

    `records()` yields a record per row, BEGIN, COMMIT, DDL and ROTATE, and `None` whenever
    the upstream sends a heartbeat (the stream is idle), so the caller can act on timers.
    """

    source: SourceConfig
    upstream: Upstream
    resume: Resume
    use_gtid: bool
    heartbeat_seconds: float = 0.25
    file: str = ""
    pos: int = 0
    gtid: GTIDSet = field(default_factory=lambda: GTIDSet("mysql"))
    _stream: BinLogStreamReader | None = None
    _txn: _Txn | None = None
    _pending_gtid: tuple[str, int] | None = None
    _decoders: dict[int, TableDecoder] = field(default_factory=dict)
    _last: Record | None = None

    def __post_init__(self) -> None:
        start = self.resume.position
        self.file, self.pos = start.file, start.pos
        self.gtid = GTIDSet.parse(start.gtid) if start.gtid else GTIDSet(
            "mariadb" if self.upstream.mariadb else "mysql")
        self._handlers: dict[type, Callable[[Any], Iterator[Record]]] = {
            ev.RotateEvent: self._on_rotate,
            ev.GtidEvent: self._on_mysql_gtid,
            ev.MariadbGtidEvent: self._on_mariadb_gtid,
            ev.MariadbGtidListEvent: self._on_gtid_list,
            ev.QueryEvent: self._on_query,
            rv.TableMapEvent: self._on_table_map,
            ev.XidEvent: self._on_xid,
            rv.WriteRowsEvent: self._on_rows,
            rv.UpdateRowsEvent: self._on_rows,
            rv.DeleteRowsEvent: self._on_rows,
            rv.PartialUpdateRowsEvent: self._on_unsupported,
            ev.XAPrepareEvent: self._on_unsupported,
            ev.BeginLoadQueryEvent: self._on_unsupported,
            ev.ExecuteLoadQueryEvent: self._on_unsupported,
            ev.NotImplementedEvent: self._on_not_implemented,
        }

    # -- the stream -------------------------------------------------------------------

    def records(self) -> Generator[Record | None, None, None]:
        """Relay records from the resume point on; `None` on upstream heartbeats."""
        self._stream = self._open()
        try:
            while True:
                event = self._fetch()
                if isinstance(event, ev.HeartbeatLogEvent):
                    yield None
                    continue
                handler = self._handlers.get(type(event))
                if handler is not None:
                    yield from handler(event)
                elif event.packet.event_type not in _HARMLESS_TYPES:
                    yield from self._on_not_implemented(event)
                if event.packet.log_pos and type(event) is not ev.RotateEvent:
                    self.pos = event.packet.log_pos  # a rotate's log_pos is in the old file
        finally:
            self.close()

    def close(self) -> None:
        """Close the replication connection."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def current(self) -> Position:
        """Where the reader stands between transactions (for heartbeats)."""
        return Position(self.file, self.pos, str(self.gtid))

    def in_transaction(self) -> bool:
        """Whether the reader is inside a transaction."""
        return self._txn is not None

    def _open(self) -> BinLogStreamReader:
        start = self.resume.position
        kwargs: dict[str, Any] = {}
        if self.use_gtid:
            kwargs["auto_position"] = start.gtid
            kwargs["is_mariadb"] = self.upstream.mariadb
        else:
            kwargs.update(log_file=start.file, log_pos=start.pos, resume_stream=True)
        return BinLogStreamReader(
            dict(self.upstream.connect), server_id=replica_server_id(self.source),
            blocking=True, freeze_schema=True, filter_non_implemented_events=False,
            slave_heartbeat=self.heartbeat_seconds, enable_logging=False, **kwargs)

    def _fetch(self) -> Any:
        assert self._stream is not None
        try:
            return self._stream.fetchone()
        except pymysql.OperationalError as exc:
            if exc.args and exc.args[0] in PURGED_ERRNOS:
                raise ERR_RELAY_BINLOG_PURGED(exc, position=str(self.resume.position)) from exc
            raise ERR_RELAY_UPSTREAM(exc, address=self._address()) from exc
        except (pymysql.MySQLError, OSError) as exc:
            raise ERR_RELAY_UPSTREAM(exc, address=self._address()) from exc
        except KdmError:
            raise
        except Exception as exc:  # the library's parsers raise anything on a malformed event
            raise ERR_RELAY_DECODE(exc, position=f"{self.file}:{self.pos}",
                                   problem=type(exc).__name__) from exc

    def _advance_reconnect_point(self) -> None:
        """mysql-replication silently reconnects on a lost connection (errors 2006/2013)
        from its `auto_position`; keep that at the last complete transaction so such a
        reconnect re-reads little (what it does re-read is skipped as already handed out)."""
        if self.use_gtid and self._stream is not None:
            self._stream.auto_position = str(self.gtid)

    def _address(self) -> str:
        return f"{self.upstream.connect['host']}:{self.upstream.connect['port']}"

    # -- dedup against the resume point -----------------------------------------------

    def done(self) -> Resume:
        """Just after the last record handed out (or the resume point given)."""
        if self._last is not None:
            self.resume, self._last = Resume.after(self._last), None
        return self.resume

    def _seen(self, gtid: str, start: int) -> tuple[bool, bool]:
        """(published entirely, published partly) for a transaction or statement."""
        done = self.done()
        if self.use_gtid and gtid:
            partial = done.in_txn and gtid == done.txn_gtid
            return (not partial and _contains(done.position.gtid, gtid)), partial
        key = _file_key(self.file, start)
        done_key = _file_key(done.position.file, done.position.pos)
        if done.in_txn and key == done_key:
            return False, True
        return key < done_key, False

    def _handed_out(self, record: Record) -> Record:
        self._last = record
        return record

    # -- handlers ---------------------------------------------------------------------

    def _base(self, kind: str, event: Any, position: Position) -> Record:
        return {"source_id": self.source.source_id, "server_id": event.packet.server_id,
                "kind": kind, "position": position.to_dict(),
                "timestamp_ms": event.timestamp * 1000, "schema": "", "table": "", "op": None,
                "columns": [], "before": None, "after": None, "query": "", "xid": None,
                "txn_gtid": self._txn.gtid if self._txn else ""}

    def _on_rotate(self, event: Any) -> Iterator[Record]:
        previous = self.file
        self.file, self.pos = event.next_binlog, event.position
        if event.timestamp == 0 or event.next_binlog == previous:
            return  # the server's announcement of where the stream starts, not a binlog event
        done = self.done().position
        if _file_key(self.file, self.pos) <= _file_key(done.file, done.pos):
            return
        yield self._handed_out(self._base("ROTATE", event, self.current()))

    def _start(self, event: Any) -> int:
        return int(event.packet.log_pos - event.packet.event_size)

    def _on_mysql_gtid(self, event: Any) -> Iterator[Record]:
        self._pending_gtid = (event.gtid, self._start(event))
        return iter(())

    def _on_mariadb_gtid(self, event: Any) -> Iterator[Record]:
        self._pending_gtid = (event.gtid, self._start(event))
        if event.flags & _MARIADB_FL_STANDALONE:
            return iter(())
        return self._begin(event)

    def _on_gtid_list(self, event: Any) -> Iterator[Record]:
        if not str(self.gtid):  # a file read from its start: the list is the state before it
            for item in event.gtid_list:
                self.gtid = self.gtid.add(item.gtid)
        return iter(())

    def _begin(self, event: Any) -> Iterator[Record]:
        gtid, start = self._pending_gtid or ("", self._start(event))
        self._pending_gtid = None
        self._txn = txn = _Txn(gtid, start, str(self.gtid))
        txn.skip_all, partial = self._seen(gtid, start)
        if partial:
            done = self.done().position
            txn.skip_upto = (done.event_index, done.row_index)
        if txn.skip_all or partial:
            return iter(())
        return iter((self._handed_out(
            self._base("BEGIN", event, Position(self.file, start, txn.gtid_before))),))

    def _on_query(self, event: Any) -> Iterator[Record]:
        query = event.query if isinstance(event.query, str) else event.query.decode("utf8")
        statement = query.strip().rstrip(";").upper()
        if statement == "BEGIN":
            return self._begin(event)
        if self._txn is not None:
            if statement in ("COMMIT", "ROLLBACK"):
                return self._commit(event, None, query)
            if _SAVEPOINT.match(statement):
                return iter(())  # rows undone to a savepoint never reach the binlog
            return self._on_unsupported(event, f"statement inside a transaction: {query[:80]}")
        if _XA.match(query):
            return self._on_unsupported(event, "XA transactions")
        if _STATEMENT_DML.match(query):
            return self._on_unsupported(event, "statement-based DML (binlog_format is not ROW)")
        return self._ddl(event, query)

    def _ddl(self, event: Any, query: str) -> Iterator[Record]:
        gtid, start = self._pending_gtid or ("", self._start(event))
        self._pending_gtid = None
        seen, _ = self._seen(gtid, start)
        if gtid:
            self.gtid = self.gtid.add(gtid)
            self._advance_reconnect_point()
        if seen:
            return iter(())
        schema = event.schema if isinstance(event.schema, str) else event.schema.decode("utf8")
        record = self._base("DDL", event, Position(self.file, event.packet.log_pos,
                                                   str(self.gtid)))
        record.update(schema=schema, query=query, txn_gtid=gtid)
        return iter((self._handed_out(record),))

    def _on_xid(self, event: Any) -> Iterator[Record]:
        if self._txn is None:
            return self._on_unsupported(event, "XID outside a transaction")
        return self._commit(event, event.xid, "")

    def _commit(self, event: Any, xid: int | None, query: str) -> Iterator[Record]:
        txn, self._txn = self._txn, None
        assert txn is not None
        if txn.gtid:
            self.gtid = self.gtid.add(txn.gtid)
            self._advance_reconnect_point()
        if txn.skip_all:
            return iter(())
        record = self._base("COMMIT", event, Position(self.file, event.packet.log_pos,
                                                      str(self.gtid)))
        record.update(xid=xid, query=query, txn_gtid=txn.gtid)
        return iter((self._handed_out(record),))

    def _on_rows(self, event: Any) -> Iterator[Record]:
        if self._txn is None:
            yield from self._begin(event)
        txn = self._txn
        assert txn is not None
        txn.event_index += 1
        if txn.skip_all:
            return
        op, images = _OPS[type(event)]
        rows, decoder = self._decode(event, images)
        base = {"source_id": self.source.source_id, "server_id": event.packet.server_id,
                "kind": "ROW", "position": None, "timestamp_ms": event.timestamp * 1000,
                "schema": decoder.schema, "table": decoder.table, "op": op,
                "columns": decoder.column_dicts, "before": None, "after": None, "query": "",
                "xid": None, "txn_gtid": txn.gtid}
        file, start, gtid, event_index = self.file, txn.start, txn.gtid_before, txn.event_index
        skip = txn.skip_upto[1] if txn.skip_upto[0] == event_index else (
            0 if txn.skip_upto[0] < event_index else len(rows))
        image = "before" if op == "DELETE" else "after"
        for index in range(skip + 1, len(rows) + 1):
            row = rows[index - 1]
            record = base.copy()
            record["position"] = {"file": file, "pos": start, "gtid": gtid,
                                  "event_index": event_index, "row_index": index}
            if images == 2:
                record["before"], record["after"] = row
            else:
                record[image] = row[0]
            self._last = record
            yield record

    def _on_table_map(self, event: Any) -> Iterator[Record]:
        self._decoders[event.table_id] = TableDecoder(
            event.schema, event.table, event.columns, event.null_bitmask)
        return iter(())

    def _decode(self, event: Any, images: int) -> tuple[list[list[list[Any]]], TableDecoder]:
        decoder = self._decoders.get(event.table_id)
        if decoder is None:
            raise ERR_RELAY_DECODE(position=self._where(event),
                                   problem=f"no table map for id {event.table_id}")
        full = decoder.full_bitmap
        if event.columns_present_bitmap != full or (
                images == 2 and event.columns_present_bitmap2 != full):
            raise ERR_RELAY_UNSUPPORTED_EVENT(
                position=self._where(event), problem=f"row image of {decoder.schema}."
                f"{decoder.table} is not FULL (binlog_row_image must be FULL)")
        packet = event.packet
        data, offset = packet.packet._data, packet.packet._position
        end = offset + event.event_size - packet.read_bytes
        try:
            rows = decoder.rows(data, offset, end, images)
        except (ValueError, IndexError, LookupError, TypeError, struct.error) as exc:
            raise ERR_RELAY_DECODE(exc, position=self._where(event), problem=f"rows of "
                                   f"{decoder.schema}.{decoder.table}: {exc}") from exc
        return rows, decoder

    def _where(self, event: Any) -> str:
        return f"{self.file}:{self._start(event)}"

    def _on_unsupported(self, event: Any, problem: str = "") -> Iterator[Record]:
        raise ERR_RELAY_UNSUPPORTED_EVENT(
            position=f"{self.file}:{self._start(event)}",
            problem=problem or f"{type(event).__name__} (event type {event.packet.event_type})")

    def _on_not_implemented(self, event: Any) -> Iterator[Record]:
        if event.packet.event_type in _HARMLESS_TYPES:
            return iter(())
        return self._on_unsupported(event, f"event type {event.packet.event_type} is not "
                                    "understood (binlog compression or an unknown event?)")


_OPS: dict[type, tuple[str, int]] = {
    rv.WriteRowsEvent: ("INSERT", 1), rv.UpdateRowsEvent: ("UPDATE", 2),
    rv.DeleteRowsEvent: ("DELETE", 1)}


def _file_key(file: str, pos: int) -> tuple[int, int]:
    suffix = file.rpartition(".")[2]
    return (int(suffix) if suffix.isdigit() else -1, pos)


def _contains(gtid_set: str, gtid: str) -> bool:
    return bool(gtid_set) and GTIDSet.parse(gtid_set).contains(gtid)

