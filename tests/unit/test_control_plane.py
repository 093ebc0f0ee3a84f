"""The coordinator's verbs, status view and HTTP API over in-memory fakes of its tables."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cli.master import call, read_import, write_export
from coordinator.api import ROUTES, ApiServer, openapi
from coordinator.control import Control
from coordinator.status_view import StatusView, result_of
from coordinator.workers import Placement
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_CTL_MASTER, ERR_SYNC_EXEC, KdmError
from kdm.registry import Entry
from kdm.stages import Stage, relay_key, subtask_key

CONFIG = Path(__file__).parents[2] / "config"
SOURCE = (CONFIG / "source-mysql-01.yaml").read_text()
TASK = (CONFIG / "task-single.yaml").read_text()
S1 = "mysql-replica-01"


class FakeTable:
    """A followed compacted table."""

    def __init__(self, values: dict[str, dict[str, Any]] | None = None) -> None:
        self.values = dict(values or {})

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return dict(self.values)


class FakeRegistry:
    """The registry's read/write interface, in memory."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Entry]] = {"source": {}, "task": {}}

    def entries(self, kind: str) -> dict[str, Entry]:
        return {k: e for k, e in self.items[kind].items() if not e.deleted}

    def get(self, kind: str, ident: str) -> Entry | None:
        return self.entries(kind).get(ident)

    def write(self, entry: Entry) -> None:
        self.items[entry.kind][entry.id] = entry


def subtask_record(stage: str, errors: list[dict[str, Any]] | None = None,
                   source: str = S1, name: str = "demo") -> dict[str, Any]:
    """A status record of a subtask, as the runner publishes it."""
    return {"name": name, "source": source, "worker": "w1", "stage": stage, "unit": "Sync",
            "errors": errors or [], "unresolvedDDLLockID": "", "totalEvents": 5,
            "totalTps": 1, "recentTps": 0, "masterBinlog": "(b.1, 4)", "masterBinlogGtid": "",
            "syncerBinlog": "(b.1, 4)", "syncerBinlogGtid": "", "blockingDDLs": [],
            "unresolvedGroups": "[]", "synced": True, "topic": "dm.relay.x", "partition": 0,
            "offset": 9, "consumerLag": 0, "secondsBehindMaster": 0.0, "safeMode": False}


class Harness:
    """A Control over fakes, recording the stage requests it writes."""

    def __init__(self, check: dict[str, Any] | None = None) -> None:
        self.registry = FakeRegistry()
        self.status = FakeTable()
        self.stages = FakeTable()
        self.asked: list[tuple[str, Stage, str]] = []
        self.checked = check or {"result": True, "msg": "check pass!!!"}
        self.control = Control(KafkaConfig(), self.registry, self.status,  # type: ignore[arg-type]
                               self.stages,  # type: ignore[arg-type]
                               precheck=lambda *a: self.checked,
                               placement_of=lambda kafka, role: Placement(24, {}),
                               ask=self._ask)

    def _ask(self, key: str, stage: Stage, by: str) -> None:
        self.asked.append((key, stage, by))
        self.stages.values[key] = {"key": key, "stage": stage.value}

    def report(self, stage: str, **kwargs: Any) -> None:
        self.status.values[subtask_key("demo", S1)] = subtask_record(stage, **kwargs)


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    assert harness.control.operate_source("create", [SOURCE], [])["result"] is True
    return harness


def test_source_create_registers_and_starts_its_relay() -> None:
    h = Harness()
    result = h.control.operate_source("create", [SOURCE], [])
    assert result == {"result": True, "msg": "", "sources": [
        {"result": True, "msg": "", "source": S1, "worker": ""}]}
    assert h.registry.get("source", S1) is not None
    assert h.asked == [(relay_key(S1), Stage.RUNNING, "operate-source")]
    again = h.control.operate_source("create", [SOURCE], [])  # the same file: idempotent
    assert again["result"] is True and len(h.asked) == 1
    changed = h.control.operate_source("create", [SOURCE.replace("3307", "3308")], [])
    assert changed["result"] is False and "already exists" in changed["sources"][0]["msg"]


def test_source_create_refuses_bad_yaml_with_its_code() -> None:
    result = Harness().control.operate_source("create", ["source-id: x\nbogus: 1\n"], [])
    assert result["result"] is False and "code=20003" in result["sources"][0]["msg"]


def test_start_task_needs_its_sources_and_a_passing_precheck(h: Harness) -> None:
    missing = Harness().control.start_task(TASK, False, [])
    assert missing["result"] is False and "have not been added" in missing["msg"]
    h.checked = {"result": False, "msg": '{"results": []}'}
    refused = h.control.start_task(TASK, False, [])
    assert refused["result"] is False and refused["checkResult"] == '{"results": []}'
    assert h.registry.get("task", "demo") is None


def test_start_task_registers_and_asks_every_subtask_to_run(h: Harness) -> None:
    result = h.control.start_task(TASK, False, [])
    assert result == {"result": True, "msg": "", "checkResult": "", "sources": [
        {"result": True, "msg": "", "source": S1, "worker": ""}]}
    assert h.registry.get("task", "demo") is not None
    assert h.asked[-1] == (subtask_key("demo", S1), Stage.RUNNING, "start-task")
    again = h.control.start_task(TASK, False, [])  # asked to run: starting again is refused
    assert again["result"] is False and "already exists" in again["msg"]


def test_a_stopped_task_starts_again(h: Harness) -> None:
    h.control.start_task(TASK, False, [])
    h.report("Running")
    assert h.control.operate_task("stop-task", "demo", [])["result"] is True
    h.report("Stopped")
    assert h.control.start_task(TASK, False, [])["result"] is True


@pytest.mark.parametrize(("stage", "verb", "ok"), [
    ("Running", "pause-task", True), ("Paused", "pause-task", True),
    ("Stopped", "pause-task", False), ("Finished", "pause-task", False),
    ("Paused", "resume-task", True), ("Running", "resume-task", True),
    ("Stopped", "resume-task", False), ("Finished", "resume-task", False),
    ("Running", "stop-task", True), ("Paused", "stop-task", True),
    ("Stopped", "stop-task", False), ("Finished", "stop-task", False)])
def test_task_verbs_follow_the_diagram(h: Harness, stage: str, verb: str, ok: bool) -> None:
    h.control.start_task(TASK, False, [])
    h.report(stage)
    asked = len(h.asked)
    result = h.control.operate_task(verb, "demo", [])
    assert result["result"] is ok and result["op"] == verb.split("-")[0].title()
    if ok:
        assert len(h.asked) == asked + 1
    else:
        assert len(h.asked) == asked
        assert stage in result["sources"][0]["msg"] and "code=36011" in result["sources"][0]["msg"]


def test_task_verbs_on_unknown_tasks_and_sources(h: Harness) -> None:
    assert h.control.operate_task("pause-task", "nope", [])["msg"] == "task nope does not exist"
    h.control.start_task(TASK, False, [])
    h.report("Running")
    result = h.control.operate_task("pause-task", "demo", ["other"])
    assert result["result"] is False and result["sources"] == []


def test_a_subtask_outside_the_registry_is_known_by_its_status() -> None:
    h = Harness()
    h.report("Running")
    assert h.control.operate_task("pause-task", "demo", [])["result"] is True


def test_source_in_use_cannot_be_stopped(h: Harness) -> None:
    h.control.start_task(TASK, False, [])
    h.report("Running")
    refused = h.control.operate_source("stop", [], [S1])
    assert refused["result"] is False and "used by task" in refused["sources"][0]["msg"]
    h.report("Stopped")
    assert h.control.operate_source("stop", [], [S1])["result"] is True
    assert h.registry.get("source", S1) is None
    assert h.asked[-1] == (relay_key(S1), Stage.STOPPED, "operate-source")
    assert h.control.operate_source("show", [], [S1])["sources"][0]["msg"] \
        == f"source {S1} does not exist"


def test_get_config_and_export_return_the_yaml_verbatim(h: Harness) -> None:
    h.control.start_task(TASK, False, [])
    assert h.control.get_config("task", "demo") == {"result": True, "msg": "", "cfg": TASK}
    assert h.control.get_config("source", S1)["cfg"] == SOURCE
    assert h.control.get_config("task", "x")["result"] is False
    exported = h.control.export_configs()
    assert exported["sources"] == {S1: SOURCE} and exported["tasks"] == {"demo": TASK}


def test_export_files_round_trip(tmp_path: Path) -> None:
    written = write_export({"sources": {S1: SOURCE}, "tasks": {"demo": TASK}}, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        f"source/{S1}.yaml", "task/demo.yaml"]
    assert read_import(tmp_path) == ({S1: SOURCE}, {"demo": TASK})


# -- query-status ------------------------------------------------------------------------

def _view(records: dict[str, dict[str, Any]]) -> StatusView:
    return StatusView(FakeTable(records))  # type: ignore[arg-type]


def test_query_status_summary_and_detail_shapes() -> None:
    view = _view({subtask_key("demo", S1): subtask_record("Running")})
    summary = view.query(None, [], ["demo", "fresh"], lambda role, key: "")
    assert summary == {"result": True, "msg": "", "tasks": [
        {"taskName": "demo", "taskStatus": "Running", "sources": [S1]},
        {"taskName": "fresh", "taskStatus": "New", "sources": []}]}
    detail = view.query("demo", [], ["demo"], lambda role, key: f"{role}-worker")
    source = detail["sources"][0]
    assert source["sourceStatus"] == {"source": S1, "worker": "relay-worker", "result": None,
                                      "relayStatus": None}
    sub = source["subTaskStatus"][0]
    assert (sub["name"], sub["stage"], sub["unit"], sub["result"], sub["worker"]) == (
        "demo", "Running", "Sync", None, "sync-worker")
    assert sub["sync"]["totalEvents"] == "5" and sub["sync"]["totalRows"] == "5"
    assert sub["sync"]["synced"] is True and sub["sync"]["unresolvedGroups"] == []
    assert view.query("nope", [], ["demo"], lambda r, k: "")["result"] is False


def test_errors_show_as_dm_type_and_msg() -> None:
    error = ERR_SYNC_EXEC(RuntimeError("boom"), what="a row change", position="p", sql="s")
    result = result_of([error.to_dict()])
    assert result is not None and result["isCanceled"] is False
    listed = result["errors"][0]
    assert listed["Type"] == "SyncExecSQL" and listed["msg"] == error.render()
    assert listed["ErrCode"] == error.spec.code
    assert result_of([]) is None


def test_paused_with_error_is_the_error_task_status() -> None:
    error = ERR_SYNC_EXEC(RuntimeError("x"), what="w", position="p", sql="s").to_dict()
    view = _view({subtask_key("demo", S1): subtask_record("Paused", errors=[error])})
    status = view.query(None, [], ["demo"], lambda r, k: "")["tasks"][0]["taskStatus"]
    assert status.startswith("Error - Some error occurred in subtask")


# -- the HTTP API --------------------------------------------------------------------------

class FakeHandlers:
    """Echoes which handler answered."""

    def __getattr__(self, name: str) -> Any:
        def handler(query: dict[str, list[str]], body: dict[str, Any], **params: str) -> Any:
            if name == "get_config" and params.get("name") == "boom":
                raise RuntimeError("handler bug")
            return {"result": True, "msg": "", "handler": name, "params": params,
                    "query": query, "body": body}
        return handler


def _server(leader: bool) -> ApiServer:
    return ApiServer("127.0.0.1", 0, FakeHandlers(), lambda: leader, lambda: "10.0.0.1:8261")


def test_every_route_dispatches_to_its_handler() -> None:
    server = _server(True)
    for route in ROUTES:
        path = route.path.replace("{kind}", "task").replace("{name}", "t").replace(
            "{verb}", "pause")
        code, body = server.answer(route.method, path, b"{}")
        assert code == 200 and isinstance(body, dict) and body["handler"] == route.handler


def test_bad_requests_and_standbys() -> None:
    leader, standby = _server(True), _server(False)
    assert leader.answer("GET", "/api/v1/nothing", b"")[0] == 404
    assert leader.answer("POST", "/api/v1/tasks", b"{not json")[0] == 400
    assert leader.answer("POST", "/api/v1/tasks", b"[1]")[0] == 400
    code, body = standby.answer("POST", "/api/v1/tasks", b"{}")
    assert code == 503 and isinstance(body, dict) and body["leader"] == "10.0.0.1:8261"
    assert standby.answer("GET", "/api/v1/status?task=t&source=a&source=b", b"")[0] == 200
    code, body = leader.answer("GET", "/api/v1/configs/task/boom", b"")
    assert code == 500 and isinstance(body, dict) and "handler bug" in body["msg"]
    code, text = leader.answer("GET", "/metrics", b"")
    assert code == 200 and "kdm_coordinator_requests_total" in str(text)


def test_query_parameters_reach_the_handler() -> None:
    _, body = _server(True).answer("GET", "/api/v1/status?task=t&source=a&source=b", b"")
    assert isinstance(body, dict) and body["query"] == {"task": ["t"], "source": ["a", "b"]}


def test_openapi_documents_every_route() -> None:
    doc = openapi()
    assert doc["openapi"].startswith("3.")
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        assert op["operationId"] == route.handler and op["summary"]


def test_the_client_passes_over_standbys_to_the_leader() -> None:
    standby, leader = _server(False).start(), _server(True).start()
    try:
        addrs = f"127.0.0.1:{standby.port},127.0.0.1:{leader.port}"
        answer = call(addrs, "POST", "/api/v1/tasks", {"config": "x"})
        assert answer["handler"] == "start_task" and answer["body"] == {"config": "x"}
        with pytest.raises(KdmError) as caught:
            call(f"127.0.0.1:{standby.port}", "POST", "/api/v1/tasks", {})
        assert caught.value.spec is ERR_CTL_MASTER and "standby" in caught.value.message
        with urllib.request.urlopen(f"http://127.0.0.1:{leader.port}/api/v1/openapi.json") as r:
            assert json.loads(r.read())["handler"] == "openapi"
    finally:
        standby.stop()
        leader.stop()


def test_config_import_creates_sources_then_starts_tasks() -> None:
    h = Harness()
    result = h.control.import_configs({S1: SOURCE}, {"demo": TASK})
    assert result["result"] is True and result["tasks"][0]["sources"][0]["source"] == S1
    assert h.registry.get("source", S1) is not None and h.registry.get("task", "demo")
    assert [key for key, _, _ in h.asked] == [relay_key(S1), subtask_key("demo", S1)]
    broken = Harness().control.import_configs({"x": "source-id: x\nbogus: 1\n"}, {})
    assert broken["result"] is False and broken["msg"] == "importing sources failed"


def test_full_progress_counts_dump_as_the_first_half() -> None:
    from cli.master import full_progress

    def status(*subs: tuple[str, str, str]) -> dict[str, Any]:
        return {"sources": [{"subTaskStatus": [
            {"unit": unit, "stage": stage, unit.lower(): {"progress": progress}}]}
            for unit, stage, progress in subs]}
    assert full_progress(status(("Dump", "Running", "50.00 %"))) == (25.0, True)
    assert full_progress(status(("Load", "Running", "50.00 %"),
                                ("Sync", "Running", ""))) == (87.5, True)
    assert full_progress(status(("Load", "Finished", "100.00 %"))) == (100.0, False)
    assert full_progress({"sources": []}) == (0.0, True)  # nothing reported yet
    assert full_progress(status(("Dump", "New", ""))) == (0.0, True)


def test_a_finished_task_starts_again(h: Harness) -> None:
    h.control.start_task(TASK, False, [])
    h.report("Running")
    assert h.control.start_task(TASK, False, [])["result"] is False
    h.report("Finished")
    assert h.control.start_task(TASK, False, [])["result"] is True


def test_start_task_checks_its_sources_and_config_changes(h: Harness) -> None:
    bad = h.control.start_task(TASK, False, ["typo"])
    assert bad["result"] is False and "not in task" in bad["msg"]
    assert h.registry.get("task", "demo") is None
    h.control.start_task(TASK, False, [])
    first = h.registry.get("task", "demo")
    h.report("Running")
    h.control.operate_task("stop-task", "demo", [])
    h.report("Stopped")
    assert h.control.start_task(TASK, False, [])["result"] is True
    assert h.registry.get("task", "demo") == first  # same file: no new revision
    h.report("Running")
    h.stages.values[subtask_key("demo", S1)] = {"stage": "Running"}
    changed = h.control.start_task(TASK.replace("worker-count: 16", "worker-count: 8"),
                                   False, [])
    assert changed["result"] is False and "already exists" in changed["msg"]


def test_a_source_of_a_stopped_or_finished_task_can_be_removed(h: Harness) -> None:
    h.control.start_task(TASK, False, [])
    h.report("Running")
    h.control.operate_task("stop-task", "demo", [])  # asked Stopped, not reported yet
    assert h.control.operate_source("stop", [], [S1])["result"] is True
    h2 = Harness()
    h2.control.operate_source("create", [SOURCE], [])
    h2.control.start_task(TASK, False, [])
    h2.report("Finished")
    assert h2.control.operate_source("stop", [], [S1])["result"] is True


def test_bodies_are_checked_and_path_parameters_decoded() -> None:
    server = _server(True)
    assert server.answer("POST", "/api/v1/tasks", b'{"remove_meta": "false"}')[0] == 400
    assert server.answer("POST", "/api/v1/tasks", b'{"sources": "s1"}')[0] == 400
    assert server.answer("POST", "/api/v1/tasks", b'{"bogus": 1}')[0] == 400
    assert server.answer("POST", "/api/v1/tasks/check", b'{"error": true}')[0] == 400
    code, body = server.answer("POST", "/api/v1/tasks", b'{"remove_meta": true, '
                               b'"sources": ["s1"], "config": "x"}')
    assert code == 200
    _, body = server.answer("POST", "/api/v1/tasks/my%20task/pause", b"{}")
    assert isinstance(body, dict) and body["params"] == {"name": "my task", "verb": "pause"}
