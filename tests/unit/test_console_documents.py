"""Every document the console sends (``web/src/ops.ts``) is valid against the schema the code
builds: a renamed or removed field, or a changed argument, fails here at once, without Node.js.

(CI's console build typechecks the console against ``schema.graphql`` too. The shipped build
does not depend on the schema, so a change to the API needs no rebuild of the console.)
"""

from __future__ import annotations

import re

import pytest
from graphql import parse, validate

from graphql_api.schema import schema
from tests.console_documents import OPS, console_documents

DOCUMENTS = console_documents()


def test_every_graphql_literal_of_the_console_is_found() -> None:
    assert len(DOCUMENTS) > 30
    assert OPS.read_text().count("/* GraphQL */") == len(re.findall(r"const (\w+) = /\* GraphQL \*/ `", OPS.read_text()))


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_the_consoles_document_is_valid_against_the_schema(name: str) -> None:
    errors = validate(schema._schema, parse(DOCUMENTS[name]))
    assert [e.message for e in errors] == []


def test_a_document_that_does_not_fit_the_schema_is_caught() -> None:
    broken = DOCUMENTS["PING"].replace("totalCount", "totalCounts")
    assert validate(schema._schema, parse(broken))
