"""Win rate and length-controlled win rate equal the `alpaca-eval` package's on the same annotations."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from weak2strong.errors import W2SError
from weak2strong.scoring.winrate import (
    GamedBaselines,
    length_controlled_win_rate,
    win_rate,
    win_rates,
)

glm_winrate = pytest.importorskip("alpaca_eval.metrics.glm_winrate")


def annotations(rng: np.random.Generator, n: int, length_bias: float) -> list[dict]:
    """A judge that likes long outputs (`length_bias`), with ties and soft preferences."""
    rows = []
    for i in range(n):
        baseline, model = int(rng.integers(20, 400)), int(rng.integers(20, 800))
        p_model = 1 / (1 + np.exp(-length_bias * (model - baseline) / 300 - rng.normal(0, 0.5)))
        preference = float(rng.choice([1.0, 2.0, 1.5, 0.0, 1 + p_model, 1 + p_model]))
        rows.append(
            {
                "instruction": f"instruction {i}",
                "output_1": "b" * baseline,
                "output_2": "m" * model,
                "generator_1": "reference",
                "generator_2": "steered",
                "annotator": "judge",
                "preference": preference,
            }
        )
    return rows


def gamed_csv(rng: np.random.Generator, path, instructions: int) -> str:
    """A df_gamed.csv in AlpacaEval's layout (the real one lives on the hub)."""
    import pandas as pd

    difficulty = rng.normal(size=instructions)
    frame = pd.DataFrame(
        [
            {
                "model": model,
                "index": i,
                "preference": float(rng.uniform()),
                "std_delta_len": float(rng.normal()),
                "instruction_difficulty": float(difficulty[i]),
                "not_gamed_baseline": False,
            }
            for model in ("gpt4_gamed_verbose", "gpt4_gamed_concise")
            for i in range(instructions)
        ]
    )
    frame.to_csv(path, index=False)
    return str(path)


def reference(rows, glm_name, gamed_path, monkeypatch) -> dict:
    import pandas as pd

    # the package downloads df_gamed.csv from the hub even for the minimal GLM
    monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **_: gamed_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glm_winrate.get_length_controlled_winrate(
            pd.DataFrame(rows), glm_name=glm_name, save_weights_dir=None
        )


@pytest.mark.parametrize("glm", ["length_controlled_v1", "length_controlled_minimal"])
@pytest.mark.parametrize(("n", "length_bias"), [(80, 2.0), (45, 0.0)])
def test_win_rates_equal_alpaca_evals(tmp_path, monkeypatch, glm, n, length_bias):
    rng = np.random.default_rng(n)
    rows = annotations(rng, n, length_bias)
    gamed_path = gamed_csv(rng, tmp_path / "df_gamed.csv", n + 10)
    expected = reference(rows, glm, gamed_path, monkeypatch)
    preferences = [row["preference"] for row in rows]
    ours = win_rate(preferences)
    for key in ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total"):
        assert ours[key] == pytest.approx(expected[key], rel=1e-9), key
    lc, _ = length_controlled_win_rate(
        preferences,
        [len(row["output_1"]) for row in rows],
        [len(row["output_2"]) for row in rows],
        glm=glm,
        gamed=GamedBaselines.read(gamed_path),
    )
    assert lc == pytest.approx(expected["length_controlled_winrate"], rel=1e-9)


def test_length_control_removes_a_judges_taste_for_length():
    rng = np.random.default_rng(0)
    rows = annotations(rng, 200, length_bias=4.0)
    rates = win_rates(
        [row["preference"] for row in rows],
        [row["output_1"] for row in rows],
        [row["output_2"] for row in rows],
        samples=50,
    )
    # the model writes longer answers and the judge likes length: the LC rate is lower
    raw, controlled = rates.win_rate, rates.length_controlled_win_rate
    assert controlled.value < raw.value - 3
    assert raw.low < raw.value < raw.high and controlled.low <= controlled.value <= controlled.high
    assert raw.n == controlled.n == 200
    with pytest.raises(W2SError, match="df_gamed"):
        win_rates([1.5] * 20, ["a"] * 20, ["b"] * 20, glm="length_controlled_v1")
    with pytest.raises(W2SError, match=r"in \[1, 2\]"):
        win_rate([3.0])


def test_w2s_winrate_prints_the_numbers_of_an_annotations_file(run_cli, tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    rows = annotations(rng, 60, 1.0)
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(rows), "utf-8")
    gamed_path = gamed_csv(rng, tmp_path / "df_gamed.csv", 60)
    printed = run_cli("winrate", str(path), "--json", "--gamed", gamed_path)
    assert printed.returncode == 0, printed.stderr
    numbers = json.loads(printed.stdout)
    expected = reference(rows, "length_controlled_v1", gamed_path, monkeypatch)
    assert set(numbers) == {"win_rate", "length_controlled_win_rate", "n"}
    assert numbers["n"] == 60
    assert numbers["win_rate"] == pytest.approx(expected["win_rate"], rel=1e-9)
    assert numbers["length_controlled_win_rate"] == pytest.approx(
        expected["length_controlled_winrate"], rel=1e-9
    )
    table = run_cli("winrate", str(path))
    assert (
        "length-controlled win rate" in table.stdout and "length_controlled_minimal" in table.stdout
    )
    path.write_text(json.dumps([{"output_1": "a", "preference": 1}]), "utf-8")
    refused = run_cli("winrate", str(path))
    assert refused.returncode == 2 and "annotation 1 has no output_2" in refused.stderr
