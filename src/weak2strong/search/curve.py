"""The reward-against-compute curve: best-of-n and CBS at each N = W·K of `curve`."""

from __future__ import annotations

from typing import Any

from weak2strong.runs.typed import estimate, optional_estimate
from weak2strong.search.config import SearchConfig
from weak2strong.search.decoders import CBSSettings, best_of_first, curve_cbs_settings
from weak2strong.search.methods import cbs_label
from weak2strong.search.results import CurvePoint


def curve_cbs(config: SearchConfig) -> list[CBSSettings]:
    """CBS settings of the curve's points, except those the cbs method itself runs."""
    chunk = config.cbs.chunk_length
    points = [curve_cbs_settings(n, chunk) for n in sorted(set(config.curve))]
    return [settings for settings in points if settings != config.cbs]


def curve_best_of_n(
    config: SearchConfig, bon: dict[str, Any] | None, prompts: int
) -> dict[str, dict[str, Any]]:
    """Best-of-n for each curve n below bon_n, picked from the bon run's candidates.

    Its tokens are n × the mean candidate length of that run (the candidates are the same).
    """
    if bon is None:
        return {}
    per_candidate = bon["sampled_tokens"] / (prompts * config.bon_n)
    points = {}
    for n in sorted({n for n in config.curve if n != config.bon_n}):
        chosen = best_of_first(bon["candidate_scores"], n)
        points[f"bon-{n}"] = {
            "responses": [c[i] for c, i in zip(bon["candidates"], chosen, strict=True)],
            "finished": [f[i] for f, i in zip(bon["candidate_finished"], chosen, strict=True)],
            "sampled_tokens": per_candidate * n * prompts,
            "seconds": None,
        }
    return points


def curve_points(
    config: SearchConfig,
    outputs: dict[str, dict[str, Any]],
    curve_outputs: dict[str, dict[str, Any]],
    table: dict[str, Any],
    prompts: int,
) -> list[CurvePoint]:
    """One entry per (decoder, N): mean reward, reward − sample, tokens, seconds."""
    points = []
    for n in sorted(set(config.curve)):
        cbs = curve_cbs_settings(n, config.cbs.chunk_length)
        # a point the bon or cbs method ran itself is found under that method's name
        for decoder, label, key in (
            ("bon", f"bon-{n}", "bon" if n == config.bon_n else f"bon-{n}"),
            ("cbs", cbs_label(cbs), "cbs" if cbs == config.cbs else cbs_label(cbs)),
        ):
            output = outputs[key] if key in outputs else curve_outputs[key]
            points.append(
                CurvePoint(
                    method=decoder,
                    n=n,
                    label=label,
                    reward=estimate(table["models"][key]),
                    reward_minus_sample=optional_estimate(table.get("difference", {}).get(key)),
                    tokens_per_prompt=output["sampled_tokens"] / prompts,
                    seconds=output["seconds"],
                )
            )
    return points
