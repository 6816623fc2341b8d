"""Checkpoints: a run's file round-trips (its configs through to_state / from_state, its weights, the
float16 export), files written before a setting existed load through the migrations table, bad files
are refused in one line naming what they are (a pickle that could run code is refused, never run, and
torch's advice to load it unsafely is never passed on), and a failed or interrupted write never damages
the previous checkpoint."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from ddpm_lib import (CheckpointError, DiffusionConfig, TrainConfig, Trainer, UNet, UNetConfig, export_pretrained,
                      load_checkpoint, load_mnist, load_model, pretrained_path, save_checkpoint)
from ddpm_lib.checkpoints import FORMAT, MIGRATIONS, from_state, is_export
from ddpm_lib.files import read_weights_file
from helpers import DIFF, tiny_trainer

CONFIGS = ("model_config", "diffusion_config", "train_config")


@pytest.fixture(scope="module")
def digits():
    return load_mnist(train=False, subset=64, seed=0)


def test_checkpoint_round_trip(tiny_unet_config, digits, tmp_path):
    trainer = tiny_trainer(tiny_unet_config, tmp_path, steps=5)
    trainer.fit(digits, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 5 and len(state["history"]) == 5
    assert set(state) >= {"model", "ema", "optimizer", "rng", *CONFIGS}
    assert [from_state(state, key) for key in CONFIGS] == [trainer.model.config, DIFF, trainer.config]
    model, schedule = load_model(tmp_path / "checkpoint.pt", device="cpu")
    assert schedule.T == 200 and not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, trainer.ema.model.state_dict()[k])
    raw, _ = load_model(tmp_path / "checkpoint.pt", ema=False, device="cpu")
    assert torch.equal(next(raw.parameters()), next(trainer.model.parameters()))

    # the small sampling-only export: EMA weights in float16, loaded back as float32
    small = export_pretrained(tmp_path / "checkpoint.pt", tmp_path / "small.pt")
    assert small.stat().st_size < 0.4 * (tmp_path / "checkpoint.pt").stat().st_size
    exported = load_checkpoint(small)
    assert is_export(exported) and [from_state(exported, key) for key in CONFIGS] == [from_state(state, key)
                                                                                      for key in CONFIGS]
    light, _ = load_model(small, device="cpu")
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 190])
    with torch.no_grad():
        assert next(light.parameters()).dtype == torch.float32
        assert torch.allclose(light(x, t), model(x, t), atol=1e-2)


def test_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"format": "x", "value": torch.ones(3)}, path)
    before = path.read_bytes()

    def disk_full(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="No space left.*previous checkpoint there.*intact"):
        save_checkpoint({"format": "y"}, path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_unwritable_folder_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot write a checkpoint"):
        save_checkpoint({"format": "x"}, blocker / "sub" / "checkpoint.pt")


def test_bad_checkpoint_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable ddpm_lib checkpoint"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    with pytest.raises(CheckpointError, match="format tag"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


class _Touch:  # unpickled, it would create the file at ``marker``
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


class _System:  # unpickled, it would run a shell command (torch blocks its module outright)
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [_Touch, _System])
def test_a_refused_pickle_says_it_could_run_code_and_never_suggests_running_it(payload, tmp_path, capsys):
    """Issue 33: refused because the file holds Python objects that could run code, said in one line by
    the library and the command line; nothing runs, and torch's advice to load it with weights_only set to
    False (the os.system file used to quote it) is never passed on."""
    from ddpm_lib.__main__ import main

    payload.marker = str(tmp_path / "pwned")
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": payload()}, evil, pickle_module=pickle)
    refused = r"evil.pt was refused because it holds Python objects \(\S+\) that could run code"
    with pytest.raises(CheckpointError, match=refused + ".* ddpm_lib checkpoint holds only tensors") as err:
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match=refused + ".* classifier file holds only tensors"):
        read_weights_file(evil, "classifier file")
    assert main(["sample", "--checkpoint", str(evil), "--out", str(tmp_path / "s")]) == 1
    said = capsys.readouterr().err
    for message in (str(err.value), said.strip()):
        assert "weights_only" not in message and "False" not in message and "\n" not in message
    assert "refused because it holds Python objects" in said
    assert not (tmp_path / "pwned").exists()


def test_config_mismatch_is_named(tiny_unet_config, digits, tmp_path):
    trainer = tiny_trainer(tiny_unet_config, tmp_path, steps=2)
    trainer.fit(digits, progress=False)
    other = Trainer(UNet(UNetConfig(**{**tiny_unet_config.__dict__, "base_channels": 16})),
                    DiffusionConfig(T=1000, schedule="cosine"), TrainConfig.quick(), device="cpu")
    with pytest.raises(CheckpointError, match=r"diffusion.T: checkpoint 200 vs now 1000.*schedule.*base_channels"):
        other.load_state(tmp_path / "checkpoint.pt")


def test_a_second_ctrl_c_during_a_save_is_held_back_until_the_file_is_complete(tiny_unet_config, digits, tmp_path,
                                                                                monkeypatch):
    import signal

    real_save = torch.save

    def save_pressing_ctrl_c(obj, f, *a, **k):  # Ctrl-C arrives in the middle of the write
        f.write(b"the first bytes")
        os.kill(os.getpid(), signal.SIGINT)
        f.seek(0)
        real_save(obj, f, *a, **k)

    real_step = Trainer.train_step

    def ctrl_c_at_step_3(self, x0, y=None):
        if self.step == 3:
            raise KeyboardInterrupt
        return real_step(self, x0, y)

    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        monkeypatch.setattr(torch, "save", save_pressing_ctrl_c)
        with pytest.raises(KeyboardInterrupt):  # delivered once the save is done
            save_checkpoint({"format": "x", "value": torch.arange(3)}, tmp_path / "a.pt")
        assert torch.equal(read_weights_file(tmp_path / "a.pt")["value"], torch.arange(3))

        trainer = tiny_trainer(tiny_unet_config, tmp_path, steps=6)  # the first Ctrl-C at step 3, the second in its save
        monkeypatch.setattr(Trainer, "train_step", ctrl_c_at_step_3)
        try:
            trainer.fit(digits, progress=False)
        except KeyboardInterrupt:
            pytest.fail("the second Ctrl-C escaped from fit() and the save was lost")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, handler)
    assert trainer.interrupted and load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "checkpoint.pt"]  # no temporary file


def test_a_full_disk_is_named_and_the_previous_checkpoint_kept(tmp_path, monkeypatch):
    import shutil

    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"format": "x", "value": torch.ones(3)}, path)
    before = path.read_bytes()

    def torch_writer_fails(obj, f, *a, **k):  # what torch says when its writer hits a full disk
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    monkeypatch.setattr(torch, "save", torch_writer_fails)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(CheckpointError, match=r"^disk full while writing .*checkpoint.pt.*previous checkpoint.*intact") as err:
        save_checkpoint({"format": "y"}, path)
    assert "enforce fail" not in str(err.value)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 0, 10**12))
    with pytest.raises(CheckpointError, match=r"^writing checkpoint .* failed \(\[enforce fail.*intact"):
        save_checkpoint({"format": "y"}, path)  # plenty of space: some other failure, said as it is


def test_bad_files_are_named_for_what_they_are(tiny_unet_config, tmp_path):
    from ddpm_lib import pretrained_path

    empty = tmp_path / "empty.pt"
    empty.touch()
    with pytest.raises(CheckpointError, match=r"empty.pt is empty \(0 bytes\)"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match="is a folder, not a file"):
        load_checkpoint(tmp_path)

    trainer = tiny_trainer(tiny_unet_config, tmp_path, steps=0)
    trainer.save()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    state["diffusion_config"]["sharpness"] = 3  # written by some other version
    save_checkpoint(state, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match=r"diffusion_config settings this ddpm_lib does not know \(sharpness\)"):
        load_model(tmp_path / "newer.pt", device="cpu")

    export = pretrained_path("unet_mnist")  # float16 EMA weights, no optimizer: sample it, do not resume it
    with pytest.raises(CheckpointError, match="sampling-only export.*can be sampled.*not resumed"):
        Trainer.from_checkpoint(export, out_dir=tmp_path / "r", device="cpu")


# a value that differs from the migrated one, for each setting the table fills
LATER = {"prediction": "v", "lr_schedule": "cosine", "min_snr_gamma": 5.0, "precision": "bf16",
         "t_distribution": "laplace"}


@pytest.mark.parametrize("key,setting", [(key, setting) for key, table in MIGRATIONS.items() for setting in table])
def test_an_older_file_lacking_a_later_setting_loads_with_the_value_its_run_had(key, setting, tiny_unet_config,
                                                                                 tmp_path):
    """MIGRATIONS: a checkpoint written before a setting existed takes the value its run had, not today's
    default, wherever it is read: from_state, load_model, a resume and its compatibility check."""
    old = MIGRATIONS[key][setting]
    assert LATER[setting] != old
    later = {k: v for k, v in LATER.items() if k != "prediction"}
    trainer = Trainer(UNet(tiny_unet_config), DiffusionConfig(T=DIFF.T, prediction=LATER["prediction"]),
                      TrainConfig.quick(steps=0, **later), device="cpu")
    state = trainer.state_dict()
    del state[key][setting]  # as a file written before the setting existed
    path = save_checkpoint(state, tmp_path / "old.pt")
    assert getattr(from_state(load_checkpoint(path), key), setting) == old
    model, _ = load_model(path, device="cpu")
    resumed = Trainer.from_checkpoint(path, out_dir=tmp_path, device="cpu")
    assert getattr({"diffusion_config": model.diffusion_config, "train_config": resumed.config}[key], setting) == old
    if key == "diffusion_config":  # the compatibility check reads the file the same way
        with pytest.raises(CheckpointError, match=f"diffusion.{setting}: checkpoint {old!r} vs now"):
            trainer.load_state(path)


def test_the_shipped_weights_load_and_take_the_table_for_what_they_lack():
    """The shipped exports were written before TrainConfig.precision: they read back as float32 runs.
    A setting not in the table (subset: older runs did not record their data) takes its default."""
    for name in ("unet_mnist", "cond_unet_mnist", "mlp_mnist", "mlp_mnist_eps", "mlp_mnist_v"):
        state = load_checkpoint(pretrained_path(name))
        assert "precision" not in state["train_config"] and is_export(state)
        assert from_state(state, "train_config").precision == MIGRATIONS["train_config"]["precision"]
        model, schedule = load_model(pretrained_path(name), device="cpu")
        assert model.diffusion_config == from_state(state, "diffusion_config") and schedule.T == 1000
    assert "subset" not in MIGRATIONS["train_config"]
    assert from_state({"train_config": {"steps": 10}}, "train_config").subset == TrainConfig().subset


def test_the_shipped_unet_carries_the_reverse_variance_fitted_to_it():
    """`python -m ddpm_lib fit-variance data/pretrained/unet_mnist.pt --replace-shipped` stored it (RESULTS,
    "Likelihood"): load_model hands it to the model, fitted at the default images per t and with the decoder's
    variance picked; sigma*^2 = beta_tilde + c^2 e_t is never below beta_tilde and clearly above it at t = 1."""
    from ddpm_lib.fitted_variance import IMAGES_PER_T
    model, schedule = load_model(pretrained_path("unet_mnist"), device="cpu")
    fit = model.variance_fit
    assert fit.T == schedule.T and fit.images == IMAGES_PER_T and fit.decoder_variance is not None
    sigma2, beta_tilde = fit.ddpm_variances(schedule), schedule.beta_tilde.double()
    assert (sigma2[1:] >= beta_tilde[1:] * (1 - 1e-6)).all() and sigma2[1] > 1.2 * beta_tilde[1]


def _flip_a_bit_in_the_weights(path: Path, record: int = -1) -> None:
    """Flip the lowest bit of one byte in the middle of the ``record``-th largest tensor stored in a
    torch file, as a failing disk or a bad copy would: torch reads such a file without complaint. (In a
    checkpoint of step 0 the optimizer holds no tensors yet: the largest ones are weights.)"""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        tensors = sorted((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        info = tensors[record]
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 1
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_checkpoints_weights_is_refused_everywhere_it_is_read(tiny_unet_config, tmp_path,
                                                                                 capsys):
    """Audit: a bit-flipped weight loaded and sampled with exit 0. The sha256 of the model and EMA weights
    written with every checkpoint and export is checked on every read: load_checkpoint, load_model, a
    resume, exporting, the command line."""
    from ddpm_lib.__main__ import main
    from ddpm_lib.files import CHECKSUM_KEY, weights_checksum

    trainer = tiny_trainer(tiny_unet_config, tmp_path / "run", steps=0)
    path = trainer.save()
    export = export_pretrained(path, tmp_path / "export.pt")
    state = load_checkpoint(path)  # untouched: it loads, and its checksums are those of its weights
    assert state[CHECKSUM_KEY] == {name: weights_checksum(state[name]) for name in ("model", "ema")}
    assert set(load_checkpoint(export)[CHECKSUM_KEY]) == {"model"}  # an export's only weights

    for original in (path, export):
        damaged = tmp_path / f"damaged_{original.name}"
        damaged.write_bytes(original.read_bytes())
        _flip_a_bit_in_the_weights(damaged)
        damage = rf"^ddpm_lib checkpoint .*damaged_{original.stem}\.pt is damaged: .*use another copy of it$"
        for read in (load_checkpoint, lambda p: load_model(p, device="cpu"), lambda p: load_model(p, ema=False),
                     lambda p: export_pretrained(p, tmp_path / "again.pt")):
            with pytest.raises(CheckpointError, match=damage):
                read(damaged)
        assert main(["sample", "--checkpoint", str(damaged), "--out", str(tmp_path / "s"), "--n", "1"]) == 1
        assert "is damaged" in capsys.readouterr().err and not (tmp_path / "s").exists()
    damaged = tmp_path / "damaged_checkpoint.pt"
    with pytest.raises(CheckpointError, match="is damaged"):
        trainer.load_state(damaged)
    with pytest.raises(CheckpointError, match="is damaged"):
        Trainer.from_checkpoint(damaged, device="cpu")


@pytest.mark.parametrize("weights", ["model", "ema"])
def test_one_changed_weight_is_refused_and_names_the_weights(weights, tiny_unet_config, tmp_path):
    path = tiny_trainer(tiny_unet_config, tmp_path, steps=0).save()
    state = read_weights_file(path)
    first = next(k for k, v in state[weights].items() if v.is_floating_point())
    state[weights][first].view(-1)[0] += 1e-3  # one weight, the stored checksum kept
    torch.save(state, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match=rf"edited.pt is damaged: its '{weights}' weights do not match"):
        load_model(tmp_path / "edited.pt", ema=weights == "ema", device="cpu")


def test_a_checkpoint_written_before_checksums_loads_unchecked_and_a_new_save_adds_them(tiny_unet_config, tmp_path):
    from ddpm_lib.files import CHECKSUM_KEY

    trainer = tiny_trainer(tiny_unet_config, tmp_path, steps=0)
    old = {k: v for k, v in read_weights_file(trainer.save()).items() if k != CHECKSUM_KEY}
    torch.save(old, tmp_path / "old.pt")  # as written before checksums existed
    model, _ = load_model(tmp_path / "old.pt", device="cpu")
    for k, v in model.state_dict().items():
        assert torch.equal(v, trainer.ema.model.state_dict()[k])
    state = load_checkpoint(tmp_path / "old.pt")
    state["model"] = {k: v + 1 if v.is_floating_point() else v for k, v in state["model"].items()}
    save_checkpoint(state, tmp_path / "new.pt")  # the checksums are those of what is written now
    assert set(load_checkpoint(tmp_path / "new.pt")[CHECKSUM_KEY]) == {"model", "ema"}
    Trainer.from_checkpoint(tmp_path / "new.pt", out_dir=tmp_path / "r", device="cpu")
