"""Every setting is declared once (claude2api/config.py) and documented where users look: README's
configuration table and config.example.yaml agree with the declarations, name for name (as Datasette
checks that every setting is documented). A setting added without its docs fails here."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from claude2api.config import Declaration, Settings, declarations, restart_only_settings, secret_settings
from claude2api.http.app import RESTART_ONLY

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
DECLARED = {d.name: d for d in declarations()}
TABLE_HEADER = "| Variable | YAML key | Default | Meaning |"


def readme_rows() -> dict[str, list[str]]:
    """README's configuration table: variable -> its cells (YAML keys, default, meaning)."""
    lines = README[README.index(TABLE_HEADER) :].splitlines()[2:]
    rows: dict[str, list[str]] = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        variable = cells[0].strip("`")
        assert variable not in rows, f"README lists {variable} twice"
        rows[variable] = cells[1:]
    return rows


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]*)`", cell)


def same_as_default(d: Declaration, written: Any) -> bool:
    """``written`` (a README cell's text or a YAML value) read by the setting's parser is its default."""
    if written in (None, "—", "", []):
        return d.default in (None, "", ())
    return d.parse(written, d.env) == d.default


def test_every_setting_is_declared_with_a_help_line() -> None:
    undocumented = [d.name for d in declarations() if not d.help.strip() or "\n" in d.help]
    assert not undocumented, f"declare help='one line' for: {undocumented}"


def test_the_readme_table_lists_exactly_the_declared_settings() -> None:
    rows = readme_rows()
    assert set(rows) == {d.env for d in declarations()}, "README configuration table vs config.py"
    for d in declarations():
        yaml_cell, default_cell, meaning = rows[d.env]
        keys = ticked(yaml_cell)
        assert d.name in keys, f"README row {d.env} should name YAML key {d.name}"
        assert set(keys) <= set(d.yaml_keys), f"README row {d.env} names undeclared YAML keys {keys}"
        default = (ticked(default_cell) or [default_cell])[0]
        assert same_as_default(d, default), f"README default of {d.env} is {default_cell}, declared {d.default!r}"
        missing = [choice for choice in d.choices if f"`{choice}`" not in meaning]
        assert not missing, f"README row {d.env} does not name the choices {missing}"


def test_the_example_yaml_sets_every_setting_to_its_default() -> None:
    example = yaml.safe_load(EXAMPLE)
    assert set(example) == set(DECLARED), "config.example.yaml keys vs config.py"
    for name, value in example.items():
        d = DECLARED[name]
        assert same_as_default(d, value), f"config.example.yaml {name}: {value!r}, declared {d.default!r}"
        assert re.search(rf"[\[ ,]{d.env}[\],]", EXAMPLE), f"config.example.yaml should name {d.env} in brackets"


def test_the_example_yaml_header_names_the_secrets_and_the_aliases() -> None:
    header = EXAMPLE[: EXAMPLE.index("\nsessions:")]
    for name in secret_settings():
        assert name in header and f"{DECLARED[name].env}_FILE" in header, name
    aliases = [alias for d in declarations() for alias in d.yaml_keys[1:] if alias != "api_key"]
    assert all(alias in header for alias in aliases), aliases


def test_the_readme_secret_section_names_every_secret_setting() -> None:
    section = README[README.index("### Secrets in files") : README.index("### Models")]
    for name in secret_settings():
        env = DECLARED[name].env
        assert f"`{env}`" in section and f"`{env}_FILE`" in section and f"`{env.lower()}`" in section, env


def test_the_readme_reload_paragraph_names_the_live_settings() -> None:
    paragraph = README[README.index("- `SIGHUP`") :].split("\n- ", 1)[0]
    for d in declarations():
        if d.live:
            assert f"`{d.env}`" in paragraph, f"README's SIGHUP paragraph should say {d.env} changes at once"


def test_the_restart_list_is_the_declared_one() -> None:
    assert restart_only_settings() == RESTART_ONLY
    assert {"address", "proxy", "state_file"} <= set(RESTART_ONLY)
    assert not [d.name for d in declarations() if d.restart and d.live], "restart and live exclude each other"


def test_declarations_read_back_the_fields() -> None:
    d = DECLARED["api_keys"]
    assert (d.env, d.yaml_keys, d.type, d.default) == ("APIKEY", ("api_keys", "apiKey", "api_key"), "tuple[str, ...]", ())
    assert DECLARED["log_level"].choices == ("debug", "info", "warning", "error")
    assert [d.name for d in declarations()] == [f.name for f in fields(Settings)]


@pytest.mark.parametrize("name", sorted(secret_settings()))
def test_secret_settings_are_masked_and_registered(name: str) -> None:
    """Redaction comes from ``secret=``: whatever a secret setting holds, its value never shows."""
    secret = "s3cr3t-value-Zq9"
    values = {
        "sessions": "sk-ant-sid01-" + secret,
        "api_keys": secret,
        "proxy": f"socks5://user:{secret}@127.0.0.1:1080",
        "admin_key": secret,
        "metrics_key": secret,
    }
    d = DECLARED[name]
    settings = Settings(**{name: d.parse(values[name], d.env)})
    assert secret not in repr(settings) and secret not in str(settings.redacted())
    assert any(secret in value for value in settings.secret_values())
