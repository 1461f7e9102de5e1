"""``observatory datasets import|list|make-demo``: data sets under this machine's
``OBS_DATASETS_DIR`` (docs/datasets.md).  They work on the disk directly, like ``migrate``: run
them on the worker machine whose disk holds the data; the worker publishes its catalog when it
starts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from server.config import get_settings
from server.datasets import DatasetError, Manifest, scan
from server.datasets.demo import make_demo
from server.datasets.importer import Format, detect, import_dataset

datasets_app = typer.Typer(help="Data sets under OBS_DATASETS_DIR (names, never paths).")
console = Console()


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _table(manifests: list[Manifest]) -> Table:
    table = Table("name", "kind", "source", "shape", "classes", "train", "test", "MiB held")
    table.columns[0].no_wrap = True
    for m in manifests:
        size = m.held()[1] / 2**20
        shape = "x".join(map(str, m.shape))
        row = (m.name, m.kind, m.source, shape, str(m.n_classes), str(m.train), str(m.test))
        table.add_row(*row, f"{size:.1f}")
    return table


@datasets_app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(exists=True, help="a file or folder to convert")],
    name: Annotated[str, typer.Option(help="the data set's name under OBS_DATASETS_DIR")],
    format: Annotated[Format | None, typer.Option("--format", help="default: detected")] = None,
    tokens: Annotated[Literal["char", "byte"], typer.Option(help="text: token level")] = "char",
    context: Annotated[int, typer.Option(help="text: tokens per example")] = 64,
    test_fraction: Annotated[
        float, typer.Option(min=0.01, max=0.99, help="text, one-split image folders: test share")
    ] = 0.2,
) -> None:
    """Convert PATH (npz, image folder, text, CIFAR-10/100 batches, MNIST IDX) into the stored
    form."""
    root = get_settings().resolved_datasets_dir
    try:
        fmt = format or detect(path)
        options = {
            "text": {"tokens": tokens, "context": context, "test_fraction": test_fraction},
            "image_folder": {"test_fraction": test_fraction},
        }.get(fmt, {})
        with _progress(f"importing {path.name} ({fmt})") as progress:
            bar = progress.add_task("import", total=None)
            update = lambda done, total: progress.update(bar, completed=done, total=total)  # noqa: E731
            manifest = import_dataset(path, root, name, fmt, update, **options)
    except DatasetError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print(_table([manifest]))
    console.print(f"stored under {root / name}")


@datasets_app.command("list")
def list_command() -> None:
    """The data sets this machine's workers can read."""
    root = get_settings().resolved_datasets_dir
    manifests = list(scan(root))
    console.print(_table(manifests))
    console.print(f"{len(manifests)} data sets in {root}")


@datasets_app.command("make-demo")
def make_demo_command() -> None:
    """Small real data sets (scikit-learn's digits as an image folder and as npz, a text corpus
    of standard-library docstrings), written as source files and imported."""
    console.print(_table(write_demo_sets(get_settings().resolved_datasets_dir)))


def write_demo_sets(root: Path) -> list[Manifest]:
    """make-demo's data sets under ``root``, with a progress bar."""
    with tempfile.TemporaryDirectory() as sources, _progress("making demo sets") as progress:
        bar = progress.add_task("demo", total=None)
        update = lambda done, total: progress.update(bar, completed=done, total=total)  # noqa: E731
        return make_demo(root, Path(sources), update)
