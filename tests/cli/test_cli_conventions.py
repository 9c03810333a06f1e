"""CI conventions: --json on every reporting command (errors too), shell completion, and the
ROCm-on-NVIDIA guard."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from resolver.cli import main
from resolver.errors import ExitCode
from tests.fixtures.cli import HOSTS, write_project

ROOT = Path(__file__).resolve().parents[2]


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
    shown = json.loads(out)
    assert shown["compute_capability"] == "8.9" and shown["architecture"] == "Ada Lovelace"


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


def test_progress_on_a_terminal_is_a_live_line_and_plain_lines_otherwise() -> None:
    from resolver import progress

    plain = io.StringIO()
    with progress.reporting(progress.Reporter(stream=plain, verbosity=progress.NORMAL)):
        with progress.step("poetry lock"):
            pass
        progress.say("detail", progress.VERBOSE)
    assert plain.getvalue().splitlines()[0] == "poetry lock ..."
    assert plain.getvalue().splitlines()[1].startswith("poetry lock: done in ")
    assert len(plain.getvalue().splitlines()) == 2  # -v not given: no detail
    live = io.StringIO()
    reporter = progress.Reporter(stream=live, verbosity=progress.NORMAL, interactive=True)
    with progress.reporting(reporter), progress.step("poetry lock"):
        pass
    assert "poetry lock: done in " in live.getvalue()
    quiet = io.StringIO()
    with progress.reporting(progress.Reporter(stream=quiet, verbosity=progress.QUIET)), progress.step("x"):
        pass
    assert quiet.getvalue() == ""
    # a library caller (no CLI) gets a silent reporter
    assert progress.current().stream is None


def test_verbose_names_each_index_and_its_origin(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "STACK_RESOLVER_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", PIP_EXTRA_INDEX_URL="https://extra.example.org/s"
    )
    write_project(tmp_path, "")
    argv = [sys.executable, "-m", "resolver", "-v", "matrix", "validate"]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "index extra: https://extra.example.org/s (from PIP_EXTRA_INDEX_URL)" in proc.stderr
    info = subprocess.run([sys.executable, "-m", "resolver", "info", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert info.returncode == 0, info.stderr
    payload = json.loads(info.stdout)
    assert {"role": "extra", "url": "https://extra.example.org/s", "from": "PIP_EXTRA_INDEX_URL"} in payload[
        "indexes"
    ]
    assert payload["matrix"]["version"] and payload["poetry"]["pinned"] == "2.5.1"
    assert set(payload["extras"]) >= {"nvml", "conda"}


def test_rocm_for_a_team_with_nvidia_targets_is_refused_unless_forced(tmp_path: Path) -> None:
    team = 'variant = "rocm6.3"\n\n[targets.h100]\nhost = "../h100.json"\n'
    write_project(tmp_path, team)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACK_RESOLVER_")}
    argv = [sys.executable, "-m", "resolver", "lock", "--dry-run"]
    refused = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == ExitCode.BAD_INPUT
    assert "ROCm" in refused.stderr
    forced = subprocess.run([*argv, "--variant", "rocm6.3"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert "warning: h100: variant rocm6.3 is a ROCm (AMD) build" in forced.stderr, forced.stderr


def test_very_verbose_names_each_request_without_credentials(
    fixture_index_session: Any, tmp_path: Path
) -> None:
    from resolver import progress
    from resolver.clients import make_client

    stream = io.StringIO()
    with progress.reporting(progress.Reporter(stream=stream, verbosity=progress.DEBUG)):
        client = make_client({"STACK_RESOLVER_CACHE_DIR": str(tmp_path)}, offline=False)
        url = fixture_index_session.url().replace("http://", "http://user:secret@")
        client.files(url, "transformers")
    assert "GET http://***@127.0.0.1:" in stream.getvalue()
    assert "/transformers/ -> 200" in stream.getvalue()
    assert "secret" not in stream.getvalue()
