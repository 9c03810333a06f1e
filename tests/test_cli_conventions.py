"""CI conventions: --json on every reporting command (errors too), shell completion, and the
ROCm-on-NVIDIA guard."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resolver.cli import main
from resolver.errors import ExitCode
from tests.fixtures.cli import HOSTS, write_project

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "kind", "code"),
    [
        (["matrix", "show", "gpu", "no such gpu", "--json"], "bad_input", ExitCode.BAD_INPUT),
        (
            ["resolve", "--dry-run", "--json", "--host", "/nonexistent/host.json"],
            "bad_input",
            ExitCode.BAD_INPUT,
        ),
        (["resolve", "--json", "--no-such-flag"], "bad_input", ExitCode.BAD_INPUT),
        (["doctor", "--json", "--requirements", "/nonexistent.toml"], "bad_input", ExitCode.BAD_INPUT),
    ],
)
def test_errors_under_json_are_json_on_stdout(argv: list[str], kind: str, code: int) -> None:
    got, out, err = _run(*argv)
    assert got == code
    payload = json.loads(out)
    assert payload["kind"] == kind and payload["exit_code"] == code
    assert payload["error"] and payload["error"] in err


def test_doctor_json(tmp_path: Path) -> None:
    host = tmp_path / "h.json"
    host.write_text(json.dumps({**HOSTS["h100"], "cpu_count": 1}))
    req = tmp_path / "req.toml"
    req.write_text("[requirements]\nmin_cpu_cores = 4\n")
    code, out, _ = _run("doctor", "--json", "--host", str(host), "--requirements", str(req))
    assert code == ExitCode.CHECK_FAILED
    payload = json.loads(out)
    assert payload["ok"] is False
    assert [c["status"] for c in payload["checks"] if c["name"] == "CPU cores"] == ["fail"]


def test_matrix_validate_and_show_json(tmp_path: Path) -> None:
    code, out, _ = _run("matrix", "validate", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    bad = ROOT / "tests" / "data" / "matrix_bad"
    case = next(p for p in sorted(bad.iterdir()) if p.is_dir())
    code, out, _ = _run("matrix", "validate", "--json", "--matrix", str(case))
    assert code == ExitCode.BAD_INPUT
    assert json.loads(out)["problems"]
    code, out, _ = _run("matrix", "show", "gpu", "RTX 4090", "--json")
    assert code == 0
    assert json.loads(out)["lines"][0].startswith("compute capability 8.9")


def test_rocm_on_an_nvidia_host_warns_when_forced_and_is_refused_from_the_team_file(tmp_path: Path) -> None:
    write_project(tmp_path, 'variant = "rocm6.3"\n')
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        code, out, err = _run("resolve", "--dry-run", "--json", "--host", "h100.json")
        assert code == ExitCode.BAD_INPUT
        assert "ROCm" in err and "--variant rocm6.3" in err
        code, out, err = _run("resolve", "--dry-run", "--json", "--host", "h100.json", "--variant", "rocm6.3")
        assert code == 0, err
        assert any("ROCm" in w for w in json.loads(out)["warnings"])
        # a CPU host has no NVIDIA GPU to waste: no warning
        code, out, err = _run("resolve", "--dry-run", "--json", "--host", "cpu.json", "--variant", "rocm6.3")
        assert not any("ROCm" in w for w in json.loads(out)["warnings"]) if code == 0 else "ROCm" not in err
    finally:
        os.chdir(cwd)


def test_shell_completion_offers_commands_and_flags(tmp_path: Path) -> None:
    answers = tmp_path / "answers"
    line = "stack-resolver ex"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_STDOUT_FILENAME": str(answers),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "resolver"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert answers.read_text().split() == ["export"]
