"""PyTorch implementations (forward only; autograd differentiates). torch is imported on use."""

from __future__ import annotations


class RMSNormalization:
    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        import torch

        spec = self.spec
        mean_square = torch.mean(x * x, dim=spec.normalized_axis(x.dim()), keepdim=True)
        r = 1 / torch.sqrt(mean_square + spec.epsilon)
        return x * r * params[0].reshape(spec.scale_shape(x.dim()))


def SQUAREPLUS(spec, x):  # noqa: N802 (the name every *_impl module exports)
    import torch

    return (x + torch.sqrt(x * x + spec.b)) / 2
