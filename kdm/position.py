"""Binlog positions and GTID sets: values with a documented serialized form.

A `Position` names a point *after* the last item done, so resuming from it never repeats
work: `file:pos` is the start of the next binlog event to read (as MySQL reports
`end_log_pos`), and inside a transaction `event_index`/`row_index` count the row events and
rows already handled since its GTID event, so a restart in the middle of a large
transaction skips exactly what was done.

Text form (CLI, logs)::

    mysql-bin.000003:4567                      file and pos
    mysql-bin.000003:4567#2.10                 ... after row 10 of event 2 of the transaction
    mysql-bin.000003:4567@0-1-100              ... with the GTID set executed so far

Dict form (Avro, JSON): `{"file", "pos", "gtid", "event_index", "row_index"}`.

GTID sets come in two flavours. MySQL: `uuid:1-5:7,uuid2:1-3` (intervals per server uuid).
MariaDB: `0-1-100,1-2-7` (domain-server-sequence, the last per domain).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from kdm.errors import ERR_GTID_PARSE, ERR_POSITION_PARSE

_TEXT_RE = re.compile(r"^(?P<file>[^:@#\s]+):(?P<pos>[0-9]+)"
                      r"(?:#(?P<event>[0-9]+)\.(?P<row>[0-9]+))?(?:@(?P<gtid>.*))?$", re.DOTALL)
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Position:
    """A point in one source's binlog; see the module docstring for its forms."""

    file: str = ""
    pos: int = 0
    gtid: str = ""
    event_index: int = 0
    row_index: int = 0

    @classmethod
    def parse(cls, text: str) -> Position:
        """Read the text form; raise a coded error naming the text when it is malformed."""
        match = _TEXT_RE.match(text.strip())
        if match is None:
            raise ERR_POSITION_PARSE(text=text, problem="expected file:pos[#event.row][@gtid]")
        gtid = str(GTIDSet.parse(match["gtid"])) if match["gtid"] else ""
        return cls(match["file"], int(match["pos"]), gtid, int(match["event"] or 0),
                   int(match["row"] or 0))

    def __str__(self) -> str:
        text = f"{self.file}:{self.pos}"
        if self.event_index or self.row_index:
            text += f"#{self.event_index}.{self.row_index}"
        return f"{text}@{self.gtid}" if self.gtid else text

    def to_dict(self) -> dict[str, Any]:
        """The dict form used in Avro records and JSON."""
        return {"file": self.file, "pos": self.pos, "gtid": self.gtid,
                "event_index": self.event_index, "row_index": self.row_index}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Position:
        """Inverse of `to_dict`."""
        return cls(str(data["file"]), int(data["pos"]), str(data.get("gtid") or ""),
                   int(data.get("event_index") or 0), int(data.get("row_index") or 0))

    def sort_key(self) -> tuple[int, str, int, int, int]:
        """Binlog order: file sequence number, pos, then event and row inside a transaction."""
        stem, _, suffix = self.file.rpartition(".")
        number = int(suffix) if suffix.isdigit() else -1
        return (number, stem, self.pos, self.event_index, self.row_index)

    def at_row(self, event_index: int, row_index: int) -> Position:
        """The same binlog point, after the given row of the current transaction."""
        return replace(self, event_index=event_index, row_index=row_index)


def binlog_text(position: Position | None) -> str:
    """DM's `(file, pos)` status form; empty when unknown."""
    return f"({position.file}, {position.pos})" if position and position.file else ""


def file_index(file: str) -> int:
    """The numeric suffix of a binlog file name (mysql-bin.000012 → 12; 0 without one)."""
    suffix = file.rpartition(".")[2]
    return int(suffix) if suffix.isdigit() else 0


@dataclass(frozen=True)
class GTIDSet:
    """A parsed GTID set of either flavour; `str()` gives its canonical text."""

    flavor: str
    mysql: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    mariadb: dict[int, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> GTIDSet:
        """Parse either flavour, detected from the text; '' is the empty MySQL set."""
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            return cls("mysql")
        if ":" in items[0]:
            return cls("mysql", mysql=_parse_mysql(text, items))
        return cls("mariadb", mariadb=_parse_mariadb(text, items))

    def __str__(self) -> str:
        if self.flavor == "mariadb":
            return ",".join(f"{d}-{s}-{q}" for d, (s, q) in sorted(self.mariadb.items()))
        return ",".join(
            sid + "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in ranges)
            for sid, ranges in sorted(self.mysql.items()))

    def contains(self, gtid: str) -> bool:
        """Whether one GTID (`uuid:n` or `d-s-n`) is inside this set."""
        if self.flavor == "mariadb":
            domain, _server, seq = (int(part) for part in gtid.split("-"))
            return domain in self.mariadb and seq <= self.mariadb[domain][1]
        sid, _, number = gtid.rpartition(":")
        return any(a <= int(number) <= b for a, b in self.mysql.get(sid.lower(), ()))

    def issubset(self, other: GTIDSet) -> bool:
        """Whether every transaction of this set is also in `other`."""
        if self.flavor == "mariadb" or other.flavor == "mariadb":
            return all(d in other.mariadb and q <= other.mariadb[d][1]
                       for d, (_s, q) in self.mariadb.items()) and not self.mysql
        return all(any(a <= low and high <= b for a, b in other.mysql.get(sid, ()))
                   for sid, ranges in self.mysql.items() for low, high in ranges)

    def add(self, gtid: str) -> GTIDSet:
        """This set with one more GTID executed (for MariaDB: the domain's last GTID)."""
        one = GTIDSet.parse(gtid)
        empty = not self.mysql and not self.mariadb
        if (one.flavor != self.flavor and not empty) or len(one.mysql) + len(one.mariadb) != 1:
            raise ERR_GTID_PARSE(text=gtid, problem=f"not one {self.flavor} GTID")
        if one.flavor == "mariadb":
            return GTIDSet("mariadb", mariadb={**self.mariadb, **one.mariadb})
        (sid, ranges), = one.mysql.items()
        return GTIDSet("mysql", mysql={**self.mysql,
                                       sid: _merge([*self.mysql.get(sid, ()), *ranges])})


def _parse_mysql(text: str, items: list[str]) -> dict[str, tuple[tuple[int, int], ...]]:
    result: dict[str, list[tuple[int, int]]] = {}
    for item in items:
        sid, *intervals = item.split(":")
        if not re.fullmatch(r"[0-9a-fA-F-]{36}", sid) or not intervals:
            raise ERR_GTID_PARSE(text=text, problem=f"bad item `{item}`")
        for interval in intervals:
            low, _, high = interval.partition("-")
            if not _NUMBER.fullmatch(low) or (high and not _NUMBER.fullmatch(high)) \
                    or not 0 < int(low) <= int(high or low):
                raise ERR_GTID_PARSE(text=text, problem=f"bad interval `{interval}`")
            result.setdefault(sid.lower(), []).append((int(low), int(high or low)))
    return {sid: _merge(ranges) for sid, ranges in result.items()}


def _parse_mariadb(text: str, items: list[str]) -> dict[int, tuple[int, int]]:
    result: dict[int, tuple[int, int]] = {}
    for item in items:
        parts = item.split("-")
        if len(parts) != 3 or not all(_NUMBER.fullmatch(part) for part in parts):
            raise ERR_GTID_PARSE(text=text, problem=f"bad item `{item}`")
        domain, server, seq = (int(part) for part in parts)
        if domain in result:
            raise ERR_GTID_PARSE(text=text, problem=f"domain {domain} appears twice")
        result[domain] = (server, seq)
    return result


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return tuple(merged)
