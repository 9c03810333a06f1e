"""HTTPS trusts the CA certificates pip would (issue 17): PIP_CERT, pip's `cert` setting,
REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE (table: tests/data/config/ca_precedence.toml).
End to end against a real HTTPS loopback index with a self-signed certificate (made with the
openssl command; skipped where there is none)."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from resolver.clients import make_client
from resolver.errors import ExternalToolError, InputError
from resolver.sources import effective_ca_bundle

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = tomllib.loads((Path(__file__).parents[1] / "data" / "config" / "ca_precedence.toml").read_text())[
    "case"
]
LISTING = b'<html><body><a href="torch-2.8.0-cp311-none-any.whl#sha256=ab">x</a></body></html>\n'


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_ca_precedence(case: dict[str, Any], tmp_path: Path) -> None:
    environ = {name: str(tmp_path / value) for name, value in case["environ"].items()}
    for path in environ.values():
        Path(path).write_text("pem\n")
    pip_files = []
    if "pip_conf_cert" in case:
        (tmp_path / case["pip_conf_cert"]).write_text("pem\n")
        (tmp_path / "pip.conf").write_text(f"[global]\ncert = {tmp_path / case['pip_conf_cert']}\n")
        pip_files.append(tmp_path / "pip.conf")
    chosen = effective_ca_bundle(environ, pip_files)
    assert (Path(chosen).name if chosen else "") == case["expect"]


def test_a_missing_certificate_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\$SSL_CERT_FILE: CA certificate file not found"):
        effective_ca_bundle({"SSL_CERT_FILE": str(tmp_path / "nope.pem")}, [])


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(LISTING)))
        self.end_headers()
        self.wfile.write(LISTING)


@pytest.fixture
def https_index(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1")
    san = ("-addext", "subjectAltName=IP:127.0.0.1")
    subprocess.run(
        ["openssl", *request, *san, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/simple", cert
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "pip.conf"])
def test_https_index_trusted_through_each_setting(
    https_index: tuple[str, Path], tmp_path: Path, variable: str
) -> None:
    url, cert = https_index
    # no pip configuration but the test's own: this machine's may name a bundle of its own
    environ = {"HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull}
    if variable == "pip.conf":
        (tmp_path / "pip.conf").write_text(f"[global]\ncert = {cert}\n")
        environ["PIP_CONFIG_FILE"] = str(tmp_path / "pip.conf")
    else:
        environ[variable] = str(cert)
    client = make_client({**environ, "STACK_RESOLVER_HTTP_RETRIES": "0"}, offline=False)
    assert [f.filename for f in client.files(url, "torch")] == ["torch-2.8.0-cp311-none-any.whl"]


def test_https_index_untrusted_without_them(https_index: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = https_index
    client = make_client({"HOME": str(tmp_path), "STACK_RESOLVER_HTTP_RETRIES": "0"}, offline=False)
    with pytest.raises(ExternalToolError, match="SSL"):
        client.files(url, "torch")
