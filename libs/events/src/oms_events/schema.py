"""JSON Schemas of the contract, generated from the models and checked in under libs/events/schemas.

python -m oms_events.schema --write    regenerate
python -m oms_events.schema --check    exit 1 when the checked-in files differ from the models

Both also cover the AsyncAPI document (libs/events/asyncapi.json, see `oms_events.asyncapi`), so one
command keeps every generated description of the contract current.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from oms_events import asyncapi
from oms_events.envelope import Envelope
from oms_events.messages import MESSAGE_TYPES

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def generate() -> dict[str, str]:
    """File name -> file text for every schema of the contract."""
    files: dict[str, Any] = {
        "envelope.json": {"$schema": _DIALECT, **Envelope.model_json_schema()},
    }
    for cls in MESSAGE_TYPES:
        files[f"{cls.message_type}.v{cls.schema_version}.json"] = {
            "$schema": _DIALECT,
            "x-message-type": cls.message_type,
            "x-schema-version": cls.schema_version,
            "x-kind": cls.message_kind,
            "x-topic": cls.topic,
            "x-key": cls.key_field,
            **cls.model_json_schema(),
        }
    return {name: json.dumps(body, indent=2, sort_keys=True) + "\n" for name, body in files.items()}


def differences(directory: Path = SCHEMA_DIR) -> list[str]:
    expected = generate()
    found = {p.name: p.read_text() for p in directory.glob("*.json")} if directory.is_dir() else {}
    problems = [f"missing {name}" for name in sorted(expected.keys() - found.keys())]
    problems += [f"stale {name} (no such message)" for name in sorted(found.keys() - expected.keys())]
    problems += [f"differs {name}" for name in sorted(expected) if name in found and found[name] != expected[name]]
    return problems


def write(directory: Path = SCHEMA_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        stale.unlink()
    for name, text in generate().items():
        (directory / name).write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.write:
        write()
        asyncapi.DOCUMENT.write_text(asyncapi.render())
        return 0
    problems = differences() + asyncapi.differences()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
