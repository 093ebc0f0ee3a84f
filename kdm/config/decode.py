"""Decode DM-style kebab-case YAML into frozen dataclasses, with file and line in every error.

A config dataclass declares each key once, as a field with `key(...)` metadata: its YAML
name, a one-line description, and whether it is required or refused. The decoder walks the
YAML node tree (not the loaded dict) so it knows every key's line; it refuses unknown and
duplicate keys, refused keys by name, and values of the wrong type. Supported field types:
str, int, float, bool, Duration, Literal[...], tuple[X, ...], dict[str, X], X | None and
nested config dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from kdm.errors import (
    ERR_CONFIG_INVALID_VALUE,
    ERR_CONFIG_MISSING_KEY,
    ERR_CONFIG_READ,
    ERR_CONFIG_TYPE,
    ERR_CONFIG_UNKNOWN_KEY,
    ERR_CONFIG_UNSUPPORTED,
    ERR_CONFIG_YAML,
    KdmError,
)

T = TypeVar("T")
Path_ = tuple[str | int, ...]


class Duration(float):
    """Seconds, written in YAML as a Go duration (`5m0s`, `1h`, `300ms`) or a number."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6,
                   "ns": 1e-9}


def parse_duration(text: str) -> Duration | None:
    """Seconds in a Go duration string, or None when it is not one."""
    if not text or _DURATION_PART.sub("", text) != "":
        return None
    return Duration(sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text)))


def key(name: str, doc: str, *, required: bool = False, refused: str | None = None,
        accepts: tuple[Any, ...] = (), default: Any = dataclasses.MISSING,
        factory: Callable[[], Any] | None = None) -> Any:
    """A config field: its YAML key, one-line description, and whether required or refused.

    A refused key is still accepted at its default, an empty value, or one of `accepts`
    (values whose meaning kdm implements), so DM's exported configs load unchanged.
    """
    meta = {"key": name, "doc": doc, "required": required, "refused": refused,
            "accepts": accepts}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass
class Locations:
    """Where each decoded key stood: path of keys/indexes → line (1-based)."""

    path: str
    lines: dict[Path_, int] = dataclasses.field(default_factory=dict)

    def where(self, at: Path_) -> str:
        """`file:line` of the nearest recorded ancestor of `at`."""
        for cut in range(len(at), -1, -1):
            if at[:cut] in self.lines:
                return f"{self.path}:{self.lines[at[:cut]]}"
        return self.path


def dotted(at: Path_) -> str:
    """A path as DM users write it: `mysql-instances[0].meta.binlog-pos`."""
    text = ""
    for part in at:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "top level"


def compose(text: str, path: str) -> yaml.Node | None:
    """Parse YAML text into its node tree; a coded error with the line on bad syntax."""
    try:
        documents = [doc for doc in yaml.compose_all(text, Loader=yaml.SafeLoader)
                     if doc is not None and not _empty_document(doc)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ERR_CONFIG_YAML(where=f"{path}:{line}", problem=exc.problem or str(exc),
                              path=path, line=line) from exc
    except yaml.YAMLError as exc:
        raise ERR_CONFIG_YAML(exc, where=path, problem=str(exc), path=path) from exc
    if len(documents) > 1:
        line = documents[1].start_mark.line + 1
        raise ERR_CONFIG_YAML(where=f"{path}:{line}", path=path, line=line,
                              problem="a config file holds one YAML document")
    return documents[0] if documents else None


def key_paths(cls: type[Any], prefix: str = "") -> list[tuple[str, dataclasses.Field[Any]]]:
    """Every key of a config dataclass as DM users write its path (`syncers.<name>.batch`,
    `mysql-instances[].meta`), each with its field, nested keys after their parent."""
    out = []
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        path = prefix + spec.metadata["key"]
        tp = hints[spec.name]
        inner = [a for a in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(a)]
        if typing.get_origin(tp) is dict and inner:
            path += ".<name>"
        elif typing.get_origin(tp) is tuple and inner:
            path += "[]"
        out.append((path, spec))
        for nested in inner:
            out += key_paths(typing.cast(type[Any], nested), path + ".")
    return out


def _empty_document(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null") and not node.value


def read_text(path: str | Path) -> str:
    """A config file's text; a coded error naming the file when it cannot be read."""
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ERR_CONFIG_READ(exc, path=str(path)) from exc


def decode_document(cls: type[T], text: str, path: str) -> tuple[T, Locations]:
    """Decode a whole YAML document into `cls`; also return where every key stood."""
    locs = Locations(path)
    node = compose(text, path)
    if node is None:
        node = yaml.MappingNode("tag:yaml.org,2002:map", [])
    locs.lines[()] = node.start_mark.line + 1 if node.start_mark else 1
    return Decoder(locs).dataclass(cls, node, ()), locs


class Decoder:
    """Walks YAML nodes against field types, recording locations into `locs`."""

    def __init__(self, locs: Locations) -> None:
        self.locs = locs
        self._constructor = yaml.SafeLoader("")

    def fail_type(self, node: yaml.Node, at: Path_, expected: str) -> Exception:
        """The coded wrong-type error for `node` at `at`."""
        got = (node.tag.rsplit(":", 1)[-1] if isinstance(node, yaml.ScalarNode)
               else type(node).__name__.removesuffix("Node").lower())
        line = node.start_mark.line + 1
        return ERR_CONFIG_TYPE(where=f"{self.locs.path}:{line}", key=dotted(at),
                               expected=expected, got=got, path=self.locs.path, line=line)

    def value(self, tp: Any, node: yaml.Node, at: Path_) -> Any:
        """Decode `node` as type `tp`."""
        self.locs.lines.setdefault(at, node.start_mark.line + 1)
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(typing.cast(type[Any], tp), node, at)
        if origin in (types.UnionType, typing.Union):
            return self._optional(tp, node, at)
        if origin is Literal:
            return self._literal(tp, node, at)
        if origin is tuple:
            return self._sequence(typing.get_args(tp)[0], node, at)
        if origin is dict:
            return self._mapping(typing.get_args(tp)[1], node, at)
        return self._scalar(tp, node, at)

    def dataclass(self, cls: type[T], node: yaml.Node, at: Path_) -> T:
        """Decode a mapping node into the config dataclass `cls`."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail_type(node, at, "a mapping")
        hints = typing.get_type_hints(cls)
        fields = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for key_node, value_node in self._pairs(node, at):
            name = key_node.value
            here = (*at, name)
            self.locs.lines[here] = key_node.start_mark.line + 1
            spec = fields.get(name)
            if spec is None:
                raise ERR_CONFIG_UNKNOWN_KEY(where=self.locs.where(here), key=name,
                                             section=dotted(at), path=self.locs.path,
                                             line=self.locs.lines[here])
            value = self._field_value(spec, hints[spec.name], value_node, here)
            if spec.metadata.get("refused") is not None and not _harmless(spec, value):
                raise ERR_CONFIG_UNSUPPORTED(where=self.locs.where(here), key=dotted(here),
                                             detail=f": {spec.metadata['refused']}",
                                             path=self.locs.path, line=self.locs.lines[here])
            if spec.metadata.get("required") and value in ("", ()):
                raise ERR_CONFIG_INVALID_VALUE(where=self.locs.where(here), key=dotted(here),
                                               problem="must not be empty",
                                               path=self.locs.path, line=self.locs.lines[here])
            kwargs[spec.name] = value
        for name, spec in fields.items():
            if spec.metadata.get("required") and spec.name not in kwargs:
                raise ERR_CONFIG_MISSING_KEY(where=self.locs.where(at), key=name,
                                             section=dotted(at), path=self.locs.path,
                                             line=node.start_mark.line + 1)
        return cls(**kwargs)

    def _field_value(self, spec: dataclasses.Field[Any], tp: Any, node: yaml.Node,
                     at: Path_) -> Any:
        """The decoded value; for a refused key, any undecodable value is simply refused."""
        try:
            return self.value(tp, node, at)
        except KdmError:
            if spec.metadata.get("refused") is None:
                raise
            return _UNDECODABLE

    def _pairs(self, node: yaml.MappingNode, at: Path_) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
        explicit = [pair for pair in node.value if pair[0].tag != "tag:yaml.org,2002:merge"]
        self._check_unique(explicit, at)
        if len(explicit) != len(node.value):
            self._constructor.flatten_mapping(node)
        merged = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
        merged.update({k.value: (k, v) for k, v in explicit})
        return list(merged.values())

    def _check_unique(self, pairs: list[tuple[yaml.Node, yaml.Node]], at: Path_) -> None:
        seen: set[str] = set()
        for key_node, _ in pairs:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail_type(key_node, at, "a plain key")
            if key_node.value in seen:
                line = key_node.start_mark.line + 1
                raise ERR_CONFIG_INVALID_VALUE(where=f"{self.locs.path}:{line}",
                                               key=dotted((*at, key_node.value)),
                                               problem="key appears twice", path=self.locs.path,
                                               line=line)
            seen.add(key_node.value)

    def _optional(self, tp: Any, node: yaml.Node, at: Path_) -> Any:
        inner = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return None
        return self.value(inner[0], node, at)

    def _literal(self, tp: Any, node: yaml.Node, at: Path_) -> Any:
        choices = typing.get_args(tp)
        text = self._scalar(str, node, at)
        for choice in choices:
            if str(choice) == text:
                return choice
        line = node.start_mark.line + 1
        raise ERR_CONFIG_INVALID_VALUE(
            where=f"{self.locs.path}:{line}", key=dotted(at), path=self.locs.path, line=line,
            problem=f"`{text}` is not one of {', '.join(repr(c) for c in choices)}")

    def _sequence(self, item_tp: Any, node: yaml.Node, at: Path_) -> tuple[Any, ...]:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail_type(node, at, "a list")
        return tuple(self.value(item_tp, item, (*at, i)) for i, item in enumerate(node.value))

    def _mapping(self, value_tp: Any, node: yaml.Node, at: Path_) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail_type(node, at, "a mapping")
        result = {}
        for key_node, value_node in self._pairs(node, at):
            here = (*at, key_node.value)
            self.locs.lines[here] = key_node.start_mark.line + 1
            result[key_node.value] = self.value(value_tp, value_node, here)
        return result

    def _scalar(self, tp: Any, node: yaml.Node, at: Path_) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail_type(node, at, _TYPE_NAMES.get(tp, "a scalar"))
        try:
            value = self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            raise self.fail_type(node, at, _TYPE_NAMES.get(tp, "a scalar")) from exc
        if tp is str:
            return "" if value is None else node.value
        if tp is Duration:
            return self._duration(value, node, at)
        if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if tp in (int, bool) and isinstance(value, tp) and (tp is bool or
                                                            not isinstance(value, bool)):
            return value
        raise self.fail_type(node, at, _TYPE_NAMES.get(tp, str(tp)))

    def _duration(self, value: Any, node: yaml.Node, at: Path_) -> Duration:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Duration(value)
        parsed = parse_duration(str(value))
        if parsed is None:
            raise self.fail_type(node, at, "a duration such as 5m0s")
        return parsed


_UNDECODABLE = object()


def _harmless(spec: dataclasses.Field[Any], value: Any) -> bool:
    """Whether a refused key's value means what kdm does anyway."""
    default = spec.default_factory() if callable(spec.default_factory) else spec.default
    return value in ("", (), {}, None, default, *spec.metadata.get("accepts", ()))


_TYPE_NAMES: dict[Any, str] = {str: "a string", int: "an integer", bool: "true or false",
                               float: "a number", Duration: "a duration such as 5m0s"}
