"""Names and references: MODEL, MODEL:N, MODEL@ALIAS, and the registry's error types.

Version numbers are ASCII digits only: Python's ``str.isdigit`` and ``int`` also accept other
scripts' digits (full-width "１", superscript "²"), which would let two spellings name one version
or fail deep inside with "invalid literal for int()".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$", re.ASCII)
VERSION_NUMBER = re.compile(r"^[0-9]+$", re.ASCII)
_REF = re.compile(r"^(?P<model>[^:@]+)(?::(?P<version>[^:@]*)|@(?P<alias>[^:@]*))?$")
EXPECTED = "expected MODEL, MODEL:VERSION (an integer from 1, ASCII digits) or MODEL@ALIAS"


class RegistryError(RuntimeError):
    """The registry cannot do what was asked."""


class InvalidReference(RegistryError, ValueError):
    """A model name, alias or MODEL[:N|@ALIAS] reference is malformed."""


def is_version_number(text: str) -> bool:
    """True for ASCII digits naming an integer from 1 (a folder name under versions/)."""
    return bool(VERSION_NUMBER.match(text)) and int(text) >= 1


def validate_name(name: str, what: str = "model name") -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidReference(
            f"invalid {what} {name!r}: use 1-64 lowercase letters, digits and dashes, "
            "starting and ending with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class ModelRef:
    """MODEL (latest version), MODEL:N, or MODEL@ALIAS."""

    model: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.model}:{self.version}"
        return f"{self.model}@{self.alias}" if self.alias else self.model


def parse_ref(ref: str) -> ModelRef:
    match = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if not match:
        raise InvalidReference(f"malformed model reference {ref!r}: {EXPECTED}")
    model = validate_name(match["model"])
    if match["version"] is not None:
        if not is_version_number(match["version"]):
            raise InvalidReference(
                f"malformed model reference {ref!r}: version {match['version']!r} is not an "
                f"integer from 1; {EXPECTED}"
            )
        return ModelRef(model, version=int(match["version"]))
    if match["alias"] is not None:
        return ModelRef(model, alias=validate_name(match["alias"], "alias"))
    return ModelRef(model)
