"""Docs check: the run configurations the README and docs/configuration.md show load as written, and say what
the loaded settings say."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.delivery import load_config

ROOT = Path(__file__).resolve().parents[2]


def section_toml(page: Path, title: str) -> list[str]:
    """The TOML blocks of one section of PAGE (from its heading to the next heading of any level)."""
    text = page.read_text(encoding="utf-8")
    section = re.split(r"\n#{2,3} ", text.split(f"\n{title}\n", 1)[1], maxsplit=1)[0]
    return re.findall(r"```toml\n(.*?)```", section, re.S)


def test_the_run_configuration_example_loads_and_its_comments_are_its_defaults(tmp_path: Path) -> None:
    (example,) = section_toml(ROOT / "docs" / "configuration.md", "## The run configuration")
    (tmp_path / "cws.toml").write_text(example, encoding="utf-8")
    config = load_config(tmp_path / "cws.toml")
    assert config.base_url == "https://coremr.example.org"
    assert config.private_key == (tmp_path / "keys/rsa.private").resolve()
    assert config.server_keys == (tmp_path / "keys/coremr").resolve()
    assert config.ledger == (tmp_path / "ledger.sqlite").resolve()
    assert (config.concurrency, config.adaptive, config.max_rate, config.window) == (128, True, None, None)
    assert (config.max_attempts, config.timeout, config.max_answer_bytes) == (5, 30, 1 << 20)
    assert (config.retry_after_cap, config.circuit_breaker) == (60, 5)


def test_the_bulk_load_settings_load_on_top_of_a_configuration(tmp_path: Path) -> None:
    (settings,) = section_toml(ROOT / "docs" / "running.md", "## Planning a bulk load")
    (tmp_path / "cws.toml").write_text(
        'base_url = "https://coremr.example.org"\naccess = "county-jms"\nprivate_key = "k.pem"\n'
        'server_keys = "keys"\n' + settings,
        encoding="utf-8",
    )
    config = load_config(tmp_path / "cws.toml")
    assert (config.concurrency, config.adaptive, config.max_rate) == (128, True, 20)
    assert config.window is not None and str(config.window).startswith("22:00-06:00")


def test_the_readme_set_up_configuration_loads_with_the_keys_its_steps_make(tmp_path: Path) -> None:
    (example,) = section_toml(ROOT / "README.md", "### 2. The run configuration")
    (tmp_path / "cws.toml").write_text(example, encoding="utf-8")
    config = load_config(tmp_path / "cws.toml")
    assert (config.base_url, config.access) == ("https://coremr.example.org", "county-jms")
    assert config.private_key == (tmp_path / "keys/rsa.private").resolve()  # what step 1's keygen writes
    assert config.server_keys == (tmp_path / "keys/coremr").resolve()  # where step 1 saves CorEMR's key
    assert config.ledger == (tmp_path / "ledger.sqlite").resolve()
