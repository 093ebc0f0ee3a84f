"""Processes the local stack starts: spawn detached, remember by PID file, stop by that PID.

A PID file alone is not proof: a PID can be reused after a reboot. `stop` checks that the
live process's command line still carries the marker we started it with before signalling.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def spawn(argv: Sequence[str], log_path: Path, pid_path: Path,
          env: dict[str, str] | None = None) -> int:
    """Start `argv` in its own session with output appended to `log_path`; record its PID."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env,
        )
    pid_path.write_text(f"{proc.pid}\n")
    return proc.pid


def read_pid(pid_path: Path) -> int | None:
    """The PID recorded in `pid_path`, or None when there is no readable file."""
    try:
        return int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> list[str]:
    """The process's arguments, or [] when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def is_ours(pid: int, marker: str) -> bool:
    """Whether `pid` is alive, not a zombie, and one of its arguments is `marker` (or ends
    in `=marker`); an empty marker matches any live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    args = cmdline(pid)
    return state != "Z" and (not marker or any(a == marker or a.endswith(f"={marker}")
                                                for a in args))


def running_pid(pid_path: Path, marker: str) -> int | None:
    """The recorded PID if that process is still ours and alive, else None."""
    pid = read_pid(pid_path)
    return pid if pid is not None and is_ours(pid, marker) else None


def exited(pid_path: Path, marker: str) -> bool:
    """Whether the process recorded in `pid_path` has really gone (or was never ours).

    Right after a spawn a live process can show an empty command line for a moment (the
    java launcher re-executes itself), which `running_pid` cannot tell from a stranger; a
    readiness check must not take that moment for an exit."""
    pid = read_pid(pid_path)
    if pid is None or is_ours(pid, marker):
        return pid is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state, parent = stat.rsplit(")", 1)[-1].split()[:2]
    if state == "Z":
        return True
    # our own child, alive: mid-exec its command line may be empty or another program's
    # (the java launcher re-executes itself); only a stranger with the PID means "gone"
    return int(parent) != os.getpid() and cmdline(pid) not in ([], [""])


def stop(pid_path: Path, marker: str, timeout: float = 30.0) -> bool:
    """SIGTERM the recorded process, SIGKILL it after `timeout`; True if one was stopped."""
    pid = running_pid(pid_path, marker)
    if pid is None:
        pid_path.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not is_ours(pid, marker), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not is_ours(pid, marker), 10.0)
    _reap(pid)
    pid_path.unlink(missing_ok=True)
    return True


def _reap(pid: int, timeout: float = 10.0) -> None:
    """Collect the exit status when the process is our child, so it leaves no zombie. An
    exiting process loses its command line before it turns zombie, so wait (bounded) for
    the exit to complete rather than ask once."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.01)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll `check` until it is true or `timeout` seconds pass; return its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on loopback that nothing listens on at this moment."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports, all held while choosing so none repeats."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
