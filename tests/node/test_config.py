"""Configuration schema, example file, environment overrides and `bianque check-config`."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from dicom_node.config import ConfigError, NodeConfig, dump_toml, load_config, validate_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "bianque-node.example.toml"


def _bianque(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicom_node.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60)


def _schema_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation: Any = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))[0] if getattr(annotation, "__origin__", None) is list else annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            paths.extend(_schema_paths(inner, f"{path}."))
        else:
            paths.append(path)
    return paths


def _documented_paths(text: str) -> set[str]:
    """Every key in the example, including commented-out ``# key = value`` lines, with its table path."""
    found: set[str] = set()
    table = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and not line.startswith("# "):
            table = line.strip("[]").strip()
            continue
        candidate = line[1:].strip() if line.startswith("#") else line
        if "=" in candidate and candidate.split("=", 1)[0].strip().isidentifier():
            key = candidate.split("=", 1)[0].strip()
            found.add(f"{table}.{key}" if table else key)
    return found


def test_example_documents_every_option_with_its_default() -> None:
    text = EXAMPLE.read_text()
    documented = _documented_paths(text)
    missing = [p for p in _schema_paths(NodeConfig) if p not in documented]
    assert not missing, f"options missing from {EXAMPLE.name}: {missing}"
    config = load_config(EXAMPLE, environ={})
    defaults = NodeConfig()
    # Sections the example shows with their defaults must equal the schema defaults.
    for section in ("network", "spool", "completion", "model", "selection", "outputs", "processing", "logging"):
        assert getattr(config, section) == getattr(defaults, section), section
    assert config.destinations[0].retry == type(config.destinations[0].retry)()
    assert config.destinations[0].tls == type(config.destinations[0].tls)()


def test_errors_name_every_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[network]\nport = 70000\nae_title = "MUCH_TOO_LONG_AE_TITLE"\ncolour = "blue"\n'
        '[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "h"\nport = 104\n'
        '[destinations.retry]\nmax_attempts = 0\n'
        '[[allowed_senders]]\nae_title = "X"\naddress = "not-an-ip"\n'
        '[logging]\nformat = "xml"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad, environ={})
    keys = {key for key, _ in info.value.errors}
    assert {"network.port", "network.ae_title", "network.colour", "destinations.0.retry.max_attempts",
            "allowed_senders.0.address", "logging.format"} <= keys
    result = _bianque("check-config", str(bad))
    assert result.returncode == 1
    for key in ("network.port", "network.ae_title", "network.colour", "logging.format"):
        assert key in result.stderr


def test_syntax_error_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[network\nport = 1\n")
    result = _bianque("check-config", str(broken))
    assert result.returncode == 1 and "(syntax)" in result.stderr
    result = _bianque("check-config", str(tmp_path / "absent.toml"))
    assert result.returncode == 1 and "cannot read" in result.stderr


def test_check_config_prints_effective_config_with_env_override() -> None:
    env = {"BIANQUE__NETWORK__PORT": "11113", "BIANQUE__DESTINATIONS__0__HOST": "pacs2.example.org",
           "BIANQUE__LOGGING__FORMAT": "json", "PATH": "/usr/bin:/bin"}
    result = _bianque("check-config", "--format", "json", str(EXAMPLE), env=env)
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["network"]["port"] == 11113
    assert effective["destinations"][0]["host"] == "pacs2.example.org"
    assert effective["logging"]["format"] == "json"
    toml_out = _bianque("check-config", str(EXAMPLE), env=env)
    assert toml_out.returncode == 0
    assert NodeConfig.model_validate(tomllib.loads(toml_out.stdout)).network.port == 11113


def test_env_override_errors_are_reported() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, environ={"BIANQUE__NETWORK__PORT": "not-a-port"})
    assert info.value.errors[0][0] == "network.port"
    with pytest.raises(ConfigError):
        load_config(EXAMPLE, environ={"BIANQUE__DESTINATIONS__5__PORT": "104"})


def test_dump_round_trip_and_sender_matching() -> None:
    config = validate_config({
        "allowed_senders": [{"ae_title": "PACS", "address": "10.1.0.0/16"}, {"ae_title": "MODALITY"}],
        "destinations": [{"name": "a", "ae_title": "A", "host": "h", "port": 1}],
    })
    assert validate_config(tomllib.loads(dump_toml(config))) == config
    assert config.sender_allowed("PACS", "10.1.2.3")
    assert not config.sender_allowed("PACS", "10.2.0.1")
    assert config.sender_allowed("MODALITY", "192.168.0.9")
    assert not config.sender_allowed("OTHER", "10.1.2.3")
    with pytest.raises(ConfigError, match="unique"):
        validate_config({"destinations": [{"name": "a", "ae_title": "A", "host": "h", "port": 1}] * 2})


def test_serve_refuses_a_broken_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[network]\nport = "eleven"\n')
    result = _bianque("serve", "--config", str(bad))
    assert result.returncode == 1
    assert "network.port" in result.stderr and "not starting" in result.stdout


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"network": {"tls": {"enabled": True}}})
    assert info.value.errors[0][0] == "network.tls" and "cert_file and key_file" in info.value.errors[0][1]
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError) as info:
        validate_config({"network": {"tls": {"enabled": True, "cert_file": str(cert), "key_file": str(cert)}}})
    assert "ca_file" in info.value.errors[0][1]
    with pytest.raises(ConfigError) as info:
        validate_config({"destinations": [{"name": "p", "ae_title": "P", "host": "h", "port": 1,
                                           "tls": {"enabled": True, "ca_file": str(tmp_path / "missing.pem")}}]})
    assert info.value.errors[0][0] == "destinations.0.tls" and "does not exist" in info.value.errors[0][1]
    ok = validate_config({"network": {"tls": {"enabled": True, "cert_file": str(cert), "key_file": str(cert),
                                              "require_peer_certificate": False}}})
    assert ok.network.tls.enabled
