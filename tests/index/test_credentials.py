"""Index credentials never leave memory (issue 17). A resolve against a loopback index that
requires HTTP basic auth, with the credentials given in the index URL: it must succeed (they
are used), and not one byte the tool printed or wrote (stdout, stderr, envs/, the HTTP cache)
may hold the secret."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from resolver.config import TeamConfig
from resolver.index.credentials import Credentials, poetry_environment, redact, split_credentials
from resolver.sources import effective_indexes
from tests.fixtures.catalog import BuiltCatalog
from tests.fixtures.cli import loopback_env, run_cli, write_project
from tests.fixtures.isolation import poetry_available
from tests.fixtures.pyindex import FixtureIndex

USER, SECRET = "ci", "TOKEN-s3cr3t-4242"
SECRET_FORMS = (SECRET, base64.b64encode(f"{USER}:{SECRET}".encode()).decode())


def _every_byte(*roots: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for root in roots if root.exists() for p in root.rglob("*") if p.is_file()}


@pytest.mark.e2e
@pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter")
@pytest.mark.parametrize("mirror", ["direct", "mirror"])
def test_resolve_with_credentials_in_the_url_writes_and_prints_no_secret(
    tmp_path: Path, fixture_wheels: BuiltCatalog, mirror: str
) -> None:
    """Poetry talking to the index itself (`STACK_RESOLVER_MIRROR=0`) gets the credentials through
    its own per-source variables; through the tool's mirror (the default) the tool sends them."""
    with FixtureIndex(fixture_wheels, basic_auth=(USER, SECRET)) as index:
        base_url = index.base_url
        write_project(tmp_path, 'packages = ["torchvision"]\n')
        env = loopback_env(tmp_path, index)
        env["STACK_RESOLVER_MIRROR"] = "1" if mirror == "mirror" else "0"
        authed = index.base_url.replace("http://", f"http://{USER}:{SECRET}@")
        env["STACK_RESOLVER_PYTORCH_INDEX"] = f"{authed}/whl/{{variant}}/simple"
        env["STACK_RESOLVER_INDEX_URL"] = index.url().replace("http://", f"http://{USER}:{SECRET}@")
        result = run_cli(
            tmp_path, env, "resolve", "--host", "cpu.json", "--target", "cpu", "--json", timeout=600
        )
        assert result.returncode == 0, result.stderr + result.stdout
        # the index saw the credentials (it answers 401 without them)
        assert any(r.status == 200 and r.kind == "project" for r in index.requests)
        failing = run_cli(
            tmp_path,
            {**env, "STACK_RESOLVER_INDEX_URL": env["STACK_RESOLVER_INDEX_URL"] + "nowhere/"},
            *("resolve", "--host", "cpu.json", "--target", "cpu2"),
            timeout=600,
        )
    assert failing.returncode != 0 and "Traceback" not in failing.stderr, failing.stderr
    assert (tmp_path / "envs" / "cpu" / "poetry.lock").is_file()
    written = _every_byte(tmp_path / "envs", tmp_path / "http-cache")
    printed = {
        "stdout": result.stdout.encode(),
        "stderr": result.stderr.encode(),
        "failing stdout": failing.stdout.encode(),
        "failing stderr": failing.stderr.encode(),
    }
    for name, data in {**written, **printed}.items():
        for secret in SECRET_FORMS:
            assert secret.encode() not in data, name
            assert secret not in name  # nor in a file's name (the cache's are hashes of URLs)
    # and the records name the index without them
    record = json.loads((tmp_path / "envs" / "cpu" / "resolution.json").read_text())
    assert f"{base_url}/whl/cpu/simple" in json.dumps(record)


def test_urls_are_split_and_redacted() -> None:
    clean, credential = split_credentials("https://ci:TO%40KEN@mirror.example:8443/whl/{variant}/simple")
    assert clean == "https://mirror.example:8443/whl/{variant}/simple"
    assert credential is not None and credential.auth() == ("ci", "TO@KEN")
    assert "TO@KEN" not in repr(credential) and "KEN" not in repr(Credentials({"x": credential}))
    assert (
        redact("see https://ci:TOKEN@host/simple/ and http://u@h/x")
        == "see https://***@host/simple/ and http://***@h/x"
    )


def test_effective_indexes_keep_credentials_in_memory_only(tmp_path: Path) -> None:
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text("[global]\nindex-url = https://pip:PIPSECRET@general.example/simple\n")
    indexes = effective_indexes(
        TeamConfig(), {"STACK_RESOLVER_PYTORCH_INDEX": "https://ci:TOKEN@mirror.example/whl"}, [pip_conf]
    )
    assert (indexes.pytorch, indexes.general) == (
        "https://mirror.example/whl",
        "https://general.example/simple",
    )
    assert "TOKEN" not in repr(indexes) and "PIPSECRET" not in repr(indexes)
    assert indexes.credentials.auth_for(indexes.variant_url("cu128") + "/torch/") == ("ci", "TOKEN")
    assert indexes.credentials.auth_for("https://general.example/simple/x/") == ("pip", "PIPSECRET")
    # Poetry gets them through its own per-source variables
    assert poetry_environment({"pytorch-cu128": indexes.variant_url("cu128")}, indexes.credentials) == {
        "POETRY_HTTP_BASIC_PYTORCH_CU128_USERNAME": "ci",
        "POETRY_HTTP_BASIC_PYTORCH_CU128_PASSWORD": "TOKEN",
    }


class _MemoryKeyring:
    """A keyring backend holding one credential: keyring's own API, no mock of the client."""

    def __init__(self, service_prefix: str) -> None:
        import keyring.backend

        class Backend(keyring.backend.KeyringBackend):
            priority = 1  # type: ignore[assignment]

            def get_password(self, service: str, username: str) -> str | None:
                return SECRET if service.startswith(service_prefix) and username == USER else None

            def get_credential(self, service: str, username: str | None) -> Any:
                import keyring.credentials

                if service.startswith(service_prefix):
                    return keyring.credentials.SimpleCredential(USER, SECRET)
                return None

            def set_password(self, service: str, username: str, password: str) -> None:
                raise NotImplementedError

            def delete_password(self, service: str, username: str) -> None:
                raise NotImplementedError

        self.backend = Backend()


@pytest.mark.parametrize("source", ["netrc", "keyring", "none"])
def test_netrc_and_keyring_are_read_as_pip_reads_them(
    tmp_path: Path, fixture_wheels: BuiltCatalog, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    keyring = pytest.importorskip("keyring")
    from resolver.errors import ExternalToolError
    from resolver.index.client import HttpPolicy, IndexClient

    previous = keyring.get_keyring()
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    try:
        with FixtureIndex(fixture_wheels, basic_auth=(USER, SECRET)) as index:
            if source == "netrc":
                (tmp_path / "netrc").write_text(f"machine 127.0.0.1 login {USER} password {SECRET}\n")
            keyring.set_keyring(_MemoryKeyring(index.base_url if source == "keyring" else "nothing").backend)
            client = IndexClient(policy=HttpPolicy(retries=0))
            if source == "none":
                with pytest.raises(ExternalToolError, match="HTTP 401"):
                    client.files(index.url(), "torchvision")
            else:
                assert client.files(index.url(), "torchvision")
    finally:
        keyring.set_keyring(previous)


def test_mirror_hands_poetry_files_it_fetched_with_the_credentials(
    tmp_path: Path, fixture_wheels: BuiltCatalog
) -> None:
    """Poetry reads through the tool's mirror. A file it needs from an index with credentials is
    fetched by the tool (with them) and passed on, not redirected to an index that would answer
    401 to Poetry, which does not have them."""
    import hashlib

    import requests

    from resolver.index.client import HttpPolicy, IndexClient
    from resolver.lock.poetry.mirror import IndexMirror

    with FixtureIndex(fixture_wheels, basic_auth=(USER, SECRET)) as index:
        _, credentials = Credentials().with_url(index.url().replace("http://", f"http://{USER}:{SECRET}@"))
        client = IndexClient(policy=HttpPolicy(retries=0, credentials=credentials), cache_dir=tmp_path)
        wheel = client.files(index.url(), "torchvision")[0]
        with IndexMirror(client) as mirror:
            mirror.allow(index.url())  # the mirror forwards only to the configured index hosts
            response = requests.get(
                mirror.url_for(wheel.url.split("#")[0]), timeout=30, allow_redirects=False
            )
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == wheel.sha256
