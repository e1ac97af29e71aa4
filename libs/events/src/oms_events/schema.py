"""JSON Schemas of the contract, generated from the models and checked in under libs/events/schemas.

python -m oms_events.schema --write    regenerate
python -m oms_events.schema --check    exit 1 when the checked-in files differ from the models

Both also cover the AsyncAPI document (libs/events/asyncapi.json, see `oms_events.asyncapi`), so one
command keeps every generated description of the contract current.
"""

import json
from pathlib import Path
from typing import Any

from oms_events import asyncapi
from oms_events.envelope import Envelope
from oms_events.generated import GeneratedFiles, command
from oms_events.messages import MESSAGE_TYPES, ContractMessage
from oms_events.previous import PREVIOUS_VERSIONS

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_file_name(cls: type[ContractMessage]) -> str:
    return f"{cls.message_type}.v{cls.schema_version}.json"


def message_schema(cls: type[ContractMessage]) -> dict[str, Any]:
    """The JSON Schema of one version of one message, with what the contract says about it as `x-*`."""
    return {
        "$schema": _DIALECT,
        "x-message-type": cls.message_type,
        "x-schema-version": cls.schema_version,
        "x-kind": cls.message_kind,
        "x-topic": cls.topic,
        "x-key": cls.key_field,
        **cls.model_json_schema(),
    }


def render(body: dict[str, Any]) -> str:
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def generate() -> dict[str, str]:
    """File name -> file text for every schema of the contract: every version of every message that was
    released (the current ones and `oms_events.previous`), and the envelope."""
    files: dict[str, Any] = {
        "envelope.json": {"$schema": _DIALECT, **Envelope.model_json_schema()},
    }
    for cls in (*MESSAGE_TYPES, *PREVIOUS_VERSIONS):
        files[schema_file_name(cls)] = message_schema(cls)
    return {name: render(body) for name, body in files.items()}


def generated_files(directory: Path = SCHEMA_DIR) -> GeneratedFiles:
    return GeneratedFiles(directory, generate, owned="*.json", stale_note=" (no such message)")


def differences(directory: Path = SCHEMA_DIR) -> list[str]:
    return generated_files(directory).differences()


def write(directory: Path = SCHEMA_DIR) -> None:
    generated_files(directory).write()


def main() -> int:
    return command(__doc__, [generated_files(), asyncapi.generated_files()])


if __name__ == "__main__":
    raise SystemExit(main())
