"""Kept for the command earlier docs name: every service's document now comes from `oms_runtime.openapi`.

python -m order_service.openapi --write|--check    same as python -m oms_runtime.openapi (all five services)
"""

from oms_runtime.openapi import main

if __name__ == "__main__":
    raise SystemExit(main())
