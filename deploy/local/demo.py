"""Places demo orders from several channels and shows each one's progress to its final status.

uv run python deploy/local/demo.py [--url http://127.0.0.1:8000]
"""

import argparse
import asyncio
import os
import sys
import time
from typing import Any
from uuid import uuid4

import httpx

from oms_cli.demo import DEMO_ORDERS, FINAL


async def main(url: str, timeout_s: float) -> int:
    run_id = uuid4().hex[:6].upper()
    headers = {"X-API-Key": os.environ.get("OMS_API_KEY", "local-ops-key-0123456789")}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
        orders: dict[str, str] = {}
        print(f"placing {len(DEMO_ORDERS)} demo orders at {url}")
        for title, body in DEMO_ORDERS:
            payload = {**body, "external_reference": f"DEMO-{run_id}-{len(orders) + 1}"}
            response = await http.post("/orders", json=payload, headers={"Idempotency-Key": str(uuid4())})
            if response.status_code not in (200, 201):
                print(f"  ! {title}: HTTP {response.status_code} {response.text}")
                return 1
            order_id = response.json()["order_id"]
            orders[order_id] = title
            print(f"  + {order_id[:8]}  {title}")

        print("\nprogress (status changes as they happen):")
        last: dict[str, str] = {}
        views: dict[str, dict[str, Any]] = {}
        started = time.monotonic()
        while len([s for s in last.values() if s in FINAL]) < len(orders):
            if time.monotonic() - started > timeout_s:
                print(f"  ! not every order reached a final status within {timeout_s:.0f} s")
                return 1
            for order_id in orders:
                if last.get(order_id) in FINAL:
                    continue
                view = (await http.get(f"/orders/{order_id}")).json()
                views[order_id] = view
                if view["status"] != last.get(order_id):
                    last[order_id] = view["status"]
                    print(f"  {time.monotonic() - started:6.2f}s  {order_id[:8]}  {view['status']}")
            await asyncio.sleep(0.2)

        print("\nfinal statuses:")
        for order_id, title in orders.items():
            view = views[order_id]
            extra = ""
            if view["shipments"]:
                s = view["shipments"][0]
                extra = f"{s['carrier']} {s['tracking_number']}, arrives {s['estimated_delivery']}"
            elif view["rejection_reason"]:
                extra = view["rejection_reason"]
            print(f"  {order_id[:8]}  {view['status']:<9} {title}\n            {extra}")
        print(f"\ntimeline of {next(iter(orders))[:8]}:")
        for entry in views[next(iter(orders))]["timeline"]:
            print(f"  {entry['at'][11:23]}  {entry['event']:<20} {entry['description']}")
        print(f"\nGET {url}/orders/<id> shows any order; {url}/docs is the API.")
        return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.url, args.timeout)))
