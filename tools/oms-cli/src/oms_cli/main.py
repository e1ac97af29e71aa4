"""`oms`: the operators' command line.

    oms orders stuck [--older-than 900]          stuck orders (order-service API, ops key)
    oms orders story ORDER_ID                    everything about one order on every topic, in time order
    oms dlq list [SERVICE] [--order ID]          dead letters with their reasons and what was done to them
    oms dlq show SERVICE OFFSET                  one dead letter: headers, reason, the original message
    oms dlq redrive SERVICE [OFFSET] [--order]   send dead letters back to their source topic, in order
    oms dlq discard SERVICE OFFSET --reason ...  close a dead letter without redriving it, with a reason
    oms projection rebuild [order-summaries]     rebuild a read model from the event store (no side effects)
    oms demo load [--count 6]                    place demo orders and follow them to a final status
    oms report sales [--from --to --group-by]    the sales report (order-service), a table or --csv
    oms report fulfilment [--group-by ...]       the fulfilment performance report (fulfilment-service)

Settings come from the environment, like the services': OMS_API_URL (http://127.0.0.1:8000),
OMS_FULFILMENT_URL (http://127.0.0.1:8003), OMS_API_KEY (an ops key), KAFKA_BOOTSTRAP_SERVERS with the Kafka
security settings (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*: oms_runtime.kafka_connection), DATABASE_URL.
"""

import asyncio
import getpass
import os
from collections.abc import Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from oms_cli import api, demo, reports
from oms_cli.story import story as read_story
from oms_events.topics import SERVICES
from oms_runtime import dead_letters
from oms_runtime.logging import mask_text
from oms_runtime.settings import ServiceSettings

T = TypeVar("T")

app = typer.Typer(
    help="The operators' command line: stuck orders, an order's story, dead letters, projections, demo data, "
    "reports. Settings from the environment: OMS_API_URL, OMS_FULFILMENT_URL, OMS_API_KEY (ops key), "
    "KAFKA_BOOTSTRAP_SERVERS (with KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*), DATABASE_URL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
orders_app = typer.Typer(help="Orders: stuck ones, one order's story.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead-letter topics: list, show, redrive, discard.", no_args_is_help=True)
projection_app = typer.Typer(help="Read models rebuilt from the event store.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
app.add_typer(orders_app, name="orders")
app.add_typer(dlq_app, name="dlq")
app.add_typer(projection_app, name="projection")
app.add_typer(demo_app, name="demo")
app.add_typer(reports.report_app, name="report")

console = Console()
err = Console(stderr=True)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def _settings() -> ServiceSettings:
    return ServiceSettings()


def _ledger(settings: ServiceSettings) -> dead_letters.Ledger:
    return dead_letters.Ledger(settings.database_url, os.environ.get("OMS_OPS_SCHEMA", dead_letters.OPS_SCHEMA))


def _api(url: str | None, key: str | None) -> httpx.AsyncClient:
    """A client of order-service (OMS_API_URL) with the ops key (OMS_API_KEY)."""
    return api.client(
        url or os.environ.get("OMS_API_URL", api.ORDER_SERVICE_URL), key or os.environ.get("OMS_API_KEY"), err
    )


def _fail_http(response: httpx.Response) -> None:
    api.fail(response, err)


def _operator(operator: str | None) -> str:
    if operator:
        return operator
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


ApiUrl = Annotated[str | None, typer.Option("--api-url", help="order-service base URL (env OMS_API_URL)")]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="an ops API key (env OMS_API_KEY)")]
Operator = Annotated[str | None, typer.Option("--operator", help="who you are, for the record (default: $USER)")]
DeadLetterTopic = Annotated[str, typer.Argument(help=f"a service ({', '.join(SERVICES)}) or a dead-letter topic")]


# ------------------------------------------------------------------------------------------ orders


@orders_app.command("stuck")
def stuck(
    older_than: Annotated[float, typer.Option(help="seconds without progress")] = 900,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Open orders without progress for --older-than seconds, and every order that needs an operator."""

    async def fetch() -> httpx.Response:
        async with _api(api_url, api_key) as http:
            return await http.get("/orders/stuck", params={"older_than_s": older_than, "limit": limit})

    response = _run(fetch())
    if response.status_code != 200:
        _fail_http(response)
    orders = response.json()["orders"]
    if not orders:
        console.print(f"no stuck orders (none without progress for {older_than:g} s, none needs attention)")
        return
    table = Table(title=f"{len(orders)} stuck order(s)")
    for column in ("order", "status", "reason", "stuck for", "last event", "channel", "reference"):
        table.add_column(column)
    for order in orders:
        table.add_row(
            order["order_id"],
            order["status"],
            order["reason"],
            _duration(order["stuck_for_s"]),
            order["last_event_type"],
            order["channel"],
            order["external_reference"],
        )
    console.print(table)


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


@orders_app.command("story")
def order_story(
    order_id: Annotated[str, typer.Argument(help="the order id (the Kafka key of everything about it)")],
    topic: Annotated[list[str] | None, typer.Option("--topic", help="only these topics (default: all)")] = None,
) -> None:
    """Everything about one order on every topic (events, commands, replies, dead letters), in time order."""
    settings = _settings()
    with _progress() as progress:
        task = progress.add_task("reading topics", total=None)

        chapters = _run(
            read_story(
                settings.kafka_connection(),
                order_id,
                topic or None,
                progress=lambda n: progress.advance(task, n),
                on_total=lambda total: progress.update(task, total=total),
            )
        )
    if not chapters:
        console.print(f"nothing on any topic is keyed by {order_id}")
        raise typer.Exit(1)
    table = Table(title=f"order {order_id}: {len(chapters)} messages")
    for column in ("time (UTC)", "topic", "message", "by", "detail"):
        table.add_column(column, overflow="fold")
    for c in chapters:
        detail = c.detail if c.dead_letter_reason is None else f"[red]DEAD LETTER: {c.dead_letter_reason}[/red]"
        table.add_row(c.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], c.topic, c.type, c.producer, detail)
    console.print(table)


# ------------------------------------------------------------------------------------------ dead letters


def _load(topic: str, order_id: str | None) -> list[dead_letters.DeadLetter]:
    settings = _settings()

    async def load() -> list[dead_letters.DeadLetter]:
        async with _ledger(settings) as ledger:
            with _progress() as progress:
                task = progress.add_task(f"reading {topic}", total=None)
                return await dead_letters.load(
                    settings.kafka_connection(),
                    ledger,
                    topic,
                    order_id=order_id,
                    progress=lambda n: progress.advance(task, n),
                )

    try:
        return _run(load())
    except LookupError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def _topic(service_or_topic: str) -> str:
    try:
        return dead_letters.resolve_topic(service_or_topic)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _one(topic: str, ref: str) -> dead_letters.DeadLetter:
    try:
        partition, offset = dead_letters.parse_ref(ref)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for letter in _load(topic, None):
        if (letter.record.partition, letter.record.offset) == (partition, offset):
            return letter
    err.print(f"[red]no dead letter at {topic} {partition}:{offset}[/red]")
    raise typer.Exit(1)


@dlq_app.command("list")
def dlq_list(
    service: Annotated[str | None, typer.Argument(help="a service or dead-letter topic (default: all)")] = None,
    order: Annotated[str | None, typer.Option("--order", help="only this order's dead letters")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="only those nobody acted on yet")] = False,
) -> None:
    """Dead letters with their reasons, oldest first, and what was done with each."""
    topics = [_topic(service)] if service else [dead_letters.resolve_topic(s) for s in SERVICES]
    shown = 0
    for topic in topics:
        letters = [d for d in _load(topic, order) if not pending or d.status == "pending"]
        if not letters:
            continue
        shown += len(letters)
        table = Table(title=f"{topic}: {len(letters)} dead letter(s)")
        for column in ("ref", "failed at", "order", "type", "from", "reason", "status"):
            table.add_column(column, overflow="fold")
        for d in letters:
            table.add_row(
                d.ref,
                (d.failed_at or "")[:19],
                d.key or "",
                d.message_type or "?",
                f"{d.source_topic}:{d.source_partition}:{d.source_offset}",
                mask_text(d.reason),
                d.status,
            )
        console.print(table)
    if not shown:
        console.print("no dead letters" + (f" for order {order}" if order else ""))


@dlq_app.command("show")
def dlq_show(service: DeadLetterTopic, ref: Annotated[str, typer.Argument(help="offset, or partition:offset")]) -> None:
    """One dead letter in full: reason, headers, the original message and the actions taken."""
    letter = _one(_topic(service), ref)
    lines = [
        f"reason:  {mask_text(letter.reason)}",
        f"from:    {letter.source_topic} partition {letter.source_partition} offset {letter.source_offset}",
        f"by:      {letter.consumer} at {letter.failed_at}",
        f"key:     {letter.key}",
        f"status:  {letter.status}",
    ]
    lines += [
        f"  {a['acted_at']:%Y-%m-%d %H:%M:%S} {a['action']} by {a['operator']}: {a['reason']}" for a in letter.actions
    ]
    lines.append("headers: " + ", ".join(f"{k}={v.decode(errors='replace')}" for k, v in letter.record.headers))
    console.print(Panel("\n".join(lines), title=f"{letter.record.topic} {letter.ref}"))
    console.print(mask_text(letter.pretty_value()))


@dlq_app.command("redrive")
def dlq_redrive(
    service: DeadLetterTopic,
    ref: Annotated[str | None, typer.Argument(help="one dead letter (offset or partition:offset)")] = None,
    order: Annotated[str | None, typer.Option("--order", help="all of this order's dead letters, in order")] = None,
    reason: Annotated[str, typer.Option(help="why (recorded)")] = "redriven after the cause was fixed",
    operator: Operator = None,
    force: Annotated[bool, typer.Option(help="also those already redriven or discarded")] = False,
) -> None:
    """Publish dead letters again to the topic they came from (original key, bytes and headers)."""
    if (ref is None) == (order is None):
        err.print("[red]give either one dead letter (REF) or --order ORDER_ID[/red]")
        raise typer.Exit(2)
    topic = _topic(service)
    letters = [_one(topic, ref)] if ref is not None else _load(topic, order)
    if not letters:
        console.print(f"no dead letters for order {order} on {topic}")
        raise typer.Exit(1)
    settings = _settings()

    async def redrive() -> dead_letters.RedriveResult:
        async with _ledger(settings) as ledger:
            with _progress() as progress:
                task = progress.add_task("redriving", total=len(letters))
                return await dead_letters.redrive(
                    settings.kafka_connection(),
                    ledger,
                    letters,
                    operator=_operator(operator),
                    reason=reason,
                    force=force,
                    progress=lambda n: progress.advance(task, n),
                )

    try:
        result = _run(redrive())
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    for letter in result.redriven:
        console.print(f"redriven {letter.ref} ({letter.message_type}) to {letter.source_topic}")
    for letter in result.skipped:
        console.print(f"[yellow]skipped {letter.ref}: already {letter.status} (--force to redrive again)[/yellow]")


@dlq_app.command("discard")
def dlq_discard(
    service: DeadLetterTopic,
    ref: Annotated[str, typer.Argument(help="offset, or partition:offset")],
    reason: Annotated[str, typer.Option(help="why it is not redriven (recorded)")],
    operator: Operator = None,
) -> None:
    """Close a dead letter without redriving it; the reason and operator are recorded."""
    letter = _one(_topic(service), ref)
    settings = _settings()

    async def discard() -> None:
        async with _ledger(settings) as ledger:
            await dead_letters.discard(ledger, letter, operator=_operator(operator), reason=reason)

    try:
        _run(discard())
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"discarded {letter.record.topic} {letter.ref}: {reason}")


# ------------------------------------------------------------------------------------------ projections

PROJECTIONS = {"order-summaries": "order-service's order_summaries (search, stuck orders, tracking)"}


@projection_app.command("rebuild")
def projection_rebuild(
    name: Annotated[str, typer.Argument(help=", ".join(PROJECTIONS))] = "order-summaries",
    batch_size: Annotated[int, typer.Option(min=1, help="events read per query")] = 1000,
) -> None:
    """Rebuild a read model from the event store. Sends no commands, emails or payments."""
    if name not in PROJECTIONS:
        err.print(f"[red]unknown projection {name!r}; known: {', '.join(PROJECTIONS)}[/red]")
        raise typer.Exit(2)
    from order_service.rebuild_projection import rebuild_with

    with err.status(f"rebuilding {PROJECTIONS[name]}"):
        result = _run(rebuild_with(_settings(), batch_size))
    console.print(
        f"rebuilt {name}: {result.orders} orders from {result.events} events ({result.skipped} streams skipped)"
    )


# ------------------------------------------------------------------------------------------ demo


@demo_app.command("load")
def demo_load(
    count: Annotated[int, typer.Option(min=1, max=10_000, help="orders to place")] = len(demo.DEMO_ORDERS),
    wait: Annotated[bool, typer.Option(help="follow them to a final status")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait for final statuses")] = 120,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Place demo orders from every channel (approved, declined, out of stock) through the API."""
    orders = demo.demo_orders(count)

    async def load() -> tuple[list[str], dict[str, str]]:
        async with _api(api_url, api_key) as http:
            with _progress() as progress:
                task = progress.add_task("placing orders", total=len(orders))
                placed = []
                for _, body in orders:
                    placed.append(await demo.place(http, body))
                    progress.advance(task)
                if not wait:
                    return placed, {}
                final = progress.add_task("waiting for final statuses", total=len(placed))
                statuses = await demo.wait_final(http, placed, timeout, lambda *_: progress.advance(final))
                return placed, statuses

    try:
        placed, statuses = _run(load())
    except (RuntimeError, httpx.HTTPError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    table = Table(title=f"{len(placed)} demo orders placed at {datetime.now():%H:%M:%S}")
    for column in ("order", "scenario", "status"):
        table.add_column(column)
    for order_id, (title, _) in zip(placed, orders, strict=True):
        table.add_row(order_id, title, statuses.get(order_id, "placed"))
    console.print(table)
    if wait and len([s for s in statuses.values() if s in demo.FINAL]) < len(placed):
        err.print(f"[yellow]not every order reached a final status within {timeout:g} s[/yellow]")
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
