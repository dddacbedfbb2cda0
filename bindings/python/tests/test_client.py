"""`aether.Client` against a real embedded aether-server: deploy, list, status, logs,
rollback, errors, settings resolution and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import pytest

import aether
from conftest import REPO, Server, closed_port, copy_sample

# Longer than any of these tests: a rollout still waiting then is really stuck.
DEPLOY_TIMEOUT_S = 120


def fetch(url: str) -> Dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: Dict[str, Any] = json.loads(response.read())
        return body


@pytest.fixture
def client(server: Server) -> aether.Client:
    return aether.Client(server.base, server.token)


def test_deploy_list_status_logs_and_rollback(client: aether.Client, sample_app: Path) -> None:
    events: List[Dict[str, Any]] = []
    first = client.deploy(sample_app, "py-sample", env={"APP_VERSION": "one"}, timeout=DEPLOY_TIMEOUT_S,
                          on_event=events.append)
    assert (first.status, first.failure_reason, first.timed_out) == ("running", None, False)
    assert first.app == "py-sample" and first.app_created and not first.unchanged
    assert first.uploaded_bytes == first.build.size_bytes > 0
    assert first.digest == first.build.digest == aether.digest_file(first.build.artifact)
    assert set(first.durations_ms) == {"install", "pack", "describe", "upload", "rollout", "total"}
    assert first.url is not None
    assert (fetch(first.url)["service"], fetch(first.url)["version"]) == ("sample-node", "one")
    kinds = [e["type"] for e in events]
    for kind in ["phase_started", "pack_progress", "phase_finished", "upload_started", "deployment_created", "status"]:
        assert kind in kinds, kinds
    assert {"type": "deployment_created", "id": first.deployment_id} in events
    assert events[-1] == {"type": "status", "status": "running"}

    again = client.deploy(sample_app, "py-sample", env={"APP_VERSION": "one"}, timeout=DEPLOY_TIMEOUT_S)
    assert again.unchanged and again.uploaded_bytes == 0 and again.deployment_id == first.deployment_id

    server_js = sample_app / "server.js"
    server_js.write_text(server_js.read_text().replace("service: 'sample-node'", "service: 'sample-node-v2'"))
    second = client.deploy(sample_app, "py-sample", env={"APP_VERSION": "one"}, timeout=DEPLOY_TIMEOUT_S)
    assert second.status == "running" and second.digest != first.digest and not second.app_created
    assert second.url is not None and fetch(second.url)["service"] == "sample-node-v2"

    app = next(a for a in client.list_apps() if a.name == "py-sample")
    assert app.deployment is not None
    assert (app.deployment.id, app.deployment.status) == (second.deployment_id, "running")
    history = client.deployments("py-sample")
    assert [d.id for d in history] == [second.deployment_id, first.deployment_id]
    assert [d.status for d in history] == ["running", "superseded"]
    assert history[0].env_sha256 is not None and history[0].events is None
    status = client.status("py-sample")
    assert status.running is not None and status.latest is not None
    assert status.running.id == status.latest.id == second.deployment_id
    assert status.latest.events is not None and status.latest.events[-1].to_status == "running"
    assert status.latest.events[0].from_status is None

    lines = client.logs("py-sample")
    assert any("sample-node listening on port" in line for line in lines), lines
    assert len(client.logs("py-sample", tail=1)) == 1
    first_lines = client.logs("py-sample", deployment=first.deployment_id)
    assert first_lines and all(f" {first.deployment_id[:8]} " in line for line in first_lines)

    back = client.rollback("py-sample", timeout=DEPLOY_TIMEOUT_S)
    assert (back.status, back.digest, back.app) == ("running", first.digest, "py-sample")
    assert back.url is not None
    assert (fetch(back.url)["service"], fetch(back.url)["version"]) == ("sample-node", "one")
    running = client.status("py-sample").running
    assert running is not None and running.id == back.id
    explicit = client.rollback("py-sample", to=second.deployment_id, wait=False)
    assert explicit.digest == second.digest and explicit.status in ("pending", "deploying", "running")


def test_server_refusals_are_api_errors_with_the_envelope(server: Server, client: aether.Client) -> None:
    with pytest.raises(aether.ApiError) as missing:
        client.deployments("no-such-app")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert "no-such-app" in missing.value.message and "HTTP 404" in str(missing.value)
    with pytest.raises(aether.ApiError) as unauthorized:
        aether.Client(server.base, "aether_" + "0" * 64).list_apps()
    assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")
    assert isinstance(unauthorized.value, aether.AetherError)
    with pytest.raises(ValueError, match="invalid app name"):
        client.status("Not_A_Label")


def test_an_unreachable_server_is_a_network_error() -> None:
    base = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(aether.NetworkError) as error:
        aether.Client(base, "token").list_apps()
    assert error.value.code == "network_error" and base in str(error.value)


def test_bad_settings_are_config_errors(isolated_env: Path) -> None:
    with pytest.raises(aether.ConfigError) as bad_url:
        aether.Client("ftp://example.com")
    assert bad_url.value.code == "invalid_url"
    with pytest.raises(aether.ConfigError) as plain_http:
        aether.Client("http://example.com", "token")
    assert plain_http.value.code == "insecure_transport"
    assert aether.Client("http://example.com", "token", insecure=True).api_base == "http://example.com/"
    config = isolated_env / "config" / "aether" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("api_base = [")
    with pytest.raises(aether.ConfigError) as bad_config:
        aether.Client()
    assert bad_config.value.code == "invalid_config" and "config.toml" in str(bad_config.value)


def test_settings_resolve_like_the_cli(
    server: Server, isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert aether.Client().api_base == "http://127.0.0.1:8080/"
    config = isolated_env / "config" / "aether" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('api_base = "http://127.0.0.1:9"\n')
    assert aether.Client().api_base == "http://127.0.0.1:9/"
    # The session `aether login` writes wins over the config file, and its token is used.
    session = tmp_path / "cache" / "aether" / "session.json"
    session.parent.mkdir(parents=True)
    session.write_text(json.dumps({"api_base": server.base, "token": server.token}))
    from_session = aether.Client()
    assert from_session.api_base == server.base + "/"
    assert isinstance(from_session.list_apps(), list)
    # Variables win over the session; the session's token never goes to another server.
    monkeypatch.setenv("AETHER_API_BASE", server.base.replace("127.0.0.1", "localhost"))
    with pytest.raises(aether.ApiError) as no_token:
        aether.Client().list_apps()
    assert no_token.value.status == 401
    monkeypatch.setenv("AETHER_TOKEN", server.token)
    assert isinstance(aether.Client().list_apps(), list)
    assert aether.Client(server.base, "wrong").api_base == server.base + "/"


@pytest.fixture
def never_ready_app(tmp_path: Path) -> Path:
    """A project whose release never listens, so its rollout waits for the health timeout."""
    project = tmp_path / "never-ready"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "never-ready", "version": "1.0.0"}))
    (project / "server.js").write_text("setInterval(() => {}, 1000);\n")
    return project


def test_ctrl_c_interrupts_a_waiting_deploy(client: aether.Client, never_ready_app: Path) -> None:
    def interrupt_when_created(event: Dict[str, Any]) -> None:
        if event["type"] == "deployment_created":
            threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT)).start()

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        client.deploy(never_ready_app, timeout=DEPLOY_TIMEOUT_S, on_event=interrupt_when_created)
    # The release would only fail after the server's 30 s health timeout.
    assert time.monotonic() - started < 25
    # The client still works after an interrupted call.
    assert client.status("never-ready").latest is not None


def test_an_exception_in_on_event_stops_the_deploy(client: aether.Client, never_ready_app: Path) -> None:
    def refuse(event: Dict[str, Any]) -> None:
        raise RuntimeError(f"stop at {event['type']}")

    with pytest.raises(RuntimeError, match="stop at phase_started"):
        client.deploy(never_ready_app, "refused", on_event=refuse)
    assert "refused" not in [a.name for a in client.list_apps()]


def test_the_example_build_script_packs_verifies_and_deploys(server: Server, tmp_path: Path) -> None:
    project = copy_sample(tmp_path / "example-app")
    env = {**os.environ, "AETHER_API_BASE": server.base, "AETHER_TOKEN": server.token}
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "build.py"), str(project), "--app", "py-example"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    url = result.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:") and fetch(url)["service"] == "sample-node"
