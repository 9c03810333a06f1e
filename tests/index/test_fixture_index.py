"""The loopback package index harness: wheels, catalog, HTTP server, and real pip / Poetry on it.

Nothing here reaches the network: pip and Poetry run with config files disabled, every
``PIP_*``/``POETRY_*`` variable dropped, and a dead proxy for any non-loopback host.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from email.parser import BytesParser
from pathlib import Path

import pytest
import tomlkit
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from tests.fixtures.catalog import GENERAL, TORCH_RELEASES, BuiltCatalog, Catalog, WheelSpec, default_catalog
from tests.fixtures.isolation import offline_env, poetry_argv, poetry_available, poetry_env
from tests.fixtures.pyindex import (
    HTML_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    Fault,
    FaultPlan,
    FixtureIndex,
    parse_links,
)
from tests.fixtures.wheels import build_wheel, expand_tags, read_wheel_metadata, wheel_filename

JSON_ACCEPT = f"{JSON_CONTENT_TYPE}, {HTML_CONTENT_TYPE};q=0.1, text/html;q=0.01"
CU126_TORCH = "torch-2.7.1+cu126-cp311-cp311-manylinux_2_28_x86_64.whl"


def _get(url: str, accept: str | None = None, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def _raw_get(idx: FixtureIndex, path: str, accept: str | None = None) -> http.client.HTTPResponse:
    """GET without following redirects."""
    conn = http.client.HTTPConnection("127.0.0.1", idx.port, timeout=10)
    conn.request("GET", path, headers={"Accept": accept} if accept else {})
    return conn.getresponse()


# ---------------------------------------------------------------------------------------------
# wheels.py
# ---------------------------------------------------------------------------------------------


def test_build_wheel_is_deterministic_and_well_formed(tmp_path: Path) -> None:
    def build(out: Path) -> Path:
        return build_wheel(
            out,
            "My_Pkg",
            "1.0+local",
            requires_dist=("numpy>=1.17", 'torch>=2.2; extra == "torch"'),
            requires_python=">=3.9",
            extras=("torch",),
            tags="py2.py3-none-any",
        )

    first, second = build(tmp_path / "a"), build(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    # ... and across processes (fixed timestamps/permissions, sorted entries)
    code = (
        "import hashlib, sys; from pathlib import Path; from tests.fixtures.wheels import build_wheel;"
        "p = build_wheel(Path(sys.argv[1]), 'My_Pkg', '1.0+local',"
        " requires_dist=('numpy>=1.17', 'torch>=2.2; extra == \"torch\"'), requires_python='>=3.9',"
        " extras=('torch',), tags='py2.py3-none-any'); print(hashlib.sha256(p.read_bytes()).hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "c")],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.strip()
    assert out == hashlib.sha256(first.read_bytes()).hexdigest()
    assert first.name == "my_pkg-1.0+local-py2.py3-none-any.whl"
    name, version, _build, tags = parse_wheel_filename(first.name)
    assert (name, str(version)) == ("my-pkg", "1.0+local")

    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        assert names[-1] == "my_pkg-1.0+local.dist-info/RECORD"
        assert "my_pkg/__init__.py" in names
        assert all(info.date_time == (2024, 1, 1, 0, 0, 0) for info in archive.infolist())
        wheel = archive.read("my_pkg-1.0+local.dist-info/WHEEL").decode()
        assert sorted(re.findall(r"^Tag: (.+)$", wheel, re.M)) == sorted(str(t) for t in tags)
        assert sorted(expand_tags("py2.py3-none-any")) == ["py2-none-any", "py3-none-any"]
        for line in archive.read(names[-1]).decode().splitlines():
            path, digest, size = line.split(",")
            if path == names[-1]:
                assert digest == size == ""
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data)

    meta = Metadata.from_email(read_wheel_metadata(first), validate=True)
    assert meta.metadata_version == "2.1" and meta.name == "My_Pkg"
    assert str(meta.requires_python) == ">=3.9"
    assert [str(r) for r in meta.requires_dist or []] == ["numpy>=1.17", 'torch>=2.2; extra == "torch"']
    assert [str(e) for e in meta.provides_extra or []] == ["torch"]


def test_wheel_filename_rejects_bad_tags() -> None:
    assert wheel_filename("torch", "2.7.1+cu126", "cp311-cp311-manylinux_2_28_x86_64") == CU126_TORCH
    with pytest.raises(ValueError):
        wheel_filename("x", "1", "py3-any")


# ---------------------------------------------------------------------------------------------
# catalog.py
# ---------------------------------------------------------------------------------------------


def test_whole_catalog_builds_fast_and_reproducibly(tmp_path: Path) -> None:
    catalog = default_catalog()
    start = time.perf_counter()
    first = catalog.build(tmp_path / "one")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"building {len(catalog)} wheels took {elapsed:.2f}s"
    second = catalog.build(tmp_path / "two")
    assert {k: w.sha256 for k, w in first.wheels.items()} == {k: w.sha256 for k, w in second.wheels.items()}
    for wheel in list(first.wheels.values())[::25]:
        assert read_wheel_metadata(wheel.path) == wheel.metadata
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == wheel.sha256


def test_catalog_torch_layout_matches_the_real_world(fixture_wheels: BuiltCatalog) -> None:
    catalog = fixture_wheels.catalog
    assert {"general", "cpu", "cu118", "cu126", "cu128"} <= set(catalog.indexes())
    general_versions = {s.version for s in catalog.files(GENERAL, "torch")}
    assert general_versions == {"2.5.1", "2.6.0", "2.7.1", "2.8.0"}  # no local labels on general
    expected_variants = {
        "2.5.1": {"cpu", "cu118", "cu121", "cu124"},
        "2.6.0": {"cpu", "cu118", "cu124", "cu126"},
        "2.7.1": {"cpu", "cu118", "cu126", "cu128"},
        "2.8.0": {"cpu", "cu126", "cu128", "cu129"},
    }
    for release in TORCH_RELEASES:
        assert set(release.variants) == expected_variants[release.version]
        for variant in release.variants:
            files = catalog.files(variant, "torch")
            assert f"{release.version}+{variant}" in {s.version for s in files}
            # only this variant's builds (the cpu index also has the unlabeled macOS wheels)
            assert all(s.version.endswith(f"+{variant}") or "macosx" in s.tags for s in files)
            assert variant == "cpu" or not any("macosx" in s.tags for s in files)

    spec = catalog.get(CU126_TORCH)
    assert spec.indexes == ("cu126",)
    reqs = [Requirement(r) for r in spec.requires_dist]
    runtime = next(r for r in reqs if r.name == "nvidia-cuda-runtime-cu12")
    assert str(runtime.specifier) == "==12.6.77"
    assert str(runtime.marker) == 'platform_system == "Linux" and platform_machine == "x86_64"'
    assert any(r.name == "triton" and str(r.specifier) == "==3.3.1" for r in reqs)

    # general Linux wheel: no local label, but the default (cu126) build's content and deps
    default = catalog.get("torch-2.7.1-cp311-cp311-manylinux_2_28_x86_64.whl")
    assert default.requires_dist == spec.requires_dist
    with zipfile.ZipFile(fixture_wheels[default.filename].path) as archive:
        version_py = archive.read("torch/version.py").decode()
    assert '__version__ = "2.7.1+cu126"' in version_py and 'cuda = "12.6"' in version_py
    mac = catalog.get("torch-2.7.1-cp311-none-macosx_11_0_arm64.whl")
    assert set(mac.indexes) == {GENERAL, "cpu"}
    assert not any("nvidia" in r for r in mac.requires_dist)
    with zipfile.ZipFile(fixture_wheels[mac.filename].path) as archive:
        assert "cuda = None" in archive.read("torch/version.py").decode()

    # the nvidia libraries and triton live on the variant index and on the general one
    for index in (GENERAL, "cu126"):
        assert "12.6.77" in {s.version for s in catalog.files(index, "nvidia-cuda-runtime-cu12")}
        assert "3.3.1" in {s.version for s in catalog.files(index, "triton")}
    tv = catalog.get("torchvision-0.22.1+cu126-cp311-cp311-manylinux_2_28_x86_64.whl")
    assert "torch==2.7.1" in tv.requires_dist


def test_every_dependency_exists_on_the_general_index(fixture_wheels: BuiltCatalog) -> None:
    catalog = fixture_wheels.catalog
    on_general = set(catalog.projects(GENERAL))
    for spec in catalog:
        for raw in spec.requires_dist:
            req = Requirement(raw)
            assert req.name.lower().replace("_", "-") in on_general, f"{spec.filename}: {raw}"
            # some version of it on general satisfies the specifier
            versions = [Version(s.version) for s in catalog.files(GENERAL, req.name)]
            assert any(req.specifier.contains(v, prereleases=True) for v in versions), (
                f"{spec.filename}: {raw}"
            )
    transformers = {s.version: s for s in catalog.files(GENERAL, "transformers")}
    assert {"4.46.3", "4.57.6", "5.0.0"} <= set(transformers)
    assert transformers["5.0.0"].requires_python == ">=3.10.0"
    assert "torch" in transformers["4.57.6"].extras
    assert 'torch>=2.2; extra == "torch"' in transformers["4.57.6"].requires_dist


def test_catalog_rejects_duplicate_file_names() -> None:
    spec = WheelSpec("dup", "1.0")
    with pytest.raises(ValueError, match="duplicate"):
        Catalog((spec, spec))


# ---------------------------------------------------------------------------------------------
# pyindex.py: pages, files, metadata
# ---------------------------------------------------------------------------------------------


def _check_file_and_metadata(url: str, sha256: str, metadata_sha256: str | None) -> bytes:
    status, _, data = _get(url)
    assert status == 200
    assert hashlib.sha256(data).hexdigest() == sha256
    status, _, metadata = _get(url + ".metadata")
    assert status == 200
    if metadata_sha256 is not None:
        assert hashlib.sha256(metadata).hexdigest() == metadata_sha256
    assert metadata == read_wheel_metadata(data)  # PEP 658: identical to the wheel's METADATA
    return data


@pytest.mark.parametrize("index", ["general", "cu126"])
def test_html_pages_parse_and_hashes_match(fixture_index: FixtureIndex, index: str) -> None:
    status, headers, body = _get(idx_url := fixture_index.url(index) + "/", "text/html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    projects = {a["href"] for a in parse_links(body)}
    assert "torch/" in projects and "nvidia-cuda-runtime-cu12/" in projects

    page_url = idx_url + "torch/"
    status, headers, body = _get(page_url, "text/html")
    assert status == 200
    assert b'data-requires-python="&gt;=3.9.0"' in body
    anchors = parse_links(body)
    assert anchors
    expected = {w.filename for w in fixture_index.built.files(index, "torch")}
    assert {a["text"] for a in anchors} == expected
    target = CU126_TORCH if index == "cu126" else "torch-2.7.1-cp311-cp311-manylinux_2_28_x86_64.whl"
    anchor = next(a for a in anchors if a["text"] == target)
    href = anchor["href"] or ""
    url, _, fragment = urllib.parse.urljoin(page_url, href).partition("#")
    assert fragment.startswith("sha256=")
    assert anchor["data-core-metadata"] == anchor["data-dist-info-metadata"]
    meta_hash = (anchor["data-core-metadata"] or "").removeprefix("sha256=")
    expected_path = "/files/" if index == GENERAL else f"/whl/{index}/files/"
    assert urllib.parse.urlsplit(url).path.startswith(expected_path)
    _check_file_and_metadata(url, fragment.removeprefix("sha256="), meta_hash)
    assert fixture_index.served_files(index) == [target]


def test_json_pages_parse_and_hashes_match(fixture_index: FixtureIndex) -> None:
    status, headers, body = _get(fixture_index.url() + "/", JSON_ACCEPT)
    assert status == 200 and headers["Content-Type"] == JSON_CONTENT_TYPE
    root = json.loads(body)
    assert root["meta"]["api-version"] == "1.1"
    assert {"name": "transformers"} in root["projects"]

    page_url = fixture_index.url() + "/transformers/"
    status, headers, body = _get(page_url, JSON_ACCEPT)
    assert headers["Content-Type"] == JSON_CONTENT_TYPE and headers["Vary"] == "Accept"
    page = json.loads(body)
    assert page["name"] == "transformers" and page["versions"] == ["4.46.3", "4.57.6", "5.0.0"]
    for entry in page["files"]:
        assert entry["yanked"] is False
        assert entry["core-metadata"] == entry["dist-info-metadata"]
        data = _check_file_and_metadata(
            urllib.parse.urljoin(page_url, entry["url"]),
            entry["hashes"]["sha256"],
            entry["core-metadata"]["sha256"],
        )
        assert entry["size"] == len(data)
        meta = BytesParser().parsebytes(read_wheel_metadata(data))
        assert entry["requires-python"] == meta["Requires-Python"]

    _, _, body = _get(fixture_index.url() + "/requests/", JSON_ACCEPT)
    yanked = {f["filename"]: f["yanked"] for f in json.loads(body)["files"]}
    assert yanked["requests-2.32.5-py3-none-any.whl"] == "fixture: yanked to exercise PEP 592"
    assert yanked["requests-2.32.4-py3-none-any.whl"] is False
    _, _, body = _get(fixture_index.url() + "/requests/", "text/html")
    assert b'data-yanked="fixture: yanked to exercise PEP 592"' in body


def test_content_negotiation(fixture_wheels: BuiltCatalog) -> None:
    with FixtureIndex(fixture_wheels) as idx:  # default: JSON on the general index only
        cases = {
            None: "text/html; charset=utf-8",
            "*/*": "text/html; charset=utf-8",
            JSON_ACCEPT: JSON_CONTENT_TYPE,
            f"text/html, {JSON_CONTENT_TYPE};q=0.5": "text/html; charset=utf-8",
            f"{HTML_CONTENT_TYPE}": HTML_CONTENT_TYPE,
            "application/vnd.pypi.simple.latest+json": JSON_CONTENT_TYPE,
        }
        for accept, content_type in cases.items():
            _, headers, _ = _get(idx.url() + "/numpy/", accept)
            assert headers["Content-Type"] == content_type, accept
        _, headers, _ = _get(idx.url() + "/numpy/?" + urllib.parse.urlencode({"format": JSON_CONTENT_TYPE}))
        assert headers["Content-Type"] == JSON_CONTENT_TYPE
        _, headers, _ = _get(idx.variant_url("cu126") + "/numpy/", JSON_ACCEPT)
        assert headers["Content-Type"] == HTML_CONTENT_TYPE  # variant indexes: HTML only
        assert [r.format for r in idx.requests_for(kind="project")][-1] == "html"
    with FixtureIndex(fixture_wheels, json_api=True) as idx:
        _, headers, body = _get(idx.variant_url("cu126") + "/torch/", JSON_ACCEPT)
        assert headers["Content-Type"] == JSON_CONTENT_TYPE
        assert all("+cu126" in f["filename"] for f in json.loads(body)["files"])


def test_normalization_redirects_and_404s(fixture_index: FixtureIndex) -> None:
    response = _raw_get(fixture_index, "/simple/Typing_Extensions/")
    assert response.status == 301 and response.getheader("Location") == "/simple/typing-extensions/"
    response = _raw_get(fixture_index, "/whl/cu126/simple/torch")
    assert response.status == 301 and response.getheader("Location") == "/whl/cu126/simple/torch/"
    response = _raw_get(fixture_index, "/simple")
    assert response.status == 301 and response.getheader("Location") == "/simple/"
    status, _, body = _get(fixture_index.url() + "/PyYAML")  # urllib follows the redirect
    assert status == 200 and b"pyyaml-6.0.2-py3-none-any.whl" in body
    assert _get(fixture_index.url() + "/no-such-project/")[0] == 404
    assert _get(fixture_index.base_url + "/whl/cu999/simple/")[0] == 404
    # a file exists only on the indexes that list it
    assert _get(fixture_index.file_url(CU126_TORCH, "cu126"))[0] == 200
    assert _get(fixture_index.file_url(CU126_TORCH, GENERAL))[0] == 404
    assert _get(fixture_index.base_url + "/")[0] == 200
    kinds = [r.kind for r in fixture_index.requests]
    assert kinds.count("redirect") == 4


def test_request_log_records_method_path_accept_and_index(fixture_index: FixtureIndex) -> None:
    _get(fixture_index.variant_url("cu126") + "/torch/", JSON_ACCEPT)
    _get(fixture_index.url() + "/torch/", JSON_ACCEPT)
    _get(fixture_index.file_url(CU126_TORCH, "cu126") + ".metadata")
    log = fixture_index.requests
    assert [(r.method, r.path, r.index, r.kind, r.status) for r in log] == [
        ("GET", "/whl/cu126/simple/torch/", "cu126", "project", 200),
        ("GET", "/simple/torch/", "general", "project", 200),
        ("GET", f"/whl/cu126/files/{CU126_TORCH}.metadata", "cu126", "metadata", 200),
    ]
    assert log[0].accept == JSON_ACCEPT and log[0].headers["Accept"] == JSON_ACCEPT
    assert log[2].target.endswith("%2Bcu126-cp311-cp311-manylinux_2_28_x86_64.whl.metadata")
    assert len(fixture_index.requests_for(project="Torch")) == 3
    assert len(fixture_index.requests_for(path="/whl/*")) == 2
    fixture_index.clear_log()
    assert fixture_index.requests == []


# ---------------------------------------------------------------------------------------------
# Fault injection, tampering, lifecycle
# ---------------------------------------------------------------------------------------------


def test_fault_plan_status_codes_then_success(fixture_index: FixtureIndex) -> None:
    rule = fixture_index.faults.add(
        "*/simple/numpy/",
        Fault.http(500),
        Fault.http(502),
        Fault.http(503, retry_after=3),
        Fault.rate_limited(retry_after=7),
    )
    seen = []
    for _ in range(5):
        status, headers, _ = _get(fixture_index.url() + "/numpy/")
        seen.append((status, headers.get("Retry-After")))
    assert seen == [(500, None), (502, None), (503, "3"), (429, "7"), (200, None)]
    assert rule.hits == 4 and rule.remaining == 0 and fixture_index.faults.pending() == 0
    statuses = [(r.status, r.fault is not None) for r in fixture_index.requests_for(project="numpy")]
    assert statuses == [(500, True), (502, True), (503, True), (429, True), (200, False)]
    # other paths were never affected
    assert _get(fixture_index.url() + "/sympy/")[0] == 200


def test_fault_plan_matching_rules() -> None:
    plan = FaultPlan()
    plan.add(re.compile(r"\.metadata$"), Fault.http(404), times=2)
    plan.add("/whl/cu126/*", Fault.http(503), method="HEAD")
    assert plan.take("GET", "/whl/cu126/simple/torch/") is None  # method filter
    assert plan.take("HEAD", "/whl/cu126/simple/torch/") == Fault(status=503)
    assert plan.take("GET", "/files/x.whl.metadata") == Fault(status=404)
    assert plan.take("GET", "/files/x.whl.metadata") == Fault(status=404)
    assert plan.take("GET", "/files/x.whl.metadata") is None
    assert plan.pending() == 0
    with pytest.raises(ValueError):
        plan.add("*")


def test_fault_truncated_malformed_and_stalled(fixture_index: FixtureIndex) -> None:
    faults = fixture_index.faults
    wheel_url = fixture_index.file_url(CU126_TORCH, "cu126")
    faults.add(f"/whl/cu126/files/{CU126_TORCH}", Fault.truncated(100))
    with pytest.raises(http.client.IncompleteRead):
        _get(wheel_url)
    assert len(_get(wheel_url)[2]) == fixture_index.built[CU126_TORCH].size  # then intact

    faults.add("/simple/torch/", Fault.garbled())
    status, headers, body = _get(fixture_index.url() + "/torch/", JSON_ACCEPT)
    assert status == 200 and headers["Content-Type"] == JSON_CONTENT_TYPE
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    faults.add("/whl/cu126/simple/torch/", Fault.garbled())
    _, _, body = _get(fixture_index.variant_url("cu126") + "/torch/")
    assert not any((a.get("href") or "").endswith(".whl") for a in parse_links(body.replace(b"\x00", b"")))
    faults.add("/files/colorama-0.4.6-py2.py3-none-any.whl", Fault.garbled())
    _, _, body = _get(fixture_index.file_url("colorama-0.4.6-py2.py3-none-any.whl"))
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(body))
    faults.add("/simple/idna/", Fault(body=b"custom"))
    assert _get(fixture_index.url() + "/idna/")[2] == b"custom"

    faults.add("/simple/mpmath/", Fault.stalled(30))
    start = time.perf_counter()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        _get(fixture_index.url() + "/mpmath/", timeout=0.5)
    assert time.perf_counter() - start < 5
    faults.add("/simple/certifi/", Fault.stalled(0.3))
    start = time.perf_counter()
    assert _get(fixture_index.url() + "/certifi/")[0] == 200  # slow, then fine
    assert time.perf_counter() - start >= 0.3


def test_index_is_stopped_on_error_even_with_stalled_requests(fixture_wheels: BuiltCatalog) -> None:
    plan = FaultPlan()
    plan.add("*", Fault.stalled(60))
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="boom"), FixtureIndex(fixture_wheels, faults=plan) as idx:
        port = idx.port
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n\r\n")  # stalls server-side
        idle = socket.create_connection(("127.0.0.1", port))  # idle keep-alive connection
        time.sleep(0.2)
        raise RuntimeError("boom")
    assert time.perf_counter() - start < 5
    assert not idx.running
    sock.close()
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_head_requests_and_session_fixture(fixture_index_session: FixtureIndex) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fixture_index_session.port, timeout=10)
    conn.request("HEAD", f"/whl/cu126/files/{CU126_TORCH}")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b""
    assert int(response.getheader("Content-Length") or 0) == fixture_index_session.built[CU126_TORCH].size
    conn.close()


def test_fixture_index_builds_an_unbuilt_catalog(tmp_path: Path) -> None:
    catalog = Catalog((WheelSpec("tiny-pkg", "0.1", requires_python=">=3.8"),))
    with FixtureIndex(catalog, tmp_path) as idx:
        _, _, body = _get(idx.url() + "/tiny_pkg/")
        assert b"tiny_pkg-0.1-py3-none-any.whl" in body
        assert idx.url() == f"http://127.0.0.1:{idx.port}/simple"
        with pytest.raises(KeyError):
            idx.variant_url("cu126")
    assert (tmp_path / "wheels" / "tiny_pkg-0.1-py3-none-any.whl").is_file()


# ---------------------------------------------------------------------------------------------
# Real pip, offline
# ---------------------------------------------------------------------------------------------


def _run(cmd: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def _pip_download(idx: FixtureIndex, tmp_path: Path, *reqs: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--index-url", idx.url()]
    cmd += ["--dest", str(tmp_path / "dl"), *reqs]
    env = offline_env(tmp_path / "home")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.e2e
def test_pip_installs_torch_cu126_and_transformers_into_a_fresh_venv(
    fixture_index: FixtureIndex, tmp_path: Path
) -> None:
    env = offline_env(tmp_path / "home")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], env)
    python = str(venv / "bin" / "python")
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--index-url",
            fixture_index.url(),
            "--extra-index-url",
            fixture_index.variant_url("cu126"),
            "torch==2.7.1+cu126",
            "transformers==4.57.6",
        ],
        env,
    )
    probe = (
        "import json, importlib.metadata as m, torch, transformers;"
        "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda,"
        " 'transformers': transformers.__version__,"
        " 'dists': {d.metadata['Name'].lower(): d.version for d in m.distributions()}}))"
    )
    out = json.loads(_run([python, "-c", probe], env).strip().splitlines()[-1])
    assert out["torch"] == "2.7.1+cu126" and out["cuda"] == "12.6"
    assert out["transformers"] == "4.57.6"
    dists = out["dists"]
    assert dists["torch"] == "2.7.1+cu126"
    assert dists["nvidia-cuda-runtime-cu12"] == "12.6.77"
    assert dists["nvidia-cudnn-cu12"] == "9.5.1.17"
    assert dists["triton"] == "3.3.1"
    assert dists["huggingface-hub"] == "0.36.0" and dists["tokenizers"] == "0.22.1"
    assert dists["requests"] == "2.32.4"  # 2.32.5 is yanked

    # torch came from the cu126 index; transformers from the general one
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert f"torch-2.7.1+cu126-{py}-{py}-manylinux_2_28_x86_64.whl" in fixture_index.served_files("cu126")
    assert "transformers-4.57.6-py3-none-any.whl" in fixture_index.served_files(GENERAL)
    assert not [f for f in fixture_index.served_files(GENERAL) if f.startswith("torch-")]
    # pip negotiated JSON on the general index and got HTML from the variant one
    assert {r.format for r in fixture_index.requests_for(index=GENERAL, kind="project")} == {"json"}
    assert {r.format for r in fixture_index.requests_for(index="cu126", kind="project")} == {"html"}
    assert all(r.status < 400 for r in fixture_index.requests if r.kind != "not-found")


@pytest.mark.e2e
def test_pip_refuses_a_file_whose_hash_differs(fixture_index: FixtureIndex, tmp_path: Path) -> None:
    fixture_index.tamper("colorama-0.4.6-py2.py3-none-any.whl")
    proc = _pip_download(fixture_index, tmp_path, "colorama==0.4.6")
    assert proc.returncode != 0
    assert "DO NOT MATCH THE HASHES" in proc.stderr, proc.stderr
    assert not (tmp_path / "dl" / "colorama-0.4.6-py2.py3-none-any.whl").exists()
    fixture_index.untamper()
    proc = _pip_download(fixture_index, tmp_path, "colorama==0.4.6")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.e2e
def test_pip_retries_through_injected_503s_and_skips_yanked(
    fixture_index: FixtureIndex, tmp_path: Path
) -> None:
    fixture_index.faults.add("/simple/requests/", Fault.http(503), times=2)
    proc = _pip_download(fixture_index, tmp_path, "requests")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dl" / "requests-2.32.4-py3-none-any.whl").is_file()  # not the yanked 2.32.5
    statuses = [r.status for r in fixture_index.requests_for(path="/simple/requests/")]
    assert statuses == [503, 503, 200]


# ---------------------------------------------------------------------------------------------
# Real Poetry, offline
# ---------------------------------------------------------------------------------------------

POETRY_PYPROJECT = """\
[tool.poetry]
package-mode = false

[tool.poetry.dependencies]
python = ">=3.10,<3.13"
transformers = {{ version = "4.57.6", extras = ["torch"] }}
torch = {{ version = "2.7.1+cu126", source = "pytorch-cu126" }}

[[tool.poetry.source]]
name = "fixture"
url = "{general}"
priority = "primary"

[[tool.poetry.source]]
name = "pytorch-cu126"
url = "{cu126}"
priority = "explicit"
"""


@pytest.mark.e2e
@pytest.mark.skipif(
    not poetry_available(), reason="Poetry is not installed in this interpreter (pip install poetry)"
)
def test_poetry_locks_torch_from_the_explicit_cu126_source(
    fixture_index: FixtureIndex, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    general, cu126 = fixture_index.url(), fixture_index.variant_url("cu126")
    (project / "pyproject.toml").write_text(POETRY_PYPROJECT.format(general=general, cu126=cu126))
    env = poetry_env(tmp_path / "home")
    _run([*poetry_argv(), "lock"], env, cwd=project)

    lock = tomlkit.parse((project / "poetry.lock").read_text()).unwrap()
    packages = {p["name"]: p for p in lock["package"]}
    torch = packages["torch"]
    assert torch["version"] == "2.7.1+cu126"
    assert torch["source"] == {"type": "legacy", "url": cu126, "reference": "pytorch-cu126"}
    assert torch["files"] and all(f["hash"].startswith("sha256:") for f in torch["files"])
    assert all("+cu126" in f["file"] for f in torch["files"])
    built = {w.filename: w.sha256 for w in fixture_index.built.files("cu126", "torch")}
    for entry in torch["files"]:
        assert entry["hash"] == f"sha256:{built[entry['file']]}"
    assert packages["transformers"]["version"] == "4.57.6"
    assert packages["nvidia-cuda-runtime-cu12"]["version"] == "12.6.77"
    assert packages["triton"]["version"] == "3.3.1"
    assert "accelerate" in packages  # the torch extra was resolved

    # Only loopback sources: the primary source disabled the implicit PyPI one
    sources = {p["source"]["url"] for p in lock["package"] if "source" in p}
    assert sources <= {general, cu126}
    assert all("source" in p for p in lock["package"])
    # Poetry read PEP 691 JSON from general, HTML from cu126, used PEP 658 metadata and
    # downloaded no wheels; torch pages came from the variant index only
    assert all((r.headers.get("User-Agent") or "").startswith("poetry/") for r in fixture_index.requests)
    assert {r.format for r in fixture_index.requests_for(index=GENERAL, kind="project")} == {"json"}
    assert {r.format for r in fixture_index.requests_for(index="cu126", kind="project")} == {"html"}
    assert fixture_index.requests_for(kind="metadata", index="cu126")
    assert fixture_index.served_files() == []
    assert {r.index for r in fixture_index.requests_for(kind="project", project="torch")} == {"cu126"}
    assert all(r.status < 500 for r in fixture_index.requests)


def _conditional_get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:  # urllib raises on a 304 too
        return error.code, dict(error.headers.items()), error.read()


def test_listings_and_metadata_revalidate_with_etag_and_last_modified(fixture_index: FixtureIndex) -> None:
    """As real indexes do: validators on listings and PEP 658 metadata, and 304 when they match."""
    page = fixture_index.project_url("transformers")
    status, headers, body = _conditional_get(page)
    assert status == 200 and body
    etag, modified = headers["ETag"], headers["Last-Modified"]
    assert _conditional_get(page, **{"If-None-Match": etag})[:1] == (304,)
    assert _conditional_get(page, **{"If-None-Match": '"other"'})[0] == 200
    # without If-None-Match, If-Modified-Since decides; with it, the ETag does (RFC 9110)
    assert _conditional_get(page, **{"If-Modified-Since": modified})[0] == 304
    assert _conditional_get(page, **{"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"})[0] == 200
    assert _conditional_get(page, **{"If-None-Match": '"other"', "If-Modified-Since": modified})[0] == 200
    # another representation of the same URL has its own ETag
    _, json_headers, json_body = _conditional_get(page, Accept="application/vnd.pypi.simple.v1+json")
    assert json_headers["ETag"] != etag
    first = json.loads(json_body)["files"][0]["url"]
    metadata = urllib.parse.urljoin(page, first).split("#", 1)[0] + ".metadata"
    meta_etag = _conditional_get(metadata)[1]["ETag"]
    assert _conditional_get(metadata, **{"If-None-Match": meta_etag})[0] == 304
    assert [r.status for r in fixture_index.requests if r.kind == "metadata"] == [200, 304]
