"""Offline MNIST: the shipped files load, match the known facts, and every bad file gives an
error naming the file, what was expected and how to fix it."""

import gzip

import pytest
import torch
import torchvision

from ddpm_lib import MNISTDataError, load_mnist, prepare_mnist
from ddpm_lib.data import MNIST_FILES, default_data_root

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_shipped_mnist_matches_known_facts():
    train = load_mnist()
    x, y = train.tensors
    assert x.shape == (60_000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert torch.bincount(y).tolist() == TRAIN_COUNTS
    unit = (x + 1) / 2
    assert unit.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert unit.std().item() == pytest.approx(0.3081, abs=1e-4)
    assert torch.bincount(load_mnist(train=False).tensors[1]).tolist() == TEST_COUNTS


def test_torchvision_reads_the_prepared_folder():
    prepare_mnist()
    ds = torchvision.datasets.MNIST(str(default_data_root()), train=False, download=False)
    assert len(ds) == 10_000


def test_subset_is_seeded():
    a = load_mnist(train=False, subset=100, seed=1).tensors[1]
    b = load_mnist(train=False, subset=100, seed=1).tensors[1]
    c = load_mnist(train=False, subset=100, seed=2).tensors[1]
    assert len(a) == 100 and torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="subset"):
        load_mnist(train=False, subset=0)


@pytest.fixture
def raw_copy(tmp_path):
    """A data root holding the shipped .gz files only (links to save disk)."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    src = default_data_root() / "MNIST" / "raw"
    for name in MNIST_FILES:
        (raw / f"{name}.gz").symlink_to(src / f"{name}.gz")
    return tmp_path


def test_gz_only_folder_is_unpacked_and_verified(raw_copy):
    raw = prepare_mnist(raw_copy)
    for name, (size, _) in MNIST_FILES.items():
        assert (raw / name).stat().st_size == size


def test_missing_folder_says_where_and_how_to_fix(tmp_path):
    with pytest.raises(MNISTDataError, match=r"does not exist.*git checkout.*download=True"):
        load_mnist(tmp_path / "nowhere")


def test_missing_file_is_named(raw_copy):
    (raw_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MNISTDataError, match=r"t10k-labels-idx1-ubyte.*missing.*10008 bytes.*27ae3e4e"):
        prepare_mnist(raw_copy)


def test_truncated_gz_is_reported(raw_copy):
    gz = raw_copy / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    data = gz.read_bytes()
    gz.unlink()
    gz.write_bytes(data[: len(data) // 2])
    with pytest.raises(MNISTDataError, match=r"train-labels-idx1-ubyte.gz.*(truncated|do not match)"):
        prepare_mnist(raw_copy)


def test_altered_file_fails_the_checksum(raw_copy):
    raw = raw_copy / "MNIST" / "raw"
    gz = raw / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(gz) as f:
        data = bytearray(f.read())
    data[100] ^= 0xFF  # one label flipped, same size
    gz.unlink()
    with gzip.open(gz, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(MNISTDataError, match=r"t10k-labels.*expected 10008 bytes with md5 27ae3e4e.*altered"):
        prepare_mnist(raw_copy)


def test_corrupt_unpacked_file_is_repaired_from_gz(raw_copy):
    raw = prepare_mnist(raw_copy)
    target = raw / "t10k-labels-idx1-ubyte"
    target.write_bytes(b"garbage")
    prepare_mnist(raw_copy)
    assert target.stat().st_size == 10008


def test_corrupt_unpacked_file_without_gz_is_named(raw_copy):
    raw = prepare_mnist(raw_copy)
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    with pytest.raises(MNISTDataError, match=r"t10k-labels-idx1-ubyte is corrupt \(size 7"):
        prepare_mnist(raw_copy)


@pytest.mark.slow
def test_processes_unpacking_at_once_do_not_collide(raw_copy):
    """Several processes using a fresh checkout at the same time (parallel benchmarks) each
    unpack into their own temporary file; all succeed and the files verify."""
    import subprocess
    import sys
    code = f"from ddpm_lib import prepare_mnist; prepare_mnist({str(raw_copy)!r})"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    raw = prepare_mnist(raw_copy)
    assert not list(raw.glob("*.tmp")) and len(list(raw.glob("*-ubyte"))) == 4


def _flip_inside_gz(gz, offset):
    """Flip one byte of the compressed stream (past the gzip header), as a bad disk or copy would."""
    data = bytearray(gz.read_bytes())
    data[offset] ^= 0xFF
    gz.unlink()
    gz.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"])
def test_flipped_byte_inside_gz_is_one_line_and_leaves_nothing(raw_copy, name):
    raw = raw_copy / "MNIST" / "raw"
    gz = raw / f"{name}.gz"
    _flip_inside_gz(gz, gz.stat().st_size // 3)
    with pytest.raises(MNISTDataError, match=rf"{name}.gz.*(damaged|do not match).*git checkout") as err:
        prepare_mnist(raw_copy)
    assert "\n" not in str(err.value)
    assert not list(raw.glob("*.tmp")), "a failed unpack must not leave a temporary file"


def test_read_only_folder_is_not_called_a_bad_archive(raw_copy, monkeypatch):
    """A folder that cannot be written (read-only, or not the user's) is said to be so: chmod does not
    bind root, so the refusal to create the file is simulated."""
    import builtins
    import errno
    real_open = builtins.open

    def refusing_open(file, mode="r", *args, **kwargs):
        if "w" in mode and str(file).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(MNISTDataError, match=r"not writable \(Permission denied\).*DDPM_DATA") as err:
        prepare_mnist(raw_copy)
    assert "gzip" not in str(err.value) and "damaged" not in str(err.value)


@pytest.mark.parametrize("top", [16, 255])
def test_range_hints_name_the_datas_own_maximum(top):
    """Pixels 0..16 (scikit-learn's 8x8 digits) are not told to divide by 255."""
    from ddpm_lib.data import check_model_range, to_model_range
    pixels = torch.arange(top + 1, dtype=torch.float32).reshape(1, 1, 1, -1)
    with pytest.raises(ValueError, match=rf"max_value={top}\b"):
        check_model_range(pixels, "images")
    with pytest.raises(ValueError, match=rf"max_value={top}\b"):
        to_model_range(pixels)
    assert [float(v) for v in to_model_range(pixels, max_value=top).aminmax()] == [-1.0, 1.0]
