"""Structural checks for docker-compose.yml and the Dockerfile (no Docker needed)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

KDM_SERVICES = ("coordinator", "producer", "consumer")
INFRA_SERVICES = ("kafka", "schema-registry", "kafka-ui", "mysql", "tidb")
IMAGES = {
    "kafka": "apache/kafka:4.1.1",
    "schema-registry": "confluentinc/cp-schema-registry:7.7.1",
    "mysql": "mysql:8.0",
    "tidb": "pingcap/tidb:v8.5.1",
}
KDM_ENV_VARS = (
    "KDM_KAFKA_BOOTSTRAP_SERVERS",
    "KDM_SCHEMA_REGISTRY_URL",
    "KDM_TOPIC_PREFIX",
    "DM_MASTER_ADDR",
)
BINLOG_FLAGS = (
    "--server-id=1",
    "--log-bin=mysql-bin",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--gtid-mode=ON",
    "--enforce-gtid-consistency=ON",
)
SOURCE_DIRS = ("kdm", "producers", "consumers", "coordinator", "cli", "schemas", "config")


# ---------------------------------------------------------------- helpers


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    svc = compose["services"][name]
    assert isinstance(svc, dict)
    return svc


def env_of(compose: dict[str, Any], name: str) -> dict[str, str]:
    """Environment of a service as str->str, accepting map or KEY=VALUE list form."""
    raw = service(compose, name).get("environment") or {}
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {key: value for key, _, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def strip_scheme(address: str) -> str:
    """'PLAINTEXT://kafka:29092' -> 'kafka:29092'; 'kafka:29092' stays as is."""
    return address.strip().split("://", 1)[-1]


def advertised_addresses(compose: dict[str, Any]) -> dict[str, str]:
    """Listener name -> host:port from kafka's KAFKA_ADVERTISED_LISTENERS."""
    raw = env_of(compose, "kafka").get("KAFKA_ADVERTISED_LISTENERS", "")
    result: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        name, _, address = entry.partition("://")
        result[name] = address
    return result


def internal_address(compose: dict[str, Any]) -> str:
    """The advertised address of the inter-broker (container network) listener."""
    listener = env_of(compose, "kafka")["KAFKA_INTER_BROKER_LISTENER_NAME"]
    return advertised_addresses(compose)[listener]


def bootstrap_problems(compose: dict[str, Any], name: str, var: str) -> list[str]:
    """Bootstrap entries in service `name`'s env `var` that kafka does not advertise."""
    advertised = set(advertised_addresses(compose).values())
    entries = env_of(compose, name).get(var, "").split(",")
    wanted = [strip_scheme(entry) for entry in entries if entry.strip()]
    if not wanted:
        return [f"{name}: {var} is empty"]
    return [f"{name}: {var} -> {addr} not advertised" for addr in wanted if addr not in advertised]


def registry_port(compose: dict[str, Any]) -> int:
    listeners = env_of(compose, "schema-registry")["SCHEMA_REGISTRY_LISTENERS"]
    port = urlsplit(listeners.split(",")[0].strip()).port
    assert port is not None, "SCHEMA_REGISTRY_LISTENERS needs an explicit port"
    return port


def registry_url_problems(compose: dict[str, Any], url: str) -> list[str]:
    parts = urlsplit(url)
    problems = []
    if parts.hostname != "schema-registry":
        problems.append(f"{url}: host is not the schema-registry service")
    if parts.port != registry_port(compose):
        problems.append(f"{url}: port is not the registry listener port")
    return problems


def command_args(svc: dict[str, Any]) -> list[str]:
    command = svc.get("command") or []
    return command.split() if isinstance(command, str) else [str(arg) for arg in command]


def missing_binlog_flags(svc: dict[str, Any]) -> list[str]:
    args = set(command_args(svc))
    return [flag for flag in BINLOG_FLAGS if flag not in args]


def depends_on_targets(svc: dict[str, Any]) -> list[str]:
    deps = svc.get("depends_on") or []
    return [str(dep) for dep in deps]


def undefined_dependencies(compose: dict[str, Any]) -> list[str]:
    defined = set(compose["services"])
    return [
        f"{name} -> {dep}"
        for name, svc in compose["services"].items()
        for dep in depends_on_targets(svc)
        if dep not in defined
    ]


def dependency_condition(svc: dict[str, Any], target: str) -> str:
    deps = svc.get("depends_on") or {}
    assert isinstance(deps, dict), "use the long depends_on form with conditions"
    return str(deps[target]["condition"])


def build_context(svc: dict[str, Any]) -> str:
    build = svc.get("build")
    if isinstance(build, dict):
        return str(build.get("context", ""))
    return str(build or "")


def dockerfile_instructions(text: str) -> list[list[str]]:
    """Dockerfile instructions as token lists (line continuations joined, comments dropped)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [line.split() for line in joined.splitlines() if line.strip()]


def dockerfile_base(text: str) -> str:
    froms = [tokens for tokens in dockerfile_instructions(text) if tokens[0].upper() == "FROM"]
    assert froms, "Dockerfile has no FROM"
    args = [tok for tok in froms[-1][1:] if not tok.startswith("--")]
    return args[0]


def copied_sources(text: str) -> set[str]:
    """Normalised source paths of every COPY/ADD (shell form), excluding --from stages."""
    sources: set[str] = set()
    for tokens in dockerfile_instructions(text):
        if tokens[0].upper() not in {"COPY", "ADD"}:
            continue
        if any(tok.startswith("--from=") for tok in tokens[1:]):
            continue
        args = [tok for tok in tokens[1:] if not tok.startswith("--")]
        sources.update(src.removeprefix("./").rstrip("/") for src in args[:-1])
    return sources


def top_level_packages(pyproject: dict[str, Any], root: Path) -> set[str]:
    """Top-level package dirs named by [tool.setuptools] packages (list or find)."""
    setuptools_cfg = pyproject.get("tool", {}).get("setuptools", {})
    packages = setuptools_cfg.get("packages")
    if isinstance(packages, list):
        return {str(pkg).split(".")[0] for pkg in packages}
    find = packages.get("find", {}) if isinstance(packages, dict) else {}
    return found_packages(find, root)


def found_packages(find: dict[str, Any], root: Path) -> set[str]:
    include = [str(p) for p in find.get("include", ["*"])]
    exclude = [str(p) for p in find.get("exclude", [])]
    candidates = {p.parent.name for p in root.glob("*/__init__.py")}
    return {
        name
        for name in candidates
        if any(fnmatch.fnmatch(name, pat) for pat in include)
        and not any(fnmatch.fnmatch(name, pat) for pat in exclude)
    }


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


# ------------------------------------------------------------- compose tests


def test_required_services_exist(compose: dict[str, Any]) -> None:
    missing = set(INFRA_SERVICES + KDM_SERVICES) - set(compose["services"])
    assert not missing, f"missing services: {sorted(missing)}"


def test_infra_images(compose: dict[str, Any]) -> None:
    for name, image in IMAGES.items():
        assert service(compose, name)["image"] == image
    ui_image = str(service(compose, "kafka-ui")["image"])
    assert ui_image.split(":")[0] == "ghcr.io/kafbat/kafka-ui"


def test_kafka_is_kraft_without_zookeeper(compose: dict[str, Any]) -> None:
    env = env_of(compose, "kafka")
    roles = {role.strip() for role in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert {"broker", "controller"} <= roles
    assert env.get("CLUSTER_ID"), "apache/kafka refuses to start KRaft without CLUSTER_ID"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert not [key for key in env if "ZOOKEEPER" in key]
    assert not [name for name in compose["services"] if "zookeeper" in name.lower()]


def test_kafka_listeners_are_consistent(compose: dict[str, Any]) -> None:
    env = env_of(compose, "kafka")
    advertised = advertised_addresses(compose)
    raw_map = env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    protocol_map = dict(item.split(":", 1) for item in raw_map.split(","))
    assert set(advertised) <= set(protocol_map)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in protocol_map
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    assert internal_address(compose) == "kafka:29092"
    assert "localhost:9092" in advertised.values()
    assert "9092:9092" in [str(p) for p in service(compose, "kafka").get("ports", [])]


def test_kafka_ui_reaches_kafka_and_registry(compose: dict[str, Any]) -> None:
    assert bootstrap_problems(compose, "kafka-ui", "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS") == []
    url = env_of(compose, "kafka-ui")["KAFKA_CLUSTERS_0_SCHEMAREGISTRY"]
    assert registry_url_problems(compose, url) == []


def test_registry_kafkastore_is_advertised(compose: dict[str, Any]) -> None:
    var = "SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"
    assert bootstrap_problems(compose, "schema-registry", var) == []
    assert dependency_condition(service(compose, "schema-registry"), "kafka") == "service_healthy"


def test_mysql_binlog_flags(compose: dict[str, Any]) -> None:
    assert missing_binlog_flags(service(compose, "mysql")) == []
    assert "MYSQL_ROOT_PASSWORD" in env_of(compose, "mysql")


@pytest.mark.parametrize("name", KDM_SERVICES)
def test_kdm_service_build_and_env(compose: dict[str, Any], name: str) -> None:
    svc = service(compose, name)
    assert build_context(svc) in {".", "./"}
    assert svc["image"] == "kdm:latest"
    env = env_of(compose, name)
    assert not [var for var in KDM_ENV_VARS if not env.get(var)]
    assert strip_scheme(env["KDM_KAFKA_BOOTSTRAP_SERVERS"]) == internal_address(compose)
    assert registry_url_problems(compose, env["KDM_SCHEMA_REGISTRY_URL"]) == []
    assert dependency_condition(svc, "kafka") == "service_healthy"


def test_kdm_specific_dependencies(compose: dict[str, Any]) -> None:
    assert dependency_condition(service(compose, "producer"), "mysql") == "service_healthy"
    assert "tidb" in depends_on_targets(service(compose, "consumer"))
    coordinator = service(compose, "coordinator")
    assert "8261:8261" in [str(p) for p in coordinator.get("ports", [])]
    assert env_of(compose, "producer")["DM_MASTER_ADDR"] == "coordinator:8261"


def test_every_dependency_is_defined(compose: dict[str, Any]) -> None:
    assert undefined_dependencies(compose) == []


# ----------------------------------------------------------- checker tests


def broken_compose() -> dict[str, Any]:
    return {
        "services": {
            "kafka": {"environment": ["KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://kafka:29092"]},
            "kafka-ui": {"environment": {"KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS": "kafka:9092"}},
            "mysql": {
                "command": "--server-id=1 --binlog-format=MIXED",
                "depends_on": ["zookeeper"],
            },
        }
    }


def test_checkers_reject_broken_compose() -> None:
    broken = broken_compose()
    assert advertised_addresses(broken) == {"PLAINTEXT": "kafka:29092"}
    problems = bootstrap_problems(broken, "kafka-ui", "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS")
    assert problems == ["kafka-ui: KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS -> kafka:9092 not advertised"]
    assert "--binlog-format=ROW" in missing_binlog_flags(broken["services"]["mysql"])
    assert "--server-id=1" not in missing_binlog_flags(broken["services"]["mysql"])
    assert undefined_dependencies(broken) == ["mysql -> zookeeper"]


def test_copied_sources_parsing() -> None:
    text = "\n".join(
        [
            "FROM python:3.11-slim AS base",
            "# COPY nope .",
            "COPY --chown=a:a kdm ./kdm",
            "COPY --from=base x y",
            "COPY a.toml \\",
            "  b.md ./",
        ]
    )
    assert copied_sources(text) == {"kdm", "a.toml", "b.md"}
    assert dockerfile_base(text) == "python:3.11-slim"


def test_top_level_packages_forms(tmp_path: Path) -> None:
    for name in ("kdm", "cli", "tests"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").touch()
    listed = {"tool": {"setuptools": {"packages": ["kdm", "kdm.sub", "cli"]}}}
    assert top_level_packages(listed, tmp_path) == {"kdm", "cli"}
    found = {"tool": {"setuptools": {"packages": {"find": {"exclude": ["tests*"]}}}}}
    assert top_level_packages(found, tmp_path) == {"kdm", "cli"}


# --------------------------------------------------------- Dockerfile tests


def test_dockerfile_base_and_sources() -> None:
    assert DOCKERFILE.is_file(), "Dockerfile is missing"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert dockerfile_base(text) == "python:3.11-slim"
    missing = set(SOURCE_DIRS) - copied_sources(text)
    assert not missing, f"Dockerfile does not COPY: {sorted(missing)}"
    users = [tokens[1] for tokens in dockerfile_instructions(text) if tokens[0].upper() == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "image must run as non-root"


def test_dockerfile_copies_setuptools_packages() -> None:
    if not PYPROJECT.is_file():
        pytest.skip("pyproject.toml not present yet")
    pyproject = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    packages = top_level_packages(pyproject, ROOT)
    assert packages, "no setuptools package list found in pyproject.toml"
    missing = packages - copied_sources(DOCKERFILE.read_text(encoding="utf-8"))
    assert not missing, f"Dockerfile does not COPY packages: {sorted(missing)}"
