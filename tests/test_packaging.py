"""The wheel installs flows/, tasks/ and validations/ under the modelgate namespace, and the code
imports them only by that name (a top-level `flows` package would shadow a user's own folder)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"flows", "tasks", "validations"}


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_of_the_tree_is_installed_under_modelgate():
    config = _setuptools()
    assert config["package-dir"] == {f"modelgate.{name}": name for name in MAPPED}
    tree = set(find_packages(str(ROOT), include=["modelgate*"]))
    for name in MAPPED:
        tree |= {f"modelgate.{pkg}" for pkg in find_packages(str(ROOT), include=[name, f"{name}.*"])}
    data_only = {"modelgate.configs", "modelgate.configs.spaces"}
    assert set(config["packages"]) == tree - data_only


def test_no_module_imports_the_top_level_names():
    offenders = []
    for folder in ("modelgate", *sorted(MAPPED), "tests", "benchmarks", "infra"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                              for name in names if name.split(".")[0] in MAPPED]
    assert not offenders, offenders
