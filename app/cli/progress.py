"""Progress bars on the terminal (rich, on stderr): shown while a long command
works, gone when it is done, and not drawn at all when stderr is not a terminal
(a log file or a pipe gets the command's result lines only)."""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)


def bar(*extra: ProgressColumn) -> Progress:
    """A transient bar: description, bar, percent, the caller's columns, ETA."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        *extra,
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    )


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A bar counting steps; yields `advance(done, total)` for the work to call."""
    with bar(MofNCompleteColumn()) as shown:
        task = shown.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            shown.update(task, completed=done, total=total)

        yield advance
