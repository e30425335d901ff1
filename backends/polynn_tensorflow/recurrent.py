"""SimpleRNN, LSTM and GRU over long sequences in one tf.while_loop: a graph of one step, whatever the length.

The shared form (polynn.backend.SharedLayer) writes the loop out, one copy of the step per time step,
which TensorFlow traces and optimizes op by op: its steps run faster than the loop's, but its
tracing grows with the length (docs/performance.md#tensorflow-recurrent-loop), so it runs up to
WRITTEN_OUT_STEPS time steps, or whenever the layer has unroll=True (Keras's meaning). In the loop
the layer's own `project` and `step` (polynn.layers.recurrent, on polynn.ops) run as in `call`:
`project` for every step at once, `step` once before the loop (from zero states, as `call` starts)
and then as the loop's body, so the numbers are `call`'s.
"""

from __future__ import annotations

import tensorflow as tf

from polynn.backend import SharedLayer

# Up to this length the written-out form's faster steps are worth its tracing, which grows with the
# length (measured in docs/performance.md#tensorflow-recurrent-loop).
WRITTEN_OUT_STEPS = 32


class Recurrent(SharedLayer):
    """The layer's `call`: written out over up to WRITTEN_OUT_STEPS time steps (or with unroll=True),
    else its loop over time steps a tf.while_loop."""

    def forward(self, params, x, mask=None):
        if self.spec.unroll or x.shape[1] <= WRITTEN_OUT_STEPS:
            return super().forward(params, x, mask)
        return self.backend.run_ops(self._loop, x, params, x)

    def _loop(self, params, x):
        spec = self.spec
        activation = spec.activation.call if self.activation is None else self.activation
        weights = spec.step_weights(params)
        projected = spec.project(weights, x)  # every step's x_t @ kernel, before the loop, as `call`
        steps = projected.shape[1]
        inputs = tf.TensorArray(projected.dtype, size=steps).unstack(tf.transpose(projected, [1, 0, 2]))
        order = (lambda t: steps - 1 - t) if spec.go_backwards else (lambda t: t)
        y, state = spec.step(weights, inputs.read(order(0)), None, activation)
        # The outputs so far: every step's (a TensorArray) with return_sequences, else the last one.
        outputs = tf.TensorArray(y.dtype, size=steps).write(0, y) if spec.return_sequences else y

        def body(t, state, outputs):
            y, state = spec.step(weights, inputs.read(order(t)), state, activation)
            return t + 1, state, (outputs.write(t, y) if spec.return_sequences else y)

        _, _, outputs = tf.while_loop(lambda t, *_: t < steps, body, (tf.constant(1), state, outputs))
        return tf.transpose(outputs.stack(), [1, 0, 2]) if spec.return_sequences else outputs


IMPLEMENTATIONS = {"simple_rnn": Recurrent, "lstm": Recurrent, "gru": Recurrent}
