#!/usr/bin/env python3
"""Build, check and deploy a Node.js service from Python, as a CI job would.

    python examples/build.py [PATH] [--app NAME]

1. Packs PATH (default: examples/sample-node) exactly as `aether deploy --pack-only` does,
   signed with AETHER_SIGNING_KEY or, when it is unset, with a key generated for this run.
2. Checks the build before shipping it: the artifact's digest, its signature, and the signed
   provenance, which must name that digest.
3. Deploys it to the control plane the CLI would use (AETHER_API_BASE and AETHER_TOKEN, the
   `aether login` session, or config.toml), and prints the URL the release answers on.

Needs the `aether` module: `pip install ./bindings/python`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import aether

SAMPLE = Path(__file__).resolve().parent / "sample-node"


def signing_key() -> Optional[str]:
    """Signs with AETHER_SIGNING_KEY; without it, with a key pair made for this run, whose
    public key is returned. The deploy builds the tree again and reads the same variable, so
    it signs with the same key."""
    if os.environ.get("AETHER_SIGNING_KEY"):
        return None
    seed, public_key = aether.generate_keypair()
    os.environ["AETHER_SIGNING_KEY"] = seed
    return public_key


def check(build: aether.PackResult, public_key: str) -> None:
    """Refuses a build whose files do not describe the artifact that was written."""
    if aether.digest_file(build.artifact) != build.digest:
        sys.exit(f"{build.artifact} does not have the digest {build.digest}")
    if build.signature is None or not aether.verify(build.digest, build.signature.read_text(), public_key):
        sys.exit(f"the signature of {build.artifact} does not verify")
    if build.provenance is None:
        sys.exit("the build wrote no provenance")
    statement = aether.verify_provenance(build.provenance, public_key)
    if statement["subject"][0]["digest"]["sha256"] != build.digest:
        sys.exit("the provenance describes another artifact")


def show(event: Dict[str, Any]) -> None:
    if event["type"] == "phase_started":
        print(f"  {event['phase']}: {event['detail']}", file=sys.stderr)
    elif event["type"] == "upload_skipped":
        print("  upload: the server already has this artifact", file=sys.stderr)
    elif event["type"] == "status":
        print(f"  deployment is {event['status']}", file=sys.stderr)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--app", help="app to deploy to (default: the package.json name)")
    args = parser.parse_args(argv)

    generated = signing_key()
    build = aether.pack(args.path)
    public_key = generated or build.public_key
    if public_key is None:
        sys.exit("the build was not signed")
    check(build, public_key)
    manifest = aether.read_manifest(build.manifest) if build.manifest else None
    files = manifest.total_files if manifest else build.file_count
    print(f"built {build.artifact} ({build.size_bytes} bytes, {files} files), digest {build.digest}", file=sys.stderr)
    print(f"checked: digest, signature and provenance verify with {public_key}", file=sys.stderr)

    try:
        result = aether.Client().deploy(args.path, args.app, on_event=show)
    except aether.AetherError as error:
        print(f"deploy failed ({error.code}): {error}", file=sys.stderr)
        return 1
    if result.digest != build.digest:
        print("the deployed artifact is not the one checked", file=sys.stderr)
        return 1
    if result.status != "running":
        print(f"deployment {result.deployment_id} is {result.status}: {result.failure_reason}", file=sys.stderr)
        return 1
    print(result.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
