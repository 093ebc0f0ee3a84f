"""The local stack against the real servers: settings, idempotent up, clean down, smoke."""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest

from kdm.errors import KdmError
from kdm.stack import process, smoke
from kdm.stack.stack import LocalStack, Ports

pytestmark = pytest.mark.integration


def variables(port: int, names: list[str]) -> dict[str, str]:
    """Global variables of the server on `port`."""
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="")
    with conn, conn.cursor() as cur:
        marks = ",".join(["%s"] * len(names))
        cur.execute(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({marks})", names)
        return {name: str(value) for name, value in cur.fetchall()}


def test_upstream_has_the_binlog_dm_needs(local_stack: LocalStack) -> None:
    got = variables(local_stack.ports.upstream, ["log_bin", "binlog_format", "binlog_row_image",
                                                 "binlog_row_metadata", "server_id",
                                                 "gtid_strict_mode"])
    assert got == {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
                   "binlog_row_metadata": "FULL", "server_id": "1", "gtid_strict_mode": "ON"}


def test_downstream_is_a_separate_server_without_binlog(local_stack: LocalStack) -> None:
    got = variables(local_stack.ports.downstream, ["log_bin", "server_id", "port"])
    assert got == {"log_bin": "OFF", "server_id": "2", "port": str(local_stack.ports.downstream)}


def test_up_twice_is_harmless(local_stack: LocalStack) -> None:
    before = local_stack.status()
    assert None not in before.values()
    again = LocalStack(local_stack.home)
    assert again.ports == local_stack.ports
    assert again.up() == local_stack.endpoints()
    assert again.status() == before


def test_smoke_check_passes(local_stack: LocalStack) -> None:
    lines: list[str] = []
    smoke.run(local_stack, lines.append)
    assert len(lines) == 3 and all(line.startswith("ok  ") for line in lines)


def test_down_stops_exactly_its_processes(tmp_path: Path) -> None:
    ports = Ports(*process.free_ports(4))
    stack = LocalStack(tmp_path / "own", ports)
    try:
        stack.up()
        pids = stack.status()
        assert None not in pids.values()
    finally:
        stopped = stack.down()
    assert sorted(stopped) == ["downstream", "kafka", "upstream"]
    assert not any(process.is_ours(pid, "") for pid in pids.values() if pid is not None)
    assert stack.status() == {"kafka": None, "upstream": None, "downstream": None}
    assert stack.down() == []


def test_a_taken_port_is_a_coded_error(local_stack: LocalStack, tmp_path: Path) -> None:
    clash = LocalStack(tmp_path / "clash", Ports(local_stack.ports.kafka,
                                                 *process.free_ports(3)))
    try:
        with pytest.raises(KdmError) as caught:
            clash.up()
        assert caught.value.code == 54003
    finally:
        clash.down()


def test_up_with_other_ports_on_a_running_stack_is_refused(local_stack: LocalStack) -> None:
    other = Ports(process.free_port(), local_stack.ports.kafka_controller,
                  local_stack.ports.upstream, local_stack.ports.downstream)
    with pytest.raises(KdmError) as caught:
        LocalStack(local_stack.home, other).up()
    assert caught.value.code == 54006
    assert LocalStack(local_stack.home).ports == local_stack.ports
