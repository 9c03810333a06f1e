"""A deadline per HTTP request (issue 17): the connection and the whole body within
STACK_RESOLVER_HTTP_TIMEOUT seconds, so an index that trickles a byte a second, or whose body
never ends, cannot stall a run. Real loopback servers; nothing is mocked."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from resolver.errors import ExternalToolError
from resolver.index.client import HttpPolicy, IndexClient

LISTING = b'<html><body><a href="torch-2.8.0-cp311-none-any.whl#sha256=ab">torch</a></body></html>\n'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        mode = self.path.strip("/").split("/")[0]
        try:
            if mode == "trickle":  # a byte a second, with an honest length: each read succeeds
                self._head(len(LISTING))
                for byte in LISTING:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(1)
            elif mode == "endless":  # a body that never ends, as fast as the socket takes it
                self._head(None)
                while True:
                    self.wfile.write(b"<!-- " + b"x" * 4096 + b" -->\n")
            elif mode == "gzip":
                body = gzip.compress(LISTING)
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self._head(len(LISTING))
                self.wfile.write(LISTING)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _head(self, length: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        if length is None:
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("mode", ["trickle", "endless"])
def test_a_slow_or_endless_body_ends_on_time(server: str, mode: str) -> None:
    client = IndexClient(policy=HttpPolicy(timeout=2.0, retries=1, backoff=0.0))
    started = time.monotonic()
    with pytest.raises(ExternalToolError) as caught:
        client.files(f"{server}/{mode}", "torch")
    elapsed = time.monotonic() - started
    # two attempts of 2 s each, and some slack for a loaded machine; never the 90 s a trickle takes
    assert elapsed < 8, elapsed
    assert "no complete response within 2 s" in caught.value.render()
    assert client.attempts[f"{server}/{mode}/torch/"] == 2


def test_a_download_that_trickles_ends_on_time(server: str) -> None:
    client = IndexClient(policy=HttpPolicy(timeout=2.0, retries=0))
    started = time.monotonic()
    with pytest.raises(ExternalToolError, match="no complete response"):
        # declared 90 bytes: 2 s plus 90 bytes at the minimum download rate
        client.file_sha256(f"{server}/trickle/torch-2.8.0-cp311-none-any.whl")
    assert time.monotonic() - started < 6


def test_a_prompt_index_is_unaffected(server: str) -> None:
    client = IndexClient(policy=HttpPolicy(timeout=2.0, retries=0))
    assert [f.filename for f in client.files(f"{server}/plain", "torch")] == [
        "torch-2.8.0-cp311-none-any.whl"
    ]
    # Content-Length counts the compressed bytes: a gzip body is not mistaken for a truncated one
    assert [f.filename for f in client.files(f"{server}/gzip", "torch")] == ["torch-2.8.0-cp311-none-any.whl"]
