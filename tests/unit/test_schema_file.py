"""schema.graphql at the repository root is what clients and reviewers read: it must be the
schema the code serves."""

from __future__ import annotations

from pathlib import Path

from strawberry.printer import print_schema

from graphql_api.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
REGENERATE = "python -m graphql_api.schema > schema.graphql"


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == print_schema(schema) + "\n", (
        f"schema.graphql is out of date; regenerate it from the repository root with: {REGENERATE}"
    )


def test_every_type_field_and_argument_is_described() -> None:
    from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLObjectType

    missing = []
    for name, gql_type in schema._schema.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        if not gql_type.description:
            missing.append(name)
        if isinstance(gql_type, GraphQLEnumType):
            missing += [f"{name}.{value}" for value, v in gql_type.values.items() if not v.description]
        if isinstance(gql_type, (GraphQLObjectType, GraphQLInputObjectType)):
            for field_name, field in gql_type.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
    assert missing == []
