"""The order API's OpenAPI document, generated from the code and checked in next to the service.

python -m order_service.openapi --write    regenerate services/order-service/openapi.json
python -m order_service.openapi --check    exit 1 when the checked-in document is stale
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, cast

from order_service.entrypoints.auth import Authenticator
from order_service.entrypoints.http import ReadinessCheck, create_app
from order_service.entrypoints.query_routes import query_router
from order_service.entrypoints.return_routes import return_router

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi.json"


def generate() -> str:
    # Only the routes' shapes matter here: the use cases behind them are never called.
    unused: Any = cast(Any, None)
    auth = Authenticator([], tracking_secret="openapi-generation-only")
    app = create_app(
        unused,
        unused,
        unused,
        unused,
        ReadinessCheck(),
        auth,
        routers=[query_router(unused, auth), return_router(unused, unused, auth)],
    )
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    args = parser.parse_args()
    document = generate()
    if args.write:
        DOCUMENT.write_text(document)
        return 0
    if not DOCUMENT.exists() or DOCUMENT.read_text() != document:
        print(f"{DOCUMENT.name} is stale: run `make openapi` and commit it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
