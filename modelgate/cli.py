"""The ``modelgate`` command line (the contract in docs/design.md).

Heavy imports (TensorFlow, Prefect) happen inside the commands so ``--help`` and ``stack`` are fast.
Exit codes of ``run``: 0 the pipeline ran (whatever the verdict), 1 validation stopped it, 2 any
other failure.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from modelgate import quiet

# Before any command imports TensorFlow: its start-up notices stay off stderr.
quiet.install()

app = typer.Typer(
    help="Take pretrained NLP models from raw data to gated, versioned models in S3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="The local stack: SeaweedFS S3, a Prefect server and its worker, on 127.0.0.1.")
registry_app = typer.Typer(help="Browse registered model versions.")
app.add_typer(stack_app, name="stack")
app.add_typer(registry_app, name="registry")

EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _print_json(payload) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))


# -- stack -----------------------------------------------------------------------------------
@stack_app.command("up")
def stack_up(as_json: JsonFlag = False) -> None:
    """Start SeaweedFS, the Prefect server and a worker (only what is not already running)."""
    from modelgate import stack
    from modelgate.settings import load_settings

    try:
        status = stack.stack_up(load_settings())
    except stack.StackError as exc:
        _fail(str(exc))
    _print_json(status.to_dict()) if as_json else typer.echo(status.describe())


@stack_app.command("down")
def stack_down(as_json: JsonFlag = False) -> None:
    """Stop the local stack's processes."""
    from modelgate import stack
    from modelgate.settings import load_settings

    status = stack.stack_down(load_settings())
    _print_json(status.to_dict()) if as_json else typer.echo(status.describe())


@stack_app.command("status")
def stack_status(as_json: JsonFlag = False) -> None:
    """Show each service of the local stack; exits 1 when any is not running."""
    from modelgate import stack
    from modelgate.settings import load_settings

    status = stack.stack_status(load_settings())
    _print_json(status.to_dict()) if as_json else typer.echo(status.describe())
    if not status.all_running:
        raise typer.Exit(EXIT_REFUSED)


# -- run -------------------------------------------------------------------------------------
@app.command("run")
def run(
    pipeline: Annotated[str, typer.Argument(help="intent-ood, nli, toxicity or job-similarity")],
    profile: Annotated[str, typer.Option(help="default, or a named profile such as quick")] = "default",
    config: Annotated[Optional[str], typer.Option("--config", help="YAML file merged over the defaults")] = None,
    overrides: Annotated[
        Optional[list[str]], typer.Option("--set", help="key.path=value override; repeatable")
    ] = None,
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, help="train under N seeds and report the spread (nothing registered)")
    ] = 1,
    task_runner: Annotated[str, typer.Option("--task-runner", help="with --seeds: local, dask or dask://HOST:PORT")] = "local",
    as_json: JsonFlag = False,
) -> None:
    """Run a pipeline end to end: ingest, validate, train, evaluate, gate, register."""
    from modelgate.runner import run_pipeline

    if seeds > 1:
        from modelgate.seeds import run_seeds

        spread = run_seeds(pipeline, seeds, profile, config, overrides or [], task_runner)
        if as_json and not spread.error:
            _print_json(spread.summary)
        else:
            typer.echo(spread.describe(), err=bool(spread.error))
        raise typer.Exit(spread.exit_code)

    outcome = run_pipeline(pipeline, profile=profile, config_file=config, overrides=overrides or [])
    if outcome.error:  # the root cause first, then where its details are (tracebacks: the log)
        typer.echo(f"error: {outcome.error_line()}", err=True)
        if outcome.details_line():
            typer.echo(outcome.details_line(), err=True)
    if as_json:
        _print_json(outcome.to_dict())
    elif not outcome.error:
        typer.echo(outcome.describe())
    raise typer.Exit(outcome.exit_code)


# -- tune ------------------------------------------------------------------------------------
@app.command("tune")
def tune(
    pipeline: Annotated[str, typer.Argument(help="intent-ood, nli, toxicity or job-similarity")],
    trials: Annotated[int, typer.Option("--trials", help="trials the study holds at the end (finished ones count)")],
    space: Annotated[Optional[str], typer.Option("--space", help="search-space YAML (default: the packaged one)")] = None,
    profile: Annotated[str, typer.Option(help="the base config's profile, e.g. quick")] = "default",
    config: Annotated[Optional[str], typer.Option("--config", help="YAML file merged over the defaults")] = None,
    overrides: Annotated[
        Optional[list[str]], typer.Option("--set", help="key.path=value override of the base config; repeatable")
    ] = None,
    parallel: Annotated[int, typer.Option(min=1, help="trials run at the same time")] = 1,
    task_runner: Annotated[str, typer.Option("--task-runner", help="local, dask or dask://HOST:PORT")] = "local",
    output: Annotated[Optional[str], typer.Option("--output", help="where the best config goes (default PIPELINE-best.yaml)")] = None,
) -> None:
    """Search the config for the best validation score (Optuna); write the best config as YAML."""
    from modelgate.tuning.runner import run_tune

    outcome = run_tune(pipeline, trials, space, profile, config, overrides or [], parallel, task_runner, output)
    typer.echo(outcome.describe(), err=bool(outcome.error))
    raise typer.Exit(outcome.exit_code)


# -- deploy ----------------------------------------------------------------------------------
@app.command("deploy")
def deploy(
    names: Annotated[
        Optional[list[str]], typer.Argument(help="FLOW/DEPLOYMENT names (default: every one in prefect.yaml)")
    ] = None,
    project_dir: Annotated[Optional[str], typer.Option(help="directory holding prefect.yaml")] = None,
    gpu_slots: Annotated[int, typer.Option(min=1, help="task runs tagged 'gpu' allowed at once")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Register prefect.yaml's deployments (pipelines and promotion) with the Prefect server.

    Creates the local process work pool and the 'gpu' concurrency limit first; starts the local
    Prefect server when PREFECT_API_URL is not set. `modelgate stack up` starts the worker.
    """
    from pathlib import Path

    from modelgate.stack import deploy as deployments
    from modelgate.runner import ensure_services
    from modelgate.settings import load_settings

    try:
        root = deployments.find_project_dir(Path(project_dir) if project_dir else None)
        settings = load_settings()
        api_url = ensure_services(settings)
        result = deployments.deploy(api_url, root, names or None, gpu_slots)
    except Exception as exc:
        _fail(str(exc))
    _print_json(result.to_dict()) if as_json else typer.echo(result.describe())


# -- registry --------------------------------------------------------------------------------
@registry_app.command("list")
def registry_list(
    model: Annotated[Optional[str], typer.Argument(help="a model name; all models when omitted")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List registered versions with their gate decision and headline metrics."""
    from modelgate.registry.view import list_rows, format_rows

    try:
        rows = list_rows(model)
    except Exception as exc:  # storage or name errors: one clear line, exit 2
        _fail(str(exc))
    _print_json(rows) if as_json else typer.echo(format_rows(rows))


@registry_app.command("show")
def registry_show(
    ref: Annotated[str, typer.Argument(help="MODEL, MODEL:VERSION or MODEL@ALIAS")],
    as_json: JsonFlag = False,
) -> None:
    """Show one version's manifest (verdict included), or an alias and its history."""
    from modelgate.registry.view import format_show, show

    try:
        payload = show(ref)
    except Exception as exc:
        _fail(str(exc))
    _print_json(payload) if as_json else typer.echo(format_show(payload))


@registry_app.command("gc")
def registry_gc(
    model: Annotated[Optional[str], typer.Argument(help="a model name; all models when omitted")] = None,
    older_than: Annotated[
        str, typer.Option("--older-than", help="grace period: only half versions untouched this long (90s, 30m, 24h, 7d)")
    ] = "24h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be removed; remove nothing")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove the files of half-registered versions (a claim and files, no manifest).

    Only prefixes with no manifest where nothing was written within --older-than are touched, so
    an in-flight registration is left alone; committed versions never are. The claim stays,
    marked collected, so the number is never reused.
    """
    from modelgate.registry import gc

    try:
        grace = gc.parse_duration(older_than)
    except ValueError as exc:
        _fail(f"--older-than: {exc}")
    try:
        report = gc.collect(_registry(), model, grace, dry_run)
    except Exception as exc:  # storage or name errors: one clear line, exit 2
        _fail(str(exc))
    _print_json(report.to_dict()) if as_json else typer.echo(report.describe())


# -- gate / promote / rollback ----------------------------------------------------------------
def _registry():
    from modelgate.registry import Registry

    return Registry.from_settings()


@app.command("gate")
def gate(
    ref: Annotated[str, typer.Argument(help="MODEL:VERSION, the candidate")],
    against: Annotated[str, typer.Option(help="alias whose version is the baseline")] = "production",
    as_json: Annotated[bool, typer.Option("--json", help="Print the full verdict as JSON.")] = False,
) -> None:
    """CI gate: the stored verdict, re-checked against the version in production now.

    Decides from verified content only: the signature (when MODELGATE_SIGNING_KEY or
    MODELGATE_SIGNING_KEY_FILE is set), every file's sha256, and metrics.json (the manifest must
    agree with it). Exits 0 pass, 1 refused (failed gate or failed verification), 2 could not
    decide; always prints a one-line reason.
    """
    from modelgate.registry.promotion import check_gate

    try:
        decision = check_gate(_registry(), ref, against=against)
    except Exception as exc:  # settings or storage could not even be set up
        _fail(f"could not decide: {exc}")
    typer.echo(decision.line(), err=as_json)
    if as_json:
        _print_json(decision.to_dict())
    raise typer.Exit(decision.exit_code)


def _move_alias(action, event_type: str = "promote"):
    from modelgate.registry.promotion import PromotionError, PromotionRefused
    from modelgate.registry import RegistryError
    from modelgate.storage import StorageError

    try:
        move = action()
    except PromotionRefused as exc:
        _fail(f"refused: {exc}", EXIT_REFUSED)
    except (PromotionError, RegistryError, StorageError, ValueError) as exc:
        _fail(str(exc))
    _emit_alias_move(move, event_type)
    return move


def _emit_alias_move(move, event_type: str) -> None:
    """A Prefect event for automations (modelgate/events.py); the move stands even if it fails."""
    from modelgate import events

    if not move.changed:
        return
    try:
        if events.emit_alias_move(move.to_dict(), event_type) is not None:
            events.flush()
    except Exception as exc:  # the Prefect API is down or refuses: say so, keep the exit code
        typer.echo(f"warning: no Prefect event sent for the {event_type}: {exc}", err=True)


@app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(help="MODEL:VERSION to promote")],
    to: Annotated[str, typer.Option("--to", help="the alias to move, e.g. production")],
    force: Annotated[bool, typer.Option(help="promote even though its gate failed")] = False,
    reason: Annotated[str, typer.Option(help="why; required with --force")] = "",
    actor: Annotated[Optional[str], typer.Option(help="who (default: MODELGATE_ACTOR, GITHUB_ACTOR or user@host)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Move an alias to a version (If-Match on its ETag) and record an audit event.

    Exits 0 moved (or already there), 1 refused (failed gate, not forced), 2 error or lost race.
    """
    from modelgate.registry import promotion

    move = _move_alias(
        lambda: promotion.promote(_registry(), ref, to, actor=actor, reason=reason, force=force)
    )
    _print_json(move.to_dict()) if as_json else typer.echo(move.line())


@app.command("rollback")
def rollback(
    model: Annotated[str, typer.Argument(help="model name")],
    alias: Annotated[str, typer.Option(help="the alias to move back")] = "production",
    to: Annotated[Optional[int], typer.Option("--to", help="version (default: the one below the last promotion still in effect)")] = None,
    force: Annotated[bool, typer.Option(help="allow a version whose gate failed")] = False,
    reason: Annotated[str, typer.Option(help="why")] = "",
    actor: Annotated[Optional[str], typer.Option(help="who (default: MODELGATE_ACTOR, GITHUB_ACTOR or user@host)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Move an alias back to an earlier version; recorded like a promotion.

    Without --to it undoes the last promotion still in effect: the alias history is replayed as
    a stack (each promotion pushes its version, each rollback pops back to its target) and the
    alias moves to the version below the top. So two rollbacks in a row after promotions of 1, 2
    and 3 go to 2, then to 1; a third is refused (nothing earlier). The target is verified like
    a promotion, and one whose gate failed needs --force --reason.
    """
    from modelgate.registry import promotion

    move = _move_alias(
        lambda: promotion.rollback(
            _registry(), model, alias, to, actor=actor, reason=reason, force=force
        ),
        "rollback",
    )
    _print_json(move.to_dict()) if as_json else typer.echo(move.line())


# -- open ------------------------------------------------------------------------------------
@app.command("open")
def open_link(
    target: Annotated[str, typer.Argument(help="MODEL:VERSION, MODEL@ALIAS or a Prefect flow-run id")],
    what: Annotated[str, typer.Argument(help="report, docs, or a file of the version (e.g. report/model_card.md)")] = "report",
    print_only: Annotated[bool, typer.Option("--print", help="print the link without opening a browser")] = False,
) -> None:
    """Open a version's report, its Data Docs or one of its files: a presigned URL made now
    (15 minutes), or for the Data Docs a local copy of the whole site (file://)."""
    import webbrowser

    from modelgate.links import LinkError, link_for
    from modelgate.registry import RegistryError
    from modelgate.storage import StorageError

    try:
        link = link_for(_registry(), target, what)
    except (LinkError, RegistryError, StorageError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(link)
    if not print_only:
        webbrowser.open(link)


# -- predict ---------------------------------------------------------------------------------
@app.command("predict")
def predict(
    ref: Annotated[str, typer.Argument(help="MODEL, MODEL:VERSION or MODEL@ALIAS")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="texts to score")] = None,
    pair: Annotated[
        Optional[tuple[str, str]],
        typer.Option("--pair", help="one sentence pair, e.g. PREMISE HYPOTHESIS for nli"),
    ] = None,
    input_file: Annotated[
        Optional[str],
        typer.Option("--file", help="inputs, one per line (tab-separated for pairs)"),
    ] = None,
    embed: Annotated[
        bool, typer.Option("--embed", help="write embeddings instead of predictions (encoders)")
    ] = False,
    output: Annotated[
        Optional[str], typer.Option("--output", help="where --embed writes (.npy or .csv)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Load a registered version (hashes verified, safe mode) and predict."""
    from modelgate.predict import PredictRequest, load_predictor, run_request

    try:
        request = PredictRequest.build(texts or [], pair, input_file, embed, output)
        predictor = load_predictor(ref)
        result = run_request(predictor, request)
    except Exception as exc:
        _fail(str(exc))
    if as_json:
        _print_json(result.to_json())
    else:
        typer.echo(result.describe())


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
