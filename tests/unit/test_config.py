"""The settings table: precedence, types, sources and documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.core.config import SETTINGS, load_settings
from dockyard.core.errors import InvalidInput


def test_settings_precedence_is_override_then_env_then_file_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "dockyard.toml"
    cfg.write_text('[dockyard]\nhome = "/from/file"\nmetric_batch_size = 7\n')
    env = {"DOCKYARD_CONFIG": str(cfg), "DOCKYARD_METRIC_BATCH_SIZE": "9"}
    s = load_settings(environ=env)
    assert s.home == "/from/file" and s.sources["home"] == "file"
    assert s.metric_batch_size == 9 and s.sources["metric_batch_size"] == "env"
    assert s.sources["db_url"] == "default"
    s = load_settings(overrides={"metric_batch_size": 3}, environ=env)
    assert s.metric_batch_size == 3 and s.sources["metric_batch_size"] == "override"


def test_default_store_is_sqlite_under_home(tmp_path: Path) -> None:
    s = load_settings(overrides={"home": str(tmp_path)}, environ={})
    assert s.resolved_db_url == f"sqlite:///{tmp_path.resolve() / 'dockyard.db'}"
    assert s.resolved_artifact_root == str(tmp_path.resolve() / "artifacts")


def test_bad_setting_values_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="DOCKYARD_METRIC_BATCH_SIZE"):
        load_settings(environ={"DOCKYARD_METRIC_BATCH_SIZE": "many"})
    # The values a setting takes, not the name of a parsing function.
    with pytest.raises(InvalidInput, match="must be 'auto' or 'native', got 'fast'"):
        load_settings(environ={"DOCKYARD_SERVE_RUNTIME": "fast"})
    with pytest.raises(InvalidInput, match="must be a boolean"):
        load_settings(environ={"DOCKYARD_SERVE_LOG_PREDICTIONS": "maybe"})
    assert load_settings(environ={"DOCKYARD_SERVE_RUNTIME": " Native "}).serve_runtime == "native"
    cfg = tmp_path / "bad.toml"
    cfg.write_text("nonsense = 1\n")
    with pytest.raises(InvalidInput, match="unknown settings"):
        load_settings(environ={"DOCKYARD_CONFIG": str(cfg)})


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [s.env for s in SETTINGS if s.env not in readme]
    assert missing == [], f"settings missing from README.md: {missing}"


def test_secret_settings_never_show_in_the_repr() -> None:
    from dockyard.core.config import SECRET_SETTINGS

    env = {
        "DOCKYARD_TRACKING_TOKEN": "dy_" + "t" * 40,
        "DOCKYARD_ENCRYPTION_KEY": "a2V5" * 11,
        "DOCKYARD_REDACTION_KEY": "r" * 40,
    }
    settings = load_settings(environ=env)
    assert SECRET_SETTINGS == {"tracking_token", "encryption_key", "redaction_key"}
    text = repr(settings)
    assert all(value not in text for value in env.values())
    assert "'tracking_token': '***'" in text and "'home': '.dockyard'" in text
    assert settings.tracking_token == env["DOCKYARD_TRACKING_TOKEN"]  # the value itself is there
