"""The compressed model file: it predicts bit-identically to the trained model for every task,
its capacity is the bytes it writes, and a damaged or foreign file fails with one clear
DataError (never a traceback from numpy or torch, never a partial file)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import rechecksum, tiny_config, with_header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinysubnets import load, run
from tinysubnets.artifact import inspect, model_bytes, write_model
from tinysubnets.artifact.container import CHECKSUM_BYTES
from tinysubnets.artifact.layout import block_names
from tinysubnets.artifact.reader import decode, parse
from tinysubnets.cli import main
from tinysubnets.compression.huffman import encode_symbols
from tinysubnets.compression.value_coding import (
    HUFFMAN,
    PACKED,
    ValueBlock,
    decode_values,
    encode_values,
    pack_codes,
    unpack_codes,
)
from tinysubnets.errors import DataError, TaskIdError, WriteError
from tinysubnets.scenarios import build_scenario

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A 3-task run with post-pruning and quantization, its folder, and a copy of the model
    file as it was after task 1 (to check that later tasks leave task 0 unchanged)."""
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config().__class__.for_scenario(
        "pmnist", tasks=3, seed=7, train={"epochs": 2, "batch_size": 128},
        prune={"enabled": True}, quantize={"enabled": True},
    )
    torch.set_num_threads(2)
    run(cfg, out=out, progress=False, stop_after=1)
    first = (out / "model.tsn").read_bytes()
    result, learner = run(cfg, out=out, resume=True, progress=False)
    return cfg, out, result, learner, first


def _inputs(cfg) -> torch.Tensor:
    x = build_scenario(cfg).tasks[0].split("test").x[:200]
    return torch.cat([x, torch.randn(56, 784, generator=torch.Generator().manual_seed(5))])


# --- the promises ---------------------------------------------------------------------------


def test_logits_from_the_file_equal_the_trained_model(trained) -> None:
    cfg, out, _, learner, _ = trained
    model = load(out / "model.tsn")
    x = _inputs(cfg)
    assert model.num_tasks == learner.num_tasks == 3
    for t in range(3):
        assert torch.equal(model.logits(x, t), learner.logits(x, t)), f"task {t} differs"
    # The values really were quantized: each task's own fc1 values fit its chosen bit-width.
    bits = model.capacity.bits
    assert all(1 <= b[name] <= 8 for b in bits for name in ("fc1.weight", "fc2.weight"))
    # ... and their codebooks are float16: 2 bytes a centroid.
    parsed = parse((out / "model.tsn").read_bytes(), "model.tsn")
    for t in range(3):
        for name in ("fc1.weight", "fc2.weight", "head"):
            _, k, _ = parsed.header["tasks"][t]["blocks"][name]
            assert len(parsed.sections[block_names(t, name)[0]].data) == 2 * k


@pytest.mark.parametrize("version", [1, 2])
def test_files_from_before_the_redesign_are_refused_with_a_reason(
    trained, tmp_path: Path, version: int
) -> None:
    _, out, _, _, _ = trained
    path = tmp_path / f"v{version}.tsn"
    good = (out / "model.tsn").read_bytes()
    path.write_bytes(rechecksum(good[:8] + struct.pack("<H", version) + good[10:]))
    with pytest.raises(DataError, match=f"format version {version}.*before tinysubnets took"):
        load(path)


def test_later_tasks_leave_the_first_task_bit_exact_in_the_file(trained) -> None:
    cfg, out, _, _, first = trained
    x = _inputs(cfg)
    early = decode(parse(first, "after task 0"))
    late = load(out / "model.tsn")
    assert early.num_tasks == 1
    assert torch.equal(early.logits(x, 0), late.logits(x, 0))


def test_capacity_is_the_bytes_written(trained) -> None:
    _, out, result, _, _ = trained
    data = (out / "model.tsn").read_bytes()
    cap = inspect(out / "model.tsn").capacity
    assert cap.total_bytes + cap.overhead_bytes == cap.file_bytes == len(data)
    assert cap.overhead_bytes < 4096  # the header (JSON) and checksum only
    assert sum(sum(row.values()) for row in cap.per_task) + cap.parts["masks"] == cap.total_bytes
    assert cap.parts["masks"] == sum(row["masks"] for row in cap.per_layer.values())
    assert cap.pct(cap.total_bytes) == pytest.approx(100 * 8 * cap.total_bytes / (32 * 88400))
    saved = json.loads((out / "results.json").read_text())["model"]
    assert saved == json.loads(json.dumps(cap.to_dict()))
    # masks are coded below one bit per weight per task
    assert 8 * cap.parts["masks"] < 3 * 88400


def test_writing_is_deterministic_and_atomic(trained, tmp_path: Path, monkeypatch) -> None:
    _, out, _, learner, _ = trained
    path = tmp_path / "model.tsn"
    write_model(path, learner)
    assert path.read_bytes() == model_bytes(learner)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("tinysubnets.atomic.os.replace", broken)
    with pytest.raises(WriteError, match=r"cannot write .*model\.tsn: disk full"):
        write_model(path, learner, {"name": "changed"})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tsn"]


def test_task_id_the_file_does_not_hold(trained) -> None:
    cfg, out, _, _, _ = trained
    model = load(out / "model.tsn")
    with pytest.raises(TaskIdError, match="task id 3 is out of range: this model holds tasks 0..2"):
        model.logits(_inputs(cfg), 3)


def test_loading_does_not_touch_the_global_rng(trained) -> None:
    _, out, _, _, _ = trained
    state = torch.random.get_rng_state()
    load(out / "model.tsn")
    assert torch.equal(torch.random.get_rng_state(), state)


# --- the command line -----------------------------------------------------------------------


def test_eval_from_the_file_alone_matches_the_run(trained, capsys) -> None:
    _, out, result, _, _ = trained
    assert main(["eval", str(out / "model.tsn")]) == 0
    text = capsys.readouterr().out
    assert f"ACC {result.acc:.2f} over 3 tasks" in text
    for acc in result.R[-1]:
        assert f"{acc:.2f}" in text


def test_eval_refuses_another_scenario_name(trained, tmp_path: Path, capsys) -> None:
    _, out, _, _, _ = trained
    data = with_header((out / "model.tsn").read_bytes(),
                        lambda h: h["scenario"].update(name="imagenet-1k"))
    (tmp_path / "m.tsn").write_bytes(data)
    assert main(["eval", str(tmp_path / "m.tsn")]) == 2
    assert "names no known scenario" in capsys.readouterr().err
    assert main(["eval", str(out / "model.tsn"), "--scenario", "cifar10"]) == 2
    assert "was trained on 'pmnist', not 'cifar10'" in capsys.readouterr().err


def test_inspect_prints_capacity_per_task_and_layer(trained, capsys) -> None:
    _, out, _, _, _ = trained
    assert main(["inspect", str(out / "model.tsn")]) == 0
    text = capsys.readouterr().out
    for word in ("weights", "codebooks", "masks", "heads", "fc1", "fc2", "total"):
        assert word in text
    assert main(["inspect", "--json", str(out / "model.tsn")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["capacity"]["file_bytes"] == (out / "model.tsn").stat().st_size


# --- bad files ------------------------------------------------------------------------------


def test_bad_files_fail_with_clear_messages(trained, tmp_path: Path, capsys) -> None:
    _, out, _, _, _ = trained
    good = (out / "model.tsn").read_bytes()
    cases = {
        "truncated": (good[: len(good) // 2], "checksum mismatch"),
        "tiny": (good[:20], "truncated"),
        "foreign": (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a tinysubnets model file"),
        "flipped": (good[:200] + bytes([good[200] ^ 4]) + good[201:], "checksum mismatch"),
        "version": (rechecksum(good[:8] + struct.pack("<H", 9) + good[10:]),
                    "format version 9; this tinysubnets reads"),
        "bits": (with_header(good, lambda h: h["tasks"][1]["blocks"]["fc1.weight"].__setitem__(
            0, 17)), "task 1, layer fc1.weight: bit-width 17 is outside"),
        "backbone": (with_header(good, lambda h: h["backbone"].update(name="vgg")),
                     "backbone .*'vgg'.* is neither a built-in"),
        "kwargs": (with_header(good, lambda h: h["backbone"]["kwargs"].update(hidden=[50, 100])),
                   r"layer fc1.weight: the file holds \[100, 784\], the backbone Sequential "
                   r"\[50, 784\]"),
        "section": (with_header(good, lambda h: h["sections"].pop(2)), "section"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.tsn"
        path.write_bytes(data)
        with pytest.raises(DataError, match=message):
            load(path)
        assert main(["inspect", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"tsn: error: {path}") and "Traceback" not in err, name
    with pytest.raises(DataError, match="no such model file"):
        load(tmp_path / "absent.tsn")


@FAST
@given(data=st.data())
def test_fuzzed_files_raise_data_error_only(trained, data: st.DataObject) -> None:
    _, out, _, _, _ = trained
    good = (out / "model.tsn").read_bytes()
    kind = data.draw(st.sampled_from(["random", "flip", "flip-rechecksum", "cut", "header"]))
    if kind == "random":
        blob = data.draw(st.binary(max_size=400))
        blob = data.draw(st.sampled_from([blob, b"TSNMODEL" + blob, good[:14] + blob]))
    elif kind == "cut":
        blob = rechecksum(good[: data.draw(st.integers(14, len(good) - CHECKSUM_BYTES))])
    elif kind == "header":  # the JSON header itself garbled, checksum made valid again
        size = struct.unpack_from("<I", good, 10)[0]
        at = data.draw(st.integers(14, 14 + size - 1))
        blob = rechecksum(good[:at] + bytes([data.draw(st.integers(0, 255))]) + good[at + 1 :])
    else:
        flips = data.draw(st.lists(st.integers(0, 8 * len(good) - 1), min_size=1, max_size=4))
        out_bytes = bytearray(good)
        for bit in flips:
            out_bytes[bit // 8] ^= 0x80 >> (bit % 8)
        blob = bytes(out_bytes) if kind == "flip" else rechecksum(bytes(out_bytes))
    try:
        model = decode(parse(blob, "fuzzed"))
    except DataError:
        return
    # A flip inside a stored value can leave a valid file: then it must still predict.
    assert model.logits(torch.zeros(2, 784), 0).shape == (2, 10)


# --- the value blocks -------------------------------------------------------------------------


@FAST
@given(st.integers(1, 16), st.data())
def test_codes_round_trip(bits: int, data: st.DataObject) -> None:
    codes = np.array(data.draw(st.lists(st.integers(0, 2**bits - 1), max_size=200)), np.uint32)
    packed = pack_codes(codes, bits)
    assert len(packed) == (len(codes) * bits + 7) // 8
    assert np.array_equal(unpack_codes(packed, len(codes), bits), codes)


@FAST
@given(
    st.lists(st.floats(-4, 4, width=32, allow_subnormal=False), min_size=1, max_size=40),
    st.integers(0, 300),
)
def test_values_round_trip_bit_exactly(levels: list[float], n: int) -> None:
    rng = np.random.default_rng(n)
    values = np.array(levels, np.float32)[rng.integers(0, len(levels), n)]
    block = encode_values(values)
    back = decode_values(block, n)
    assert back.dtype == np.float32 and np.array_equal(back.view(np.uint32), values.view(np.uint32))
    distinct = len(np.unique(values))
    if block.bits != 32 and n:
        assert block.centroids == distinct and block.bits == max(1, (distinct - 1).bit_length())
        if block.coding == PACKED:
            assert len(block.codes) == (n * block.bits + 7) // 8
        # float16 centroids take 2 bytes each, others 4.
        half = np.array_equal(values.astype(np.float16).astype(np.float32).view(np.uint32),
                              values.view(np.uint32))
        assert len(block.codebook) == (2 if half else 4) * block.centroids
    assert len(block.codebook) + len(block.codes) <= 4 * n  # never worse than raw float32


def test_float16_and_float32_codebooks() -> None:
    half = np.array([0.5, -1.0, 0.5, 2.0, 0.0999755859375], np.float32)  # all float16
    full = half + np.float32(1e-4)
    for values, width in ((half, 2), (full, 4)):
        block = encode_values(np.repeat(values, 20))
        assert len(block.codebook) == width * block.centroids == width * 4
        back = decode_values(block, values.size * 20)
        assert np.array_equal(back, np.repeat(values, 20))


def test_bad_value_blocks() -> None:
    ok = encode_values(np.array([0.5, -1.0, 0.5, 2.0], np.float32))
    assert ok.bits == 2 and ok.centroids == 3 and ok.coding == PACKED
    cases = [
        (ValueBlock(17, 3, ok.codebook, ok.codes), "bit-width 17 is outside"),
        (ValueBlock(0, 3, ok.codebook, ok.codes), "bit-width 0 is outside"),
        (ValueBlock(1, 3, ok.codebook, ok.codes), "3 centroids do not fit 1-bit codes"),
        (ValueBlock(2, 3, ok.codebook[:4], ok.codes), "4 codebook bytes, expected 6 .float16. "
                                                       "or 12 .float32. for 3 centroids"),
        (ValueBlock(2, 3, ok.codebook[4:] + ok.codebook[:4], ok.codes), "strictly increasing"),
        (ValueBlock(2, 3, ok.codebook, b"\xff"), "beyond the 3 centroids"),
        (ValueBlock(2, 3, ok.codebook, ok.codes + b"\x00"), "bytes of codes"),
        (ValueBlock(32, 0, b"", b"\x00" * 15), "bytes of raw values"),
        (ValueBlock(2, 3, ok.codebook, ok.codes, 7), "unknown code layout 7"),
        (ValueBlock(2, 3, ok.codebook, encode_symbols(np.array([0, 1, 3, 1])), HUFFMAN),
         "beyond the 3 centroids"),
        (ValueBlock(2, 3, ok.codebook, encode_symbols(np.array([0, 1, 2])), HUFFMAN),
         "expected 4 symbols"),
    ]
    for block, message in cases:
        with pytest.raises(DataError, match=message):
            decode_values(block, 4, "task 0, layer fc1")


def test_run_folder_has_the_capacity_report(trained) -> None:
    _, out, result, _, _ = trained
    report = json.loads((out / "capacity.json").read_text())
    assert report["model"]["file_bytes"] == (out / "model.tsn").stat().st_size
    rows = report["per_task"]
    assert [r["task"] for r in rows] == [0, 1, 2]
    for r, task in zip(rows, result.tasks, strict=True):
        # post-pruning only removes: the mask after is the recorded one, the one before larger
        assert r["mask_pct_after_pruning"] == pytest.approx(
            100 * sum(task["mask_size"].values()) / 88400)
        assert r["mask_pct_before_pruning"] >= r["mask_pct_after_pruning"]
        assert set(r["bits"]) == {"fc1.weight", "fc2.weight", "head"}
        assert list(r["val_acc"]) == ["trained", "pruned", "retrained", "quantized", "fine_tuned"]
