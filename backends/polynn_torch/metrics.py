"""Torch metrics: per_sample(spec, y, p) -> v for mean metrics, update(spec, y, p, w) -> state increment
(a float64 tensor) for others, as polynn.metrics."""

from __future__ import annotations

import functools

import torch

from . import custom, losses
from .losses import sparse_labels


def _sparse_accuracy(spec, y, p):
    labels = sparse_labels(y, p, -1)[..., 0]
    return (labels == torch.argmax(p, dim=-1)).to(p.dtype)


def _in_top_k(labels, p, k):
    """1 where fewer than k classes score strictly above the labelled class."""
    true_score = torch.gather(p, -1, labels.unsqueeze(-1))
    return (torch.sum(p > true_score, dim=-1) < k).to(p.dtype)


def _element_weights(w, p):
    """The sample weights broadcast over p's elements (ones without weights)."""
    if w is None:
        return torch.ones_like(p)
    return w.reshape(w.shape + (1,) * (p.dim() - 1)).expand(p.shape)


def _confusion_inputs(spec, y, p, w):
    if spec.class_id is not None:
        y, p = y[..., spec.class_id], p[..., spec.class_id]
    return p > spec.thresholds, y != 0, _element_weights(w, p)


def _counts(weights, *masks):
    return torch.stack([torch.sum(weights * mask, dtype=torch.float64) for mask in masks])


def _precision(spec, y, p, w):
    predicted, actual, weights = _confusion_inputs(spec, y, p, w)
    return _counts(weights, predicted & actual, predicted & ~actual)


def _recall(spec, y, p, w):
    predicted, actual, weights = _confusion_inputs(spec, y, p, w)
    return _counts(weights, predicted & actual, ~predicted & actual)


@functools.lru_cache(maxsize=64)
def _thresholds(spec, dtype, device):
    """spec.thresholds() on the device, made once: a copy per step would wait for the queued steps."""
    return torch.as_tensor(spec.thresholds()).to(device=device, dtype=dtype)


def _auc(spec, y, p, w):
    if spec.from_logits:
        p = torch.sigmoid(p)
    thresholds = _thresholds(spec, p.dtype, p.device)
    scores = p.reshape(-1)
    actual = (y != 0).reshape(-1)
    weights = _element_weights(w, p).reshape(-1)
    above = (scores[None, :] > thresholds[:, None]).to(p.dtype)  # (T, elements)
    pos, neg = weights * actual, weights * ~actual
    tp = above @ pos
    fp = above @ neg
    return torch.cat([tp, fp, torch.sum(neg) - fp, torch.sum(pos) - tp]).to(torch.float64)


IMPLEMENTATIONS = {
    "exact_accuracy": lambda spec, y, p: torch.mean((y == p).to(p.dtype), dim=-1),
    "binary_accuracy": lambda spec, y, p: torch.mean((y == (p > spec.threshold)).to(p.dtype), dim=-1),
    # torch.argmax returns the first maximal index, as the spec's ties rule.
    "categorical_accuracy": lambda spec, y, p: (torch.argmax(y, dim=-1) == torch.argmax(p, dim=-1)).to(p.dtype),
    "sparse_categorical_accuracy": _sparse_accuracy,
    "mean_squared_error": lambda spec, y, p: torch.mean((p - y) ** 2, dim=-1),
    "mean_absolute_error": lambda spec, y, p: torch.mean(torch.abs(p - y), dim=-1),
    "top_k_categorical_accuracy": lambda spec, y, p: _in_top_k(torch.argmax(y, dim=-1), p, spec.k),
    "sparse_top_k_categorical_accuracy": lambda spec, y, p: _in_top_k(sparse_labels(y, p, -1)[..., 0], p, spec.k),
    "root_mean_squared_error": lambda spec, y, p: (p - y) ** 2,
    # The cross-entropy metrics carry the loss's options, so the loss's value function reads them.
    "binary_crossentropy": losses.IMPLEMENTATIONS["binary_crossentropy"],
    "categorical_crossentropy": losses.IMPLEMENTATIONS["categorical_crossentropy"],
    "sparse_categorical_crossentropy": losses.IMPLEMENTATIONS["sparse_categorical_crossentropy"],
    "mean_absolute_percentage_error": losses.IMPLEMENTATIONS["mean_absolute_percentage_error"],
    "precision": _precision,
    "recall": _recall,
    "auc": _auc,
    "custom_metric": custom.metric,
}


def mean_state(values, weights):
    """(sum(w * v), sum(w)), w broadcast over v's trailing axes, the sums in float64.

    Without weights sum(w) is the number of values, a Python int known without the device.
    """
    if weights is None:
        return torch.sum(values, dtype=torch.float64), values.numel()
    w = weights.reshape(weights.shape + (1,) * (values.dim() - 1)).expand(values.shape)
    return torch.sum(w * values, dtype=torch.float64), torch.sum(w, dtype=torch.float64)
