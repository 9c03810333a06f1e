"""Every `STACK_RESOLVER_*` environment variable: those the tool reads and those its tests and nox
sessions read, in one list, so that a misspelled one is named on stderr rather than ignored (a
mistyped host override would otherwise leave the probes describing the real machine)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's import is not needed at run time here
if TYPE_CHECKING:
    from collections.abc import Mapping

PREFIX = "STACK_RESOLVER_"

# Read by the tool (docs/usage.md and docs/commands.md say what each does).
READ_BY_THE_TOOL = frozenset(
    PREFIX + name
    for name in (
        # host overrides (host/overrides.py)
        "HOST",
        "NO_GPU",
        "NVIDIA_DRIVER",
        "CUDA_DRIVER_API",
        "GPUS",
        "OS_VERSION",
        "GLIBC",
        "PYTHON",
        "AMD_GPUS",
        "INTEL_GPUS",
        "ROCM_VERSION",
        # indexes, channels and the network
        "INDEX_URL",
        "PYTORCH_INDEX",
        "CONDA_CHANNELS",
        "CONDA_CHANNEL_ALIAS",
        "HTTP_TIMEOUT",
        "HTTP_RETRIES",
        "HTTP_BACKOFF",
        "HTTP_MAX_BACKOFF",
        "MIRROR",
        # tools, caches and the matrix
        "POETRY",
        "TOOL_TIMEOUT",
        "CACHE_DIR",
        "MATRIX",
        "NO_MATRIX_CACHE",
        "NO_REPLAY",
        "CRASH_AT",  # the crash-safety tests' fault point (fsutil.py)
    )
)
# Read by the tests and the nox sessions, which run the tool with them set.
READ_BY_THE_HARNESS = frozenset(
    PREFIX + name for name in ("GPU_CAPTURE", "GPU_PYTHON", "TEST_WHEELS", "UPDATE_SNAPSHOTS")
)
KNOWN = READ_BY_THE_TOOL | READ_BY_THE_HARNESS


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each `STACK_RESOLVER_*` variable in `environ` that nothing reads, naming the
    known ones it most likely meant."""
    unknown = sorted(name for name in environ if name.startswith(PREFIX) and name not in KNOWN)
    warnings = []
    for name in unknown:
        meant = ["$" + m for m in likely_meant(name)]
        hint = f"; did you mean {_one_of(meant)}?" if meant else ""
        warnings.append(f"${name} is not a variable stack-resolver reads, so it changes nothing{hint}")
    return warnings


def _one_of(names: list[str]) -> str:
    """`A`, `A or B`, `A, B or C`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def likely_meant(name: str, most: int = 4) -> list[str]:
    """The tool's variables that share a word with `name` (DRIVER_VERSION: NVIDIA_DRIVER, and the
    other *_VERSION ones), else those spelled nearly alike (GPUSS: GPUS); the closest first. The
    shared prefix is left out of the comparison: it makes every name look alike."""
    import difflib  # only when a variable is unknown

    suffix = name.removeprefix(PREFIX)
    words = set(suffix.split("_"))
    known = {k.removeprefix(PREFIX): k for k in READ_BY_THE_TOOL}

    def closeness(candidate: str) -> float:
        return difflib.SequenceMatcher(None, suffix, candidate).ratio()

    sharing = [k for k in known if words & set(k.split("_"))]
    if not sharing:
        sharing = [k for k in known if closeness(k) >= 0.75]
    ranked = sorted(sharing, key=lambda k: (-len(words & set(k.split("_"))), -closeness(k), k))
    return [known[k] for k in ranked[:most]]
