"""One folder of images per task, read with Pillow: `<root>/<task>/<train|test>/<class>/<x>.png`.

`FolderImages` is a tiny map-style Dataset: it lists a split's image files, decodes each with
PIL into a float tensor in [0, 1] (RGB, resized to `--size`) and labels it with its class
folder's name (a string). Every task folder under `--root` becomes one `Task.from_datasets`;
`tsn.run` learns them in order with `SmallCNN`, and `tsn.load` predicts class names.

    python examples/image_folders.py --root my_images --epochs 5 --out runs/image_folders
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

import tinysubnets as tsn


class FolderImages(Dataset):
    def __init__(self, folder: Path, size: int) -> None:
        self.files, self.size = sorted(Path(folder).glob("*/*.png")), size
        self.targets = [f.parent.name for f in self.files]  # labels: class folder names

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        image = Image.open(self.files[i]).convert("RGB").resize((self.size, self.size))
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
        return x, self.targets[i]


class SmallCNN(nn.Module):  # (N, 3, size, size) -> (N, 32) features, for any size
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        return F.relu(self.bn2(self.conv2(x))).mean(dim=(2, 3))


def main(root: str, out: str = "runs/image_folders", epochs: int = 5, size: int = 32,
         progress: bool = True):
    folders = sorted(p for p in Path(root).iterdir() if (p / "train").is_dir())
    tests = [FolderImages(p / "test", size) for p in folders]
    tasks = [tsn.Task.from_datasets(p.name, FolderImages(p / "train", size), test)
             for p, test in zip(folders, tests, strict=True)]
    cfg = {"train": {"epochs": epochs, "batch_size": 32}, "seed": 0}
    result, learner = tsn.run(cfg, out, tasks=tasks, backbone=SmallCNN(), progress=progress)
    model = tsn.load(f"{out}/model.tsn", backbone=SmallCNN())
    for t, (task, test) in enumerate(zip(tasks, tests, strict=True)):
        predicted = model.predict(torch.stack([test[i][0] for i in range(len(test))]), t)
        accuracy = np.mean(predicted == np.array(test.targets))
        print(f"{task.name}: classes {list(task.labels)}, test accuracy {accuracy:.1%}")
    print(f"ACC {result.acc:.2f}%  BWT {result.bwt:.2f}  model {result.model['file_bytes']} B")
    return result, learner, model, tests


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="one sub-folder per task")
    parser.add_argument("--out", default="runs/image_folders", help="run folder (must be new)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--size", type=int, default=32, help="images are resized to this")
    args = parser.parse_args()
    main(args.root, args.out, args.epochs, args.size)
