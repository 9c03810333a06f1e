"""Property tests (README, "Guarantees" 8): the parsers and the solver on any input give a result or
one of the tool's own errors, and the solver never returns a combination that breaks a matrix rule.

Deterministic for CI: `derandomize=True` and no example database, so every run tries the same
examples. Regressions found here live as table-driven cases (tests/cases/, tests/data/bad_inputs/)
and as explicit examples below.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.config import TeamConfig, team_from_mapping
from resolver.errors import ConfigError, ConstraintError, HostFileError, InputError, NoCompatibleCombination
from resolver.explain.failure import headline
from resolver.host.hostfile import host_from_mapping
from resolver.host.model import ComputeCapability, Gpu, Host
from resolver.matrix.arch import ArchTarget
from resolver.matrix.load import load_matrix
from resolver.matrix.model import Matrix
from resolver.solve.request import PREFERENCE_KEYS, Request, merge_constraints, parse_constraint
from resolver.solve.search import Resolution, solve

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
SOLVER = settings(FUZZ, max_examples=1500)

# --- values: realistic, odd, and hostile --------------------------------------------------------

ODD_TEXT = st.text(alphabet=st.sampled_from("0123456789.tx_- \n\t+<>=!~;[]@'\"٣१a"), max_size=12)
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8)
JSON_LIKE = st.recursive(
    JSON_SCALARS | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

CCS = ["3.5", "5.0", "5.2", "6.0", "6.1", "7.0", "7.2", "7.5", "8.0", "8.6", "8.7", "8.9", "9.0"]
CCS += ["10.0", "10.1", "10.3", "11.0", "12.0", "12.1", "13.0", "1.0", "99.9", "2.0", "12.9"]
DRIVERS = ["418.87.01", "440.33", "450.80.02", "470.82.01", "525.60.13", "535.104.05", "550.54.15"]
DRIVERS += ["560.94", "570.86.15", "580.65.06", "590.44.01", "610.43.02", "999", "1"]
PYTHONS = ["3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.13t", "3.14", "3.14t", "3.15", "3.6"]
GLIBCS = ["2.17", "2.26", "2.28", "2.31", "2.34", "2.35", "2.39", "1.0", "9.99"]
MACOS = ["10.9", "10.15", "11.0", "12.3", "13.5", "14.5", "15.1", "26.0"]

VALID_HOST: dict[str, Any] = {
    "os": "linux",
    "arch": "x86_64",
    "os_version": "ubuntu 22.04",
    "libc": "glibc",
    "libc_version": "2.35",
    "python": "3.11",
    "nvidia_driver": "570.86.15",
    "cuda_driver_api": "12.8",
    "gpus": [{"index": 0, "name": "NVIDIA A100", "compute_capability": "8.0", "memory_mib": 81920}],
    "cpu_count": 16,
    "memory_mib": 65536,
    "disk_free_mib": 100000,
    "sources": {"nvidia_driver": "nvml"},
}


@st.composite
def mutated_host(draw: st.DrawFn) -> Any:
    """A valid host dict with one field replaced, removed or added (also inside the first GPU)."""
    data = {**VALID_HOST, "gpus": [dict(VALID_HOST["gpus"][0])]}
    inside_gpu = draw(st.booleans())
    target: dict[str, Any] = data["gpus"][0] if inside_gpu else data
    key = draw(st.sampled_from([*target, "unknown_key"]))
    if draw(st.integers(0, 5)) == 0:
        target.pop(key, None)
    else:
        target[key] = draw(JSON_LIKE | ODD_TEXT | st.sampled_from(CCS + DRIVERS + PYTHONS + GLIBCS))
    return data


@given(st.one_of(JSON_LIKE, mutated_host()))
@FUZZ
@example({**VALID_HOST, "python": "3.١١"})  # regression: a non-ASCII digit passed the regex
@example({**VALID_HOST, "libc_version": "٢.٣٥"})
@example({**VALID_HOST, "python": "3.11\n"})  # `$` matched before a final newline: now rejected
@example({"os": "macos", "arch": "arm64", "os_version": "١٤.٥"})
def test_host_from_mapping_returns_a_host_or_host_file_error(data: Any) -> None:
    try:
        host = host_from_mapping(data, "fuzz.json")
    except HostFileError as exc:
        assert exc.exit_code == 2 and "fuzz.json" in exc.render()
        return
    assert host_from_mapping(host.to_json(), "again.json") == host
    # What the solver later reads as versions must parse as versions.
    for text in (host.libc_version, host.python and host.python.rstrip("t")):
        if text is not None:
            Version(text)
    if host.os == "macos" and host.os_version is not None:
        Version(host.os_version)
    if host.nvidia_driver is not None:
        assert host.driver is not None


# --- constraints ---------------------------------------------------------------------------------

NAMES = ["torch", "Torch", "python", "transformers", "torchvision", "numpy", "torch_audio"]
OPERATORS = [">=", "<", "==", "~=", "!=", "===", ","]
CONSTRAINT_PARTS = st.sampled_from(
    [*NAMES, *OPERATORS, "2.4", "2.7.1", "3.11", "*", ".*", "[cuda]", "; sys_platform == 'linux'", " @ ", " "]
)


@given(
    st.lists(st.one_of(st.text(max_size=20), st.lists(CONSTRAINT_PARTS, max_size=6).map("".join)), max_size=4)
)
@FUZZ
@example(["torch>=2.4", "torch<2.7"])
@example(["python===3.11"])
def test_constraints_parse_or_raise_constraint_error(texts: list[str]) -> None:
    for text in texts:
        try:
            name, spec = parse_constraint(text)
        except ConstraintError as exc:
            assert exc.exit_code == 2 and "Hint:" in exc.render()
            continue
        assert isinstance(spec, SpecifierSet) and name in (
            "torch",
            "torchvision",
            "torchaudio",
            "transformers",
            "python",
        )
    try:
        merged = merge_constraints(texts)
    except ConstraintError:
        return
    assert set(merged) <= {"torch", "torchvision", "torchaudio", "transformers", "python"}


# --- the team file -------------------------------------------------------------------------------

TOML_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
TOML_LIKE = st.recursive(
    TOML_SCALARS.filter(lambda v: v is not None) | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
VALID_TEAM: dict[str, Any] = {
    "packages": ["accelerate", "torchvision"],
    "constraints": ["torch>=2.4"],
    "formats": ["poetry", "conda"],
    "variant": "cu126",
    "python": "3.11",
    "allow_ptx": False,
    "prefer": ["variant", "torch", "transformers"],
    "matrix": ["internal-matrix"],
    "indexes": {"pytorch": "https://mirror.example.org/whl", "general": "https://mirror.example.org/simple"},
    "channels": ["conda-forge"],
    "conda": {"channel_alias": "https://mirror.example.org/conda"},
}
TEAM_KEYS = [*VALID_TEAM, "allow_unverified", "allow_cpu_fallback", "requirements", "targets", "inventory"]


@st.composite
def mutated_team(draw: st.DrawFn) -> dict[str, Any]:
    data = dict(VALID_TEAM)
    for _ in range(draw(st.integers(1, 2))):
        key = draw(st.sampled_from([*TEAM_KEYS, "unknown"]))
        value = draw(
            TOML_LIKE | st.lists(ODD_TEXT, max_size=3) | st.sampled_from(["cpu", "cu128", "3.12t", []])
        )
        data[key] = value
    return data


@given(
    st.one_of(
        st.dictionaries(st.sampled_from([*TEAM_KEYS, "x"]) | st.text(max_size=6), TOML_LIKE), mutated_team()
    )
)
@FUZZ
@example({**VALID_TEAM, "matrix": ["bad\x00path"]})  # regression: a NUL byte crashed Path.resolve()
@example({**VALID_TEAM, "variant": "cuda12"})
def test_team_from_mapping_returns_config_or_config_error(data: dict[str, Any]) -> None:
    try:
        team = team_from_mapping(data, "team.toml", Path("/nonexistent/envs"))
    except ConfigError as exc:
        assert exc.exit_code == 2 and "team.toml" in exc.render()
        return
    except InputError as exc:  # pragma: no cover - every team-file error should be a ConfigError
        pytest.fail(f"InputError without the team file: {exc.render()}")
    assert isinstance(team, TeamConfig)


# --- the solver ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


@st.composite
def hosts(draw: st.DrawFn) -> Host:
    os_name = draw(st.sampled_from(["linux", "linux", "linux", "windows", "macos"]))
    usual = {"linux": ["x86_64", "x86_64", "aarch64"], "windows": ["x86_64"], "macos": ["arm64", "x86_64"]}
    odd = draw(st.integers(0, 9)) == 0  # now and then a platform no wheel exists for
    arch = draw(st.sampled_from(["x86_64", "aarch64", "arm64"] if odd else usual[os_name]))
    libc = draw(st.sampled_from([None, "glibc", "glibc", "musl"])) if os_name == "linux" else None
    gpu_ccs = draw(
        st.lists(
            st.sampled_from(CCS) | st.builds(lambda a, b: f"{a}.{b}", st.integers(0, 20), st.integers(0, 9)),
            max_size=3,
        )
        if os_name != "macos"
        else st.just([])
    )
    gpus = tuple(Gpu(i, f"gpu{i}", ComputeCapability.parse(cc)) for i, cc in enumerate(gpu_ccs))
    driver_only: bool = draw(st.booleans())
    return Host(
        os=os_name,
        arch=arch,
        os_version=draw(st.sampled_from([None, *MACOS])) if os_name == "macos" else None,
        libc=libc,
        libc_version=draw(st.sampled_from([None, *GLIBCS])) if libc == "glibc" else None,
        python=draw(st.sampled_from([None, *PYTHONS])),
        # a driver without a GPU list happens (no nvidia-smi); a GPU list without a driver is odd
        nvidia_driver=draw(st.sampled_from([None, *DRIVERS])) if gpus or driver_only else None,
        gpus=gpus,
    )


CONSTRAINTS = [
    "torch>=2.4",
    "torch<2.8",
    "torch==2.7.1",
    "torch>=2.4,<2.7",
    "torch==2.15.0",
    "torch<1.0",
    "transformers<4.50",
    "transformers==4.57.6",
    "transformers>=5",
    "torchvision>=0.20",
    "torchaudio==2.5.0",
    "python>=3.10",
    "python<3.10",
    "python==3.12",
]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    return Request(
        constraints=merge_constraints(draw(st.lists(st.sampled_from(CONSTRAINTS), max_size=2) | st.just([]))),
        variant=draw(
            st.sampled_from([None] * 6 + ["cpu", "cu118", "cu126", "cu128", "cu130", "rocm6.3", "cu999"])
        ),
        python=draw(st.sampled_from([None] * 8 + PYTHONS)),
        allow_ptx=draw(st.booleans()),
        allow_unverified=draw(st.booleans()),
        allow_cpu_fallback=draw(st.booleans()),
        packages=tuple(
            draw(st.lists(st.sampled_from(["torchvision", "torchaudio", "accelerate"]), unique=True))
        ),
        prefer=draw(st.sampled_from(list(itertools.permutations(PREFERENCE_KEYS)))),
    )


def _runs(
    target: ArchTarget, device: ComputeCapability, tegra: frozenset[ComputeCapability], same: Any
) -> str:
    """The binary-compatibility rule, restated: cubin same major and minor <= the device's (Tegra
    parts only their own); PTX JIT-compiles on any device at or above it."""
    if target.cc in tegra or device in tegra:
        cubin = same(target.cc, device)
    else:
        cubin = target.cc.major == device.major and target.cc.minor <= device.minor
    if cubin:
        return "cubin"
    return "ptx" if target.ptx and target.cc <= device else "none"


def violations(host: Host, matrix: Matrix, request: Request, res: Resolution) -> list[str]:
    """Every matrix rule the resolution breaks, checked from the matrix data directly."""
    found: list[str] = []
    release, platform = res.release, host.platform
    build = matrix.build(release, res.variant)
    if build is None or platform not in build.arch or platform not in release.python:
        return [f"no build/wheels of {release.version}+{res.variant} for {platform}"]
    allow_unverified = request.allow_unverified
    if request.variant is not None and res.variant != request.variant:
        found.append(f"variant {res.variant} is not the requested {request.variant}")
    # Driver and GPUs.
    if build.kind == "cuda":
        assert build.cuda is not None
        floor = matrix.driver_floor(build.cuda, host.os)
        if host.driver is None:
            found.append("CUDA build without a driver")
        elif floor is None:
            if not allow_unverified:
                found.append("unknown driver floor accepted without --allow-unverified")
        elif host.driver < floor:
            found.append(f"driver {host.nvidia_driver} < {floor} for CUDA {build.cuda}")
        rule = matrix.tegra_rule
        for gpu in host.gpus:
            ways = {
                _runs(t, gpu.compute_capability, rule.tegra, rule.same_part) for t in build.arch[platform]
            }
            if "cubin" not in ways and not ("ptx" in ways and request.allow_ptx):
                found.append(f"GPU {gpu.compute_capability} not covered ({sorted(ways)})")
    elif build.kind == "cpu":
        if host.has_nvidia_gpu and request.variant != "cpu" and not request.allow_cpu_fallback:
            found.append("silent CPU fallback on a GPU host")
    elif request.variant != res.variant:
        found.append("ROCm build not asked for")
    # Platform, Python, libc, macOS.
    python = res.python
    if python not in release.python[platform]:
        found.append(f"no Python {python} wheel")
    if not release.requires_python.contains(Version(python.rstrip("t")), prereleases=True):
        found.append(f"Python {python} outside requires_python {release.requires_python}")
    wanted_python = request.python or host.python
    if wanted_python is not None and python != wanted_python:
        found.append(f"Python {python} is not the host's/requested {wanted_python}")
    if host.os == "linux":
        if host.libc == "musl":
            found.append("manylinux wheel on musl")
        floor_glibc = release.glibc_min.get(host.arch)
        if (
            floor_glibc is not None
            and host.libc_version is not None
            and Version(host.libc_version) < floor_glibc
        ):
            found.append(f"glibc {host.libc_version} < {floor_glibc}")
    macos_min = release.macos_min if host.os == "macos" else None
    if macos_min is not None and host.os_version is not None and Version(host.os_version) < macos_min:
        found.append(f"macOS {host.os_version} < {macos_min}")
    # transformers.
    tf = res.transformers
    if not tf.requires_python.contains(Version(python.rstrip("t")), prereleases=True):
        found.append(f"transformers {tf.version} requires Python {tf.requires_python}")
    if not tf.torch.contains(release.version, prereleases=True):
        found.append(f"transformers {tf.version} wants torch{tf.torch}")
    if tf.runtime_min_torch is not None and release.version < tf.runtime_min_torch:
        found.append(f"transformers {tf.version} disables torch below {tf.runtime_min_torch}")
    pinned_tf = any(s.operator in ("==", "===") for s in request.spec("transformers"))
    if (tf.yanked or tf.version.is_prerelease) and not pinned_tf:
        found.append(f"yanked/pre-release transformers {tf.version}")
    # Unverified rows.
    pair = matrix.companions.get(release.version)
    wanted = [n for n in ("torchvision", "torchaudio") if n in request.packages or n in request.constraints]
    if not allow_unverified:
        if release.unverified or build.is_unverified_on(platform) or tf.unverified:
            found.append("unverified matrix row without --allow-unverified")
        if pair is not None and pair.unverified and wanted:
            found.append("unverified companion pairing without --allow-unverified")
    # Constraints.
    checks: Mapping[str, Version | None] = {
        "torch": release.version,
        "transformers": tf.version,
        "torchvision": res.torchvision,
        "torchaudio": res.torchaudio,
        "python": Version(python.rstrip("t")),
    }
    for name, spec in request.constraints.items():
        value = checks[name]
        if value is None:
            if name in wanted:
                found.append(f"{name} has no release but is constrained")
        elif not spec.contains(value, prereleases=True):
            found.append(f"{name} {value} outside {name}{spec}")
    for name in wanted:
        if checks[name] is None:
            found.append(f"the team installs {name} and none pairs with torch {release.version}")
    return found


@given(hosts(), requests())
@SOLVER
@example(  # regression: an unknown host Python ignored python constraints
    Host(os="linux", arch="x86_64", libc="glibc", libc_version="2.35"),
    Request(constraints=merge_constraints(["python<3.10"])),
)
@example(  # ... and, with none left, said "no wheels for Python None"
    Host(os="linux", arch="x86_64", libc="glibc", libc_version="2.35"),
    Request(constraints=merge_constraints(["python<3.7"])),
)
def test_solver_result_obeys_every_matrix_rule(matrix: Matrix, host: Host, request: Request) -> None:
    try:
        resolution = solve(host, matrix, request)
    except NoCompatibleCombination as exc:
        summary = headline(exc)
        assert exc.exit_code == 3 and summary and "None" not in summary, summary
        event("no valid combination")
        return
    event("resolved")
    assert violations(host, matrix, request, resolution) == []


def test_the_rule_check_is_not_vacuous(matrix: Matrix) -> None:
    """The independent check flags a resolution taken from one host and applied to a weaker one."""
    strong = Host(
        os="linux",
        arch="x86_64",
        libc="glibc",
        libc_version="2.35",
        python="3.11",
        nvidia_driver="580.65.06",
        gpus=(Gpu(0, "H100", ComputeCapability(9, 0)),),
    )
    resolution = solve(strong, matrix, Request())
    assert violations(strong, matrix, Request(), resolution) == []
    weak = Host(
        os="linux",
        arch="x86_64",
        libc="glibc",
        libc_version="2.17",
        python="3.11",
        nvidia_driver="418.87.01",
        gpus=(Gpu(0, "GTX 980", ComputeCapability(5, 2)),),
    )
    found = " | ".join(violations(weak, matrix, Request(), resolution))
    assert "driver 418.87.01" in found and "GPU 5.2 not covered" in found and "glibc 2.17" in found
    cpu_only = solve(strong, matrix, Request(variant="cpu"))
    assert "silent CPU fallback" in " | ".join(violations(strong, matrix, Request(), cpu_only))
    constrained = Request(constraints=merge_constraints(["torch<2.0"]))
    assert "outside torch<2.0" in " | ".join(violations(strong, matrix, constrained, resolution))
