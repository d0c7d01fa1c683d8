"""`kbmap check`: a coverage gate for CI. Exit 0 when every condition holds, 1 with one line per
failed condition, 2 when the command itself is wrong (a usage error, an unknown technique,
catalog or environment, an unreadable baseline), so a pipeline tells "coverage regressed" from
"the gate is misconfigured".

The decision is app/coverage/gate.py's (pure); this module gathers its rows and renders its
outcomes as text, GitHub workflow commands or JUnit XML.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from app.cli.common import engine, settings
from app.cli.coverage import Catalogs, Domain, Env, Groups, Platforms, Tactics, Version

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.coverage.gate import Baseline, Conditions, Context, Outcome
    from app.coverage.models import TechniqueCoverage
    from app.history.models import Cause

FORMATS = ("text", "github", "junit")
PREFIX = "kbmap check"


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def check(
    catalog: Catalogs = None,
    domain: Domain = None,
    version: Version = None,
    platform: Platforms = None,
    tactic: Tactics = None,
    groups: Groups = None,
    env: Env = None,
    min_covered: Annotated[
        int | None, typer.Option(min=0, help="fail below N covered techniques")
    ] = None,
    min_effective: Annotated[
        int | None, typer.Option(min=0, help="fail below N effective techniques (needs --env)")
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option(help="technique ids that must be covered (effective with --env); commas"),
    ] = None,
    no_loss: Annotated[
        bool,
        typer.Option(
            "--no-loss",
            help="fail when a technique is lost: against --baseline, else the last change",
        ),
    ] = False,
    baseline: Annotated[
        Path | None, typer.Option(help="baseline file (from --save) that --no-loss compares to")
    ] = None,
    save: Annotated[
        Path | None, typer.Option(help="write this run's coverage as a baseline file")
    ] = None,
    format: Annotated[str, typer.Option("--format", help=", ".join(FORMATS))] = "text",
) -> None:
    """A coverage gate for CI: --min-covered, --min-effective, --require, --no-loss against a
    --baseline; --save writes one. Exit 0 pass, 1 failed (one line each), 2 usage error."""
    from app.core.errors import KbmapError
    from app.coverage.gate import Conditions, split_ids

    _usage(format, env, min_effective, no_loss, baseline)
    conditions = Conditions(
        min_covered=min_covered,
        min_effective=min_effective,
        require=split_ids(require or ()),
        no_loss=no_loss,
        environment=env,
    )
    if not conditions.asked() and save is None:
        _usage_error("no condition: give --min-covered, --min-effective, --require or --no-loss")
    try:
        code = _run(
            conditions, (catalog, platform, tactic, groups), domain, version, baseline, save, format
        )
    except KbmapError as exc:
        from app.cli.terminal import safe

        _usage_error(safe(exc, markup=False))
    _exit(code)


def _exit(code: int) -> NoReturn:
    """Leave with `code` (1 and 2 are this command's answer; the root returns it)."""
    raise typer.Exit(code)


def _usage(
    format: str, env: str | None, min_effective: int | None, no_loss: bool, baseline: Path | None
) -> None:
    """Flags that make no sense together: one line and exit 2, before any database work."""
    if format not in FORMATS:
        _usage_error(f"--format: unknown format {format!r}; known: {', '.join(FORMATS)}")
    if min_effective is not None and not env:
        _usage_error("--min-effective needs --env NAME (effective coverage is per environment)")
    if baseline is not None and not no_loss:
        _usage_error("--baseline is read by --no-loss only; add --no-loss")


def _usage_error(message: str) -> NoReturn:
    typer.echo(f"{PREFIX}: {message}", err=True)
    _exit(2)


def _run(
    conditions: Conditions,
    filters: tuple[list[str] | None, ...],
    domain: str | None,
    version: str | None,
    baseline_path: Path | None,
    save: Path | None,
    format: str,
) -> int:
    """Gather the rows, judge them, say so, save; the exit code."""
    from app.coverage import gate

    s = settings()
    rows, known, context = _gather(s, filters, domain, version, conditions.environment)
    _check_required(conditions, known, context)
    base = _read_baseline(baseline_path, s) if baseline_path else None
    warnings = gate.differences(base, context) if base else []
    if conditions.no_loss and base is None:
        base = _history_baseline(s, filters, domain, rows, context)
    outcomes = gate.evaluate(rows, conditions, known=known, baseline=base)
    saved = _save(save, rows, context) if save else None
    _render(format, outcomes, warnings, saved, rows, context)
    return 1 if gate.failed(outcomes) else 0


def _gather(
    s: Settings,
    filters: tuple[list[str] | None, ...],
    domain: str | None,
    version: str | None,
    env: str | None,
) -> tuple[list[TechniqueCoverage], list[str], Context]:
    """The technique rows of the scope, the release's active technique ids, and the context."""
    from sqlmodel import Session

    from app.cli.coverage import make_scope
    from app.coverage import service as coverage_service
    from app.coverage.gate import Context, Filters

    catalog, platform, tactic, groups = filters
    with Session(engine(s)) as session:
        scope = make_scope(
            session, domain, version, catalog, platform, tactic, groups, environment=env
        )
        rows = coverage_service.technique_rows(session, scope=scope, weights=s.coverage)
        facts = coverage_service.release_facts(session, release=scope.release)
        known = facts.index.active_ids()
        context = Context(
            domain=scope.release.domain,
            version=scope.release.version,
            catalogs=tuple(sorted(c.name for c in scope.catalogs)),
            environment=env,
            filters=Filters(platforms=platform or [], tactics=tactic or [], groups=groups or []),
        )
    return rows, known, context


def _check_required(conditions: Conditions, known: list[str], context: Context) -> None:
    """A --require id the release does not have is an error listing them all, never a pass."""
    from app.core.errors import InvalidInput, Location
    from app.coverage.gate import unknown_ids

    unknown = unknown_ids(conditions.require, known)
    if unknown:
        raise InvalidInput(
            f"not active techniques of ATT&CK {context.domain} {context.version}: "
            f"{', '.join(unknown)}",
            Location(field="--require"),
        )


def _read_baseline(path: Path, s: Settings) -> Baseline:
    """The baseline file, bounded like an upload and by the JSON depth limit."""
    from app.core.errors import Location, NotFound
    from app.core.limits import read_stream_bounded
    from app.coverage.gate import load_baseline

    if not path.is_file():
        raise NotFound("no such baseline file", Location(file=str(path)))
    with open(path, "rb") as fh:
        data = read_stream_bounded(fh, limit=s.limits.max_upload_bytes, name=str(path))
    return load_baseline(data, name=str(path), max_depth=s.limits.max_json_depth)


def _history_baseline(
    s: Settings,
    filters: tuple[list[str] | None, ...],
    domain: str | None,
    rows: list[TechniqueCoverage],
    context: Context,
) -> Baseline:
    """Coverage just before the scope's last recorded change, as a baseline: `--no-loss` with no
    file fails when the last change (the pull request's import) lost a technique."""
    from importlib.metadata import version

    from sqlmodel import Session

    from app.coverage.gate import Baseline
    from app.coverage.service import split_values
    from app.history import service as history_service

    catalogs = split_values(filters[0])
    if len(catalogs) > 1:
        _usage_error("--no-loss without --baseline follows one scope: give at most one --catalog")
    with Session(engine(s)) as session:
        scope = history_service.resolve_scope(
            session,
            catalog=catalogs[0] if catalogs else None,
            environment=context.environment,
            domain=domain,
        )
        cause, before = history_service.before_last(session, scope=scope)
    if any(filters[1:]):  # tactic, platform or group filters: the rows' techniques only
        kept = {r.id for r in rows}
        before = {t: v for t, v in before.items() if t in kept}
    typer.echo(f"{PREFIX}: --no-loss compares with {_described(cause, scope.scope)}", err=True)
    return Baseline(
        kbmap=version("kbmap"),
        at=cause.at if cause else datetime.now(UTC),
        domain=context.domain,
        version=context.version,
        catalogs=list(context.catalogs),
        environment=context.environment,
        filters=context.filters,
        covered=sorted(before),
        effective=sorted(t for t, v in before.items() if v[1] == "effective"),
    )


def _described(cause: Cause | None, scope: str) -> str:
    if cause is None:
        return f"nothing: {scope} has no history yet"
    what = cause.catalog or cause.environment or cause.release or ""
    who = f" by {cause.actor}" if cause.actor else ""
    when = cause.at.strftime("%Y-%m-%d %H:%M")
    return f"{scope} before snapshot {cause.snapshot} ({cause.cause} {what}{who}, {when} UTC)"


def _save(path: Path, rows: list[TechniqueCoverage], context: Context) -> Path:
    """Write the baseline through a temporary file, so a failed write leaves the old one."""
    from importlib.metadata import version

    from app.core.errors import InvalidInput, Location
    from app.coverage.gate import dump_baseline, make_baseline

    doc = make_baseline(rows, context, kbmap=version("kbmap"), at=datetime.now(UTC))
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(dump_baseline(doc))
        tmp.replace(path)
    except OSError as exc:
        raise InvalidInput(
            f"cannot write the baseline: {exc.strerror}", Location(file=str(path))
        ) from exc
    return path


def _render(
    format: str,
    outcomes: list[Outcome],
    warnings: list[str],
    saved: Path | None,
    rows: list[TechniqueCoverage],
    context: Context,
) -> None:
    from app.coverage.gate import failed

    bad = failed(outcomes)
    if format == "junit":
        typer.echo(junit(outcomes, warnings))
        for w in warnings:
            typer.echo(f"{PREFIX}: warning: {w}", err=True)
    elif format == "github":
        for w in warnings:
            typer.echo(github_command("warning", w))
        for o in bad:
            typer.echo(github_command("error", o.message))
    else:
        for w in warnings:
            typer.echo(f"{PREFIX}: warning: {w}", err=True)
        for o in bad:
            typer.echo(f"{PREFIX}: FAILED {o.message}")
    if not bad and format != "junit":
        typer.echo(summary_line(outcomes, rows, context, saved))
    elif saved is not None:
        typer.echo(f"{PREFIX}: baseline written to {saved}", err=True)


def summary_line(
    outcomes: list[Outcome], rows: list[TechniqueCoverage], context: Context, saved: Path | None
) -> str:
    """The one line a passing run prints."""
    covered = sum(1 for r in rows if r.covered)
    parts = [
        f"{PREFIX}: OK, {len(outcomes)} condition{'s' if len(outcomes) != 1 else ''} passed",
        f"{covered} covered",
    ]
    if context.environment:
        effective = sum(1 for r in rows if r.state == "effective")
        parts.append(f"{effective} effective in environment {context.environment}")
    parts.append(f"ATT&CK {context.domain} {context.version}")
    parts.append(f"catalogs: {', '.join(context.catalogs) or 'none'}")
    if saved is not None:
        parts.append(f"baseline written to {saved}")
    return " · ".join(parts)


def github_command(kind: str, message: str) -> str:
    """A GitHub workflow command (`::error title=…::…`), escaped as the runner reads it: %, CR
    and LF in the message; also : and , in a property."""
    return f"::{kind} title={_escape_property(PREFIX)}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def junit(outcomes: list[Outcome], warnings: list[str]) -> str:
    """A JUnit XML report: one testcase per condition, a <failure> for each that failed, the
    baseline warnings in <system-err>. xml.etree escapes every value."""
    import xml.etree.ElementTree as ET

    bad = sum(1 for o in outcomes if not o.passed)
    suites = ET.Element("testsuites", name=PREFIX, tests=str(len(outcomes)), failures=str(bad))
    suite = ET.SubElement(
        suites, "testsuite", name=PREFIX, tests=str(len(outcomes)), failures=str(bad), errors="0"
    )
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", classname="kbmap.check", name=o.name)
        if o.passed:
            ET.SubElement(case, "system-out").text = o.message
        else:
            ET.SubElement(case, "failure", message=o.message, type="coverage").text = o.message
    if warnings:
        ET.SubElement(suite, "system-err").text = "\n".join(warnings)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)
