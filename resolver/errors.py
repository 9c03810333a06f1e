"""The tool's own exceptions and the exit codes they map to: the one place both are defined.

Each error renders as one paragraph: what is wrong, where (file, line, key), the bad value,
and a hint. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resolver.host.model import Host
    from resolver.matrix.model import Matrix
    from resolver.solve.reasons import Reason, Rejection
    from resolver.solve.request import Request


class ExitCode(IntEnum):
    """What the process's exit status means: one meaning each (scripts and CI depend on them)."""

    OK = 0
    EXTERNAL_FAILURE = 1  # an external tool (Poetry, pip, py-rattler) or a package index failed
    BAD_INPUT = 2  # a file, flag, variable or constraint is malformed or cannot be meant
    NO_SOLUTION = 3  # no valid combination for the host and the request
    AUDIT_BROKEN = 4  # an audit found a target the proposed change breaks
    CHECK_FAILED = 5  # a check fell short: a doctor requirement, a verify or check finding
    INTERRUPTED = 130  # SIGINT, SIGTERM or SIGHUP: the run stopped and left nothing half-written
    OUTPUT_CLOSED = 141  # the reader of stdout went away (`| head`): 128 + SIGPIPE, as a shell shows


class ResolverError(Exception):
    """Base of every error the tool reports without a traceback."""

    exit_code: ExitCode = ExitCode.EXTERNAL_FAILURE

    def render(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Location:
    """Where bad input sits: a file, optionally a line and a dotted key."""

    file: str
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        text = self.file
        if self.line is not None:
            text += f":{self.line}"
        if self.key:
            text += f" [{self.key}]"
        return text


class InputError(ResolverError):
    """Bad input from the user: a file, a flag, a constraint. Exit status 2."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        value: object = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.location = location
        self.value = value
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(f"{self.location}:")
        parts.append(self.message)
        if self.value is not None:
            parts.append(f"(got {self.value!r})")
        text = " ".join(parts)
        if not text.endswith("."):
            text += "."
        if self.hint:
            text += f" Hint: {self.hint}"
        return text


class HostFileError(InputError):
    """A host JSON file (or inline host table) is malformed."""


class ConstraintError(InputError):
    """A constraint string such as "torch>=2.4,<2.7" cannot be parsed or names an unmanaged package."""


class ConfigError(InputError):
    """`envs/team.toml` is malformed."""


@dataclass(frozen=True)
class MatrixProblem:
    """One problem found while loading a matrix directory."""

    location: Location
    message: str
    value: object = None
    hint: str | None = None

    def render(self) -> str:
        text = f"{self.location}: {self.message}"
        if self.value is not None:
            text += f" (got {self.value!r})"
        if not text.endswith("."):
            text += "."
        if self.hint:
            text += f" Hint: {self.hint}"
        return text


class MatrixError(InputError):
    """The compatibility matrix is malformed; carries every problem found."""

    def __init__(self, problems: Sequence[MatrixProblem]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0]
        super().__init__(first.message, location=first.location, value=first.value, hint=first.hint)

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class NoCompatibleCombination(ResolverError):
    """The solver found nothing valid. Exit status 3.

    Carries the causes as data only: every rejected candidate (`rejections`, best first), the
    reasons not tied to one candidate (`reasons`: a Python outside the constraint, a team that
    pulls apart, an unsolvable conda environment), and what was solved (`host`, `matrix`,
    `request`) so `resolver/explain/` can name the binding chain and try fixes.
    """

    exit_code = ExitCode.NO_SOLUTION

    def __init__(
        self,
        rejections: Sequence[Rejection] = (),
        *,
        reasons: Sequence[Reason] = (),
        host: Host | None = None,
        matrix: Matrix | None = None,
        request: Request | None = None,
    ) -> None:
        self.rejections = tuple(rejections)
        self.reasons = tuple(reasons)
        self.host = host
        self.matrix = matrix
        self.request = request
        super().__init__(f"no valid combination ({len(self.rejections)} candidates rejected)")


class ExternalToolError(ResolverError):
    """An external program (Poetry, pip, conda-lock) or a package index failed."""

    exit_code = ExitCode.EXTERNAL_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        return self.message + (f" Hint: {self.hint}" if self.hint else "")


class WriteError(ResolverError):
    """A file could not be written (a full disk, no permission, a read-only filesystem); nothing
    was half-written. Exit status 1: the machine, not the input, is at fault."""

    exit_code = ExitCode.EXTERNAL_FAILURE

    def __init__(self, path: str, reason: str, *, hint: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.path}: cannot write: {self.reason}; nothing was changed." + (
            f" Hint: {self.hint}" if self.hint else ""
        )
