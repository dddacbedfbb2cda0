#!/usr/bin/env python3
"""Validate CycloneDX JSON files against the official CycloneDX 1.5 schema in strict mode.

Usage: validate_cyclonedx.py FILE...
Uses cyclonedx-python-lib's JsonStrictValidator (the official schema bundled by the CycloneDX
project). Exit status: 0 when every file is valid; 1 when one is not (its first error is
printed); 2 on a usage error or when the validator's Python package or its JSON-validation
extra is missing (run `pip install -r requirements-dev.txt`).
"""
import sys

INSTALL_HINT = "run `python3 -m pip install -r requirements-dev.txt` from the repository root"

try:
    from cyclonedx.exception import MissingOptionalDependencyException
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
except ImportError as error:
    print(f"cyclonedx-python-lib is not installed ({error}); {INSTALL_HINT}", file=sys.stderr)
    sys.exit(2)


def validate(validator: "JsonStrictValidator", path: str) -> bool:
    """Print the first schema error of `path` and return False when it is invalid."""
    with open(path, encoding="utf-8") as f:
        error = validator.validate_str(f.read())
    if error is None:
        print(f"{path}: valid CycloneDX 1.5 (strict)")
        return True
    detail = getattr(error, "data", None)  # the underlying jsonschema error, when there is one
    message = getattr(detail, "message", str(error))
    where = getattr(detail, "json_path", "$")
    print(f"{path}: invalid CycloneDX 1.5 (strict) at {where}: {message}", file=sys.stderr)
    return False


def main(paths: "list[str]") -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    validator = JsonStrictValidator(SchemaVersion.V1_5)
    try:
        results = [validate(validator, path) for path in paths]
    except MissingOptionalDependencyException as error:
        print(f"cyclonedx-python-lib lacks its json-validation extra ({error}); {INSTALL_HINT}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:  # unreadable file or not JSON at all
        print(f"cannot validate: {error}", file=sys.stderr)
        return 1
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
