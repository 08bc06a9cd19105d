"""`modelgate registry gc`: remove the files of half-registered versions.

A registration that dies between its claim and its manifest leaves ``versions/N/.claim`` and the
files uploaded so far (a model can be ~100 MB). gc removes those files when the prefix has no
manifest and nothing in it was written within the grace period (``--older-than``), so an
in-flight registration is never touched. A committed version (one with a manifest) is never
touched. The claim itself stays, rewritten with ``collected_at``: numbers are never reused, and a
registration that stalled past the grace period and wakes up is refused at commit.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

from botocore.exceptions import BotoCoreError, ClientError

from modelgate.registry.refs import NAME, is_version_number, validate_name
from modelgate.registry.versions import CLAIM, MANIFEST, ROOT, Registry
from modelgate.storage import NotFound, StorageError

DEFAULT_GRACE = timedelta(hours=24)
_DURATION = re.compile(r"^([0-9]+)(s|m|h|d)$", re.ASCII)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """'90s', '30m', '24h', '7d' -> timedelta."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a whole number and a unit, e.g. 90s, 30m, 24h, 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


@dataclass
class HalfVersion:
    model: str
    version: int
    files: int  # objects besides the claim
    bytes: int
    newest_write: str
    removed: bool = False


@dataclass
class GcReport:
    dry_run: bool
    older_than_s: float
    collected: list[HalfVersion] = field(default_factory=list)  # removed, or would be (dry run)
    too_recent: list[HalfVersion] = field(default_factory=list)  # within the grace period: kept

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"{verb} {h.files} files ({h.bytes} bytes) of half version {h.model}:{h.version}"
            for h in self.collected
        ] + [
            f"kept half version {h.model}:{h.version}: written {h.newest_write}, within the grace period"
            for h in self.too_recent
        ]
        total = sum(h.bytes for h in self.collected)
        lines.append(f"{len(self.collected)} half versions, {total} bytes {verb}")
        return "\n".join(lines)


def _objects(registry: Registry, prefix: str) -> list[dict]:
    """Key, size and last-modified time of every object under prefix."""
    store = registry.store
    try:
        pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix)
        return [item for page in pages for item in page.get("Contents", []) or []]
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"list objects under {store.uri(prefix)} failed: {exc}") from exc


def _models(registry: Registry, model: str | None) -> list[str]:
    if model:
        return [validate_name(model)]
    names = [p[len(ROOT) + 1:].strip("/") for p in registry.store.list_prefixes(f"{ROOT}/")]
    return sorted(n for n in names if NAME.match(n))


def _half_version(registry: Registry, model: str, version: int) -> HalfVersion | None:
    """The uncommitted version at N, or None when it is committed or already collected."""
    prefix = f"{ROOT}/{model}/versions/{version}/"
    objects = _objects(registry, prefix)
    names = {o["Key"][len(prefix):] for o in objects}
    if MANIFEST in names:
        return None
    data = [o for o in objects if o["Key"][len(prefix):] != CLAIM]
    if not data:
        return None  # only the claim: nothing to remove
    newest = max(o["LastModified"] for o in objects)
    return HalfVersion(model, version, len(data), sum(o["Size"] for o in data), newest.isoformat())


def collect(
    registry: Registry, model: str | None = None, older_than: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
) -> GcReport:
    """Remove (or, dry run, list) the files of every half version older than the grace period."""
    report = GcReport(dry_run, older_than.total_seconds())
    cutoff = datetime.now(timezone.utc) - older_than
    for name in _models(registry, model):
        versions_prefix = f"{ROOT}/{name}/versions/"
        numbers = [p[len(versions_prefix):].strip("/") for p in registry.store.list_prefixes(versions_prefix)]
        for number in sorted(int(n) for n in numbers if is_version_number(n)):
            half = _half_version(registry, name, number)
            if half is None:
                continue
            if datetime.fromisoformat(half.newest_write) > cutoff:
                report.too_recent.append(half)
                continue
            if not dry_run and not _remove(registry, half):
                continue  # committed at the last moment: a version now
            half.removed = not dry_run
            report.collected.append(half)
    return report


def _remove(registry: Registry, half: HalfVersion) -> bool:
    """Mark the claim collected (a late commit is then refused), re-check that no manifest
    arrived, and delete every file but the claim."""
    prefix = f"{ROOT}/{half.model}/versions/{half.version}/"
    store = registry.store
    try:
        claim = store.get_json(prefix + CLAIM)
    except NotFound:
        claim = {}
    store.put_json(prefix + CLAIM, {**(claim if isinstance(claim, dict) else {}),
                                    "collected_at": datetime.now(timezone.utc).isoformat()})
    if store.exists(prefix + MANIFEST):
        return False  # committed at the last moment: a version now, never touched
    for item in _objects(registry, prefix):
        if item["Key"] != prefix + CLAIM:
            store.delete(item["Key"])
    return True
