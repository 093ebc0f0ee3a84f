"""The coordinator's HTTP API: JSON in, dmctl-shaped JSON out, described by the OpenAPI
document it serves at `/api/v1/openapi.json`.

Every route is one row of `ROUTES` (method, path, handler name, summary, body fields); the
server dispatches by that table and the OpenAPI document is generated from it, so the two
cannot drift. A result with `"result": false` is still an answer (HTTP 200); HTTP errors mean
the request itself was wrong (400), unknown (404), or sent to a standby coordinator (503,
with the leader's address, so a client tries the next one).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from kdm.log import Logger

Body = dict[str, Any]
REQUESTS = Counter("kdm_coordinator_requests_total", "HTTP API requests by route and outcome.",
                   ["route", "code"])


@dataclass(frozen=True)
class Route:
    """One API route."""

    method: str
    path: str  # with {name} parameters
    handler: str  # the Handlers method that answers it
    summary: str
    body: tuple[str, ...] = ()  # JSON body fields
    query: tuple[str, ...] = ()  # query parameters (repeatable ones are lists)
    writes: bool = False  # only the leader answers

    def pattern(self) -> re.Pattern[str]:
        """The path as a regex with named groups."""
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/v1/sources", "show_sources", "operate-source show", query=("source",)),
    Route("POST", "/api/v1/sources", "create_sources", "operate-source create: add sources "
          "from source.yaml texts", body=("configs",), writes=True),
    Route("POST", "/api/v1/sources/stop", "stop_sources", "operate-source stop: remove sources",
          body=("sources",), writes=True),
    Route("GET", "/api/v1/configs", "export_configs", "config export: every source and task "
          "YAML"),
    Route("POST", "/api/v1/configs", "import_configs", "config import: create sources, start "
          "tasks", body=("sources", "tasks"), writes=True),
    Route("GET", "/api/v1/configs/{kind}/{name}", "get_config", "get-config task|source"),
    Route("POST", "/api/v1/tasks/check", "check_task", "check-task: DM's precheck",
          body=("config", "error", "warn")),
    Route("POST", "/api/v1/tasks", "start_task", "start-task", body=("config", "remove_meta",
                                                                    "sources"), writes=True),
    Route("POST", "/api/v1/tasks/{name}/{verb}", "operate_task", "pause-task, resume-task, "
          "stop-task (verb: pause, resume, stop)", body=("sources",), writes=True),
    Route("GET", "/api/v1/status", "query_status", "query-status", query=("task", "source")),
    Route("GET", "/api/v1/ddl-locks", "show_ddl_locks", "show-ddl-locks: the unresolved "
          "shard-DDL locks of a task (all when absent) involving any given source (answered "
          "by the leader)", query=("task", "source"), writes=True),
    Route("POST", "/api/v1/ddl-locks/unlock", "unlock_ddl_lock", "unlock-ddl-lock: make the "
          "owner (or `owner`) execute a pessimistic lock's DDLs, the others skip them, and "
          "remove the lock; answers once the owner is done", body=("id", "owner",
                                                                    "force_remove"),
          writes=True),
    Route("GET", "/api/v1/leader", "leader", "this coordinator's role and the leader's address"),
    Route("GET", "/api/v1/openapi.json", "openapi", "this document"),
)


def openapi(title: str = "kdm coordinator") -> Body:
    """The OpenAPI 3 document of `ROUTES`."""
    paths: dict[str, Body] = {}
    for route in ROUTES:
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"\{(\w+)\}", route.path)]
        params += [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                   for n in route.query]
        op: Body = {"summary": route.summary, "operationId": route.handler,
                    "parameters": params, "responses": {
                        "200": {"description": "a dmctl-shaped result (`result`, `msg`, ...)",
                                "content": {"application/json": {"schema": {
                                    "type": "object"}}}},
                        "503": {"description": "a standby coordinator: ask the leader"}}}
        if route.body:
            op["requestBody"] = {"content": {"application/json": {"schema": {
                "type": "object", "properties": {f: {} for f in route.body}}}}}
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {"openapi": "3.0.3", "info": {"title": title, "version": "v1"}, "paths": paths}


class ApiServer:
    """Serves `handlers` (an object with one method per route handler) over HTTP."""

    def __init__(self, host: str, port: int, handlers: Any,
                 is_leader: Callable[[], bool], leader_addr: Callable[[], str]) -> None:
        self.handlers = handlers
        self.is_leader = is_leader
        self.leader_addr = leader_addr
        self.log = Logger("coordinator")
        self.routes = [(route, route.pattern()) for route in ROUTES]
        server = self
        self.httpd = ThreadingHTTPServer((host, port), _handler_class(server))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="api",
                                        daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.httpd.server_address[1])

    def start(self) -> ApiServer:
        """Serve in a thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)

    def answer(self, method: str, raw_path: str, body: bytes) -> tuple[int, Body | str]:
        """(HTTP status, JSON body or text) for one request."""
        url = urlparse(raw_path)
        if method == "GET" and url.path == "/metrics":
            return 200, generate_latest().decode()
        for route, pattern in self.routes:
            found = pattern.match(url.path)
            if found is None or route.method != method:
                continue
            params = {k: unquote(v) for k, v in found.groupdict().items()}
            code, result = self._call(route, params, parse_qs(url.query), body)
            REQUESTS.labels(route=route.handler, code=str(code)).inc()
            return code, result
        return 404, {"result": False, "msg": f"no route {method} {url.path}"}

    def _call(self, route: Route, params: dict[str, str], query: dict[str, list[str]],
              body: bytes) -> tuple[int, Body]:
        if route.writes and not self.is_leader():
            return 503, {"result": False, "msg": "this coordinator is a standby",
                         "leader": self.leader_addr()}
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            return 400, {"result": False, "msg": f"the request body is not JSON: {exc}"}
        if not isinstance(data, dict):
            return 400, {"result": False, "msg": "the request body must be a JSON object"}
        problem = _check_body(route, data)
        if problem:
            return 400, {"result": False, "msg": problem}
        try:
            result: Body = getattr(self.handlers, route.handler)(**params, query=query,
                                                                  body=data)
        except Exception as exc:  # an answer, never a dropped connection
            self.log.error("api handler failed", route=route.handler, error=repr(exc))
            return 500, {"result": False, "msg": f"internal error: {exc!r}"}
        return 200, result


# the JSON type each body field must have (anything else is a 400, never a guess)
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "configs": (list,), "sources": (list, dict), "tasks": (dict,), "config": (str,),
    "error": (int,), "warn": (int,), "remove_meta": (bool,), "id": (str,), "owner": (str,),
    "force_remove": (bool,)}


def _check_body(route: Route, data: Body) -> str:
    """Why `data` does not fit `route`'s body fields ("" when it does)."""
    for name, value in data.items():
        if name not in route.body:
            return f"unknown field {name!r} for {route.method} {route.path}"
        wanted = FIELD_TYPES[name]
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            return f"field {name!r} must be {' or '.join(t.__name__ for t in wanted)}"
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            return f"field {name!r} must be a list of strings"
        if isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
            return f"field {name!r} must map names to YAML texts"
    return ""


def _handler_class(server: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def _reply(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            code, result = server.answer(method, self.path, self.rfile.read(length))
            text = result if isinstance(result, str) else json.dumps(result, indent=4)
            payload = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST if isinstance(result, str)
                             else "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            server.log.debug("http request", line=format % args)
    return Handler
