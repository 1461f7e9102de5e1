"""``observatory``: start the service, run workers, migrate, submit runs and watch them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from server.config import Settings, get_settings
from server.dataset_cli import datasets_app, write_demo_sets
from server.datasets import scan
from server.security import exposure_problem
from server.sweep_cli import sweep_body
from server.token_cli import token_app, warn_if_none

app = typer.Typer(help="Training Dynamics Observatory", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(datasets_app, name="datasets")
console = Console()
ApiOption = Annotated[str, typer.Option(help="server URL", envvar="OBS_API_URL")]
TokenOption = Annotated[
    str | None, typer.Option(help="API token (OBS_AUTH=required)", envvar="OBS_TOKEN")
]
DEFAULT_API = "http://127.0.0.1:8000"


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
    down: Annotated[bool, typer.Option("--down", help="downgrade to the revision")] = False,
) -> None:
    """Bring the database schema to a revision (Alembic)."""
    from server import migrate as migrations  # alembic is only needed here

    url = get_settings().resolved_database_url
    if down:
        migrations.downgrade(url, "base" if revision == "head" else revision)
    else:
        migrations.upgrade(url, revision)
    console.print(f"database at {revision} ({'down' if down else 'up'}): {_redact(url)}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run the API server and dashboard (uvicorn)."""
    import uvicorn

    settings = get_settings()
    _refuse_exposure(settings, host)
    if settings.auth == "required":
        warn_if_none(settings)
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )


@app.command()
def worker(
    queues: Annotated[
        str | None, typer.Option(help="default: gpu,any with CUDA, else cpu,any")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Celery node name (the identity adds pid and a random id)")
    ] = None,
) -> None:
    """Run one Celery worker process (one per GPU): solo pool, late acks, prefetch 1."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        # Before torch loads OpenMP: idle pool threads sleep instead of spinning against other
        # processes (8x per step on a busy machine; docs/architecture.md, "Worker threads").
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import logging

    import torch

    from worker.celery_app import app as celery_app

    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s %(levelname)s %(name)s] %(message)s"
    )
    if queues is None:
        queues = "gpu,any" if torch.cuda.is_available() else "cpu,any"
    argv = ["worker", "--pool=solo", "--concurrency=1", f"--queues={queues}", "--loglevel=INFO"]
    if name:
        argv.append(f"--hostname={name}")
    celery_app.worker_main(argv)


@app.command()
def up(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Everything on this machine: embedded broker (unless OBS_BROKER_URL), migrations, one
    worker process and the server.  Ctrl-C stops them all."""
    from server import embedded
    from server import migrate as migrations

    settings = get_settings()
    _refuse_exposure(settings, host)
    # uvicorn re-raises a SIGTERM after its own shutdown; by default that would end this process
    # before ``finally`` stops the worker and the broker (systemd, ``docker stop``, ``kill``).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _first_start_demo_sets(settings.resolved_datasets_dir)
    children: list[subprocess.Popen] = []
    env = {**os.environ, "OBS_DATA_DIR": str(settings.data_dir.resolve())}
    try:
        if settings.embedded_broker:
            children.append(embedded.start_redis(settings.broker_socket, settings.data_dir))
        migrations.upgrade(settings.resolved_database_url)
        children.append(subprocess.Popen([sys.executable, "-m", "server.cli", "worker"], env=env))
        url = f"http://{host or settings.host}:{port or settings.port}"
        console.print(f"[bold green]Dashboard:[/] {url}   (API docs: {url}/docs) — Ctrl-C stops")
        serve(host, port)
    finally:
        for child in reversed(children):  # the worker first, then the broker it needs
            _stop(child)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _first_start_demo_sets(root: Path) -> None:
    """With no data set on this machine yet, write make-demo's: the presets that train on
    stored data (the image ResNets, the text GPT) then work from the first start."""
    if next(scan(root), None) is None:
        console.print(f"First start: writing the demo data sets to {root}")
        write_demo_sets(root)


def _refuse_exposure(settings: Settings, host: str | None) -> None:
    """Never an open server on a reachable address (docs/security.md)."""
    problem = exposure_problem(settings, host or settings.host)
    if problem:
        console.print(problem, style="bold red", markup=False, highlight=False)
        raise typer.Exit(2)


def _stop(process: subprocess.Popen, grace: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@app.command()
def submit(
    config: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="RunConfig JSON")],
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    wait: Annotated[bool, typer.Option(help="show progress until the run ends")] = True,
) -> None:
    """Submit a run and follow it with a progress bar."""
    response = _request("POST", f"{api}/api/runs", token, json=_read_json(config))
    run = response.json()
    console.print(f"run {run['id']} queued: {api}/runs/{run['id']}")
    if not wait:
        return
    run = _follow(
        f"{api}/api/runs/{run['id']}",
        token,
        run,
        total=run["total_steps"],
        seconds=0.5,
        show=lambda r: (r["step"], f"run {r['id']} {r['status']}"),
    )
    console.print(f"run {run['id']}: [bold]{run['status']}[/]")
    if run["status"] != "completed":
        if run.get("error"):
            console.print(run["error"])
        raise typer.Exit(1)


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="base RunConfig")],
    axis: Annotated[
        list[str],
        typer.Option(help="path=v1,v2,... (or path=low..high[:log][:int] with --random)"),
    ],
    random: Annotated[
        int | None, typer.Option("--random", help="random search: this many runs")
    ] = None,
    seed: Annotated[int, typer.Option(help="random search's seed")] = 0,
    name: Annotated[str | None, typer.Option(help="the sweep's name")] = None,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    wait: Annotated[bool, typer.Option(help="show progress until every run ends")] = True,
) -> None:
    """Submit a sweep (one run per point of the axes' grid, or --random N points) and follow it."""
    body = sweep_body(_read_json(config), axis, random, seed) | ({"name": name} if name else {})
    made = _request("POST", f"{api}/api/sweeps", token, json=body).json()
    console.print(f"sweep {made['id']}: {made['count']} runs queued: {api}/sweeps/{made['id']}")
    if not wait:
        return

    def show(s: dict) -> tuple[float, str]:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(s["statuses"].items()))
        return sum(r["progress"] for r in s["runs"]), f"sweep {s['id']}: {counts}"

    made = _follow(
        f"{api}/api/sweeps/{made['id']}", token, made, total=made["count"], seconds=1.0, show=show
    )
    console.print(f"sweep {made['id']}: [bold]{made['status']}[/]")
    if made["status"] != "completed":
        raise typer.Exit(1)


@app.command()
def runs(
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    status: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 20,
) -> None:
    """List runs."""
    params = {"limit": limit, **({"status": status} if status else {})}
    data = _request("GET", f"{api}/api/runs", token, params=params).json()
    table = Table("id", "name", "status", "step", "progress", "created")
    for run in data["data"]:
        table.add_row(
            str(run["id"]),
            run["name"],
            run["status"],
            f"{run['step']}/{run['total_steps']}",
            f"{100 * run['progress']:.0f}%",
            run["created_at"][:19],
        )
    console.print(table)
    console.print(f"{data['count']} runs")


@app.command()
def sync(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="spool dir")],
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
) -> None:
    """Upload the SDK spools in DIRECTORY (offline runs, or runs that lost the server)."""
    from observatory import client, spool  # the SDK (and torch) only for this command

    connection = client.Connection(api, token)
    failed = 0
    for path in sorted(directory.glob(f"*{spool.SUFFIX}")):
        try:
            run_id = client.upload(path, connection)
        except (client.Unreachable, client.Rejected, ValueError) as error:
            console.print(f"[red]{path.name}: {error}[/]")
            failed += 1
            continue
        path.rename(path.with_name(path.name + ".synced"))
        console.print(f"{path.name}: run {run_id} {api}/runs/{run_id}")
    if failed:
        raise typer.Exit(1)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"{path} is not valid JSON: {error}") from error


def _follow(
    url: str,
    token: str | None,
    item: dict,
    *,
    total: float,
    seconds: float,
    show: Callable[[dict], tuple[float, str]],
) -> dict:
    """Polls a run or sweep at ``url`` with a progress bar until its status is not queued or
    running; ``show`` gives the bar's position and text.  Returns it as it ended."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        done, text = show(item)
        bar = progress.add_task(text, total=total, completed=done)
        while item["status"] in ("queued", "running"):
            time.sleep(seconds)
            item = _request("GET", url, token).json()
            done, text = show(item)
            progress.update(bar, completed=done, description=text)
    return item


def _request(method: str, url: str, token: str | None, **kwargs) -> httpx.Response:  # noqa: ANN003
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url, headers=headers, timeout=30, **kwargs)
    except httpx.HTTPError as error:
        console.print(f"[red]cannot reach {url}: {error}[/]")
        raise typer.Exit(2) from error
    if response.status_code >= 400:
        console.print(f"[red]{response.status_code}[/] {response.text}")
        raise typer.Exit(1)
    return response


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


if __name__ == "__main__":
    app()
