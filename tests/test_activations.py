"""Activation quantization (Table 7): 16 bits cost nothing, b bits give at most 2^b values per
layer input, the hooks never outlive the context, bad bit-widths are refused."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import builtin_learner, tiny_config
from test_backbones import _task

from tinysubnets import RunConfig, load, run
from tinysubnets.compression.activations import (
    activation_accuracy,
    calibrate,
    model_activation_accuracy,
    quantized_activations,
    quantized_modules,
)
from tinysubnets.config import PruneConfig
from tinysubnets.errors import ConfigError, DataError
from tinysubnets.nn.network import HEAD
from tinysubnets.scenarios import build_scenario
from tinysubnets.tasks import Split


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A 2-task p-MNIST run with codebook weights (quantization on; post-pruning off, for
    time), its scenario, learner and model file."""
    cfg = RunConfig.for_scenario(
        "pmnist", tasks=2, seed=7, train={"epochs": 2, "batch_size": 128},
        prune={"enabled": False}, quantize={"enabled": True},
    )
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(2)
    _, learner = run(cfg, out=out, progress=False)
    return build_scenario(cfg), learner, out / "model.tsn"


def _record(net, task_id: int, seen: dict[str, torch.Tensor]) -> list:
    """Hooks that keep each hooked module's last input in ``seen``."""

    def make(name: str):
        return lambda module, args: seen.__setitem__(name, args[0])

    modules = quantized_modules(net, task_id)
    return [m.register_forward_pre_hook(make(n)) for n, m in modules.items()]


def _no_hooks(net) -> bool:
    return all(not m._forward_pre_hooks for m in net.modules())


def test_sixteen_bits_match_fp32_and_four_bits_stay_close(trained) -> None:
    scenario, learner, path = trained
    model = load(path)
    for t, task in enumerate(scenario.tasks):
        val, test = task.split("val"), task.split("test")
        acc = activation_accuracy(learner.net, t, learner.masks[t], val, test)
        assert list(acc) == ["fp32", "4b", "8b", "16b"]
        assert abs(acc["16b"] - acc["fp32"]) <= 0.1, acc
        assert abs(acc["8b"] - acc["fp32"]) <= 1.0, acc
        assert acc["4b"] > acc["fp32"] - 5.0, acc  # a drop, as in the paper, but a small one
        # The model file holds the same network: the same numbers from it.
        assert model_activation_accuracy(model, t, val, test) == acc


def test_b_bits_give_at_most_2_to_the_b_values_per_layer_input(trained) -> None:
    scenario, learner, _ = trained
    net, masks = learner.net, learner.masks[0]
    task = scenario.tasks[0]
    ranges = calibrate(net, 0, masks, task.split("val"))
    assert set(ranges.ranges) == {"fc1", "fc2", HEAD}
    assert ranges.to_dict()["ranges"]["fc2"] == list(ranges.ranges["fc2"])  # JSON-ready
    assert ranges.ranges["fc1"][0] < 0  # normalised pixels
    assert ranges.ranges["fc2"][0] == 0.0 and ranges.ranges[HEAD][0] == 0.0  # after ReLU
    x = task.split("test").x[:500]
    for bits in (1, 2, 3):
        seen: dict[str, torch.Tensor] = {}
        with quantized_activations(net, ranges, bits):
            # Registered after the quantizing hooks, so these see the quantized inputs.
            handles = _record(net, 0, seen)
            net.task_logits(x, 0, learner.masks)
            for h in handles:
                h.remove()
        for name, inputs in seen.items():
            lo, hi = ranges.ranges[name]
            assert 1 < inputs.unique().numel() <= 2**bits, (name, bits)
            assert lo <= inputs.min() and inputs.max() <= hi + 1e-6


def test_hooks_are_removed_even_after_an_exception(trained) -> None:
    scenario, learner, _ = trained
    net, x = learner.net, scenario.tasks[1].split("test").x[:300]
    before = [learner.logits(x, t) for t in range(2)]
    ranges = calibrate(net, 1, learner.masks[1], scenario.tasks[1].split("val"))
    with quantized_activations(net, ranges, 4):
        assert not torch.equal(learner.logits(x, 1), before[1])
    with pytest.raises(RuntimeError, match="inside"), quantized_activations(net, ranges, 8):
        raise RuntimeError("inside")
    assert _no_hooks(net)
    for t in range(2):
        assert torch.equal(learner.logits(x, t), before[t])


def test_bad_bit_widths_and_empty_calibration(trained) -> None:
    scenario, learner, _ = trained
    net, masks = learner.net, learner.masks[0]
    val = scenario.tasks[0].split("val")
    for bad in (0, 17, 4.0, True, "8"):
        with pytest.raises(ConfigError, match=f"bit-width {bad!r} is not an int in 1..16"):
            activation_accuracy(net, 0, masks, val, val, bits=(8, bad))
    ranges = calibrate(net, 0, masks, val)
    with pytest.raises(ConfigError, match="bit-width 32"), quantized_activations(net, ranges, 32):
        pass
    empty = Split(val.x[:0], val.y[:0])
    with pytest.raises(DataError, match="the split is empty"):
        activation_accuracy(net, 0, masks, empty, val)
    assert _no_hooks(net)


def test_conv_backbone_with_per_task_batchnorm() -> None:
    cfg = tiny_config(epochs=2, batch_size=32, lr=0.01)
    learner = builtin_learner(dataclasses.replace(cfg, tasks=1, prune=PruneConfig(enabled=False)),
                              "tinynet", size=16, channels=8, width=32)
    task = _task(0)
    learner.add_head(4)
    learner.learn(task, task.split("train"), task.split("val"), progress=False)
    net, masks = learner.net, learner.masks[0]
    # On the calibration inputs themselves: test inputs beyond their range would be clamped.
    probe = task.split("val").x
    before = learner.logits(probe, 0)
    stats = {k: v.clone() for k, v in net.norms[0].state_dict().items()}
    net.train()  # calibration evaluates in eval mode whatever the mode it finds, and restores it
    ranges = calibrate(net, 0, masks, task.split("val"))
    assert net.training
    net.eval()
    assert set(ranges.ranges) == {"conv1", "conv2", "conv3", "conv4", "fc1", "fc2", HEAD}
    acc = activation_accuracy(net, 0, masks, task.split("val"), task.split("test"))
    # A toy task (near chance after two epochs): its accuracy says little, its logits more.
    assert abs(acc["16b"] - acc["fp32"]) <= 0.1, acc
    with quantized_activations(net, ranges, 16):
        q16 = learner.logits(probe, 0)
    with quantized_activations(net, ranges, 4):
        q4 = learner.logits(probe, 0)
    gap16, gap4 = (q16 - before).abs().max(), (q4 - before).abs().max()
    assert gap16 < 1e-3 * before.abs().max() and gap16 < gap4
    for k, v in net.norms[0].state_dict().items():  # stored statistics untouched
        assert torch.equal(v, stats[k]), k
    assert _no_hooks(net) and torch.equal(learner.logits(probe, 0), before)

