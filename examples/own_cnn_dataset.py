"""Your own CNN on your own map-style Dataset, with a train-time augmentation.

`ArrayImages` is a torchvision-style dataset (uint8 images, a `targets` attribute, its own
`transform`). By default it holds small synthetic images (one random, left-right symmetric
pattern per class, plus noise): replace `make_task`'s data with yours. Two tasks of a
class-incremental split (labels 0, 1, then 2, 3: the second task keeps its own labels) go
through `Task.from_datasets` with `transform=augment` (a random flip and noise, applied to
training inputs only); `tsn.run` learns them with `SmallCNN` (Conv2d, BatchNorm2d, Linear)
and `tsn.load` predicts.

    python examples/own_cnn_dataset.py --epochs 5 --out runs/own_cnn_dataset
"""

import argparse

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

import tinysubnets as tsn


class ArrayImages(Dataset):
    def __init__(self, images: np.ndarray, targets: list, transform=None) -> None:
        self.images, self.targets, self.transform = images, list(targets), transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.images[i]).float() / 255  # (3, 16, 16) in [0, 1]
        return (self.transform(x) if self.transform else x), self.targets[i]


class SmallCNN(nn.Module):  # (N, 3, H, W) -> (N, 32) features; BatchNorm becomes per task
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 32), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def normalize(x: torch.Tensor) -> torch.Tensor:  # the dataset's own transform (every split)
    return (x - 0.5) / 0.5


def augment(x: torch.Tensor) -> torch.Tensor:  # train-time only, one input at a time
    x = x.flip(-1) if torch.rand(()) < 0.5 else x
    return x + 0.05 * torch.randn_like(x)


def make_task(t: int, classes: list, n: int, workers: int) -> tuple[tsn.Task, ArrayImages]:
    rng = np.random.default_rng(t)
    patterns = rng.random((len(classes), 3, 16, 16))
    index = rng.integers(0, len(classes), n)
    noisy = (patterns + patterns[..., ::-1])[index] / 2 + rng.normal(0, 0.2, (n, 3, 16, 16))
    images, labels = (np.clip(noisy, 0, 1) * 255).astype(np.uint8), [classes[i] for i in index]
    train, test = (ArrayImages(images[part], labels[part], normalize)
                   for part in (slice(0, n // 2), slice(n // 2, n)))  # half train, half test
    return tsn.Task.from_datasets(f"pair{t}", train, test, transform=augment,
                                  workers=workers), test


def main(out: str = "runs/own_cnn_dataset", epochs: int = 5, n: int = 800, workers: int = 0,
         progress: bool = True):
    pairs = [make_task(t, classes, n, workers) for t, classes in enumerate([[0, 1], [2, 3]])]
    tasks, tests = [task for task, _ in pairs], [test for _, test in pairs]
    cfg = {"train": {"epochs": epochs, "batch_size": 32}, "seed": 0}
    result, learner = tsn.run(cfg, out, tasks=tasks, backbone=SmallCNN(), progress=progress)
    model = tsn.load(f"{out}/model.tsn", backbone=SmallCNN())  # a fresh instance
    for t, test in enumerate(tests):
        predicted = model.predict(torch.stack([test[i][0] for i in range(len(test))]), t)
        print(f"task {t}: accuracy {np.mean(predicted == np.array(test.targets)):.1%}, "
              f"predicted labels {sorted(set(predicted.tolist()))}")
    print(f"ACC {result.acc:.2f}%  BWT {result.bwt:.2f}  model {result.model['file_bytes']} B")
    return result, learner, model, tests


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in [("--out", "runs/own_cnn_dataset"), ("--epochs", 5), ("--n", 800),
                          ("--workers", 0)]:
        parser.add_argument(flag, type=type(default), default=default)
    main(**vars(parser.parse_args()))
