"""`--help` of every `payfeed` command: it works, says what the command does in a
sentence, and explains every option and argument; wrong values name the valid
ones."""

from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from app.cli import cli


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    if hasattr(command, "list_commands"):
        context = typer.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None
            yield from commands(sub, (*path, name))


TYPER_OWN = {"help", "install_completion", "show_completion"}


def test_every_command_explains_itself_and_each_option() -> None:
    root = typer.main.get_command(cli)
    runner = CliRunner()
    found = list(commands(root))
    assert len(found) >= 20
    problems = []
    for path, command in found:
        shown = runner.invoke(cli, [*path, "--help"], env={"COLUMNS": "240"})
        where = " ".join(("payfeed", *path))
        if shown.exit_code != 0:
            problems.append(f"{where} --help: exit {shown.exit_code}")
        lines = [" ".join(line.split()) for line in shown.output.splitlines()]
        for paragraph in (command.help or "").split("\n\n"):
            flowing = " ".join(paragraph.replace("`", "").split())
            if flowing and len(flowing) < 200 and not any(flowing in line for line in lines):
                problems.append(f"{where}: {flowing[:40]!r}… is broken across lines")
        first = (command.help or "").strip().split("\n\n")[0].rstrip()
        if not first.endswith((".", ")")):
            problems.append(f"{where}: {first!r} is not a sentence")
        for param in command.params:
            if param.name in TYPER_OWN:
                continue
            described = getattr(param, "help", None) or ""
            if not described:
                problems.append(f"{where}: {param.name} has no help")
            elif described.endswith("."):
                problems.append(f"{where}: {param.name}: a phrase, no full stop")
    assert problems == []


def test_a_wrong_value_names_the_valid_ones() -> None:
    runner = CliRunner()
    bad_kind = runner.invoke(cli, ["registry", "list", "--kind", "shops"])
    assert bad_kind.exit_code == 2
    assert (
        "kind is one of cities, enterprises, merchant-accounts, activities, policies, providers"
        in bad_kind.output
    )
