"""The seed document's training loop, kept as it is written, as the reference the benchmarks beat.

Written the way the seed writes it, apart from what would not run here (``.cuda()`` becomes the
chosen device, ``np.prod`` lives in the model builders): a torchvision data set with a per-sample ``ToTensor``, a
``DataLoader``, a fresh generator forward for each update, the D loss back-propagated into G (no
``detach``), and a print with a host sync on every step. The architecture comes from the caller,
wrapped with the seed's sigmoid and trained with ``BCELoss``, so both loops train the same model.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import MNIST
from torchvision.transforms import Compose, Normalize, Resize, ToTensor

from ganforge.config import DataConfig
from ganforge.data import ImageData, load_mnist5k


def write_for_torchvision(data: ImageData, root: Path, folder: str = "MNIST") -> Path:
    """Images and labels as raw IDX files in torchvision's layout (ROOT/FOLDER/raw), so its reader loads them."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    n, _, h, w = data.images.shape
    images = struct.pack(">BBBBIII", 0, 0, 8, 3, n, h, w) + data.images.numpy().tobytes()
    labels = struct.pack(">BBBBI", 0, 0, 8, 1, n) + data.labels.to(torch.uint8).numpy().tobytes()
    # torchvision checks that the test split is there too; the same images stand in for it.
    for split in ("train", "t10k"):
        for stem, blob in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels)):
            (raw / stem).write_bytes(blob)
    return root


def write_mnist5k_for_torchvision(root: Path) -> Path:
    """The embedded digits in torchvision's MNIST layout."""
    return write_for_torchvision(load_mnist5k(DataConfig()), root)


class _WithSigmoid(nn.Module):
    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, img: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.discriminator(img, labels))


def seed_loop(generator: nn.Module, discriminator: nn.Module, latent_dim: int, root: Path, steps: int,
              batch_size: int = 64, device: str = "cpu", log: Callable[[str], None] | None = None,
              dataset_class: type = MNIST, normalise: bool = False, image_size: int | None = None,
              num_classes: int | None = None) -> float:
    """Train like the seed for ``steps`` steps, in place; returns images per second (real images seen per second).

    ``normalise``: the one change a careful reader of the seed makes, ``Normalize(0.5, 0.5)`` after
    ``ToTensor``, so the data spans [-1, 1] like the generator's tanh (the seed's own data spans [0, 1]).
    ``image_size``: ``Resize`` the digits first, for architectures that need another side (StyleGAN2: 32).
    ``num_classes``: for a conditional pair, the textbook conditional loop (PyTorch-GAN's cgan.py): D
    sees the real labels with the real images, G draws for uniformly random labels.
    """
    sink = open(os.devnull, "w")
    log = log or (lambda line: print(line, file=sink))
    discriminator = _WithSigmoid(discriminator)
    transform = Compose([*([Resize(image_size)] if image_size else []), ToTensor(),
                         *([Normalize([0.5], [0.5])] if normalise else [])])
    dataset = dataset_class(root=str(root), download=False, transform=transform)
    dataloader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    adversarial_loss = nn.BCELoss()
    optimizer_G = torch.optim.Adam(generator.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=0.0002, betas=(0.5, 0.999))
    step = 0
    start = time.perf_counter()
    num_epochs = 10**9
    for epoch in range(num_epochs):
        for i, (imgs, labels) in enumerate(dataloader):
            imgs = imgs.to(device)
            labels = labels.to(device) if num_classes else None
            gen_labels = torch.randint(0, num_classes, (imgs.size(0),), device=device) if num_classes else None
            valid = torch.ones((imgs.size(0), 1)).to(device)
            fake = torch.zeros((imgs.size(0), 1)).to(device)

            real_loss = adversarial_loss(discriminator(imgs, labels), valid)
            fake_loss = adversarial_loss(discriminator(generator(torch.randn((imgs.size(0), latent_dim)).to(device), gen_labels),
                                                       gen_labels), fake)
            d_loss = 0.5 * (real_loss + fake_loss)

            optimizer_D.zero_grad()
            d_loss.backward()
            optimizer_D.step()

            g_loss = adversarial_loss(discriminator(generator(torch.randn((imgs.size(0), latent_dim)).to(device), gen_labels),
                                                    gen_labels), valid)

            optimizer_G.zero_grad()
            g_loss.backward()
            optimizer_G.step()

            log(f"[Epoch {epoch}/{num_epochs}] [Batch {i}/{len(dataloader)}] [D loss: {d_loss.item()}] [G loss: {g_loss.item()}]")
            step += 1
            if step == steps:
                elapsed = time.perf_counter() - start
                sink.close()
                return steps * batch_size / elapsed
    raise AssertionError("unreachable")
