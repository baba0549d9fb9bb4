"""FLOPs and bit-operations per task: hand counts on the MLP, torch's own flop counter on every
backbone, sparse = dense × keep ratio, BOPs = MACs × bits, codebook BOPs from the model file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import builtin_net, tiny_config
from torch.utils.flop_counter import FlopCounterMode

from tinysubnets import load, run
from tinysubnets.artifact.layout import owners_from_masks
from tinysubnets.errors import ConfigError, ShapeError, TaskIdError
from tinysubnets.nn.backbones import BACKBONES
from tinysubnets.nn.network import HEAD, TSNNetwork
from tinysubnets.report.flops import PRECISIONS, model_ops, task_ops

MLP_DENSE_MACS = 784 * 100 + 100 * 100 + 100 * 10  # 89,400
MLP_KEPT = {"fc1.weight": 7840, "fc2.weight": 2500}  # 10% and 25% of the hidden layers
MLP_SPARSE_MACS = 7840 + 2500 + 100 * 10  # 11,340: the head is dense


def _network(name: str, classes: int = 10, **kwargs: object) -> TSNNetwork:
    net = builtin_net(name, **kwargs)
    net.add_head(classes, torch.Generator().manual_seed(0))
    return net


def _masks(net: TSNNetwork, kept: dict[str, int] | None = None, ratio: float = 0.25):
    """Masks keeping ``kept[name]`` (else ``ratio`` of the) weights at random positions."""
    gen = torch.Generator().manual_seed(1)
    masks = {}
    for name, layer in net.masked_layers().items():
        n = layer.owner.numel()
        k = kept[name] if kept else int(n * ratio)
        flat = torch.full((n,), k == n)
        if k < n:
            flat[torch.randperm(n, generator=gen)[:k]] = True
        masks[name] = flat.view(layer.owner.shape)
    return masks


def test_mlp_counts_by_hand() -> None:
    net = _network("mlp")
    ops = task_ops(net, _masks(net, MLP_KEPT), 0)
    assert ops.dense_macs == MLP_DENSE_MACS == 89_400
    assert ops.sparse_macs == MLP_SPARSE_MACS == 11_340
    assert (ops.dense_flops, ops.sparse_flops) == (178_800, 22_680)
    assert [(lo.name, lo.positions) for lo in ops.layers] == [
        ("fc1.weight", 1), ("fc2.weight", 1), (HEAD, 1)]
    for b in PRECISIONS:
        assert ops.bops(b, b, sparse=False) == MLP_DENSE_MACS * b * b
        assert ops.bops(b, b) == MLP_SPARSE_MACS * b * b
    assert ops.bops(32, 32, sparse=False) == 91_545_600
    assert ops.bops(8, 8) == 725_760
    assert ops.codebook_bops(8) is None  # no bit-widths given
    # Nothing is owned yet (a task in training): every kept weight counts at the task's width.
    bits = [{"fc1.weight": 4, "fc2.weight": 3, HEAD: 8}]
    ops = task_ops(net, _masks(net, MLP_KEPT), 0, weight_bits=bits)
    assert ops.codebook_bops(8) == (7840 * 4 + 2500 * 3 + 1000 * 8) * 8 == 374_880


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_dense_flops_equal_torchs_flop_counter(name: str) -> None:
    net = _network(name).eval()
    masks = _masks(net, ratio=1.0)
    ops = task_ops(net, masks, 0)
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, *net.input_shape), 0, masks)
    assert ops.dense_flops == counter.get_total_flops() > 0
    assert ops.sparse_flops == ops.dense_flops  # a full mask


def test_resnet_imagenet_stem_matches_too() -> None:
    net = _network("resnet18", nf=8, size=64, stem="imagenet").eval()
    masks = _masks(net, ratio=1.0)
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, *net.input_shape), 0, masks)
    assert task_ops(net, masks, 0).dense_flops == counter.get_total_flops()


def test_sparse_is_dense_times_keep_ratio_on_a_conv_net() -> None:
    net = _network("tinynet")
    net.train()
    ops = task_ops(net, _masks(net, ratio=0.25), 0)
    assert net.training and all(m.training for m in net.modules())  # modes are restored
    convs = [lo for lo in ops.layers if lo.name.startswith("conv")]
    # TinyNet: 64×64 input, four stride-2 convs -> 32², 16², 8², 4² outputs per channel.
    assert [lo.positions for lo in convs] == [32 * 32, 16 * 16, 8 * 8, 4 * 4]
    assert convs[0].dense_macs == 32 * 32 * 160 * 3 * 3 * 3
    for lo in ops.layers[:-1]:
        assert lo.kept == lo.weights // 4
        assert 4 * lo.sparse_macs == lo.dense_macs
    head = ops.layers[-1]
    assert head.sparse_macs == head.dense_macs == 640 * 10
    assert 4 * (ops.sparse_macs - head.dense_macs) == ops.dense_macs - head.dense_macs


def test_bad_task_id_masks_and_bit_widths() -> None:
    net = _network("mlp")
    masks = _masks(net, MLP_KEPT)
    for bad in (1, -1, True, "0"):
        with pytest.raises(TaskIdError, match="out of range"):
            task_ops(net, masks, bad)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="fc2"):
        task_ops(net, {"fc1.weight": masks["fc1.weight"]}, 0)
    with pytest.raises(ConfigError, match="bit-widths"):
        task_ops(net, masks, 0, weight_bits=[])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-task p-MNIST run, pruned and quantized (later tasks reuse earlier tasks' weights)."""
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(2)
    run(tiny_config(epochs=1), out=out, progress=False)
    return out / "model.tsn"


def test_model_ops_count_each_weight_at_its_owners_bit_width(model_file: Path) -> None:
    model = load(model_file)
    bits = [{n: b[0] for n, b in task["blocks"].items()} for task in model.header["tasks"]]
    all_ops = model_ops(model)
    assert [ops.task_id for ops in all_ops] == list(range(model.num_tasks)) == [0, 1, 2]
    names = list(model.net.masked_layers())
    for t, ops in enumerate(all_ops):
        head = model.net.heads[t].weight.numel()
        masks = model.masks[t]
        assert ops.dense_macs == 784 * 100 + 100 * 100 + head
        assert ops.sparse_macs == sum(int(masks[n].sum()) for n in names) + head
        # Owners from the masks alone (first task holding a position), not the layers' buffers.
        kept_bits = 0
        for n in names:
            owner = owners_from_masks([m[n].numpy().ravel() for m in model.masks])
            kept = owner[masks[n].numpy().ravel()]
            assert (kept >= 0).all() and (kept <= t).all()
            kept_bits += int(np.array([bits[o][n] for o in kept]).sum())
        kept_bits += head * bits[t][HEAD]
        for a in (8, 16):
            assert ops.codebook_bops(a) == kept_bits * a
        assert ops.codebook_bops(8) < ops.bops(8, 8)  # quantized below 8 bits
    fc2 = model.net.masked_layers()["fc2.weight"]
    assert (fc2.owner[model.masks[2]["fc2.weight"]] < 2).any()  # task 2 reuses earlier weights
    row = json.loads(json.dumps(all_ops[2].to_dict()))
    assert set(row["bops"]) == {"w32a32", "w16a16", "w8a8", "w4a4"}
    assert row["bops"]["w8a8"]["sparse"] == all_ops[2].sparse_macs * 64
    assert row["codebook_bops"]["a16"] == all_ops[2].codebook_bops(16)
    assert [r["layer"] for r in row["layers"]] == [*names, HEAD]
