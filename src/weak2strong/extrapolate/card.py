"""The model card (README.md) and mergekit recipe that every extrapolated checkpoint carries.

As mergekit does for its merges: YAML front matter the Hugging Face hub reads (`base_model`,
`tags`, `library_name`), then what the checkpoint is, what it was made from, how α was
chosen, and how to make it again with `w2s extrapolate` or with mergekit.
"""

from __future__ import annotations

import json
import shlex
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from weak2strong.extrapolate.recipe import dump_recipe, mergekit_recipe
from weak2strong.fileio import write_text
from weak2strong.runs.results import absolute
from weak2strong.settings import dotted_keys

CARD_FILE = "README.md"
RECIPE_FILE = "merge_recipe.yaml"
TAGS = ["weak2strong", "expo", "merge"]
FLOAT_NAMES = ("float64", "float32", "float16", "bfloat16")
EXPO_PAPER = "https://arxiv.org/abs/2404.16792"
# settings shown as the flags researchers know rather than `--set key=value`
FLAGS = {
    "seed": "--seed",
    "select_by": "--select-by",
    "prompts": "--prompts",
    "dtype": "--dtype",
}


def input_names(report: Mapping[str, Any]) -> list[str]:
    """The inputs as given, local folders as absolute paths (hub ids, embedded names as is)."""
    return [absolute(str(checkpoint["name"])) for checkpoint in report["checkpoints"]]


def stored_dtype(report: Mapping[str, Any]) -> str | None:
    """The one float dtype the weights are stored in (None: several, from dtype auto)."""
    if report.get("dtype", "auto") != "auto":
        return str(report["dtype"])
    floats = [name for name in report.get("out_dtypes", []) if name in FLOAT_NAMES]
    return floats[0] if len(floats) == 1 else None


def recipe_of(report: Mapping[str, Any]) -> dict[str, Any]:
    return mergekit_recipe(
        input_names(report),
        float(report["alpha"]),
        [float(c) for c in report["coefficients"]],
        stored_dtype(report),
    )


def _value_text(value: Any) -> str:
    """A value as `--set key=value` reads it back (YAML), JSON where plain text would not."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = False
        return value if plain and value else json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _alpha_text(alpha: float) -> str:
    short = f"{alpha:g}"
    return short if float(short) == alpha else repr(float(alpha))


def command_line(
    names: list[str],
    alphas: list[float],
    out: str | Path,
    settings: Mapping[str, Any] | None = None,
) -> str:
    """`w2s extrapolate` with these inputs and α, `settings` (nested, non-default) and --out."""
    args = ["w2s", "extrapolate"]
    if len(names) == 2:
        args += ["--sft", names[0], "--aligned", names[1]]
    else:
        for name in names:
            args += ["--checkpoint", name]
    args += ["--alpha", ",".join(_alpha_text(alpha) for alpha in alphas)]
    for key, value in dotted_keys(settings or {}).items():
        if key in ("sft", "aligned", "checkpoints", "alphas") or key.startswith("tune."):
            continue  # the inputs and α come first, as resolved
        if key in FLAGS:
            args += [FLAGS[key], _value_text(value)]
        else:
            args += ["--set", f"{key}={_value_text(value)}"]
    args += ["--out", str(Path(out).expanduser().resolve())]
    parts = [shlex.quote(arg) for arg in args]
    lines, line = [], parts[0]
    for part in parts[1:]:
        if part.startswith("--") and len(line) > 2:
            lines.append(line)
            line = "  " + part
        else:
            line += " " + part
    lines.append(line)
    return " \\\n".join(lines)


def _cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _selection_section(report: Mapping[str, Any], selection: Mapping[str, Any] | None) -> str:
    alpha = float(report["alpha"])
    if selection is None or selection.get("select_by") != "reward":
        alphas = (selection or {}).get("alphas") or [alpha]
        if len(alphas) > 1:
            grid = ", ".join(f"{a:g}" for a in alphas)
            return (
                f"Given by the user: one of the α written side by side ({grid}), each in its "
                "own folder; none was selected."
            )
        return f"Given by the user (`--alpha {alpha:g}`)."
    direction = "higher" if selection["higher_is_better"] else "lower"
    grid = ", ".join(f"{a:g}" for a in selection["alphas"])
    lines = [
        f"Chosen by a sweep: every α of {{{grid}}} (and α = 0, the aligned model itself) "
        f"generated on {selection['test_prompts']} held-out `{selection['prompts']}` prompts "
        f"({selection['samples_per_prompt']} sample(s) per prompt, "
        f"{selection['new_tokens']} new tokens, seed {selection['seed']}), scored by the reward "
        f"`{selection['scorer']}` ({direction} is better). The best mean reward was kept: "
        f"**α = {selection['best_alpha']:g}**"
        + (" (no α beat the aligned model)." if selection["best_alpha"] == 0 else "."),
        "",
        "Mean reward per prompt with its 95% paired-bootstrap interval over prompts (the "
        "inputs appear at α = −1 … 0):",
        "",
        "| model | α | mean reward | 95% interval | |",
        "|---|---:|---:|---|---|",
    ]
    for label, row in selection["rows"].items():
        reward = row["reward"]
        value = "n/a" if reward.get("value") is None else f"{reward['value']:.4f}"
        low, high = reward.get("low"), reward.get("high")
        interval = "" if low is None or high is None else f"[{low:.4f}, {high:.4f}]"
        chosen = "**chosen**" if label == selection["best"] else ""
        lines.append(f"| {label} | {row['alpha']:g} | {value} | {interval} | {chosen} |")
    return "\n".join(lines)


CARD_TEMPLATE = string.Template(
    """---
${front}---

# ${name}

${what}

## Inputs

${inputs}

## Extrapolation

${details}

## How α was chosen

${selection}

## Made with

${made_with}

## Reproduce

${reproduce}
"""
)


def _what(report: Mapping[str, Any], names: list[str]) -> tuple[str, list[str]]:
    """What the checkpoint is, and the role of each input."""
    alpha = float(report["alpha"])
    if len(names) == 2:
        what = (
            f"This model is an **ExPO** extrapolation ([model extrapolation]({EXPO_PAPER})) "
            "of an aligned model away from its SFT starting point, made with weak2strong's "
            "`w2s extrapolate`: every parameter is θ = θ_aligned + α(θ_aligned − θ_sft), "
            f"with α = {alpha:g}."
        )
        return what, ["SFT (θ_sft)", "aligned (θ_aligned)"]
    coefficients = ", ".join(f"{c:g}" for c in report["coefficients"])
    what = (
        f"This model is an **ExPO** extrapolation ([model extrapolation]({EXPO_PAPER})) "
        f"along {len(names)} checkpoints, made with weak2strong's `w2s extrapolate`: every "
        "parameter is θ = θ_n + α·Σ c_i θ_i, with c the least-squares slope over equally "
        f"spaced steps (c = [{coefficients}]), so α counts steps beyond the strongest; "
        f"α = {alpha:g}."
    )
    roles = [f"checkpoint {i + 1}" for i in range(len(names))]
    roles[0] += " (weakest)"
    roles[-1] += " (strongest, θ_n)"
    return what, roles


def _inputs_table(report: Mapping[str, Any], names: list[str], roles: list[str]) -> list[str]:
    lines = ["| role | checkpoint |", "|---|---|"]
    for role, name, checkpoint in zip(roles, names, report["checkpoints"], strict=True):
        folder = absolute(str(checkpoint.get("folder", "")))
        where = f"`{name}`" + (f" (files: `{folder}`)" if folder and folder != name else "")
        lines.append(f"| {role} | {_cell(where)} |")
    return lines


def _details(report: Mapping[str, Any]) -> list[str]:
    """α, how the weights were computed and stored, and what the cast kept."""
    stored = ", ".join(report.get("out_dtypes", [])) or "n/a"
    setting = report.get("dtype", "auto")
    how_stored = (
        f"{stored} (dtype setting `auto`: each tensor keeps the aligned checkpoint's dtype)"
        if setting == "auto"
        else f"{stored} (dtype setting `{setting}`)"
    )
    copied = report.get("copied_non_float_tensors")
    details = [
        f"- α: {float(report['alpha']):g}",
        "- computed in: float32, tensor by tensor",
        f"- stored as: {how_stored}",
        f"- tensors: {report.get('tensors', 'n/a')}"
        + (f" ({len(copied)} non-float copied from the strongest)" if copied else ""),
    ]
    survival = (report.get("cast_survival") or {}).get("all") or {}
    if survival.get("survived_fraction") is not None:
        error = survival.get("relative_error")
        details.append(
            f"- update kept after the cast to the stored dtype: "
            f"{_percent(survival['survived_fraction'])} of updated weights changed"
            + (f", relative error {error:.3g}" if error is not None else "")
        )
    return details


def _mergekit_equivalence(two: bool) -> str:
    if two:
        return (
            "mergekit's `task_arithmetic` with the SFT model as `base_model` and weight 1+α on "
            "the aligned model gives θ_sft + (1+α)(θ_aligned − θ_sft) = θ_aligned + "
            "α(θ_aligned − θ_sft), the same extrapolation (up to floating-point rounding); "
            "`normalize: false` keeps it from dividing by the weight sum."
        )
    return (
        "mergekit's `task_arithmetic` with the weakest checkpoint as `base_model` and "
        "weight α·c_i on each other checkpoint (1 + α·c_n on the strongest) gives θ_n + "
        "α·Σ c_i θ_i because Σ c_i = 0 (up to floating-point rounding); `normalize: false` "
        "keeps it from dividing by the weight sum."
    )


def _reproduce(
    report: Mapping[str, Any],
    names: list[str],
    out_path: Path,
    selection: Mapping[str, Any] | None,
) -> list[str]:
    """The command that makes these weights again, the sweep's, and the mergekit recipe."""
    setting = report.get("dtype", "auto")
    rerun = command_line(
        names, [float(report["alpha"])], out_path, {"dtype": setting} if setting != "auto" else {}
    )
    lines = ["These weights, with weak2strong:", "", "```bash", rerun, "```"]
    if selection is not None and selection.get("command"):
        lines += ["", "The whole α sweep:", "", "```bash", str(selection["command"]), "```"]
    two = len(names) == 2
    return [
        *lines,
        "",
        f"With [mergekit](https://github.com/arcee-ai/mergekit) ({RECIPE_FILE} beside this "
        f"card; `mergekit-yaml {RECIPE_FILE} OUTPUT`): {_mergekit_equivalence(two)} Its "
        "`dtype` is the dtype it computes in, `out_dtype` the one it stores."
        + (" `w2s extrapolate --recipe` reads this recipe too." if two else ""),
        "",
        "```yaml",
        dump_recipe(recipe_of(report)).rstrip("\n"),
        "```",
    ]


def model_card(
    report: Mapping[str, Any],
    out: str | Path,
    selection: Mapping[str, Any] | None = None,
) -> str:
    """README.md of an extrapolated checkpoint from its provenance report.

    `selection` says how α was chosen: the sweep's results (select_by reward: scorer, prompts,
    rows of rewards, best) and the `command` that reruns the sweep, or the α written
    side by side; None: one α given by the user.
    """
    from weak2strong import __version__
    from weak2strong.runs.environment import git_commit

    names = input_names(report)
    out_path = Path(out).expanduser().resolve()
    what, roles = _what(report, names)
    commit = git_commit()
    return CARD_TEMPLATE.substitute(
        front=yaml.safe_dump(
            {"base_model": names, "library_name": "transformers", "tags": TAGS},
            sort_keys=False,
            allow_unicode=True,
        ),
        name=out_path.name,
        what=what,
        inputs="\n".join(_inputs_table(report, names, roles)),
        details="\n".join(_details(report)),
        selection=_selection_section(report, selection),
        made_with=f"weak2strong {__version__}" + (f", git commit `{commit}`" if commit else ""),
        reproduce="\n".join(_reproduce(report, names, out_path, selection)),
    )


def write_model_card(
    folder: Path,
    report: Mapping[str, Any],
    out: str | Path,
    selection: Mapping[str, Any] | None = None,
) -> None:
    """README.md and merge_recipe.yaml into `folder` (a staging folder, before its rename)."""
    write_text(folder / CARD_FILE, model_card(report, out, selection))
    write_text(folder / RECIPE_FILE, dump_recipe(recipe_of(report)))
