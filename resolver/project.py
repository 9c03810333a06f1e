"""Which project a command works on, found the way git and uv find theirs.

A project is the folder holding `envs/team.toml`. `--project DIR` names it; otherwise the working
directory and then each parent is tried, nearest first. With none found, the working directory
is the project (a single machine resolving for itself needs no team file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from resolver.errors import InputError, Location

TEAM_FILE = Path("envs") / "team.toml"


@dataclass(frozen=True)
class Project:
    root: Path
    team_file: Path | None
    how: str  # how it was chosen, for the "project: ..." line

    def describe(self) -> str:
        return f"project: {self.root} ({self.how})"


def find_project(cwd: Path, explicit: Path | None = None) -> Project:
    """The project for a command run in `cwd`; `explicit` is `--project DIR` (relative to `cwd`)."""
    if explicit is not None:
        root = (cwd / explicit).resolve()
        if not root.is_dir():
            raise InputError(
                "not a directory",
                location=Location("--project"),
                value=str(explicit),
                hint="name the folder that holds envs/team.toml",
            )
        team = root / TEAM_FILE
        return Project(root, team if team.is_file() else None, "--project")
    here = cwd.resolve()
    for folder in (here, *here.parents):
        team = folder / TEAM_FILE
        if team.is_file():
            how = "envs/team.toml here" if folder == here else f"envs/team.toml found above {here}"
            return Project(folder, team, how)
    return Project(here, None, f"no {TEAM_FILE} in {here} or above")
