"""Prompt sets from files and datasets in the field's formats, and each model's prompt format."""

from __future__ import annotations

import csv
import json

import pytest

from weak2strong.data.prompt_files import Prompt, read_prompt_file
from weak2strong.data.prompts import PromptOptions, held_out_prompts, load_prompts
from weak2strong.errors import W2SError
from weak2strong.models import load_tokenizer
from weak2strong.models.formatting import PromptFormat


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    return path


def test_every_prompt_format_reads_as_its_own_layout(tmp_path):
    text = read_prompt_file(str(write_jsonl(tmp_path / "t.jsonl", [{"text": "Say hi."}])))
    assert text == [Prompt.of_text("Say hi.")] and text[0].key() == "Say hi."
    chat = read_prompt_file(
        str(
            write_jsonl(
                tmp_path / "c.jsonl",
                [
                    {
                        "messages": [
                            {"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Hi"},
                            {"role": "assistant", "content": "Hello"},
                            {"role": "user", "content": "Name a colour."},
                        ]
                    }
                ],
            )
        )
    )[0]
    assert chat.messages[-1] == ("user", "Name a colour.") and not chat.is_text
    assert chat.text == "system: Be brief.\n\nuser: Hi\n\nassistant: Hello\n\nuser: Name a colour."
    assert chat.chat(system="ignored: the prompt has its own")[0]["content"] == "Be brief."
    alpaca = tmp_path / "alpaca_eval.json"  # AlpacaEval's evaluation set, as it is
    alpaca.write_text(
        json.dumps(
            [
                {
                    "instruction": "Write a haiku.",
                    "output": "x",
                    "generator": "g",
                    "dataset": "oasst",
                },
                {"instruction": "Add", "input": "2 and 3", "dataset": "selfinstruct"},
            ]
        ),
        "utf-8",
    )
    first, second = read_prompt_file(str(alpaca))
    assert (first.text, first.dataset) == ("Write a haiku.", "oasst")
    assert second.text == "Add\n\n2 and 3"  # Alpaca's input is part of the instruction
    mt_bench = write_jsonl(  # FastChat's question.jsonl
        tmp_path / "question.jsonl",
        [
            {
                "question_id": 81,
                "category": "writing",
                "turns": ["Write a blog post.", "Rewrite it."],
            }
        ],
    )
    (question,) = read_prompt_file(str(mt_bench))
    assert (question.text, question.question_id, question.dataset) == (
        "Write a blog post.",
        81,
        "writing",
    )
    for suffix, delimiter in ((".csv", ","), (".tsv", "\t")):
        path = tmp_path / f"p{suffix}"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter=delimiter)
            writer.writerows([["id", "question"], ["1", "Why is the sky blue?"]])
        assert read_prompt_file(str(path)) == [Prompt.of_text("Why is the sky blue?")]
    named = write_jsonl(tmp_path / "n.jsonl", [{"query": "Q1", "text": "not this"}])
    assert read_prompt_file(str(named), column="query")[0].text == "Q1"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"text": "ok"}, {"body": "x"}],
            r"bad\.jsonl: row 2: no prompt field \(looked for messages",
        ),
        ([{"text": "  "}], r"row 1: the prompt field 'text' is empty"),
        (
            [
                {
                    "messages": [
                        {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "b"},
                    ]
                }
            ],
            "row 1: the messages must end with a user turn",
        ),
        ([{"messages": [{"role": "robot", "content": "a"}]}], "message 1 has role 'robot'"),
        ([{"messages": [{"role": "user"}]}], "message 1 has no 'content' field"),
        ([{"turns": "one string"}], "'turns' must be a list of strings"),
    ],
)
def test_a_bad_prompt_file_names_the_file_the_row_and_the_field(tmp_path, rows, message):
    with pytest.raises(W2SError, match=message):
        read_prompt_file(str(write_jsonl(tmp_path / "bad.jsonl", rows)))


def test_held_out_and_training_prompts_of_a_file(tmp_path):
    path = str(write_jsonl(tmp_path / "p.jsonl", [{"text": f"prompt {i}"} for i in range(10)]))
    everything = held_out_prompts(path, 10, seed=3)
    assert [p.text for p in everything] == [f"prompt {i}" for i in range(10)]  # file order
    some = held_out_prompts(path, 4, seed=3)
    assert len(some) == 4 and some == sorted(some, key=everything.index)
    assert some != held_out_prompts(path, 4, seed=4)
    with pytest.raises(W2SError, match="has 10 prompts; asked for 11"):
        held_out_prompts(path, 11, seed=0)
    split = load_prompts(path, 6, 4, seed=0)
    assert not set(split.train) & set(split.test) and len(split.train) == 6
    # a seed's held-out prompts are the same whatever the training prompts asked for
    assert split.test == held_out_prompts(path, 4, seed=0) == load_prompts(path, 2, 4, seed=0).test
    for name in ("instructions", "rtp"):
        held_out = held_out_prompts(name, 16, seed=0)
        assert not set(held_out) & set(load_prompts(name, 64, 8, seed=0).train)
    train_file = write_jsonl(tmp_path / "train.jsonl", [{"prompt": f"train {i}"} for i in range(5)])
    own = load_prompts(path, 5, 10, seed=0, options=PromptOptions(train=str(train_file)))
    assert {p.text for p in own.train} == {f"train {i}" for i in range(5)}
    assert own.test == everything


def test_a_dataset_folder_reads_through_datasets_with_its_split(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    write_jsonl(folder / "data.jsonl", [{"instruction": f"Do {i}."} for i in range(3)])
    prompts = held_out_prompts(str(folder), 3, seed=0, options=PromptOptions(split="train"))
    assert [p.text for p in prompts] == ["Do 0.", "Do 1.", "Do 2."]
    with pytest.raises(W2SError, match="has no split 'test'"):
        held_out_prompts(str(folder), 3, seed=0, options=PromptOptions(split="test"))
    with pytest.raises(W2SError, match="unknown prompt set 'no/such-set'"):
        held_out_prompts("no/such-set", 3, seed=0)


def test_each_model_formats_a_prompt_its_own_way():
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    prompt = Prompt.of_text("Name a colour.")
    chat = PromptFormat("chat", system="You answer in one word.")
    text = chat.text(prompt, tokenizer)
    assert "You answer in one word." in text and text.rstrip().endswith("assistant")
    ids = chat.token_ids(prompt, tokenizer)
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    plain = PromptFormat("Q: {prompt}\nA:")
    assert plain.text(prompt) == "Q: Name a colour.\nA:"
    with_system = PromptFormat("{system}\n\nQ: {prompt}\nA:", system="Be brief.")
    assert with_system.text(prompt) == "Be brief.\n\nQ: Name a colour.\nA:"
    with pytest.raises(W2SError, match="no \\{system\\} placeholder"):
        PromptFormat("Q: {prompt}", system="Be brief.").check("large")
    no_chat = load_tokenizer("minilm-l6")
    with pytest.raises(W2SError, match="no chat template"):
        PromptFormat("chat").check("large", no_chat)


def test_a_bad_prompt_file_stops_every_command_before_a_run_folder(run_cli, tmp_path):
    from tests.tiny import tiny_causal_lm

    model = str(tiny_causal_lm(tmp_path / "tiny"))
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine"}, {"query": "no prompt field"}])
    vader = ["--set", "scorer.name=lexicon:vader"]
    commands = [
        ["search", "--large", model, "--tuned", model, "--untuned", model, *vader],
        ["extrapolate", "--sft", model, "--aligned", model, "--set", "select_by=reward", *vader],
        ["tune", "--base", model, "--set", "preferences=sampled"],
    ]
    for command in commands:
        result = run_cli(*command, "--set", f"prompts={bad}")
        assert result.returncode == 2, (command[0], result.stderr)
        assert "bad.jsonl: row 2: no prompt field" in result.stderr, result.stderr
        assert not (tmp_path / "runs").exists()
