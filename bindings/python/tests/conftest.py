"""Shared fixtures: an isolated environment per test, copies of the sample app, the `aether`
binary built from this checkout, and a real embedded `aether-server` on a loopback port."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "examples" / "sample-node"
SAMPLE_FILES = ["package.json", "package-lock.json", "server.js", ".gitignore"]
# The RFC 8032 test key: seed and public key.
SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
PUBLIC_KEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
SERVER_START_TIMEOUT_S = 60


def binary(variable: str, name: str) -> Path:
    """A binary built from this checkout: `$variable`, else `<target>/debug/<name>`."""
    if os.environ.get(variable):
        path = Path(os.environ[variable])
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        path = target / "debug" / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `cargo build -p aether-cli -p aether-server` or set {variable}")
    return path


@pytest.fixture(scope="session")
def aether_bin() -> Path:
    return binary("AETHER_BIN", "aether")


@pytest.fixture(scope="session")
def server_bin() -> Path:
    return binary("AETHER_SERVER_BIN", "aether-server")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dependency cache for the whole run, as on a developer's machine: npm runs once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shared_cache: Path) -> Path:
    """No settings leak in from the machine: a private HOME and config directory, no AETHER_*
    variables; the dependency cache is shared. Returns HOME."""
    for name in list(os.environ):
        if name.startswith("AETHER_") or name in ("SOURCE_DATE_EPOCH", "XDG_CONFIG_HOME"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_cache))
    monkeypatch.setenv("npm_config_cache", str(shared_cache / "npm"))
    return home


def copy_sample(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in SAMPLE_FILES:
        shutil.copy(SAMPLE / name, dest / name)
    return dest


@pytest.fixture
def sample_app(tmp_path: Path) -> Path:
    """A fresh copy of examples/sample-node."""
    return copy_sample(tmp_path / "sample-node")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    base: str
    token: str
    process: subprocess.Popen[str]
    log: List[str]


@pytest.fixture(scope="module")
def server(server_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An embedded aether-server (SQLite, local artifacts, local-process runtime) with an admin
    token, ready once it logs that it listens."""
    data = tmp_path_factory.mktemp("server-data")
    token = "aether_" + secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_") and k != "DATABASE_URL"}
    env.update(
        AETHER_LISTEN="127.0.0.1:0",
        AETHER_DATA_DIR=str(data),
        AETHER_API_TOKENS=f"{token}:admin",
        NO_COLOR="1",
        RUST_LOG="info",
    )
    process = subprocess.Popen(
        [str(server_bin)], cwd=data, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    log: List[str] = []
    listening = threading.Event()
    address: List[str] = []

    def read_log() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            found = re.search(r"aether-server listening.*address=([0-9.:]+)", line)
            if found:
                address.append(found.group(1))
                listening.set()
        listening.set()  # the server exited: stop waiting

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    if not listening.wait(SERVER_START_TIMEOUT_S) or process.poll() is not None or not address:
        process.kill()
        pytest.fail("aether-server did not start; its log:\n" + "".join(log))
    yield Server(f"http://{address[0]}", token, process, log)
    # SIGTERM: the server finishes requests and stops the releases it started.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    reader.join(timeout=5)
    # Nothing the server wrote may show its token.
    assert token not in "".join(log), "aether-server logged its admin token"
