#!/usr/bin/env python3
"""Validates the objects `aether-server render-k8s` prints (the reviewed snapshots in
aether-server/tests/snapshots/, which a Rust test keeps equal to the binary's output) against
the official Kubernetes OpenAPI schemas of every version from 1.30 that kubernetes-validate
ships, strictly (unknown fields are errors). Prints one line; exits non-zero on any problem."""

import sys
from pathlib import Path

import kubernetes_validate
import yaml
from packaging.version import Version

SNAPSHOTS = Path(__file__).resolve().parent.parent / "aether-server" / "tests" / "snapshots"
OLDEST = Version("1.30.0")


def main() -> int:
    versions = sorted({v for v in kubernetes_validate.utils.all_versions() if Version(v) >= OLDEST}, key=Version)
    files = sorted(SNAPSHOTS.glob("render-k8s-*.yaml"))
    problems, count = [], 0
    for path in files:
        for obj in (o for o in yaml.safe_load_all(path.read_text()) if o):
            count += 1
            what = f"{path.name}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            for version in versions:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    where = ".".join(str(part) for part in error.path)
                    problems.append(f"{what} is invalid for Kubernetes {version}: {where}: {error.message}")
                except kubernetes_validate.SchemaNotFoundError as error:
                    problems.append(f"{what}: {error.message}")
    if not files or count == 0:
        problems.append(f"no rendered objects found in {SNAPSHOTS}")
    if problems:
        print(f"render-k8s: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"render-k8s: {count} objects in {len(files)} snapshots valid against Kubernetes {', '.join(versions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
