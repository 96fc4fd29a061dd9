"""The method commands of `w2s`, generated from the command registry and the typed configs.

Every leaf of a command's config is an option named by its key (`--probe.epochs 3`, the same
key `--set probe.epochs=3` and YAML use), with the field's help text and default; the
registry adds the flags researchers know (`--task`, `--seed`, `--learning-rate`...). Every
command also takes `--config/-c`, `--set/-s`, `--runs-dir`, `--print-config`, `--dry-run`,
`--seeds`, `--run-name`, `--tag` and `--track`. A renamed config field renames its option:
nothing here is kept by hand.
"""

from __future__ import annotations

import json
import os
import sys
import typing
from typing import Any

import click
from rich.console import Console

from weak2strong.commands import COMMANDS, Command, Shortcut, _load
from weak2strong.runs.config import Leaf, leaves

# A log file or pipe has no width of its own, and rich's 80 columns fold the wider result
# tables (prune-lm's seven columns) into unreadable cells; a terminal or COLUMNS still rules.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120)

TRACK_HELP = (
    "Log training curves, hyperparameters and final metrics to tensorboard, mlflow or wandb "
    "(repeatable; under W2S_TRACK_DIR, default tracking/; wandb stays offline unless "
    "WANDB_MODE or WANDB_API_KEY is set). Needs that library: pip install 'weak2strong[track]'."
)
CLI_COMMANDS = {name: command for name, command in COMMANDS.items() if command.on_cli}
COMMON = ("config", "set_", "runs_dir", "print_config", "dry_run", "seeds", "run_name", "tag")


def use_trackers(names: list[str] | tuple[str, ...]) -> None:
    if names:
        os.environ["W2S_TRACK"] = ",".join(names)
        from weak2strong.tracking import requested_trackers

        requested_trackers()  # an unknown name fails before any work


def _metavar(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "[" + "|".join(map(str, args)) + "]"
    if origin in (list, tuple):
        item = _metavar(args[0]) if args else ""
        return f"{item},..." if item.startswith("[") else "A,B,..."
    if origin is dict:
        return "{KEY: VALUE}"
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return _metavar(inner[0]) if len(inner) == 1 else "VALUE"
    return {int: "INT", float: "FLOAT", str: "TEXT", bool: "BOOL"}.get(annotation, "VALUE")


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value) if value == "" else value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _seeds_option(leaf: Leaf | None) -> click.Option:
    if leaf is None:
        text = "Replicates: run once per seed (e.g. 0,1,2) and aggregate them."
    else:  # a command that runs its seeds itself (prune) takes them as its setting
        text = f"{leaf.help} [setting: seeds; default: {_shown(leaf.default)}]"
    return click.Option(["--seeds"], metavar="A,B,...", help=text)


def _common_options(seeds: Leaf | None) -> list[click.Parameter]:
    """The options every command has, besides its settings."""
    return [
        click.Option(["--config", "-c"], help="YAML config file (see --print-config)."),
        click.Option(
            ["--set", "-s", "set_"],
            multiple=True,
            help="Override a setting: key=value (repeatable), as the options below.",
        ),
        click.Option(
            ["--runs-dir"], default="runs", show_default=True, help="Run folders go here."
        ),
        click.Option(
            ["--print-config"],
            is_flag=True,
            help="Print the resolved config as YAML (ready for -c) and exit.",
        ),
        click.Option(
            ["--dry-run"],
            is_flag=True,
            help="Say what would run (run folder, cached steps, models, data) and exit.",
        ),
        _seeds_option(seeds),
        click.Option(["--run-name"], help="A name for the run (shown by w2s runs and reports)."),
        click.Option(["--tag"], multiple=True, help="A tag for the run (repeatable)."),
        click.Option(["--track"], multiple=True, help=TRACK_HELP),
    ]


def _options(command: Command) -> list[click.Parameter]:
    config = command.config
    by_key = {leaf.key: leaf for leaf in leaves(config)}
    params = _common_options(by_key.get("seeds"))
    taken = {"--config", "-c", "--set", "-s", "--runs-dir", "--print-config", "--dry-run"}
    taken |= {"--seeds", "--run-name", "--tag", "--track"}
    for number, shortcut in enumerate(command.shortcuts):
        leaf = by_key[shortcut.key]
        default = f" [setting: {shortcut.key}; default: {_shown(leaf.default)}]"
        if _is_bool(leaf.annotation):
            params.append(
                click.Option(
                    [shortcut.flag, f"shortcut_{number}"],
                    is_flag=True,
                    default=None,
                    help=shortcut.help + default,
                )
            )
        else:
            params.append(
                click.Option(
                    [shortcut.flag, f"shortcut_{number}"],
                    multiple=shortcut.multiple,
                    metavar=_metavar(leaf.annotation),
                    help=shortcut.help + default,
                )
            )
        taken.add(shortcut.flag)
    for number, leaf in enumerate(by_key.values()):
        flag = f"--{leaf.key}"
        if flag in taken:
            continue
        text = f"{leaf.help} [default: {_shown(leaf.default)}]"
        if _is_bool(leaf.annotation):
            params.append(
                click.Option([f"{flag}/--no-{leaf.key}", f"leaf_{number}"], default=None, help=text)
            )
        else:
            params.append(
                click.Option(
                    [flag, f"leaf_{number}"],
                    multiple=typing.get_origin(leaf.annotation) is list,
                    metavar=_metavar(leaf.annotation),
                    help=text,
                )
            )
    return params


def _override(key: str, value: Any) -> str | None:
    """A `key=value` override from an option's value (None: the option was not given)."""
    if value is None or value == () or value == []:
        return None
    if isinstance(value, tuple | list):
        values = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
        return f"{key}={json.dumps(values)}"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    return f"{key}={value}"


def overrides_from(command: Command, options: dict[str, Any]) -> list[str]:
    """`--set` overrides first, then every option given, as `key=value` overrides."""
    found = list(options.get("set_") or [])
    by_key = [leaf.key for leaf in leaves(command.config)]
    for name, value in options.items():
        if name.startswith("leaf_"):
            key = by_key[int(name.removeprefix("leaf_"))]
        elif name.startswith("shortcut_"):
            shortcut: Shortcut = command.shortcuts[int(name.removeprefix("shortcut_"))]
            key = shortcut.key
            if shortcut.expand_all and value and list(value) == ["all"]:
                value = list(_load(shortcut.expand_all))
        else:
            continue
        override = _override(key, value)
        if override is not None:
            found.append(override)
    return found


def build(command: Command) -> click.Command:
    def callback(**options: Any) -> None:
        use_trackers(options.pop("track") or ())
        common = {name: options.pop(name) for name in COMMON}
        overrides = overrides_from(command, {**options, "set_": common["set_"]})
        invoke(command, common, overrides)

    return click.Command(
        command.cli_name or command.name,
        params=_options(command),
        callback=callback,
        help=command.help,
        short_help=command.help.split(":")[0].rstrip("."),
        context_settings={"max_content_width": 100},
    )


def invoke(command: Command, common: dict[str, Any], overrides: list[str]) -> None:
    """Run the command as its options ask, and show what came of it."""
    import yaml

    from weak2strong import distributed, invocation
    from weak2strong.report import print_table
    from weak2strong.runs.config import config_to_dict

    config, seeds = invocation.resolve(command, common["config"], overrides, common["seeds"])
    if common["print_config"]:
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True), end="")
        return
    runs_dir = common["runs_dir"]
    if common["dry_run"]:
        print_table(console, invocation.plan(command, config, runs_dir))
        return
    name, tags = common["run_name"], list(common["tag"])
    if seeds:
        outcome = invocation.replicate(
            command,
            config,
            seeds,
            runs_dir,
            name,
            tags,
            lambda seed, number: console.print(
                f"[bold]seed {seed}[/bold] ({number} of {len(seeds)})"
            ),
        )
    else:
        outcome = invocation.run_once(command, config, runs_dir, name, tags)
    if distributed.is_main():
        show_outcome(outcome)


def show_outcome(outcome: Any) -> None:
    """After a run: its tables, its effects in words, where its folder and plot are."""
    from weak2strong.report import plain, print_table
    from weak2strong.report.effects import effect_sentences

    for table in outcome.command.tables(outcome.results):
        print_table(console, table)
    for sentence in effect_sentences(outcome.results.get("metrics", [])):
        console.print(plain(f"effect: {sentence}"), highlight=False)
    plot = f"  plot: {outcome.plot}" if outcome.plot else ""
    console.print(plain(f"run folder: {outcome.folder}{plot}"))


class CommandsGroup(click.Group):
    """The fixed commands, plus a command per registry record, built only when it is called
    (so `w2s --help` imports no config, and no model library)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*CLI_COMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in CLI_COMMANDS:
            return build(CLI_COMMANDS[name])
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # `w2s generalize --generative ...` is the generalize-generative command
        if args and args[0] == "generalize" and "--generative" in args:
            args = ["generalize-generative", *[a for a in args[1:] if a != "--generative"]]
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in CLI_COMMANDS:
                rows.append((name, CLI_COMMANDS[name].help.split(":")[0].rstrip(".")))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(90)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
