"""The documents the console sends (``web/src/ops.ts``), read by the tests that send them."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

OPS = Path(__file__).resolve().parents[1] / "web" / "src" / "ops.ts"


@cache
def console_documents() -> dict[str, str]:
    """Each exported document of ops.ts by its name, its fragments (``${NAME}``) filled in."""
    source = OPS.read_text()
    constants = dict(re.findall(r"const (\w+) = /\* GraphQL \*/ `(.*?)`;", source, re.S))
    exported = re.findall(r"export const (\w+) = /\* GraphQL \*/", source)

    def filled(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: filled(constants[m.group(1)]), text)

    return {name: filled(constants[name]) for name in exported}
