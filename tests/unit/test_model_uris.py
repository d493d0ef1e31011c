"""Model references and names: models:/ URIs, short forms, model and alias names."""

from __future__ import annotations

import pytest

from dockyard.core.errors import InvalidInput
from dockyard.registry.uris import (
    ModelRef,
    check_alias,
    check_model_name,
    check_version,
    parse_model_uri,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/fraud/3", ModelRef("fraud", version=3)),
        ("fraud/3", ModelRef("fraud", version=3)),
        ("models:/fraud@champion", ModelRef("fraud", alias="champion")),
        ("fraud@challenger-2", ModelRef("fraud", alias="challenger-2")),
        ("models:/fraud/production", ModelRef("fraud", selector="production")),
        ("fraud/deprecated", ModelRef("fraud", selector="deprecated")),
        ("models:/fraud/latest", ModelRef("fraud", selector="latest")),
        ("models:/Fraud Model v2/12", ModelRef("Fraud Model v2", version=12)),
        ("models:/7/1", ModelRef("7", version=1)),
    ],
)
def test_accepted_forms_parse(uri: str, expected: ModelRef) -> None:
    assert parse_model_uri(uri) == expected


def test_a_ref_prints_as_its_canonical_uri() -> None:
    assert str(parse_model_uri("fraud/3")) == "models:/fraud/3"
    assert str(parse_model_uri("fraud@champion")) == "models:/fraud@champion"
    assert str(parse_model_uri("fraud/latest")) == "models:/fraud/latest"


@pytest.mark.parametrize(
    "uri",
    [
        "models:/fraud",
        "models:/fraud/",
        "models://fraud/3",
        "models:fraud/3",
        "models:/fraud/0",
        "models:/fraud/-1",
        "models:/fraud/3/extra",
        "models:/fraud/live",
        "models:/fraud@Champion",
        "models:/fraud@",
        "models:/@champion",
        "models:/ /3",
        "fraud",
        "runs:/0123/model",
        "http://host/fraud/3",
        "s3://bucket/fraud/3",
        "models:/fraud/99999999999",
        "",
    ],
)
def test_malformed_references_name_the_accepted_forms(uri: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_model_uri(uri)
    if uri:
        assert "models:/<name>/<version>" in err.value.message
        assert "models:/<name>@<alias>" in err.value.message


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidInput, match="non-empty string"):
        parse_model_uri(None)


@pytest.mark.parametrize("name", ["fraud", "Fraud Model", "a" * 256, "7", "fraud-v2.1_x"])
def test_good_model_names(name: str) -> None:
    assert check_model_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a/b", r"'/'"),
        ("a@b", r"'@'"),
        ("a:b", r"':'"),
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("x ", "whitespace"),
        ("a" * 257, "256"),
        ("a\tb", "control"),
        (3, "non-empty string"),
    ],
)
def test_bad_model_names(name: object, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_model_name(name)


@pytest.mark.parametrize("alias", ["champion", "challenger", "a", "shadow_1", "b-2", "a" * 64])
def test_good_aliases(alias: str) -> None:
    assert check_alias(alias) == alias


@pytest.mark.parametrize(
    ("alias", "why"),
    [
        ("Champion", "lowercase"),
        ("1abc", "lowercase"),
        ("123", "lowercase"),
        ("a" * 65, "63"),
        ("a.b", "lowercase"),
        ("", "lowercase"),
        ("production", "reserved"),
        ("candidate", "reserved"),
        ("latest", "reserved"),
    ],
)
def test_bad_aliases(alias: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_alias(alias)


def test_versions() -> None:
    assert check_version(3) == 3
    assert check_version("12") == 12
    for bad in (0, -1, True, 1.5, "3a", "", None, 2**31):
        with pytest.raises(InvalidInput, match="integer >= 1"):
            check_version(bad)
