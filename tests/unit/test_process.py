"""Process helpers of the local stack: stop by PID, and only the process we started."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kdm.stack import process

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_spawn_then_stop_by_pid(tmp_path: Path) -> None:
    pid_path = tmp_path / "p.pid"
    pid = process.spawn([*SLEEPER, "marker-a"], tmp_path / "out.log", pid_path)
    assert process.running_pid(pid_path, "marker-a") == pid
    assert process.stop(pid_path, "marker-a", timeout=5)
    assert not process.is_ours(pid, "marker-a") and not pid_path.exists()
    assert not process.stop(pid_path, "marker-a")


def test_a_reused_pid_is_not_signalled(tmp_path: Path) -> None:
    pid_path = tmp_path / "p.pid"
    pid = process.spawn([*SLEEPER, "marker-b"], tmp_path / "out.log", pid_path)
    try:
        assert process.running_pid(pid_path, "some-other-marker") is None
        assert not process.stop(pid_path, "some-other-marker")
        assert process.is_ours(pid, "marker-b")
    finally:
        pid_path.write_text(f"{pid}\n")
        process.stop(pid_path, "marker-b", timeout=5)


def test_ports() -> None:
    port = process.free_port()
    assert 1024 < port < 65536 and not process.port_open("127.0.0.1", port)
    assert process.wait_until(lambda: True, 0.1) and not process.wait_until(lambda: False, 0.3)


def test_exited_tells_a_process_mid_exec_from_a_gone_one(tmp_path: Path,
                                                        monkeypatch: Any) -> None:
    pid_path = tmp_path / "p.pid"
    assert process.exited(pid_path, "marker-c")  # never started
    pid = process.spawn([*SLEEPER, "marker-c"], tmp_path / "out.log", pid_path)
    try:
        assert not process.exited(pid_path, "marker-c")
        # our own live child is not gone, whatever its command line shows mid-exec
        assert not process.exited(pid_path, "another-marker")
        stranger = tmp_path / "init.pid"
        stranger.write_text("1\n")
        assert process.exited(stranger, "marker-c")  # alive, but not ours: ours is gone
        # the java launcher re-executing itself shows an empty command line for a moment
        monkeypatch.setattr(process, "cmdline", lambda _pid: [""])
        assert not process.exited(pid_path, "marker-c")
        monkeypatch.undo()
    finally:
        process.stop(pid_path, "marker-c", timeout=5)
    pid_path.write_text(f"{pid}\n")
    assert process.exited(pid_path, "marker-c")
