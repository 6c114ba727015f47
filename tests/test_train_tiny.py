"""A tiny network and an injected fault for the training tests (this file holds no tests)."""

from torch import nn


class Tiny(nn.Module):
    """conv-norm-relu x3 (one depthwise) -> pool -> dropout -> linear; 16 px inputs are enough."""

    def __init__(self, num_classes=10, in_chans=3, width=16, norm="bn", probe=None, drop=0.1):
        super().__init__()
        w = width
        norm_layer = nn.BatchNorm2d if norm == "bn" else (lambda c: nn.GroupNorm(4, c))
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, w, 3, 1, 1, bias=False), norm_layer(w), nn.ReLU()
        )
        self.features = nn.Sequential(
            nn.Conv2d(w, 2 * w, 3, 2, 1, bias=False),
            norm_layer(2 * w),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, 2, 1, groups=2 * w, bias=False),
            norm_layer(2 * w),
            nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 1, bias=False),
            norm_layer(4 * w),
            nn.ReLU(),
        )
        self.probe = probe if probe is not None else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop)
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        x = self.probe(self.features(self.stem(x)))
        return self.classifier(self.dropout(self.pool(x).flatten(1)))


class InfAfter(nn.Module):
    """Identity until its `at`-th training forward, then multiplies by inf (an injected fault)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x):
        self.calls += self.training
        return x * float("inf") if self.training and self.calls >= self.at else x
