"""Print a pip constraints file that pins every direct dependency in pyproject.toml to its
lower bound (the ``>=`` of its specifier, or its ``==`` pin), the test extra's included.

A lower bound is a promise that the code works with that version; CI keeps the promise by
installing exactly these versions (``pip install -c``) and running the suite on them.
Transitive dependencies resolve as pip chooses. Standard library only: it runs before any
virtualenv exists.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def lower_bound(requirement: str) -> tuple[str, str]:
    match = REQUIREMENT.match(requirement.split(";")[0])
    if not match:
        raise SystemExit(f"cannot read the requirement {requirement!r}")
    name, specifiers = match.groups()
    # An exact pin (the linters: a new release adds findings) is its own lower bound.
    bounds = [s.strip()[2:].strip() for s in specifiers.split(",") if s.strip()[:2] in (">=", "==")]
    if len(bounds) != 1:
        raise SystemExit(f"{name}: every dependency needs exactly one '>=' lower bound or '==' pin, got {specifiers!r}")
    return name, bounds[0]


def main(pyproject: Path) -> None:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = [*project["dependencies"], *project.get("optional-dependencies", {}).get("test", [])]
    print("# The lowest versions pyproject.toml allows (made by .ci/lowest_constraints.py)")
    for name, version in map(lower_bound, requirements):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"))
