"""Binlog positions and GTID sets: forms, ordering and set arithmetic."""

from __future__ import annotations

import pytest

from kdm.errors import KdmError
from kdm.position import GTIDSet, Position

UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


@pytest.mark.parametrize("text", ["mysql-bin.000003:4567", "mysql-bin.000003:4567#2.10",
                                  "mysql-bin.000003:4567@0-1-100,1-2-7",
                                  f"binlog.000001:4#0.3@{UUID}:1-5:7"])
def test_text_form_round_trips(text: str) -> None:
    assert str(Position.parse(text)) == text


def test_dict_form_round_trips() -> None:
    pos = Position("mysql-bin.000002", 1234, "0-1-9", 3, 4)
    assert Position.from_dict(pos.to_dict()) == pos
    assert pos.to_dict() == {"file": "mysql-bin.000002", "pos": 1234, "gtid": "0-1-9",
                             "event_index": 3, "row_index": 4}


def test_binlog_order() -> None:
    ordered = [Position("mysql-bin.000009", 900), Position("mysql-bin.000010", 4),
               Position("mysql-bin.000010", 4, event_index=0, row_index=1),
               Position("mysql-bin.000010", 4, event_index=1), Position("mysql-bin.000010", 5)]
    assert sorted(reversed(ordered), key=Position.sort_key) == ordered
    assert ordered[0].at_row(2, 3) == Position("mysql-bin.000009", 900, "", 2, 3)


@pytest.mark.parametrize("text", ["nofile", "f:notanumber", "f:12@garbage", ":5"])
def test_bad_positions_are_coded(text: str) -> None:
    with pytest.raises(KdmError) as caught:
        Position.parse(text)
    assert caught.value.code in (22001, 22002)


def test_mysql_gtid_sets() -> None:
    gset = GTIDSet.parse(f"{UUID.upper()}:1-5:7, {UUID}:6")
    assert str(gset) == f"{UUID}:1-7"
    assert gset.contains(f"{UUID}:7") and not gset.contains(f"{UUID}:8")
    assert str(gset.add(f"{UUID}:9").add(f"{UUID}:8")) == f"{UUID}:1-9"
    assert str(GTIDSet.parse("").add(f"{UUID}:1")) == f"{UUID}:1"


def test_mariadb_gtid_sets() -> None:
    gset = GTIDSet.parse("1-2-7,0-1-100")
    assert gset.flavor == "mariadb" and str(gset) == "0-1-100,1-2-7"
    assert gset.contains("0-1-100") and gset.contains("0-3-5") and not gset.contains("0-1-101")
    assert not gset.contains("5-1-1")
    assert str(gset.add("0-1-101")) == "0-1-101,1-2-7"
    assert str(GTIDSet.parse("").add("0-1-1")) == "0-1-1"


@pytest.mark.parametrize("text", ["0-1", "0-1-2,0-1-3", "abc:1", f"{UUID}:x", f"{UUID}"])
def test_bad_gtid_sets_are_coded(text: str) -> None:
    with pytest.raises(KdmError) as caught:
        GTIDSet.parse(text)
    assert caught.value.code == 22002


@pytest.mark.parametrize("text", [f"{UUID}:9-3", f"{UUID}:0", "0-1-\u0661"])
def test_impossible_gtid_intervals_are_refused(text: str) -> None:
    with pytest.raises(KdmError):
        GTIDSet.parse(text)


def test_add_refuses_other_flavours_and_garbage() -> None:
    for bad in ("0-1-5", "nonsense", f"{UUID}:1-3,{UUID.replace('3e', '4e')}:1"):
        with pytest.raises(KdmError):
            GTIDSet.parse(f"{UUID}:1").add(bad)


def test_position_gtid_is_canonical_even_multiline() -> None:
    pos = Position.parse(f"binlog.000002:4@{UUID.upper()}:1-3,\n{UUID}:4")
    assert pos.gtid == f"{UUID}:1-4"
