"""What `modelgate registry list/show` print: rows and manifests, as JSON or as text."""

from __future__ import annotations

from typing import Any

from modelgate.registry.signing import signature_status
from modelgate.registry.versions import Registry, parse_ref
from modelgate.summary import checks_rows, metrics_rows, text_table

HEADLINE = 3  # metrics shown per row in `registry list`


def list_rows(model: str | None = None, registry: Registry | None = None) -> list[dict[str, Any]]:
    registry = registry or Registry.from_settings()
    models = [model] if model else registry.list_models()
    rows = []
    for name in models:
        aliases = _aliases_by_version(registry, name)
        versions = registry.list_versions(name)
        if model and not versions:
            raise LookupError(f"model {name!r} has no version in the registry")
        for number in versions:
            manifest = registry.get_manifest(name, number)
            verdict = manifest.get("verdict", {})
            rows.append({
                "model": name,
                "version": number,
                "created_at": manifest.get("created_at"),
                "status": manifest.get("status"),
                "decision": verdict.get("decision"),
                "aliases": aliases.get(number, []),
                "metrics": {k: v.get("value") for k, v in manifest.get("metrics", {}).items()},
            })
    return rows


def _aliases_by_version(registry: Registry, model: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    prefix = f"registry/{model}/aliases/"
    for key in registry.store.list_keys(prefix):
        alias = key[len(prefix):].removesuffix(".json")
        record = registry.get_alias(model, alias)
        if record is not None:
            found.setdefault(record.version, []).append(alias)
    return found


def format_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no registered versions"
    table = []
    for row in rows:
        metrics = ", ".join(
            f"{k}={v:.4f}" for k, v in list(row["metrics"].items())[:HEADLINE] if v is not None
        )
        table.append([
            f"{row['model']}:{row['version']}", row["status"] or "-", row["decision"] or "-",
            ",".join(row["aliases"]) or "-", (row["created_at"] or "")[:19], metrics,
        ])
    return text_table(["version", "status", "gate", "aliases", "created", "metrics"], table)


def show(ref: str, registry: Registry | None = None) -> dict[str, Any]:
    """A version's manifest; for MODEL@ALIAS also the alias record and its history."""
    registry = registry or Registry.from_settings()
    parsed = parse_ref(ref)
    version = registry.resolve(parsed)
    payload: dict[str, Any] = {
        "ref": str(parsed),
        "uri": version.uri,
        "signature": signature_status(version.manifest, registry.signing_key),
        "manifest": version.manifest,
    }
    if parsed.alias is not None:
        payload["alias"] = registry.get_alias(parsed.model, parsed.alias).to_dict()
    return payload


def format_show(payload: dict[str, Any]) -> str:
    manifest = payload["manifest"]
    verdict = manifest.get("verdict", {})
    lines = [
        f"{manifest['model']}:{manifest['version']}  status {manifest.get('status')}  "
        f"created {manifest.get('created_at')}",
        f"location: {payload['uri']}",
        f"signature: {payload['signature']}",
        f"git commit: {manifest.get('git_commit')}   backend: {manifest.get('keras_backend')}   "
        f"device: {manifest.get('training', {}).get('device')}",
        f"prefect flow run: {manifest.get('prefect_flow_run_id')}",
        "",
        text_table(["metric", "value", "95% interval"], metrics_rows(manifest.get("metrics", {}))),
        "",
        f"gate: {verdict.get('summary', verdict.get('decision'))}",
    ]
    if verdict.get("checks"):
        lines.append(text_table(
            ["kind", "metric", "rule", "observed", "95% interval", "result"], checks_rows(verdict["checks"])
        ))
    datasets = manifest.get("datasets", {})
    if datasets:
        lines += ["", "datasets:"] + [
            f"  {k}: {v.get('uri') if isinstance(v, dict) else v}" for k, v in datasets.items()
        ]
    lines += ["", f"files: {len(manifest.get('files', {}))} (sha256 in the manifest)"]
    if "alias" in payload:
        alias = payload["alias"]
        lines += ["", f"alias {alias['alias']} -> version {alias['version']} (history, oldest first):"]
        lines.append(format_history(alias["history"]))
    return "\n".join(lines)


def format_history(events: list[dict[str, Any]]) -> str:
    """An alias's moves as a table: when, what, from which version to which, who and why."""
    rows = [
        [
            event.get("at", ""),
            event.get("event", "alias-set") + (" (forced)" if event.get("forced") else ""),
            "-" if event.get("previous_version") is None else str(event["previous_version"]),
            str(event.get("version")),
            event.get("actor", ""),
            event.get("reason", ""),
        ]
        for event in events
    ]
    return text_table(["at", "event", "from", "to", "actor", "reason"], rows)
