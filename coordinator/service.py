"""The coordinator service (DM-master): registry, stages, status and the HTTP API.

Several coordinators may run; they all follow the control topics and answer reads. The one
that owns the single partition of `<prefix>.coordinator` in the group of the same name is
the leader (Kafka's group membership decides, DESIGN.md §1) and alone accepts writes; a
standby answers a write with HTTP 503 and the leader's address. When the leader dies its
session times out and the group gives the partition to a standby.

Only the leader runs shard-DDL coordination (`coordinator.shardddl.service`): a watcher
thread starts it when this coordinator becomes the leader and stops it when it stops being
one; the new leader's first transaction fences the old one's.
"""

from __future__ import annotations

import threading

from prometheus_client import Gauge

from coordinator.api import ApiServer, Body, openapi
from coordinator.control import Control
from coordinator.shardddl.link import KafkaLink
from coordinator.shardddl.service import ShardDDLService
from coordinator.workers import leader_name
from kdm.compacted import CompactedTable
from kdm.config.service import KafkaConfig
from kdm.errors import KdmError
from kdm.kafka_admin import ensure_topics
from kdm.log import Logger
from kdm.membership import Leadership
from kdm.registry import Registry
from kdm.topics import Topics

WATCH_SECONDS = 0.5
LEADER = Gauge("kdm_coordinator_leader", "1 on the leading coordinator, 0 on a standby. "
               "Alert when no coordinator of a cluster reports 1 for a minute.")


class Handlers:
    """HTTP route handlers: each adapts a request to a `Control` verb."""

    def __init__(self, control: Control, service: Coordinator) -> None:
        self.control = control
        self.service = service

    def show_sources(self, query: dict[str, list[str]], body: Body) -> Body:
        return self.control.operate_source("show", [], query.get("source", []))

    def create_sources(self, query: dict[str, list[str]], body: Body) -> Body:
        return self.control.operate_source("create", list(body.get("configs") or []), [])

    def stop_sources(self, query: dict[str, list[str]], body: Body) -> Body:
        return self.control.operate_source("stop", [], list(body.get("sources") or []))

    def export_configs(self, query: dict[str, list[str]], body: Body) -> Body:
        return self.control.export_configs()

    def import_configs(self, query: dict[str, list[str]], body: Body) -> Body:
        return self.control.import_configs(body.get("sources") or {}, body.get("tasks") or {})

    def get_config(self, kind: str, name: str, query: dict[str, list[str]], body: Body) -> Body:
        return self.control.get_config(kind, name)

    def check_task(self, query: dict[str, list[str]], body: Body) -> Body:
        return self.control.check(str(body.get("config") or ""), int(body.get("error", 10)),
                                  int(body.get("warn", 10)))

    def start_task(self, query: dict[str, list[str]], body: Body) -> Body:
        return self.control.start_task(str(body.get("config") or ""),
                                       bool(body.get("remove_meta")),
                                       list(body.get("sources") or []))

    def operate_task(self, name: str, verb: str, query: dict[str, list[str]], body: Body
                     ) -> Body:
        verbs = {"pause": "pause-task", "resume": "resume-task", "stop": "stop-task"}
        if verb not in verbs:
            return {"result": False, "msg": f"unknown task operation {verb!r}"}
        return self.control.operate_task(verbs[verb], name, list(body.get("sources") or []))

    def query_status(self, query: dict[str, list[str]], body: Body) -> Body:
        tasks = query.get("task") or []
        task = tasks[0] if tasks else None
        return self.control.query_status(task, query.get("source", []))

    def show_ddl_locks(self, query: dict[str, list[str]], body: Body) -> Body:
        tasks = query.get("task") or []
        return self.control.show_ddl_locks(tasks[0] if tasks else None,
                                           query.get("source", []))

    def unlock_ddl_lock(self, query: dict[str, list[str]], body: Body) -> Body:
        return self.control.unlock_ddl_lock(str(body.get("id") or ""),
                                            str(body.get("owner") or ""),
                                            bool(body.get("force_remove")))

    def leader(self, query: dict[str, list[str]], body: Body) -> Body:
        return {"result": True, "msg": "", "name": self.service.name,
                "isLeader": self.service.is_leader(), "leader": self.service.leader_addr()}

    def openapi(self, query: dict[str, list[str]], body: Body) -> Body:
        return openapi()


class Coordinator:
    """One coordinator process; `name` is the address clients reach its API at.

    `unlock_timeout`: how long unlock-ddl-lock waits for the owner's done."""

    def __init__(self, kafka: KafkaConfig, host: str = "127.0.0.1", port: int = 8261,
                 advertise: str = "", unlock_timeout: float = 60.0) -> None:
        self.kafka = kafka
        self.topics = Topics(kafka.topic_prefix)
        self.log = Logger("coordinator")
        ensure_topics(kafka, self.topics.control())
        self.registry = Registry(kafka)
        self.status = CompactedTable(kafka, self.topics.compacted("status"))
        self.stages = CompactedTable(kafka, self.topics.compacted("stages"))
        self.shardddl = ShardDDLService(lambda: KafkaLink(kafka), self.is_leader,
                                        unlock_timeout)
        self.control = Control(kafka, self.registry, self.status, self.stages,
                               locks=self.shardddl)
        self.api = ApiServer(host, port, Handlers(self.control, self), self.is_leader,
                             self.leader_addr)
        self.name = advertise or f"{host}:{self.api.port}"
        self.membership = Leadership(kafka, self.name)
        self._watching = threading.Event()
        self._watcher = threading.Thread(target=self._watch_leadership, name="leadership",
                                         daemon=True)

    def start(self) -> Coordinator:
        """Follow the control topics, join the leader group and serve the API."""
        self.registry.start()
        for table in (self.status, self.stages):
            table.start()
        for table in (self.status, self.stages):
            table.wait_ready()
        self.membership.start()
        self._watcher.start()
        self.api.start()
        self.log.info("coordinator serving", addr=self.name)
        return self

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set, then leave cleanly."""
        self.start()
        try:
            while not stop.wait(1.0):
                LEADER.set(int(self.is_leader()))
        finally:
            self.close()

    def close(self) -> None:
        """Stop serving and leave the leader group (a standby takes over at once)."""
        self._watching.set()
        if self._watcher.is_alive():
            self._watcher.join(10)
        self.shardddl.stop()
        self.api.stop()
        self.membership.stop()
        self.registry.stop()
        self.status.stop()
        self.stages.stop()

    def _watch_leadership(self) -> None:
        """Run shard-DDL coordination exactly while leading."""
        while not self._watching.wait(WATCH_SECONDS):
            leading = self.is_leader()
            if leading and not self.shardddl.running():
                self.shardddl.start()
            elif not leading and self.shardddl.running():
                self.log.info("stopped leading: shard ddl coordination stops")
                self.shardddl.stop()

    def is_leader(self) -> bool:
        """Whether this coordinator owns the leader partition now (False once its membership
        failed: a coordinator cut off from Kafka must not accept writes)."""
        try:
            return self.membership.is_leader()
        except KdmError:
            return False

    def leader_addr(self) -> str:
        """The leader's API address ("" while none is known)."""
        if self.is_leader():
            return self.name
        try:
            return leader_name(self.kafka)
        except KdmError:
            return ""
