"""The paper's convolutional backbones: forward shapes, masked-weight counts against hand
counts, and per-task BatchNorm that keeps finished tasks bit-exact, in memory and in the file."""

from __future__ import annotations

import pytest
import torch
from conftest import builtin_learner, builtin_net
from user_models import toy_data

from tinysubnets import RunConfig, TrainConfig, load
from tinysubnets.artifact import write_model
from tinysubnets.nn.network import TSNNetwork
from tinysubnets.tasks import Task


@pytest.mark.parametrize(
    "name, kwargs, count, features",
    [
        # conv 3·64·4², 64·128·3², 128·256·2²; fc 256·2·2→2048, 2048→2048
        ("alexnet", {}, 3 * 64 * 16 + 64 * 128 * 9 + 128 * 256 * 4 + 1024 * 2048 + 2048**2, 2048),
        # 4 conv 3×3 of 160 (stride 2: 64→4); fc 160·4·4→640, 640→640
        ("tinynet", {}, 3 * 160 * 9 + 3 * 160 * 160 * 9 + 2560 * 640 + 640**2, 640),
        # reduced ResNet-18, nf = 20 (GPM): 540 + 14,400 + 51,200 + 204,800 + 819,200
        ("resnet18", {"nf": 20}, 1_090_140, 640),
        # torchvision's resnet18 without fc and BN: 11,689,512 - 513,000 - 9,600
        ("resnet18", {"nf": 64, "size": 224, "stem": "imagenet"}, 11_166_912, 512),
    ],
    ids=["alexnet", "tinynet", "resnet18-nf20", "resnet18"],
)
def test_forward_shape_and_weight_count(name: str, kwargs: dict, count: int, features: int):
    net = builtin_net(name, **kwargs)
    assert net.backbone_weights() == count
    assert net.out_features == features
    net.add_head(5, torch.Generator().manual_seed(0))
    x = torch.randn(2, *net.input_shape)
    masks = {k: torch.ones_like(m.weight, dtype=torch.bool) for k, m in net.masked_layers().items()}
    net.eval()
    assert net(x, 0, masks).shape == (2, 5)


def _task(t: int, n: int = 192) -> Task:
    """A learnable toy task on 3×16×16 inputs: the class is the brightest quarter."""
    x, y, xt, yt = toy_data(t, n + 32, shape=(3, 16, 16), labels=(0, 1, 2, 3))
    return Task.from_tensors(f"toy-{t}", x, y, xt, yt, seed=t)


def test_per_task_batchnorm_keeps_finished_tasks_bit_exact(tmp_path) -> None:
    cfg = RunConfig(tasks=2, seed=7, train=TrainConfig(epochs=5, batch_size=32, lr=0.01))
    learner = builtin_learner(cfg, "tinynet", size=16, channels=8, width=32)
    tasks = [_task(0), _task(1)]
    probe = tasks[0].split("test").x[:20]
    learner.add_head(4)
    learner.learn(tasks[0], tasks[0].split("train"), tasks[0].split("val"), progress=False)
    first = learner.logits(probe, 0)
    assert (first.std(0) > 1e-3).all()  # the logits depend on the input
    assert learner.evaluate(0, tasks[0].split("test")) > 50  # it learned something
    template = {k: v.clone() for k, v in learner.net.backbone.state_dict().items()}
    stats = {k: v.clone() for k, v in learner.net.norms[0].state_dict().items()}
    learner.add_head(4)
    learner.learn(tasks[1], tasks[1].split("train"), tasks[1].split("val"), progress=False)
    assert torch.equal(learner.logits(probe, 0), first)
    for k, v in learner.net.norms[0].state_dict().items():
        assert torch.equal(v, stats[k]), k
    # Every norm layer is per task: the backbone's own (the tasks' starting point) never moves.
    assert learner.net.norm_names == ("bn1", "bn2", "bn3", "bn4")
    assert all(torch.equal(v, template[k]) for k, v in learner.net.backbone.state_dict().items())
    # Task 1 trained its own norms: their statistics moved away from the initial ones.
    assert not torch.equal(learner.net.norm_state(1)["bn1.running_mean"], torch.zeros(8))
    # A prediction does not depend on the rest of its batch (stored statistics, eval mode).
    alone = torch.cat([learner.logits(probe[i : i + 1], 0) for i in range(3)])
    assert torch.allclose(alone, first[:3], atol=1e-5)
    # The model file holds the norms: bit-exact logits for both tasks, norms counted apart.
    write_model(tmp_path / "model.tsn", learner)
    model = load(tmp_path / "model.tsn")
    for t in range(2):
        assert torch.equal(model.logits(probe, t), learner.logits(probe, t))
    n_norm_values = sum(v.numel() for v in learner.net.norm_template().values()
                        if v.is_floating_point())
    assert n_norm_values == 4 * 4 * 8  # 4 BatchNorms: weight, bias, mean, variance of 8
    assert model.capacity.parts["norms"] == 2 * 4 * n_norm_values


SMALL = [
    ("mlp", {"in_features": 48, "hidden": (16, 12)}),
    ("alexnet", {"size": 32, "width": 32}),
    ("tinynet", {"size": 16, "channels": 8, "width": 32}),
    ("resnet18", {"nf": 4, "size": 16}),
    ("resnet18", {"nf": 4, "size": 32, "stem": "imagenet"}),
]


def _small_net(name: str, kwargs: dict) -> tuple[TSNNetwork, dict[str, torch.Tensor]]:
    net = builtin_net(name, **kwargs)
    net.add_head(3, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    masks = {k: torch.rand(m.weight.shape, generator=g) < 0.6
             for k, m in net.masked_layers().items()}
    for norm in net.norms[0].values():  # statistics of their own: a skipped stage would show
        norm.running_mean.uniform_(-0.2, 0.2, generator=g)
        norm.running_var.uniform_(0.5, 2.0, generator=g)
    return net.eval(), masks


@pytest.mark.parametrize(("name", "kwargs"), SMALL, ids=[
    "mlp", "alexnet", "tinynet", "resnet18-cifar", "resnet18-imagenet"])
@torch.no_grad()
def test_stages_started_part_way_give_the_forward_bit_exactly(name: str, kwargs: dict) -> None:
    net, masks = _small_net(name, kwargs)
    x = torch.randn(10, *net.input_shape, generator=torch.Generator().manual_seed(2))
    # every masked parameter is in exactly one stage, and the stages are the module's children
    assert sorted(n for s in net.stages for n in s[2]) == sorted(net.masked_layers())
    assert len(net.stages) == len(list(net.backbone.children()))
    weights = net.task_weights(0, masks)
    expected = net(x, 0, masks)
    for start in range(len(net.stages) + 1):
        h = net.features(x, 0, weights, 0, start)
        assert torch.equal(net.heads[0](net.features(h, 0, weights, start)), expected)
