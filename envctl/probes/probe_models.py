"""The smoke probe's models: small nn.Modules with random weights, no downloads.

A ResNet-50-shaped CNN and a transformer block for the benchmarks (full size on CUDA,
small variants on CPU so that a cold torch.compile stays cheap), and a module with
data-dependent control flow for the TorchScript round-trip. Part of the in-image smoke
probe (see smoke.py): standard library and torch only (torch imported lazily, the
classes are defined on first use), Python >= 3.9.
"""
from __future__ import annotations

MODELS = ("resnet50", "transformer")

# Model shapes. CPU variants are small so that a cold torch.compile stays cheap.
MODEL_SHAPES = {
    ("resnet50", "cuda"): {"name": "resnet50", "layers": [3, 4, 6, 3], "width": 64, "image": 224,
                           "classes": 1000},
    ("resnet50", "cpu"): {"name": "resnet-small", "layers": [1, 1, 1, 1], "width": 16, "image": 64,
                          "classes": 100},
    ("transformer", "cuda"): {"name": "transformer", "d": 256, "heads": 8, "seq": 128},
    ("transformer", "cpu"): {"name": "transformer-small", "d": 64, "heads": 4, "seq": 32},
}

_MODEL_CLASSES = None


def model_classes():
    """The probe's nn.Module classes, defined once (torch is imported lazily)."""
    global _MODEL_CLASSES
    if _MODEL_CLASSES is None:
        _MODEL_CLASSES = _define_model_classes()
    return _MODEL_CLASSES


def _define_model_classes():
    # TorchScript compiles forward() from this file's source and resolves torch and nn
    # through the methods' closures.
    import torch
    import torch.nn as nn

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            cout = width * 4
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))
            else:
                self.down = nn.Identity()

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + self.down(x))

    class ResNet(nn.Module):
        """ResNet-50-shaped CNN (bottleneck blocks), random init, no downloads."""

        def __init__(self, layers, width=64, classes=1000):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.MaxPool2d(3, stride=2, padding=1))
            blocks = []
            cin = width
            for i, n in enumerate(layers):
                w = width * (2 ** i)
                for j in range(n):
                    blocks.append(Bottleneck(cin, w, 2 if (j == 0 and i > 0) else 1))
                    cin = w * 4
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, classes)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.fc(torch.flatten(self.pool(x), 1))

    class TransformerBlock(nn.Module):
        """Pre-norm transformer block: MultiheadAttention + LayerNorm + MLP."""

        def __init__(self, d, heads):
            super().__init__()
            self.ln1 = nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.ln2 = nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x):
            h = self.ln1(x)
            a, _ = self.attn(h, h, h, need_weights=False)
            x = x + a
            return x + self.mlp(self.ln2(x))

    class Branchy(nn.Module):
        """Data-dependent control flow: script keeps both branches, trace freezes one."""

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 16)

        def forward(self, x):
            if bool(x.sum() > 0):
                return torch.relu(self.lin(x)) + 1.0
            else:
                return torch.tanh(self.lin(x)) - 1.0

    return {"ResNet": ResNet, "TransformerBlock": TransformerBlock, "Branchy": Branchy}


def _randomize_bn(model, seed):
    import torch
    import torch.nn as nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + 0.5 * torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))


def build_model(key, device_kind, seed):
    """(shape name, eval-mode model without grads, make_input(batch, generator)) on CPU."""
    import torch

    shape = MODEL_SHAPES[(key, device_kind)]
    classes = model_classes()
    torch.manual_seed(seed)
    if key == "resnet50":
        model = classes["ResNet"](shape["layers"], shape["width"], shape["classes"])
        _randomize_bn(model, seed)

        def make_input(batch, g):
            return torch.randn(batch, 3, shape["image"], shape["image"], generator=g)
    else:
        model = classes["TransformerBlock"](shape["d"], shape["heads"])

        def make_input(batch, g):
            return torch.randn(batch, shape["seq"], shape["d"], generator=g)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return shape["name"], model, make_input
