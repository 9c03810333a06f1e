"""Explanations: the headline names the binding chain, and every fix (or upgrade) shown works.

Table cases: each tests/data/explain/*.toml holds a host, a request and the exact headline and
fixes (or, with a solution, the upgrades) `resolve --dry-run --json` must print. The property test
applies every fix to generated hosts and requests and solves again.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings

from resolver import cli
from resolver.errors import NoCompatibleCombination
from resolver.explain.failure import headline
from resolver.explain.fixes import apply_change, build_rank, upgrades
from resolver.explain.render import failure_json
from resolver.host.hostfile import host_from_mapping
from resolver.host.model import Host
from resolver.matrix.load import Matrix, load_matrix
from resolver.solve.reasons import GfxUnchecked, Unavailable
from resolver.solve.request import Request, merge_constraints
from resolver.solve.search import solve
from tests.solve.test_fuzz import hosts, requests

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = sorted((Path(__file__).parents[1] / "data" / "explain").glob("*.toml"))


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


def _run(tmp_path: Path, data: dict[str, Any], *extra: str) -> tuple[int, str, str]:
    host_file = tmp_path / "host.json"
    host_file.write_text(json.dumps(data["host"]), encoding="utf-8")
    team = tmp_path / "team.toml"
    team.write_text("", encoding="utf-8")
    argv = ["resolve", "--host", str(host_file), "--dry-run", "--team", str(team), *extra]
    request = data.get("request", {})
    for text in request.get("constraints", []):
        argv += ["--constraint", text]
    if request.get("variant"):
        argv += ["--variant", request["variant"]]
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out, err)
    return code, out.getvalue(), err.getvalue()


def test_there_is_a_case_per_failure_kind() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_case(case: Path, tmp_path: Path) -> None:
    data = tomllib.loads(case.read_text(encoding="utf-8"))
    expect = data["expect"]
    code, out, _ = _run(tmp_path, data, "--json")
    payload = json.loads(out)
    if "headline" in expect:
        assert code == 3
        assert set(payload) == {"error", "causes", "fixes"}
        assert payload["error"] == expect["headline"]
        shown = [{k: fix[k] for k in ("kind", "apply", "gives")} for fix in payload["fixes"]]
        assert shown == expect["fixes"]
        assert all(fix["summary"] and "\n" not in fix["summary"] for fix in payload["fixes"])
        return
    assert code == 0
    assert {k: payload[k] for k in ("torch", "variant", "transformers")} == expect["gives"]
    shown = [{k: fix[k] for k in ("kind", "apply", "gives")} for fix in payload["upgrades"]]
    assert shown == expect["upgrades"]


def test_text_output_ends_with_what_to_do(tmp_path: Path) -> None:
    failing = tomllib.loads((CASES[0].parent / "jetson-thor-driver-575.toml").read_text(encoding="utf-8"))
    code, _, err = _run(tmp_path, failing)
    assert code == 3
    assert any(line.startswith("No valid combination: sm_110 ") for line in err.splitlines())
    block = err.rstrip("\n").split("\n\n")[-1].splitlines()
    assert block[0] == "To make it work:"
    assert block[1].startswith("  - raise the NVIDIA driver to 580 or newer: gives torch ")
    upgrade = tomllib.loads((CASES[0].parent / "h100-driver-550-upgrade.toml").read_text(encoding="utf-8"))
    code, out, _ = _run(tmp_path, upgrade)
    assert code == 0
    block = out.rstrip("\n").split("\n\n")[-1].splitlines()
    assert block[0] == "With one change:"
    assert block[1].startswith("  - raise the NVIDIA driver to 580 or newer: gives torch 2.15.0+cu132")


def test_policy_is_said_once_with_its_flag(tmp_path: Path) -> None:
    data = tomllib.loads((CASES[0].parent / "transformers-pin-caps-torch.toml").read_text(encoding="utf-8"))
    _, out, _ = _run(tmp_path, data, "--json")
    causes = json.loads(out)["causes"]
    cpu = [c for c in causes if "CPU build" in c]
    assert cpu == [c for c in cpu if "--variant cpu" in c] and len(cpu) == 1
    assert sum("unverified" in c for c in causes) <= 1


def test_an_index_that_lacks_every_build_is_named(matrix: Matrix) -> None:
    host = host_from_mapping(
        {
            "os": "linux",
            "arch": "x86_64",
            "libc": "glibc",
            "libc_version": "2.35",
            "python": "3.11",
            "nvidia_driver": "580.65.06",
            "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}],
        }
    )
    release = next(r for r in matrix.torch if str(r.version) == "2.11.0")
    gone = Unavailable("http://127.0.0.1:9/whl")
    request = Request(
        constraints=merge_constraints(["torch==2.11.0"]),
        unavailable={("2.11.0", v): gone for v in release.variants},
    )
    with pytest.raises(NoCompatibleCombination) as caught:
        solve(host, matrix, request)
    payload = failure_json(caught.value)
    assert payload["error"].startswith(
        "your constraint torch==2.11.0 allows only torch 2.11.0; torch 2.11.0 ("
    )
    assert payload["error"].endswith(") are not on http://127.0.0.1:9/whl")
    assert [f["apply"] for f in payload["fixes"]] == [{"drop_constraint": "torch==2.11.0"}]


FIXES = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FIXES
@given(host=hosts(), request=requests())
def test_every_fix_and_upgrade_works_as_it_says(matrix: Matrix, host: Host, request: Request) -> None:
    try:
        resolution = solve(host, matrix, request)
    except NoCompatibleCombination as exc:
        text = headline(exc)
        assert text and "None" not in text, text
        fixes = failure_json(exc)["fixes"]
        event(f"failure with {'some' if fixes else 'no'} fix")
        for fix in fixes:
            fixed_host, fixed_request = apply_change(host, request, fix["apply"])
            got = solve(fixed_host, matrix, fixed_request)
            said = {
                "torch": got.torch,
                "variant": got.variant,
                "transformers": str(got.transformers.version),
            }
            # a ROCm build whose gfx list is unknown is given as unverified for the AMD GPUs, never as working
            unchecked = sorted({n.gfx_target for n in got.notes if isinstance(n, GfxUnchecked)})
            if unchecked:
                said["unverified_gfx"] = " ".join(unchecked)
                assert "unverified for" in fix["summary"], fix
            assert said == fix["gives"], fix
        return
    found = upgrades(host, matrix, request, resolution)
    event(f"solved with {'an' if found else 'no'} upgrade")
    for upgrade in found:
        fixed_host, fixed_request = apply_change(host, request, upgrade.apply)
        got = solve(fixed_host, matrix, fixed_request)
        assert got.torch == upgrade.gives["torch"] and got.variant == upgrade.gives["variant"]
        assert build_rank(request, got) > build_rank(request, resolution)


def test_an_unknown_gfx_list_is_never_said_to_work(tmp_path: Path) -> None:
    """RX 9070 (gfx1201) below torch 2.7: the --allow-unverified fix gives 2.4's rocm6.1, whose gfx
    targets are unknown; the fix, and the resolution it gives, say so for gfx1201."""
    data = tomllib.loads((CASES[0].parent / "amd-gfx1201-before-27.toml").read_text(encoding="utf-8"))
    code, _, err = _run(tmp_path, data)
    assert code == 3
    fix = next(line for line in err.splitlines() if line.startswith("  - pass --allow-unverified"))
    assert fix.endswith(
        "gives torch 2.4.1+rocm6.1, transformers 5.14.1, unverified for gfx1201 (the gfx targets of the "
        "rocm6.1 wheels of torch 2.4 are not known; it may not run on these GPUs)"
    )
    code, out, _ = _run(tmp_path, data, "--allow-unverified")
    assert code == 0
    assert "GPU 0: AMD Radeon RX 9070 XT (gfx1201) unverified: the gfx targets of the rocm6.1 wheels" in out
    assert "runs gfx1201 code" not in out
