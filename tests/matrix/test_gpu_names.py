"""GPU product names accepted wherever a compute capability is (table: tests/data/gpu_names/)."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from resolver.cli import main
from resolver.errors import ExitCode, InputError
from resolver.matrix.load import load_matrix
from resolver.matrix.products import gpu_names, product_capability

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = tomllib.loads((Path(__file__).parents[1] / "data" / "gpu_names" / "cases.toml").read_text("utf-8"))
MATRIX = load_matrix()


@pytest.mark.parametrize(("name", "cc"), CASES["names"], ids=[n for n, _ in CASES["names"]])
def test_a_product_name_gives_its_compute_capability(name: str, cc: str) -> None:
    found = product_capability(MATRIX, name)
    assert found is not None and str(found) == cc


@pytest.mark.parametrize("name", CASES["ambiguous"])
def test_an_ambiguous_name_is_bad_input_naming_the_candidates(name: str) -> None:
    with pytest.raises(InputError, match="more than one GPU"):
        product_capability(MATRIX, name)


@pytest.mark.parametrize("name", CASES["unknown"])
def test_matrix_show_gpu_rejects_an_unknown_name(name: str) -> None:
    assert product_capability(MATRIX, name) is None
    out, err = io.StringIO(), io.StringIO()
    assert main(["matrix", "show", "gpu", name], out, err) == ExitCode.BAD_INPUT
    assert name in err.getvalue()


def test_matrix_show_gpu_takes_a_product_name() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["matrix", "show", "gpu", "RTX 4090"], out, err) == 0, err.getvalue()
    assert out.getvalue().startswith("compute capability 8.9 (sm_89)")


# --- every place that reads a compute capability takes a name -----------------------------------

PLACES = CASES["places"]
HOST = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in [n for n in os.environ if n.startswith("STACK_RESOLVER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _detect(argv: list[str]) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    assert main(["detect", "--json", *argv], out, err) == 0, err.getvalue()
    host: dict[str, object] = json.loads(out.getvalue())
    return host


def _capabilities(host: dict[str, object], key: str = "gpus") -> list[str]:
    items = host[key]
    assert isinstance(items, list)
    return [item["compute_capability"] for item in items]


def test_a_host_file_takes_a_name_for_the_capability(clean_env: Path) -> None:
    name, cc = PLACES["host_file_capability"]
    path = clean_env / "host.json"
    path.write_text(json.dumps({**HOST, "gpus": [{"name": "card", "compute_capability": name}]}))
    assert _capabilities(_detect(["--host", str(path)])) == [cc]


def test_a_host_file_gpu_with_only_a_name_gets_its_capability(clean_env: Path) -> None:
    name, cc = PLACES["host_file_name_only"]
    path = clean_env / "host.json"
    path.write_text(json.dumps({**HOST, "gpus": [{"name": name}]}))
    host = _detect(["--host", str(path)])
    assert _capabilities(host) == [cc]
    assert host["gpus"][0]["name"] == name  # type: ignore[index]


def test_a_visible_device_takes_a_name(clean_env: Path) -> None:
    name, cc = PLACES["visible_device"]
    gpu = {"name": "NVIDIA A100-SXM4-80GB", "compute_capability": cc}
    device = {"index": 0, "gpu": 0, "name": "A100", "compute_capability": name}
    path = clean_env / "host.json"
    path.write_text(json.dumps({**HOST, "gpus": [gpu], "visible_devices": [device]}))
    assert _capabilities(_detect(["--host", str(path)]), "visible_devices") == [cc]


def test_the_gpus_variable_takes_names(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, ccs = PLACES["env_gpus"]
    monkeypatch.setenv("STACK_RESOLVER_GPUS", text)
    path = clean_env / "host.json"
    path.write_text(json.dumps(HOST))
    host = _detect(["--host", str(path)])  # the variable beats the file
    assert _capabilities(host) == ccs.split(",")
    # a bare product name is the GPU's name too; NAME=PRODUCT keeps NAME
    assert [g["name"] for g in host["gpus"]] == ["RTX 4090", "NVIDIA A100-SXM4-80GB"]  # type: ignore[attr-defined]


def test_the_gpus_variable_takes_names_while_probing(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resolver.host import overrides

    text, ccs = PLACES["env_gpus"]
    found = overrides.read_overrides({"STACK_RESOLVER_GPUS": text}, gpu_names(MATRIX))
    assert [str(g.cc) for g in found.values["gpus"]] == ccs.split(",")
    with pytest.raises(InputError, match=r"MAJOR\.MINOR"):  # no lookup: capabilities only
        overrides.read_overrides({"STACK_RESOLVER_GPUS": text})


def test_doctor_takes_a_name_for_the_minimum(clean_env: Path) -> None:
    name, cc = PLACES["doctor_minimum"]
    (clean_env / "req.toml").write_text(f'[requirements]\nmin_compute_capability = "{name}"\n')
    host = clean_env / "host.json"
    host.write_text(json.dumps({**HOST, "gpus": [{"name": "T4", "compute_capability": "7.5"}]}))
    out, err = io.StringIO(), io.StringIO()
    argv = ["doctor", "--json", "--host", str(host), "--requirements", str(clean_env / "req.toml")]
    assert main(argv, out, err) == ExitCode.CHECK_FAILED, err.getvalue()
    checks = json.loads(out.getvalue())["checks"]
    assert next(c["required"] for c in checks if c["name"] == "compute capability").startswith(f">= {cc}")


def test_team_hosts_take_names(clean_env: Path) -> None:
    from resolver.config import load_team
    from resolver.team.targets import load_targets

    inline, inline_cc = PLACES["team_inline_host"]
    listed, listed_cc = PLACES["team_inventory"]
    envs = clean_env / "envs"
    (envs / "hosts").mkdir(parents=True)
    (envs / "hosts" / "t4.json").write_text(json.dumps({**HOST, "nvidia_driver": "570.86.15",
                                                         "gpus": [{"name": listed}]}))  # fmt: skip
    table = ", ".join(f'{k} = "{v}"' for k, v in HOST.items())
    (envs / "team.toml").write_text(
        f'inventory = "hosts/*.json"\n[targets.big]\nhost = {{ {table}, gpus = [{{ name = "{inline}" }}] }}\n'
    )
    targets = load_targets(load_team(envs / "team.toml"), MATRIX)
    by_name = {t.name: [str(g.cc) for g in t.host.gpus] for t in targets}
    assert by_name.pop("big") == [inline_cc]
    assert list(by_name.values()) == [[listed_cc]]  # the inventory's one machine class


def test_resolve_reads_a_named_gpu_as_its_capability(clean_env: Path) -> None:
    answers = []
    for spelled in ("RTX 4090", "8.9"):
        path = clean_env / "host.json"
        gpu = {"name": "card", "compute_capability": spelled}
        path.write_text(json.dumps({**HOST, "nvidia_driver": "570.86.15", "gpus": [gpu]}))
        out, err = io.StringIO(), io.StringIO()
        assert main(["resolve", "--host", str(path), "--dry-run", "--json"], out, err) == 0, err.getvalue()
        answers.append(json.loads(out.getvalue()))
    assert answers[0] == answers[1]
