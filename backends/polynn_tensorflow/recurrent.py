"""SimpleRNN, LSTM and GRU with their time steps in one tf.while_loop: a graph of one step, whatever the length.

The shared form (polynn.backend.SharedLayer) writes the loop out, one copy of the step per time step,
which TensorFlow traces and optimizes op by op, for a long time and to slower steps
(docs/performance.md#tensorflow-recurrent-loop). Here the layer's own `step` (polynn.layers.recurrent,
on polynn.ops) runs once before the loop (from zero states, as `call` starts) and then as the
loop's body, so the numbers are `call`'s.
"""

from __future__ import annotations

import tensorflow as tf

from polynn.backend import SharedLayer


class Recurrent(SharedLayer):
    """The layer's `call`, its loop over time steps a tf.while_loop."""

    def forward(self, params, x, mask=None):
        return self.backend.run_ops(self._loop, x, params, x)

    def _loop(self, params, x):
        spec = self.spec
        activation = spec.activation.call if self.activation is None else self.activation
        weights = spec.step_weights(params)
        steps = x.shape[1]
        inputs = tf.TensorArray(x.dtype, size=steps).unstack(tf.transpose(x, [1, 0, 2]))
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
