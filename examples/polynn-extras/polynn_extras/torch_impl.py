"""PyTorch implementations (forward only; autograd differentiates). torch is imported on use."""

from __future__ import annotations


class LayerNormalization:
    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        import torch

        spec = self.spec
        m = torch.mean(x, dim=-1, keepdim=True)
        centered = x - m
        r = 1 / torch.sqrt(torch.mean(centered * centered, dim=-1, keepdim=True) + spec.epsilon)
        y = centered * r
        k = 0
        if spec.scale:
            y = params[k] * y
            k += 1
        if spec.center:
            y = y + params[k]
        return y


def SQUAREPLUS(spec, x):  # noqa: N802 (the name every *_impl module exports)
    import torch

    return (x + torch.sqrt(x * x + spec.b)) / 2
