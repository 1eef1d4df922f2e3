"""The node's configuration: one TOML file validated by this typed schema.

Every setting has a default, so a minimal file only names what differs (usually the AE title, the
allowed senders and the destinations). Unknown keys are errors, so a typo never goes unnoticed.

Environment overrides: ``BIANQUE__<SECTION>__<KEY>=value`` sets one value, e.g.
``BIANQUE__NETWORK__PORT=11113`` or ``BIANQUE__LOGGING__LEVEL=DEBUG``. List entries are addressed by
their index: ``BIANQUE__DESTINATIONS__0__PORT=104``. The value is read as a TOML value when it
parses as one (numbers, booleans, quoted strings, arrays) and as a plain string otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "BIANQUE__"
_AE_TITLE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # default character repertoire, no backslash


class ConfigError(Exception):
    """The configuration cannot be used; ``errors`` lists ``(dotted.key, message)`` pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {key}: {message}" for key, message in errors)
        super().__init__(f"invalid configuration {source}:\n{lines}")


def _check_ae_title(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("AE title must not be empty")
    if len(stripped) > 16:
        raise ValueError(f"AE title {stripped!r} is longer than 16 characters")
    if not _AE_TITLE_RE.match(stripped):
        raise ValueError(f"AE title {stripped!r} may only hold printable ASCII characters without backslash")
    return stripped


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Section):
    """TLS for an association (listening side or one destination). Paths are PEM files."""

    enabled: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    require_peer_certificate: bool = True

    @model_validator(mode="after")
    def _files_when_enabled(self) -> TlsConfig:
        if not self.enabled:
            return self
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        for name in ("cert_file", "key_file", "ca_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} {str(path)!r} does not exist or is not a file")
        return self


class NetworkConfig(_Section):
    ae_title: str = "BIANQUE"
    bind_address: str = "0.0.0.0"
    port: int = Field(default=11112, ge=1, le=65535)
    max_associations: int = Field(default=10, ge=1, le=256)
    max_pdu_bytes: int = Field(default=0, ge=0, description="0 = unlimited")
    acse_timeout_s: float = Field(default=30.0, gt=0)
    dimse_timeout_s: float = Field(default=60.0, gt=0)
    network_timeout_s: float = Field(default=60.0, gt=0)
    accept_unknown_senders: bool = False
    tls: TlsConfig = TlsConfig()

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, value: str) -> str:
        return _check_ae_title(value)

    @field_validator("tls")
    @classmethod
    def _server_tls(cls, value: TlsConfig) -> TlsConfig:
        if value.enabled and (value.cert_file is None or value.key_file is None):
            raise ValueError("accepting TLS associations needs cert_file and key_file")
        if value.enabled and value.require_peer_certificate and value.ca_file is None:
            raise ValueError("require_peer_certificate needs ca_file (or set require_peer_certificate = false)")
        return value

    @field_validator("bind_address")
    @classmethod
    def _address(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value


class AllowedSender(_Section):
    """A calling AE title allowed to send; ``address`` (IP or CIDR) optionally pins its network address."""

    ae_title: str
    address: str | None = None

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, value: str) -> str:
        return _check_ae_title(value)

    @field_validator("address")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_network(value, strict=False)
        return value

    def matches(self, ae_title: str, address: str) -> bool:
        if ae_title.strip() != self.ae_title:
            return False
        if self.address is None:
            return True
        try:
            return ipaddress.ip_address(address) in ipaddress.ip_network(self.address, strict=False)
        except ValueError:
            return False


class RetryPolicy(_Section):
    """Exponential backoff: delay_n = min(max_delay_s, initial_delay_s * multiplier**(n-1)) * (1 ± jitter)."""

    max_attempts: int = Field(default=10, ge=1, le=1000)
    initial_delay_s: float = Field(default=30.0, ge=0)
    max_delay_s: float = Field(default=3600.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _order(self) -> RetryPolicy:
        if self.max_delay_s < self.initial_delay_s:
            raise ValueError("max_delay_s must be >= initial_delay_s")
        return self


class Destination(_Section):
    """A DICOM peer (usually the PACS) that receives every result."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    ae_title: str
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    calling_ae_title: str | None = None
    sr_kind: Literal["enhanced", "comprehensive", "comprehensive3d"] = "enhanced"
    tls: TlsConfig = TlsConfig()
    retry: RetryPolicy = RetryPolicy()

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, value: str) -> str:
        return _check_ae_title(value)

    @field_validator("calling_ae_title")
    @classmethod
    def _calling(cls, value: str | None) -> str | None:
        return None if value is None else _check_ae_title(value)


class SpoolConfig(_Section):
    directory: Path = Path("/var/lib/bianque/spool")
    retention_days: float = Field(default=30.0, ge=0, description="0 keeps everything")


class CompletionConfig(_Section):
    quiet_period_s: float = Field(default=10.0, gt=0)
    poll_interval_s: float = Field(default=2.0, gt=0, description="how often operator requests are picked up")


class ModelConfig(_Section):
    weights: str = "default"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int = Field(default=2, ge=1, le=256)
    quantitation_method: Literal["default", "bianque2022"] = "default"
    mask_decoding: Literal["argmax", "threshold"] = "argmax"
    level_assignment: Literal["sacrum", "off"] = "sacrum"


class SelectionConfig(_Section):
    include_series_regex: list[str] = []
    exclude_series_regex: list[str] = []
    mid_slice: Literal["centre", "best"] = "centre"

    @field_validator("include_series_regex", "exclude_series_regex")
    @classmethod
    def _regex(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return values


class OutputsConfig(_Section):
    report_image: bool = True
    no_series_sr: bool = False


class ProcessingConfig(_Section):
    enabled: bool = True
    workers: int = Field(default=1, ge=1, le=16)


class LoggingConfig(_Section):
    format: Literal["json", "console"] = "console"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class NodeConfig(_Section):
    """The whole configuration file."""

    network: NetworkConfig = NetworkConfig()
    allowed_senders: list[AllowedSender] = []
    destinations: list[Destination] = []
    spool: SpoolConfig = SpoolConfig()
    completion: CompletionConfig = CompletionConfig()
    model: ModelConfig = ModelConfig()
    selection: SelectionConfig = SelectionConfig()
    outputs: OutputsConfig = OutputsConfig()
    processing: ProcessingConfig = ProcessingConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _unique_destinations(self) -> NodeConfig:
        names = [d.name for d in self.destinations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"destination names must be unique: {', '.join(duplicates)}")
        return self

    def destination(self, name: str) -> Destination:
        for destination in self.destinations:
            if destination.name == name:
                return destination
        known = ", ".join(d.name for d in self.destinations) or "none configured"
        raise KeyError(f"no destination named {name!r} (known: {known})")

    @property
    def index_path(self) -> Path:
        return Path(self.spool.directory) / "index.sqlite3"

    def sender_allowed(self, ae_title: str, address: str) -> bool:
        if self.network.accept_unknown_senders:
            return True
        return any(sender.matches(ae_title, address) for sender in self.allowed_senders)


# -- loading -----------------------------------------------------------------------------------------
def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Return ``data`` with every ``BIANQUE__A__B=value`` variable applied (keys lower-cased)."""
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if not path:
            continue
        node: Any = data
        for position, part in enumerate(path):
            last = position == len(path) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"environment variable {name}", [(".".join(path), "no such list entry")])
                if last:
                    node[int(part)] = _parse_env_value(environ[name])
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = _parse_env_value(environ[name])
                else:
                    node = node.setdefault(part, {})
            else:
                raise ConfigError(f"environment variable {name}", [(".".join(path), "is not a section")])
    return data


def _format_errors(error: ValidationError) -> list[tuple[str, str]]:
    result = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling against config/bianque-node.example.toml)"
        result.append((key, message))
    return result


def validate_config(data: Mapping[str, Any], source: str = "(in memory)") -> NodeConfig:
    try:
        return NodeConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(source, _format_errors(exc)) from None


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Read, apply environment overrides to, and validate a TOML (or JSON) configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [("(file)", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(str(path), [("(syntax)", str(exc))]) from None
    data = apply_env_overrides(data, os.environ if environ is None else environ)
    return validate_config(data, str(path))


# -- printing ----------------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _dump_table(lines: list[str], prefix: str, table: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if v is not None and not isinstance(v, dict) and not _is_table_list(v)}
    if scalars or not prefix:
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in scalars.items())
        lines.append("")
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            _dump_table(lines, name, value)
        elif _is_table_list(value):
            for item in value:
                lines.append(f"[[{name}]]")
                inner = {k: v for k, v in item.items() if v is not None and not isinstance(v, dict)}
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in inner.items())
                lines.append("")
                for k, v in item.items():
                    if isinstance(v, dict):
                        _dump_table(lines, f"{name}.{k}", v)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dump_toml(data: Mapping[str, Any] | NodeConfig) -> str:
    """TOML text for a configuration (a NodeConfig or a plain dict with the same keys)."""
    if isinstance(data, NodeConfig):
        data = data.model_dump(mode="json")
    lines: list[str] = []
    _dump_table(lines, "", data)
    return "\n".join(lines).strip() + "\n"
