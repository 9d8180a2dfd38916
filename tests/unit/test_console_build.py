"""The console shipped in the package is the build of the sources in web/.

``web/scripts/manifest.mjs`` writes a hash of every source file (and the lockfile) next to the
build; this recomputes it. A commit that changes web/ without `npm run build` fails here, so what
`pip install` serves is what web/ says. (The schema is not hashed: the built files do not depend
on it. ``test_console_documents.py`` checks the console's documents against it.)
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DIST = ROOT / "graphql_api" / "console" / "dist"
SKIP = {"node_modules", "generated"}
MAX_FIRST_LOAD_GZIP = 300 * 1024


def _sources() -> list[str]:
    files = []
    for path in WEB.rglob("*"):
        rel = path.relative_to(WEB)
        if path.is_dir() or SKIP.intersection(rel.parts) or rel.parts[0] == "dist":
            continue
        files.append(rel.as_posix())
    return sorted(files)


def test_shipped_console_matches_its_sources() -> None:
    manifest = json.loads((DIST / "build-manifest.json").read_text())
    files = _sources()
    assert files == manifest["files"], "web/ files changed: run `npm run build` in web/ and commit dist/"
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0")
        digest.update((WEB / name).read_bytes())
        digest.update(b"\0")
    assert digest.hexdigest() == manifest["sources"], (
        "graphql_api/console/dist is stale: run `npm ci && npm run build` in web/ and commit it"
    )


def test_console_first_load_is_small_and_local() -> None:
    """Everything index.html loads is local and under 300 KB of compressed JavaScript."""
    import gzip

    html = (DIST / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith("/console/") or r.startswith("data:") for r in refs), refs
    scripts = [r for r in refs if r.endswith(".js")]
    size = sum(len(gzip.compress((DIST / r.removeprefix("/console/")).read_bytes())) for r in scripts)
    assert 0 < size < MAX_FIRST_LOAD_GZIP, size
