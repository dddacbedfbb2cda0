"""Aether for Python build scripts and CI jobs: pack a Node.js service into a deterministic,
signed artifact exactly as `aether deploy --pack-only` does, verify signatures and provenance,
and deploy through a control plane."""

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union, final

_StrPath = Union[str, "os.PathLike[str]"]

class AetherError(Exception):
    """Base class of every error the aether module raises."""

    code: str
    """A stable, machine-readable code (the one the CLI prints in its JSON errors)."""

class ConfigError(AetherError):
    """Settings are wrong: a key, a variable, config.toml, the server URL, or a token over
    plain HTTP."""

class PackError(AetherError):
    """The build failed: no package.json, npm failed, a symlink leaves the tree, files cannot
    be read or written."""

class ApiError(AetherError):
    """The server refused the request."""

    status: int
    """The HTTP status."""
    code: str
    """The server's error code (`not_found`, `conflict`, `unauthorized`, ...)."""
    message: str
    """The server's error message."""

class NetworkError(AetherError):
    """The server could not be reached, or answered something that is not its API."""

class IntegrityError(AetherError):
    """A signature or an envelope does not verify, or is not what it claims to be."""

@final
class PackResult:
    """What `pack` wrote; paths are None for files not written (no SBOM, no key)."""

    @property
    def artifact(self) -> Path: ...
    @property
    def digest(self) -> str: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def manifest(self) -> Optional[Path]: ...
    @property
    def blocks(self) -> Optional[Path]: ...
    @property
    def sbom(self) -> Optional[Path]: ...
    @property
    def signature(self) -> Optional[Path]: ...
    @property
    def provenance(self) -> Optional[Path]: ...
    @property
    def warnings(self) -> List[str]: ...
    @property
    def tar_sha256(self) -> str: ...
    @property
    def file_count(self) -> int: ...
    @property
    def public_key(self) -> Optional[str]: ...
    @property
    def install_command(self) -> Optional[str]: ...
    @property
    def durations_ms(self) -> Dict[str, int]: ...

@final
class ManifestEntry:
    """One entry of a manifest: a file, a directory or a symlink."""

    @property
    def type(self) -> str:
        """`"file"`, `"dir"` or `"symlink"`."""
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> Optional[int]: ...
    @property
    def mode(self) -> Optional[str]: ...
    @property
    def sha256(self) -> Optional[str]: ...
    @property
    def target(self) -> Optional[str]: ...

@final
class Manifest:
    """An artifact's manifest: its entries in archive order, digests and totals."""

    @property
    def schema(self) -> str: ...
    @property
    def entries(self) -> List[ManifestEntry]: ...
    @property
    def digest(self) -> str: ...
    @property
    def tar_sha256(self) -> str: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def total_files(self) -> int: ...
    @property
    def total_file_bytes(self) -> int: ...
    def __len__(self) -> int: ...

@final
class DeploymentEvent:
    """A recorded status change of a deployment."""

    @property
    def from_status(self) -> Optional[str]: ...
    @property
    def to_status(self) -> str: ...
    @property
    def reason(self) -> Optional[str]: ...
    @property
    def at(self) -> str: ...

@final
class Deployment:
    """One deployment of an app."""

    @property
    def id(self) -> str: ...
    @property
    def app(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def status(self) -> str:
        """`pending`, `deploying`, `running`, `failed`, `superseded`, `rolled_back` or `cancelled`."""
    @property
    def url(self) -> Optional[str]: ...
    @property
    def failure_reason(self) -> Optional[str]: ...
    @property
    def created_at(self) -> str: ...
    @property
    def updated_at(self) -> str: ...
    @property
    def env_sha256(self) -> Optional[str]: ...
    @property
    def events(self) -> Optional[List[DeploymentEvent]]: ...

@final
class App:
    """An app and the deployment that represents it: the running one, else the newest."""

    @property
    def name(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> str: ...
    @property
    def deployment(self) -> Optional[Deployment]: ...

@final
class AppStatus:
    """An app's running deployment and its newest one (with its events)."""

    @property
    def running(self) -> Optional[Deployment]: ...
    @property
    def latest(self) -> Optional[Deployment]: ...

@final
class DeployResult:
    """The outcome of `Client.deploy`."""

    @property
    def deployment_id(self) -> str: ...
    @property
    def app(self) -> str: ...
    @property
    def app_created(self) -> bool: ...
    @property
    def status(self) -> str: ...
    @property
    def url(self) -> Optional[str]: ...
    @property
    def failure_reason(self) -> Optional[str]: ...
    @property
    def digest(self) -> str: ...
    @property
    def uploaded_bytes(self) -> int: ...
    @property
    def unchanged(self) -> bool: ...
    @property
    def timed_out(self) -> bool: ...
    @property
    def durations_ms(self) -> Dict[str, int]:
        """Milliseconds per phase: install, pack, describe, upload, rollout, total."""
    @property
    def build(self) -> PackResult: ...

@final
class Client:
    """A connection to the control plane; settings left out are found as the CLI finds them."""

    def __init__(
        self, api_base: Optional[str] = None, token: Optional[str] = None, *, insecure: bool = False
    ) -> None: ...
    @property
    def api_base(self) -> str: ...
    def deploy(
        self,
        path: _StrPath,
        app: Optional[str] = None,
        *,
        env: Optional[Mapping[str, str]] = None,
        wait: bool = True,
        timeout: float = 300,
        force: bool = False,
        on_event: Optional[Callable[[Dict[str, Any]], object]] = None,
    ) -> DeployResult: ...
    def list_apps(self) -> List[App]: ...
    def deployments(self, app: str) -> List[Deployment]: ...
    def status(self, app: str) -> AppStatus: ...
    def logs(self, app: str, tail: int = 100, *, deployment: Optional[str] = None) -> List[str]: ...
    def rollback(
        self, app: str, to: Optional[str] = None, *, wait: bool = True, timeout: float = 300
    ) -> Deployment: ...

def pack(
    path: _StrPath,
    out_dir: Optional[_StrPath] = None,
    *,
    install: bool = True,
    sbom: bool = True,
    legacy_sbom: bool = False,
    signing_key: Optional[_StrPath] = None,
    source_date_epoch: Optional[int] = None,
) -> PackResult:
    """Builds the Node project at `path` exactly like `aether deploy --pack-only`."""

def digest_file(path: _StrPath) -> str:
    """The SHA-256 of a file's bytes as 64 lowercase hex characters."""

def read_manifest(path: _StrPath) -> Manifest:
    """Reads an `app.tar.gz.manifest.json`."""

def generate_keypair() -> Tuple[str, str]:
    """A new Ed25519 key pair: (seed_hex, public_key_hex)."""

def sign(digest: str, seed_hex: str) -> str:
    """The 128-hex-character Ed25519 signature of an artifact digest."""

def verify(digest: str, signature_hex: str, public_key_hex: str) -> bool:
    """Whether the signature is the public key's signature of the digest."""

def verify_provenance(envelope_path: _StrPath, public_key_hex: str) -> Dict[str, Any]:
    """Verifies a signed provenance envelope and returns its in-toto statement."""
