"""Bind TOML tables and environment overrides to frozen, typed dataclasses.

Generic on purpose: the schema (`supervisor.pipeline.config`) only declares dataclasses with
types and defaults, and this module turns any mismatch into one `ConfigError` that
names the field, the value it got and what is allowed. Secret fields (typed `Secret`)
are never read from the file itself: only from an environment variable or from a file
named by the `<field>_file` key, so a config file can be committed without leaking.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from core.errors import ConfigurationError

__all__ = ["ENV_PREFIX", "ConfigError", "EnvValue", "Secret", "bind", "env_overrides"]

ENV_PREFIX = "KAFKA_PIPELINE_"
"""`KAFKA_PIPELINE_<SECTION>__<FIELD>=value` overrides `[section] field` of the file."""

T = TypeVar("T")


class ConfigError(ConfigurationError):
    """The configuration is wrong; the message names the field, the value and what is allowed."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", context={"field": field})
        self.field = field


class Secret:
    """A secret string whose repr and str never show it; `.reveal()` is the one way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class EnvValue(str):
    """A raw string that came from an environment variable and still needs parsing."""

    __slots__ = ()


def env_overrides(environ: Mapping[str, str], schema: type[Any]) -> dict[str, dict[str, str]]:
    """The `KAFKA_PIPELINE_SECTION__FIELD` variables, as {section: {field: raw value}}.

    Every variable with the prefix must name a key of `schema` (a dataclass of tables):
    one that does not (`KAFKA_PIPELINE_KAFKA_TOPICS`, one underscore short) is a
    ConfigError naming it and the closest valid name. Refused rather than warned about:
    an override that silently does nothing leaves the file's value in force (another
    broker, another group), and a warning at startup is easily missed in a log stream;
    exit 2 stops a systemd restart loop and says what to fix.
    """
    known = _override_names(schema)
    found: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = known.get(name.upper())
        if key is None:
            close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(
                name,
                f"matches no setting ({ENV_PREFIX}<TABLE>__<KEY>, two underscores){hint}",
            )
        section, field = key
        found.setdefault(section, {})[field] = EnvValue(value)
    return found


def _override_names(schema: type[Any]) -> dict[str, tuple[str, str]]:
    """{`KAFKA_PIPELINE_TABLE__KEY`: (table, key)} for every key of every table of `schema`."""
    names: dict[str, tuple[str, str]] = {}
    for section, table in get_type_hints(schema).items():
        if not dataclasses.is_dataclass(table):
            continue
        hints = get_type_hints(table)
        for name, hint in hints.items():
            keys = [name, f"{name}_file"] if _is_secret(hint) else [name]
            for key in keys:
                names[f"{ENV_PREFIX}{section.upper()}__{key.upper()}"] = (section, key)
    return names


def bind(cls: type[T], data: Mapping[str, Any], path: str, base_dir: Path) -> T:
    """Build dataclass `cls` from `data`, or raise ConfigError naming `path.field`."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    secret_files = {f"{name}_file" for name in fields if _is_secret(hints[name])}
    for key in data:
        if key not in fields and key not in secret_files:
            allowed = ", ".join(sorted([*fields, *secret_files]))
            raise ConfigError(_join(path, key), f"unknown key; allowed keys: {allowed}")
    values: dict[str, Any] = {}
    for name in fields:
        where = _join(path, name)
        hint = hints[name]
        if _is_secret(hint):
            secret = _read_secret(data, name, where, base_dir)
            if secret is not None:
                values[name] = secret
        elif name in data:
            values[name] = _coerce(hint, data[name], where, base_dir)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(path or cls.__name__, str(exc)) from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_secret(hint: Any) -> bool:
    return hint is Secret or Secret in get_args(hint)


def _read_secret(data: Mapping[str, Any], name: str, where: str, base_dir: Path) -> Secret | None:
    raw = data.get(name)
    if raw is not None and not isinstance(raw, EnvValue):
        raise ConfigError(
            where,
            "secrets are not read from the config file; set the environment variable "
            f"{ENV_PREFIX}{where.upper().replace('.', '__', 1)} or the key {name}_file",
        )
    if raw is not None:
        return Secret(str(raw))
    file_key = f"{name}_file"
    if file_key not in data:
        return None
    file_path = _coerce(Path, data[file_key], f"{where}_file", base_dir)
    try:
        return Secret(file_path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ConfigError(
            f"{where}_file", f"cannot read {str(file_path)!r}: {exc.strerror}"
        ) from None


def _describe(value: Any) -> str:
    text = repr(str(value)) if isinstance(value, EnvValue) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: str, where: str) -> str:
    """`value` as a plain str, refused if it cannot be written as UTF-8 (an environment
    variable's undecodable bytes arrive as lone surrogates): no client could send it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(where, f"got {_describe(value)}; not valid UTF-8 text") from None
    return str(value)


def _coerce(hint: Any, value: Any, where: str, base_dir: Path) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        if value is None or (isinstance(value, EnvValue) and value == ""):
            return None
        return _coerce(options[0], value, where, base_dir)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            choices = " | ".join(repr(choice) for choice in allowed)
            raise ConfigError(where, f"got {_describe(value)}; allowed: {choices}")
        return str(value)
    if origin is tuple:
        item_type = get_args(hint)[0]
        items = value.split(",") if isinstance(value, EnvValue) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(where, f"got {_describe(value)}; expected a list")
        return tuple(
            _coerce(
                item_type,
                EnvValue(item.strip()) if isinstance(value, EnvValue) else item,
                f"{where}[{index}]",
                base_dir,
            )
            for index, item in enumerate(items)
        )
    if origin is dict:  # a sink's own table: passed through for the sink to validate
        if not isinstance(value, Mapping):
            raise ConfigError(where, f"got {_describe(value)}; expected a table [{where}]")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(where, f"got {_describe(value)}; expected a table [{where}]")
        return bind(hint, value, where, base_dir)  # type: ignore[arg-type]
    return _coerce_scalar(hint, value, where, base_dir)


def _coerce_scalar(hint: Any, value: Any, where: str, base_dir: Path) -> Any:
    from_env = isinstance(value, EnvValue)
    if hint is bool:
        if from_env and value.lower() in ("1", "true", "yes", "on"):
            return True
        if from_env and value.lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, bool):
            return value
        raise ConfigError(where, f"got {_describe(value)}; expected true or false")
    if hint is int:
        try:
            if from_env:
                return int(value)
        except ValueError:
            pass
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(where, f"got {_describe(value)}; expected an integer")
    if hint is float:
        try:
            if from_env:
                return float(value)
        except ValueError:
            pass
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(where, f"got {_describe(value)}; expected a number")
    if hint is str:
        if isinstance(value, str):
            return _text(value, where)
        raise ConfigError(where, f"got {_describe(value)}; expected a string")
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(where, f"got {_describe(value)}; expected a file path")
        _text(value, where)
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() else base_dir / path
    raise TypeError(f"{where}: unsupported config type {hint!r}")
