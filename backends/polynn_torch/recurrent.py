"""SimpleRNN, LSTM and GRU as torch's own recurrent kernels (torch.lstm, torch.gru, torch.rnn_tanh/_relu).

torch's kernels compute Keras's cells where the activations are theirs: LSTM with tanh and sigmoid
(the gates in Keras's order i, f, g, o, which is torch's), GRU with reset_after=True (torch's form;
its gates are r, z, n where Keras's are z, r, h, so the weights' blocks are reordered), SimpleRNN
with tanh or relu. The kernel is x's weights transposed, the bias the input bias (torch's second
bias is the recurrent one: zeros, or GRU's second row). A step from zero states adds exact zeros
where `call` leaves their products out. Every other configuration runs the shared `call`.
Measured in docs/performance.md#torch-recurrent-kernels.
"""

from __future__ import annotations

import torch

from polynn import activations, layers
from polynn.backend import SharedLayer


def _plain(spec, *classes):
    """Whether the activation is exactly one of polynn's `classes` at its defaults (ReLU's plain form)."""
    return type(spec) in classes and getattr(spec, "plain", True)


class Recurrent(SharedLayer):
    """The layer's `call` through torch's kernel where it computes the same cell, else the shared form."""

    def __init__(self, backend, spec):
        super().__init__(backend, spec)
        self.kernel = self._kernel(spec)

    @staticmethod
    def _kernel(spec):
        name = spec.name
        if type(spec) not in (layers.SimpleRNN, layers.LSTM, layers.GRU):
            return None  # a plugin's subclass may change `step`
        if name == "simple_rnn":
            if _plain(spec.activation, activations.Tanh):
                return "rnn_tanh"
            return "rnn_relu" if _plain(spec.activation, activations.ReLU) else None
        gated = _plain(spec.activation, activations.Tanh) and _plain(spec.recurrent_activation, activations.Sigmoid)
        if name == "lstm" and gated:
            return "lstm"
        if name == "gru" and gated and spec.reset_after:
            return "gru"
        return None

    def forward(self, params, x, mask=None):
        if self.kernel is None:
            return super().forward(params, x, mask)
        spec = self.spec
        if spec.go_backwards:
            x = torch.flip(x, dims=(1,))
        weights = self._weights(params)
        h0 = x.new_zeros((1, x.shape[0], spec.units))
        hx = (h0, h0) if self.kernel == "lstm" else h0
        # (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
        run = getattr(torch, self.kernel)
        out = run(x, hx, weights, spec.use_bias, 1, 0.0, torch.is_grad_enabled(), False, True)[0]
        return out if spec.return_sequences else out[:, -1]

    def _weights(self, params):
        """[w_ih, w_hh(, b_ih, b_hh)] in torch's layout (rows the gates' units, in torch's order)."""
        spec = self.spec
        kernel, recurrent = params[0], params[1]
        bias = params[2] if spec.use_bias else None
        if self.kernel == "gru":
            u = spec.units
            # Keras's z, r, h blocks as torch's r, z, n.
            order = [slice(u, 2 * u), slice(0, u), slice(2 * u, 3 * u)]
            kernel = torch.cat([kernel[:, s] for s in order], dim=1)
            recurrent = torch.cat([recurrent[:, s] for s in order], dim=1)
            if bias is not None:
                bias = torch.cat([bias[:, s] for s in order], dim=1)
            biases = [] if bias is None else [bias[0], bias[1]]
        else:
            biases = [] if bias is None else [bias, torch.zeros_like(bias)]
        return [kernel.t(), recurrent.t(), *biases]


IMPLEMENTATIONS = {"simple_rnn": Recurrent, "lstm": Recurrent, "gru": Recurrent}
