"""What a release needs besides the code: the licence, a changelog entry for the version, and the one
version carried by the contract and the images."""

import json
import re
from pathlib import Path

import yaml

from oms_events import asyncapi
from oms_events.compatibility import latest_release, version_key
from oms_events.version import VERSION

REPO = Path(__file__).resolve().parents[2]


def test_the_licence_is_the_full_apache_2_text() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.strip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply the Apache License to your work." in text


def test_the_changelog_has_an_entry_for_the_version_in_keep_a_changelog_form() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    entries = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", text, flags=re.MULTILINE)
    assert entries, "no release entry"
    assert entries[0][0] == VERSION, "the newest entry is the current version"
    assert sorted(entries, key=lambda e: version_key(e[0]), reverse=True) == entries


def test_the_contract_and_the_images_carry_the_version() -> None:
    assert asyncapi.generate()["info"]["version"] == VERSION
    release = latest_release()
    assert release is not None
    assert version_key(release.name) <= version_key(VERSION)
    prod = yaml.safe_load((REPO / "deploy" / "k8s" / "overlays" / "prod" / "kustomization.yaml").read_text())
    assert {image["newTag"] for image in prod["images"]} == {VERSION}
    for document in sorted((REPO / "services").glob("*/openapi.json")):
        assert json.loads(document.read_text())["info"]["version"] == VERSION, document
    base = (REPO / "deploy" / "k8s" / "base" / "order-service.yaml").read_text()
    assert f"image: oms/order-service:{VERSION}" in base
