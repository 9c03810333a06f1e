"""Audit an upgrade before the bump: what the proposed specs (or a refreshed matrix) do to every
target of the team, compared with the current team lock.

Per target: still valid (maybe with a variant switch or other changes) or broken, with the causes
in GPU terms; optionally the package-level diff of a scratch lock; and a grid of every candidate
torch release against every target. Nothing here writes into `envs/`.
"""

from __future__ import annotations

import dataclasses
import html
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver import files
from resolver.config import TeamConfig
from resolver.errors import ExitCode, NoCompatibleCombination
from resolver.explain.failure import causes as failure_causes
from resolver.explain.failure import fixes_of, headline
from resolver.explain.fixes import Fix
from resolver.index.client import IndexClient
from resolver.lock.poetry.tool import LOCKFILE, PYPROJECT, PoetryTool
from resolver.matrix.model import Matrix
from resolver.solve.reasons import CompanionOutside, ConstraintExcludes
from resolver.solve.request import Request, merge_constraints, tighten
from resolver.solve.search import Resolution, solve
from resolver.sources import Indexes
from resolver.team.solve import solve_team, target_request
from resolver.team.targets import Target

OK, CHANGED, BROKEN = "ok", "changed", "broken"
# Releases the proposal itself excludes are not why a target breaks.
_PROPOSAL_REASONS = (ConstraintExcludes, CompanionOutside)
COLOURS = {OK: "#2e7d32", CHANGED: "#f9a825", BROKEN: "#c62828"}


@dataclass(frozen=True)
class PackageDiff:
    added: Mapping[str, str]
    removed: Mapping[str, str]
    upgraded: Mapping[str, tuple[str, str]]
    downgraded: Mapping[str, tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "added": dict(self.added),
            "removed": dict(self.removed),
            "upgraded": {k: list(v) for k, v in self.upgraded.items()},
            "downgraded": {k: list(v) for k, v in self.downgraded.items()},
        }


@dataclass(frozen=True)
class TargetAudit:
    name: str
    status: str  # ok | changed | broken
    current: Mapping[str, Any] | None
    proposed: Mapping[str, Any] | None
    changes: tuple[str, ...]
    causes: tuple[str, ...]
    packages: PackageDiff | None = None
    # what would make a broken target valid again (each re-solved), the proposal itself kept
    fixes: tuple[Fix, ...] = ()


@dataclass(frozen=True)
class GridCell:
    status: str
    text: str  # what the cell shows ("cu126") and its tooltip reason


@dataclass(frozen=True)
class Audit:
    proposal: tuple[str, ...]
    targets: tuple[TargetAudit, ...]
    versions: Mapping[str, str | None] | None
    team_causes: tuple[str, ...]
    grid_releases: tuple[str, ...]
    grid: Mapping[str, Mapping[str, GridCell]]

    @property
    def broken(self) -> bool:
        return any(t.status == BROKEN for t in self.targets) or bool(self.team_causes)

    @property
    def exit_code(self) -> int:
        return ExitCode.AUDIT_BROKEN if self.broken else ExitCode.OK


def parse_proposal(specs: Sequence[str]) -> dict[str, SpecifierSet]:
    return merge_constraints(specs, origin="proposal")


def _entry(resolution: Resolution) -> dict[str, Any]:
    return {
        "torch": resolution.torch,
        "variant": resolution.variant,
        "torchvision": resolution.pin(resolution.torchvision),
        "torchaudio": resolution.pin(resolution.torchaudio),
        "transformers": str(resolution.transformers.version),
        "python": resolution.python,
    }


def _changes(current: Mapping[str, Any] | None, proposed: Mapping[str, Any]) -> list[str]:
    if current is None:
        return ["not in the current team lock"]
    changes = []
    if current.get("variant") != proposed["variant"]:
        changes.append(f"variant {current.get('variant')} -> {proposed['variant']}")
    for key in ("torch", "torchvision", "torchaudio", "transformers", "python"):
        if current.get(key) != proposed[key]:
            changes.append(f"{key} {current.get(key)} -> {proposed[key]}")
    return changes


def audit_team(
    targets: Sequence[Target],
    matrix: Matrix,
    base: Request,
    proposal: Sequence[str],
    current: Mapping[str, Any] | None,
) -> Audit:
    """The matrix-level audit (no locking): per target validity and changes, and the grid."""
    extra = parse_proposal(proposal)
    current_targets: Mapping[str, Any] = (current or {}).get("targets", {})
    per_target: dict[str, Resolution | NoCompatibleCombination] = {}
    for target in targets:
        request = tighten(target_request(base, target), extra)
        try:
            per_target[target.name] = solve(target.host, matrix, request)
        except NoCompatibleCombination as exc:
            per_target[target.name] = exc
    versions: Mapping[str, str | None] | None = None
    team_causes: tuple[str, ...] = ()
    team_choice: Mapping[str, Resolution] = {}
    if all(isinstance(v, Resolution) for v in per_target.values()):
        try:
            team = solve_team(targets, matrix, tighten(base, extra))
            versions, team_choice = team.versions, team.targets
        except NoCompatibleCombination as exc:
            team_causes = tuple(failure_causes(exc)) or (headline(exc),)
    audits = []
    for target in targets:
        outcome = per_target[target.name]
        now = current_targets.get(target.name)
        if isinstance(outcome, NoCompatibleCombination):
            # Releases the proposal itself excludes are not why a target breaks.
            wanted = extra.get("torch")
            telling = (
                tuple(
                    dataclasses.replace(rejection, reasons=kept)
                    for rejection in outcome.rejections
                    if (wanted is None or rejection.torch in wanted)
                    and (kept := tuple(r for r in rejection.reasons if not isinstance(r, _PROPOSAL_REASONS)))
                )
                or outcome.rejections
            )
            shown = NoCompatibleCombination(telling, reasons=outcome.reasons)
            causes = (headline(outcome), *failure_causes(shown))
            fixes = tuple(fix for fix in fixes_of(outcome) if not _reverts(fix, extra))
            audits.append(TargetAudit(target.name, BROKEN, now, None, (), causes, fixes=fixes))
            continue
        chosen = team_choice.get(target.name, outcome)
        proposed = _entry(chosen)
        changes = _changes(now, proposed)
        variant_changed = now is not None and now.get("variant") != proposed["variant"]
        status = CHANGED if variant_changed else OK
        audits.append(TargetAudit(target.name, status, now, proposed, tuple(changes), ()))
    releases, grid = audit_grid(targets, matrix, base, extra, current_targets)
    return Audit(tuple(proposal), tuple(audits), versions, team_causes, releases, grid)


def _reverts(fix: Fix, proposal: Mapping[str, SpecifierSet]) -> bool:
    """Whether the fix drops a spec of the proposal: not doing the bump is no fix for it."""
    dropped = fix.apply.get("drop_constraint")
    return isinstance(dropped, str) and parse_proposal([dropped]).keys() <= proposal.keys()


def audit_grid(
    targets: Sequence[Target],
    matrix: Matrix,
    base: Request,
    extra: Mapping[str, SpecifierSet],
    current_targets: Mapping[str, Any],
) -> tuple[tuple[str, ...], dict[str, dict[str, GridCell]]]:
    """Targets x candidate torch releases (from the oldest currently locked to the newest)."""
    locked = [Version(str(t["torch"]).split("+")[0]) for t in current_targets.values() if t.get("torch")]
    floor = min(locked) if locked else Version("0")
    others = {k: v for k, v in extra.items() if k != "torch"}
    releases = sorted((r.version for r in matrix.torch if r.version >= floor), reverse=False)
    grid: dict[str, dict[str, GridCell]] = {}
    for target in targets:
        row: dict[str, GridCell] = {}
        request = tighten(target_request(base, target), others)
        now = current_targets.get(target.name, {})
        for version in releases:
            pinned = tighten(request, {"torch": SpecifierSet(f"=={version}")})
            try:
                res = solve(target.host, matrix, pinned)
            except NoCompatibleCombination as exc:
                row[str(version)] = GridCell(BROKEN, headline(exc))
                continue
            if now and now.get("variant") != res.variant:
                row[str(version)] = GridCell(CHANGED, f"{res.variant} (now {now.get('variant')})")
            else:
                row[str(version)] = GridCell(OK, res.variant)
        grid[target.name] = row
    return tuple(str(v) for v in releases), grid


# --- the package-level diff ------------------------------------------------------------------


def locked_versions(lock_text: str, origin: str = "poetry.lock") -> dict[str, str]:
    data = files.parse_toml(lock_text, origin, "lock file")
    packages = data.get("package", [])
    return {
        str(p["name"]): str(p.get("version"))
        for p in (packages if isinstance(packages, list) else [])
        if isinstance(p, dict) and "name" in p
    }


def diff_packages(old: Mapping[str, str], new: Mapping[str, str]) -> PackageDiff:
    upgraded, downgraded = {}, {}
    for name in sorted(set(old) & set(new)):
        if old[name] == new[name]:
            continue
        pair = (old[name], new[name])
        if Version(new[name]) > Version(old[name]):
            upgraded[name] = pair
        else:
            downgraded[name] = pair
    return PackageDiff(
        added={n: new[n] for n in sorted(set(new) - set(old))},
        removed={n: old[n] for n in sorted(set(old) - set(new))},
        upgraded=upgraded,
        downgraded=downgraded,
    )


def with_package_diffs(
    audit: Audit,
    targets: Sequence[Target],
    matrix: Matrix,
    base: Request,
    team: TeamConfig,
    indexes: Indexes,
    client: IndexClient,
    envs: Path,
    tool: PoetryTool | None = None,
) -> Audit:
    """Lock the proposed set into a scratch copy of envs/ and diff it against the current locks.
    envs/ itself is only read."""
    from resolver.team.lock import lock_team

    valid = [t for t in targets if next(a for a in audit.targets if a.name == t.name).status != BROKEN]
    if not valid or audit.team_causes:
        return audit
    scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-audit-"))
    try:
        scratch_envs = scratch / "envs"
        scratch_envs.mkdir()
        for target in valid:
            source = envs / target.name
            if source.is_dir():
                (scratch_envs / target.name).mkdir()
                for name in (PYPROJECT, LOCKFILE, "resolution.json"):
                    if (source / name).exists():
                        shutil.copy2(source / name, scratch_envs / target.name / name)
        extra = parse_proposal(audit.proposal)
        # The scratch copy is this run's own: no envs/ lock, no recovery, nothing of envs/ written.
        lock_team(
            valid,
            matrix,
            tighten(base, extra),
            team.packages,
            ("poetry",),
            scratch_envs,
            indexes,
            client,
            tool=tool,
        )
        updated = []
        for item in audit.targets:
            if item.status == BROKEN:
                updated.append(item)
                continue
            old_lock = envs / item.name / LOCKFILE
            new_lock = scratch_envs / item.name / LOCKFILE
            old = (
                locked_versions(files.read_text(old_lock, "lock file"), str(old_lock))
                if old_lock.exists()
                else {}
            )
            new = locked_versions(files.read_text(new_lock, "lock file"), str(new_lock))
            updated.append(dataclasses.replace(item, packages=diff_packages(old, new)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dataclasses.replace(audit, targets=tuple(updated))


# --- rendering -------------------------------------------------------------------------------


def audit_json(audit: Audit) -> dict[str, Any]:
    return {
        "proposal": list(audit.proposal),
        "status": BROKEN if audit.broken else OK,
        "versions": dict(audit.versions) if audit.versions else None,
        "team_causes": list(audit.team_causes),
        "targets": {
            t.name: {
                "status": t.status,
                "current": dict(t.current) if t.current else None,
                "proposed": dict(t.proposed) if t.proposed else None,
                "changes": list(t.changes),
                "causes": list(t.causes),
                "fixes": [fix.to_json() for fix in t.fixes],
                "packages": t.packages.to_json() if t.packages else None,
            }
            for t in audit.targets
        },
        "grid": {
            "releases": list(audit.grid_releases),
            "targets": {
                name: {rel: {"status": c.status, "reason": c.text} for rel, c in row.items()}
                for name, row in audit.grid.items()
            },
        },
    }


def render_table(audit: Audit) -> str:
    width = max([len(t.name) for t in audit.targets] + [6])
    lines = [f"Audit of: {' '.join(audit.proposal) or '(no new specs)'}", ""]
    lines.append(f"{'target':{width}s}  {'status':8s}  details")
    lines.append(f"{'-' * width}  {'-' * 8}  {'-' * 40}")
    for t in audit.targets:
        if t.status == BROKEN:
            detail = t.causes[0] if t.causes else ""
        else:
            detail = "; ".join(t.changes) or "no change"
        lines.append(f"{t.name:{width}s}  {t.status.upper():8s}  {detail}")
        for cause in t.causes[1:4]:
            lines.append(f"{'':{width}s}  {'':8s}    {cause}")
        for fix in t.fixes[:3]:
            lines.append(f"{'':{width}s}  {'':8s}    to make it work: {fix.summary}")
        if t.packages:
            p = t.packages
            parts = [f"+{len(p.added)}", f"-{len(p.removed)}", f"^{len(p.upgraded)}", f"v{len(p.downgraded)}"]
            lines.append(f"{'':{width}s}  {'':8s}    packages: {' '.join(parts)} (added, removed, up, down)")
    for cause in audit.team_causes:
        lines.append(f"team: {cause}")
    lines.append("")
    lines.append("Result: " + ("BROKEN (exit 4)" if audit.broken else "every target stays valid"))
    return "\n".join(lines) + "\n"


def render_markdown(audit: Audit) -> str:
    out = [f"## Upgrade audit: `{' '.join(audit.proposal) or 'matrix update'}`", ""]
    verdict = "**Breaks at least one target.**" if audit.broken else "Every target stays valid."
    out += [verdict, ""]
    if audit.versions:
        out.append(
            "Proposed team version set: " + ", ".join(f"{k} {v}" for k, v in audit.versions.items() if v)
        )
        out.append("")
    out += ["| target | status | current | proposed | details |", "| --- | --- | --- | --- | --- |"]
    for t in audit.targets:
        cur = f"{t.current.get('torch')} ({t.current.get('variant')})" if t.current else "—"
        new = f"{t.proposed['torch']} ({t.proposed['variant']})" if t.proposed else "—"
        detail = (
            "<br>".join(html.escape(c) for c in (t.causes if t.status == BROKEN else t.changes))
            or "no change"
        )
        out.append(f"| {t.name} | {t.status} | {cur} | {new} | {detail} |")
    diffs = [t for t in audit.targets if t.packages]
    if diffs:
        out += ["", "### Package changes", ""]
        for t in diffs:
            assert t.packages is not None
            p = t.packages
            out.append(f"**{t.name}**")
            out.append("")
            for label, items in (("added", p.added), ("removed", p.removed)):
                for name, version in items.items():
                    out.append(f"- {label} `{name} {version}`")
            for label, pairs in (("upgraded", p.upgraded), ("downgraded", p.downgraded)):
                for name, (old, new) in pairs.items():
                    out.append(f"- {label} `{name}` {old} → {new}")
            if not (p.added or p.removed or p.upgraded or p.downgraded):
                out.append("- no package changes")
            out.append("")
    for cause in audit.team_causes:
        out.append(f"- team: {html.escape(cause)}")
    return "\n".join(out).rstrip() + "\n"


def render_svg(audit: Audit) -> str:
    """Targets as rows, candidate torch releases as columns; colour = status, tooltip = reason."""
    cell_w, cell_h, left, top = 64, 26, 170, 60
    releases = audit.grid_releases
    names = list(audit.grid)
    width = left + cell_w * len(releases) + 20
    height = top + cell_h * len(names) + 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        "<title>stack-resolver upgrade audit: targets x torch releases</title>",
    ]
    for col, release in enumerate(releases):
        x = left + col * cell_w + cell_w / 2
        parts.append(f'<text x="{x}" y="{top - 10}" text-anchor="middle">{html.escape(release)}</text>')
    for row, name in enumerate(names):
        y = top + row * cell_h
        parts.append(
            f'<text x="{left - 8}" y="{y + cell_h * 0.65}" text-anchor="end">{html.escape(name)}</text>'
        )
        for col, release in enumerate(releases):
            cell = audit.grid[name][release]
            x = left + col * cell_w
            tooltip = html.escape(f"{name} @ torch {release}: {cell.status}: {cell.text}")
            parts.append(
                f'<g class="cell" data-target="{html.escape(name)}" data-release="{release}" '
                f'data-status="{cell.status}"><title>{tooltip}</title>'
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{COLOURS[cell.status]}"/></g>'
            )
    legend_y = top + cell_h * len(names) + 25
    for i, (status, colour) in enumerate(COLOURS.items()):
        label = {OK: "ok", CHANGED: "ok, variant changes", BROKEN: "broken"}[status]
        x = left + i * 150
        parts.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 18}" y="{legend_y}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
