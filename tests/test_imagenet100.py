"""ImageNet-100 streamed from disk, on a tiny ImageFolder made here: its batches are the images
an eager decode gives, normalised the same way; they are decoded once; a 2-task run is
forget-free and its model file predicts the same; bad folders and settings get one message."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import builtin_net, tiny_config
from PIL import Image

from tinysubnets import RunConfig, load, run
from tinysubnets.cli import main
from tinysubnets.data import ImageSet
from tinysubnets.data import memmap as memmap_module
from tinysubnets.errors import ConfigError, DataError
from tinysubnets.learner.replay import keep_samples, reservoir_indices
from tinysubnets.learner.similarity import sample
from tinysubnets.scenarios import SPECS, Split, backbone_of, build_scenario
from tinysubnets.scenarios.vision import class_split, to_tensor
from tinysubnets.tasks.streaming import StreamedImages

SIZES = [(40, 56), (56, 40), (48, 48), (64, 36), (33, 70)]  # (width, height), none square-cropped
N_CLASSES, N_TRAIN, N_VAL = 20, 6, 2


def _image_folder(data_dir: Path) -> Path:
    """<data_dir>/imagenet100/{train,val}/<class>/<i>.JPEG, classes told apart by a tint."""
    rng = np.random.default_rng(0)
    root = data_dir / "imagenet100"
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        for c in range(N_CLASSES):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(n):
                width, height = SIZES[(c + i) % len(SIZES)]
                pixels = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
                pixels[..., c % 3] += np.uint8(6 * c)
                Image.fromarray(pixels).save(folder / f"{i:03d}.JPEG", quality=90)
    return root


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TSN_CACHE_DIR", str(tmp_path / "cache"))
    _image_folder(tmp_path / "data")
    return tmp_path / "data"


def _config(data_dir: Path | None, **overrides: object) -> RunConfig:
    where = None if data_dir is None else str(data_dir)
    settings: dict = {"tasks": 2, "image_size": 32, "data_dir": where, "seed": 3}
    return RunConfig.for_scenario("imagenet100", **{**settings, **overrides})


def _eager(folder: Path, size: int) -> ImageSet:
    """The folder decoded in memory with torchvision's Resize(round(size*256/224)) and
    CenterCrop(size), spelled out with Pillow."""
    images, labels = [], []
    for label, class_dir in enumerate(sorted(p for p in folder.iterdir())):
        for path in sorted(class_dir.iterdir()):
            with Image.open(path) as image:
                rgb = image.convert("RGB")
            short, (w, h) = round(size * 256 / 224), rgb.size
            new = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
            rgb = rgb.resize(new, Image.Resampling.BILINEAR)
            left, top = int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))
            images.append(np.asarray(rgb.crop((left, top, left + size, top + size))))
            labels.append(label)
    return ImageSet(np.stack(images), np.array(labels, dtype=np.int64))


def test_streamed_batches_equal_an_eager_decode_and_normalise(data_dir: Path) -> None:
    cfg = _config(data_dir)
    scenario = build_scenario(cfg)
    assert len(scenario) == 2 and scenario.input_shape == (3, 32, 32)
    train, val = (_eager(data_dir / "imagenet100" / s, 32) for s in ("train", "val"))
    x_train = scenario.tasks[0].split("train").x
    assert isinstance(x_train, StreamedImages)
    assert np.array_equal(x_train.images, train.images)  # the memmap holds the eager pixels
    # Statistics: exact integer sums in float64 against torch's float32 reduction of the
    # same values, so they agree to float32 rounding (relative 1e-6), not bit for bit.
    eager_train = to_tensor(train, 32)
    mean, std = eager_train.mean(dim=(0, 2, 3)), eager_train.std(dim=(0, 2, 3))
    assert torch.allclose(x_train.mean.view(-1), mean, rtol=1e-5)
    assert torch.allclose(x_train.std.view(-1), std, rtol=1e-5)
    # With those statistics, a batch is bit-identical to the eager path's, by slice or index.
    expected = (eager_train - x_train.mean) / x_train.std
    rows = torch.from_numpy(x_train.rows)
    assert torch.equal(x_train[0:5], expected[rows[0:5]])
    pick = torch.tensor([4, 0, 7, 7, 2])
    assert torch.equal(x_train[pick], expected[rows[pick]])
    # What the learner takes of a split: a KL sample and a replay memory, as tensors.
    assert torch.equal(sample(x_train, 100, torch.Generator()), expected[rows])
    memory = keep_samples(Split(x_train, torch.zeros(len(rows))), 4, torch.Generator())
    assert torch.equal(memory.x, expected[rows[reservoir_indices(len(rows), 4,
                                                                  torch.Generator())]])
    # The same tasks as `class_split` builds in memory: same labels, same carved validation.
    eager = class_split("imagenet100", train, val, 2, 10, cfg.seed, cfg.val_fraction, "", 32)
    for streamed_task, eager_task in zip(scenario.tasks, eager.tasks, strict=True):
        for which in ("train", "val", "test"):
            streamed, reference = streamed_task.split(which), eager_task.split(which)
            assert torch.equal(streamed.y, reference.y)
            # float32 rounding of the statistics (above), times |x| < 10: well below 1e-4.
            assert torch.allclose(streamed.x[:], reference.x, rtol=0, atol=1e-4)


def test_images_are_decoded_once_and_no_half_written_cache_is_left(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    decode = memmap_module.decode_cropped

    def counted(file, size):
        calls.append(file.name)
        if len(calls) == 17 and size == 40:  # a crash half-way through one folder
            raise KeyboardInterrupt
        return decode(file, size)

    monkeypatch.setattr(memmap_module, "decode_cropped", counted)
    build_scenario(_config(data_dir))
    assert len(calls) == N_CLASSES * (N_TRAIN + N_VAL)
    cache = tmp_path / "cache" / "decoded"
    first = sorted(p.name for p in cache.iterdir())
    assert len([n for n in first if n.endswith(".npy")]) == 2 and "stats.json" in " ".join(first)
    calls.clear()
    again = build_scenario(_config(data_dir))  # mapped from the cache, not decoded
    assert calls == [] and sorted(p.name for p in cache.iterdir()) == first
    assert len(again.tasks[1].split("test")) == 10 * N_VAL
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        build_scenario(_config(data_dir, image_size=40))  # another size: decoded anew
    assert sorted(p.name for p in cache.iterdir()) == first  # nothing half-written left


def test_real_backbone_is_resnet18_nf64_at_the_image_size(data_dir: Path) -> None:
    cfg = _config(data_dir, image_size=48)
    name, kwargs = backbone_of(cfg)
    assert (name, kwargs) == ("resnet18", {"nf": 64, "stem": "imagenet", "size": 48})
    assert backbone_of(dataclasses.replace(cfg, image_size=0))[1]["size"] == 224
    net = builtin_net(name, **kwargs)
    x = build_scenario(cfg).tasks[0].split("val").x[0:2]
    net.fit_input(x)
    assert net.out_features == 512 and x.shape == (2, 3, 48, 48)


def test_two_task_run_is_forget_free_and_its_file_predicts_the_same(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # The standard ResNet-18 at width 8 (same layers, stem and per-task norms, 1/64 of the
    # weights), so that training and compressing two tasks takes seconds on a CPU.
    narrow = dataclasses.replace(SPECS["imagenet100"], kwargs={"nf": 8, "stem": "imagenet"})
    monkeypatch.setitem(SPECS, "imagenet100", narrow)
    torch.set_num_threads(1)  # the suite's 2 threads crawl when another job holds a core
    cfg = _config(data_dir, train={"epochs": 1, "batch_size": 16},
                  prune={"enabled": True}, quantize={"enabled": True})
    out = tmp_path / "run"
    _, first = run(cfg, out=out, progress=False, stop_after=1)
    x = torch.cat([build_scenario(cfg).tasks[0].split("test").x[:],
                   torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(5))])
    logits0 = first.logits(x, 0)
    with pytest.raises(ConfigError, match="image_size: run has 32, asked 40"):
        run(dataclasses.replace(cfg, image_size=40), out=out, resume=True, progress=False)
    result, learner = run(cfg, out=out, resume=True, progress=False)
    assert len(result.R) == 2 and result.bwt == 0.0
    assert torch.equal(learner.logits(x, 0), logits0), "task 0 changed after task 1"
    model = load(out / "model.tsn")
    for t in range(2):
        assert torch.equal(model.logits(x, t), learner.logits(x, t)), f"task {t} differs"
    assert model.scenario["image_size"] == 32
    assert model.header["backbone"]["kwargs"] == {"nf": 8, "stem": "imagenet", "size": 32}
    # The file alone rebuilds the scenario at its size (from the cache) and measures the same.
    capsys.readouterr()
    assert main(["eval", str(out / "model.tsn"), "--data-dir", str(data_dir)]) == 0
    assert f"ACC {result.acc:.2f} over 2 tasks" in capsys.readouterr().out


def test_a_checkpoint_older_than_image_size_resumes(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = tiny_config(epochs=1)
    run(cfg, out=tmp_path / "run", progress=False, stop_after=1)
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    del state["identity"]["image_size"]  # as written before the setting existed
    torch.save(state, path)
    # Accepted (stop_after=1: the identity check, and no more training than that).
    resumed, _ = run(cfg, out=tmp_path / "run", resume=True, progress=False, stop_after=1)
    assert len(resumed.R) == 1


def test_errors_name_the_folder_and_the_layout(data_dir: Path, capsys) -> None:
    root = data_dir / "imagenet100"
    with pytest.raises(DataError, match=r"imagenet100: no dataset files found .*--download "
                                        r"cannot fetch it"):
        build_scenario(_config(data_dir / "imagenet100" / "train"))
    with pytest.raises(ConfigError, match="no embedded copy: pass --data-dir"):
        build_scenario(_config(None))
    with pytest.raises(ConfigError, match="image_size 64: pmnist's backbone has a fixed input"):
        build_scenario(RunConfig.for_scenario("pmnist", image_size=64))
    with pytest.raises(ConfigError, match="image_size must be 0 .* or >= 32, got 16"):
        _config(data_dir, image_size=16).validate()
    with pytest.raises(ConfigError, match="imagenet100 has 20 classes: 3 tasks of 10"):
        build_scenario(_config(data_dir, tasks=3))
    (root / "val").rename(root / "test")  # test/ serves as well as val/
    assert len(build_scenario(_config(data_dir)).tasks[0].split("test")) == 10 * N_VAL
    (root / "test" / "n00000019").rename(root / "test" / "n00000099")
    with pytest.raises(DataError, match=r"class folders differ between 'train' and 'test' "
                                        r"\(only in 'train': \['n00000019'\]"):
        build_scenario(_config(data_dir))
    (root / "test" / "n00000099").rename(root / "test" / "n00000019")
    bad = root / "train" / "n00000004" / "002.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataError, match=rf"cannot decode image {bad}"):
        build_scenario(_config(data_dir, image_size=36))
    for path in (root / "train" / "n00000004").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"class folder .*n00000004 holds no images"):
        build_scenario(_config(data_dir))
    (root / "test").rename(root / "elsewhere")
    with pytest.raises(DataError, match=r"has no val/ \(or test/\) folder beside it"):
        build_scenario(_config(data_dir))
    # Through the command: one line, no traceback.
    code = main(["run", "--scenario", "pmnist", "--image-size", "64", "--no-progress",
                 "--out", str(data_dir / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "image_size 64" in err and "Traceback" not in err
    code = main(["run", "--scenario", "imagenet100", "--data-dir", str(data_dir / "none"),
                 "--no-progress", "--out", str(data_dir / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "data folder not found" in err and "Traceback" not in err
