"""The contract against the last released one: a breaking change fails unless the message's version is bumped
and upcasters lead from the released version to the new one.

The released contract is a committed snapshot of libs/events/schemas, taken when a version is released
(libs/events/released/<version>/, the version of `oms_events.version`). The check (a test of
libs/events/tests, so `make test` runs it) compares every released message schema with the current
schema of the same type:

- same schema version: the current schema must read everything the released one allowed. Breaking: a field
  removed (or renamed: the old name is gone), retyped, newly required (added as required, or an optional
  one made required), an enum value or a constant removed;
- a newer version: an upcaster for every step from the released version to the current one, and the
  released version's schema still published under libs/events/schemas (generated from
  `oms_events.previous`), unchanged;
- a type that is gone, or an older current version: always breaking.

python -m oms_events.compatibility --check      exit 1 and say why on a breaking change
python -m oms_events.compatibility --snapshot   record the current contract as released at VERSION
"""

import argparse
import json
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oms_events.schema import SCHEMA_DIR, generate
from oms_events.version import VERSION

RELEASED_DIR = Path(__file__).resolve().parents[2] / "released"

Schema = dict[str, Any]


@dataclass(frozen=True)
class SchemaVersion:
    message_type: str
    version: int
    schema: Schema


def _resolve(node: Schema, root: Schema) -> Schema:
    """Follow local `$ref`s (pydantic puts nested models under `$defs`)."""
    seen = 0
    while isinstance(node.get("$ref"), str):
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
        if seen > 50:
            raise ValueError(f"$ref loop at {node.get('$ref')}")
    return node


def _alternatives(node: Schema, root: Schema) -> list[Schema]:
    node = _resolve(node, root)
    for keyword in ("anyOf", "oneOf"):
        if keyword in node:
            return [alt for option in node[keyword] for alt in _alternatives(option, root)]
    return [node]


def _types(node: Schema) -> frozenset[str]:
    """What JSON types a (resolved, single) schema admits; an untyped schema admits anything."""
    if "const" in node:
        return frozenset({_json_type(node["const"])})
    if "enum" in node:
        return frozenset(_json_type(value) for value in node["enum"])
    declared = node.get("type")
    if declared is None and "properties" in node:
        return frozenset({"object"})
    if declared is None:
        return frozenset({"any"})
    return frozenset([declared] if isinstance(declared, str) else declared)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _admits(new: frozenset[str], old: frozenset[str]) -> bool:
    if "any" in new:
        return True
    widened = set(new) | ({"integer"} if "number" in new else set())
    return old <= widened


def _values(node: Schema) -> list[Any] | None:
    if "const" in node:
        return [node["const"]]
    enum = node.get("enum")
    return list(enum) if isinstance(enum, list) else None


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """How `new` fails to read what `old` allowed, field by field (dotted paths); empty when compatible."""
    return _compare(old, old, new, new, "")


def _compare(old: Schema, old_root: Schema, new: Schema, new_root: Schema, path: str) -> list[str]:
    where = path or "(root)"
    problems: list[str] = []
    new_options = _alternatives(new, new_root)
    for old_option in _alternatives(old, old_root):
        old_types = _types(old_option)
        matching = [n for n in new_options if _admits(_types(n), old_types)]
        if not matching:
            got = sorted({t for n in new_options for t in _types(n)})
            problems.append(f"{where}: retyped from {sorted(old_types)} to {got}")
            continue
        candidate = matching[0]
        if old_option.get("format") != candidate.get("format") and candidate.get("format") is not None:
            problems.append(f"{where}: format changed from {old_option.get('format')} to {candidate.get('format')}")
        old_values, new_values = _values(old_option), _values(candidate)
        if new_values is not None:
            if old_values is None:
                problems.append(f"{where}: now restricted to {new_values}")
            else:
                problems += [f"{where}: enum value {v!r} removed" for v in old_values if v not in new_values]
        if "object" in old_types:
            problems += _compare_objects(old_option, old_root, candidate, new_root, path)
        if "array" in old_types and isinstance(old_option.get("items"), dict):
            new_items = candidate.get("items")
            if isinstance(new_items, dict):
                problems += _compare(old_option["items"], old_root, new_items, new_root, f"{path}[]")
    return problems


def _compare_objects(old: Schema, old_root: Schema, new: Schema, new_root: Schema, path: str) -> list[str]:
    problems: list[str] = []
    old_fields: Mapping[str, Schema] = old.get("properties", {})
    new_fields: Mapping[str, Schema] = new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name, old_field in old_fields.items():
        dotted = f"{path}.{name}" if path else name
        if name not in new_fields:
            problems.append(f"{dotted}: removed (or renamed)")
            continue
        if name in new_required and name not in old_required:
            problems.append(f"{dotted}: made required")
        problems += _compare(old_field, old_root, new_fields[name], new_root, dotted)
    for name in sorted(new_required - set(old_fields)):
        dotted = f"{path}.{name}" if path else name
        problems.append(f"{dotted}: added as required (a message of the released version has no such field)")
    return problems


def read_schemas(files: Mapping[str, str]) -> dict[str, list[SchemaVersion]]:
    """Message type -> every version found among schema files (name -> text), oldest first."""
    found: dict[str, list[SchemaVersion]] = {}
    for text in files.values():
        body = json.loads(text)
        if "x-message-type" not in body:
            continue
        version = SchemaVersion(body["x-message-type"], int(body["x-schema-version"]), body)
        found.setdefault(version.message_type, []).append(version)
    return {t: sorted(vs, key=lambda v: v.version) for t, vs in found.items()}


def problems(
    released: Mapping[str, str],
    current: Mapping[str, str],
    upcasters: Iterable[tuple[str, int]],
) -> list[str]:
    """Every breaking change of `current` (schema files, name -> text) against `released`, given the
    (type, version read) keys of the upcasters that exist."""
    have_upcaster = set(upcasters)
    found: list[str] = []
    now = read_schemas(current)
    for message_type, versions in sorted(read_schemas(released).items()):
        if message_type not in now:
            found.append(f"{message_type}: removed from the contract")
            continue
        latest_released, latest = versions[-1], now[message_type][-1]
        if latest.version < latest_released.version:
            found.append(f"{message_type}: v{latest.version} is older than the released v{latest_released.version}")
            continue
        kept = {v.version: v for v in now[message_type]}
        for old in versions:
            if old.version not in kept:
                found.append(f"{message_type} v{old.version}: released schema no longer published")
            elif old.version != latest.version and kept[old.version].schema != old.schema:
                found.append(f"{message_type} v{old.version}: the schema of a superseded version changed")
        if latest.version == latest_released.version:
            found += [
                f"{message_type} v{latest.version}: {change} (bump its schema_version and add an upcaster)"
                for change in breaking_changes(latest_released.schema, latest.schema)
            ]
            continue
        for step in range(latest_released.version, latest.version):
            if (message_type, step) not in have_upcaster:
                found.append(f"{message_type}: v{latest.version} has no upcaster from v{step}")
    return found


def version_key(version: str) -> tuple[int, ...]:
    """`1.10.0` sorts after `1.9.0`."""
    return tuple(int(part) for part in version.split("."))


def latest_release(directory: Path = RELEASED_DIR) -> Path | None:
    """The snapshot of the highest released version, if any was recorded."""
    releases = [p for p in directory.iterdir() if p.is_dir()] if directory.is_dir() else []
    return max(releases, key=lambda p: version_key(p.name)) if releases else None


def released_files(release: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(release.glob("*.json"))}


def check(directory: Path = RELEASED_DIR) -> list[str]:
    """The current models (as `make schemas` would write them) against the last recorded release."""
    from oms_events.upcasters import UPCASTERS

    release = latest_release(directory)
    if release is None:
        return [f"no released contract under {directory}"]
    return problems(released_files(release), generate(), UPCASTERS)


def snapshot(directory: Path = RELEASED_DIR, version: str = VERSION) -> Path:
    """Record the checked-in schemas as the contract released at `version` (never overwrites one)."""
    target = directory / version
    if target.exists():
        raise FileExistsError(f"the contract of {version} is recorded already: raise oms_events.version.VERSION")
    target.mkdir(parents=True)
    for schema in sorted(SCHEMA_DIR.glob("*.json")):
        shutil.copyfile(schema, target / schema.name)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true")
    group.add_argument("--snapshot", action="store_true")
    args = parser.parse_args(argv)
    if args.snapshot:
        print(f"recorded {snapshot()}")
        return 0
    found = check()
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
