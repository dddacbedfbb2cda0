"""`aether.pack` builds exactly what `aether deploy --pack-only` builds."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

import aether
from conftest import PUBLIC_KEY, SEED

OUTPUTS = [
    "app.tar.gz",
    "app.tar.gz.manifest.json",
    "app.tar.gz.blocks.json",
    "app.tar.gz.sbom.json",
    "app.tar.gz.provenance.json",
    "app.tar.gz.sig",
]


def cli_pack(aether_bin: Path, project: Path, out: Path, flags: List[str], env: Dict[str, str]) -> Dict[str, Any]:
    """Runs `aether deploy --pack-only --format json` in the test's environment plus `env`."""
    result = subprocess.run(
        [str(aether_bin), "deploy", str(project), "--pack-only", "--format", "json", "--out", str(out), *flags],
        env={**os.environ, **env}, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report: Dict[str, Any] = json.loads(result.stdout)
    return report


def written(out: Path) -> Dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


# Each case: pack() keyword arguments, and the CLI flags and variables that ask for the same.
CASES = {
    "install-cyclonedx-signed-from-env": ({}, [], {"AETHER_SIGNING_KEY": SEED, "SOURCE_DATE_EPOCH": "1700000000"}),
    "arguments-instead-of-variables": (
        {"install": False, "legacy_sbom": True, "signing_key": SEED, "source_date_epoch": 86400},
        ["--no-install", "--legacy-sbom"],
        {"AETHER_SIGNING_KEY": SEED, "SOURCE_DATE_EPOCH": "86400"},
    ),
    "no-sbom-unsigned": ({"sbom": False}, ["--no-sbom"], {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_pack_writes_the_same_bytes_as_the_cli(
    case: str, aether_bin: Path, sample_app: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs, flags, cli_env = CASES[case]
    cli_out, py_out = tmp_path / "cli", tmp_path / "python"
    cli = cli_pack(aether_bin, sample_app, cli_out, flags, cli_env)
    if "signing_key" not in kwargs:
        for name, value in cli_env.items():
            monkeypatch.setenv(name, value)
    result = aether.pack(sample_app, py_out, **kwargs)

    assert result.digest == cli["digest"]
    assert result.tar_sha256 == cli["tar_sha256"]
    assert result.size_bytes == cli["size_bytes"]
    assert result.public_key == cli["public_key"]
    assert result.warnings == cli["warnings"]
    assert written(py_out) == written(cli_out), "every output file is byte-identical"
    for field in ["manifest", "sbom", "provenance", "signature"]:
        path = getattr(result, field)
        assert (path is None) == (cli[field] is None), field
        if path is not None:
            assert path == py_out / Path(cli[field]).name
    assert result.artifact == py_out / "app.tar.gz"


def test_pack_result_manifest_and_digest_agree(sample_app: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AETHER_SIGNING_KEY", SEED)
    result = aether.pack(sample_app)
    assert result.artifact == sample_app.resolve() / ".aether" / "app.tar.gz"
    assert sorted(p.name for p in result.artifact.parent.iterdir()) == sorted(OUTPUTS)
    assert aether.digest_file(result.artifact) == result.digest
    assert result.size_bytes == result.artifact.stat().st_size
    assert result.public_key == PUBLIC_KEY
    assert result.install_command == "npm ci --omit=dev --no-audit --no-fund"
    assert set(result.durations_ms) == {"detect", "install", "pack", "describe", "write"}
    assert result.signature is not None
    assert aether.verify(result.digest, result.signature.read_text(), PUBLIC_KEY)

    assert result.manifest is not None
    manifest = aether.read_manifest(result.manifest)
    assert manifest.schema == "aether-manifest-v1"
    assert (manifest.digest, manifest.tar_sha256, manifest.size_bytes) == (
        result.digest, result.tar_sha256, result.size_bytes,
    )
    entries = {e.path: e for e in manifest.entries}
    assert len(manifest) == len(entries)
    server_js = entries["server.js"]
    assert (server_js.type, server_js.mode, server_js.target) == ("file", "0644", None)
    assert server_js.size == (sample_app / "server.js").stat().st_size
    assert server_js.sha256 == aether.digest_file(sample_app / "server.js")
    assert entries["node_modules"].type == "dir" and entries["node_modules"].size is None
    assert "node_modules/ms/index.js" in entries
    assert not any("is-number" in path for path in entries), "dev dependencies are not packed"
    files = [e for e in manifest.entries if e.type == "file"]
    assert manifest.total_files == len(files) == result.file_count
    assert manifest.total_file_bytes == sum(e.size or 0 for e in files)


def test_symlinks_are_listed_with_their_target(sample_app: Path, tmp_path: Path) -> None:
    (sample_app / "current.js").symlink_to("server.js")
    result = aether.pack(sample_app, tmp_path / "out", install=False)
    assert result.manifest is not None
    link = next(e for e in aether.read_manifest(result.manifest).entries if e.path == "current.js")
    assert (link.type, link.target, link.mode, link.sha256) == ("symlink", "server.js", None, None)


def test_pack_errors_are_pack_and_config_errors(sample_app: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(aether.PackError) as no_project:
        aether.pack(empty)
    assert no_project.value.code == "no_package_json"
    assert "package.json" in str(no_project.value)

    (sample_app / "escape").symlink_to("/etc/hostname")
    with pytest.raises(aether.PackError) as escape:
        aether.pack(sample_app, install=False)
    assert escape.value.code == "symlink_escapes_tree"
    (sample_app / "escape").unlink()

    with pytest.raises(aether.ConfigError) as bad_key:
        aether.pack(sample_app, install=False, signing_key="abcd")
    assert bad_key.value.code == "invalid_signing_key"
    assert "signing_key argument" in str(bad_key.value) and "64 hex" in str(bad_key.value)

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(aether.ConfigError) as bad_variable:
        aether.pack(sample_app, install=False)
    assert bad_variable.value.code == "invalid_variable"
    assert "SOURCE_DATE_EPOCH" in str(bad_variable.value)

    with pytest.raises(ValueError):
        aether.pack(sample_app, sbom=False, legacy_sbom=True)


def test_signing_key_from_a_file_or_config(sample_app: Path, tmp_path: Path, isolated_env: Path) -> None:
    key_file = tmp_path / "key.hex"
    key_file.write_text(SEED + "\n")
    assert aether.pack(sample_app, install=False, signing_key=key_file).public_key == PUBLIC_KEY
    config = isolated_env / "config" / "aether" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'signing_key = "{SEED}"\n')
    assert aether.pack(sample_app, install=False).public_key == PUBLIC_KEY


def test_read_manifest_and_digest_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        aether.read_manifest(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError):
        aether.digest_file(tmp_path / "missing")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something else"}')
    with pytest.raises(ValueError, match="not an Aether manifest"):
        aether.read_manifest(bad)
