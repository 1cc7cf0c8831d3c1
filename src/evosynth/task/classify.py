"""Digit classification on the 5,000 MNIST digits that ship with the install: the small task on which any network's
evolution is shown (``study.any_network``, the book's "Evolve your own network"). The splits are the digits data
set's own (disjoint, stratified by class: 3,500 / 500 / 1,000)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from evosynth.task.digits import mnist_digits, mnist_split_indices


@dataclass(frozen=True)
class Digits:
    """Images [N, 1, 28, 28] in [0, 1] and their labels [N]."""

    images: torch.Tensor
    labels: torch.Tensor


def mnist(split: str) -> Digits:
    """One split (``train``, ``val`` or ``test``) of the shipped MNIST digits."""
    pixels, labels = mnist_digits()
    indices = mnist_split_indices()[split]
    images = torch.from_numpy(pixels[indices].astype("float32") / 255.0).unsqueeze(1)
    return Digits(images, torch.from_numpy(labels[indices].copy()))


def train_epochs(model: nn.Module, data: Digits, epochs: int, *, batch_size: int = 64,
                 learning_rate: float = 3e-3) -> None:
    """Adam on the cross-entropy, its learning rate falling linearly to zero over the epochs (so that the network
    is evaluated at rest, not mid-step), shuffled by torch's global generator (seed it for a reproducible run)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = epochs * -(-len(data.labels) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data.labels))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(data.images[batch]), data.labels[batch]).backward()
            optimizer.step()
            schedule.step()


def accuracy(model: nn.Module, data: Digits) -> float:
    """The fraction of ``data`` the model classifies right."""
    model.eval()
    with torch.no_grad():
        return float((model(data.images).argmax(dim=1) == data.labels).float().mean())
