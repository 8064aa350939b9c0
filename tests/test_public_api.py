"""The package's exported names are exactly the ones docs/library.md documents."""

from __future__ import annotations

import inspect
import re
from enum import Enum
from pathlib import Path

import pipeline

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_exported_names_are_exactly_the_documented_ones() -> None:
    section = (DOCS / "library.md").read_text(encoding="utf-8").split("# Library use", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Za-z_]+)` \|", section, re.M))
    assert documented == set(pipeline.__all__)


def test_every_exported_name_exists() -> None:
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None


def test_every_config_key_is_documented_in_the_configuration_page() -> None:
    from pipeline.delivery._config import CONFIG_KEYS

    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    section = page.split("## The run configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^#? ?([a-z_]+) = ", section, re.M))
    assert documented == set(CONFIG_KEYS)


def test_documented_classes_and_functions_show_as_pipeline_names() -> None:
    for name in pipeline.__all__:
        value = getattr(pipeline, name)
        if isinstance(value, type) or inspect.isfunction(value):
            assert value.__module__ == "pipeline", name
            enum = isinstance(value, type) and issubclass(value, Enum)  # an enum class's repr is "<enum 'Name'>"
            assert f"pipeline.{name}" in repr(value) or inspect.isfunction(value) or enum
