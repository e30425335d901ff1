"""TensorFlow implementations (forward only; the tape differentiates). TensorFlow is imported on use."""

from __future__ import annotations


class LayerNormalization:
    def __init__(self, backend, spec):
        import tensorflow as tf

        self.tf = tf
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        tf, spec = self.tf, self.spec
        m = tf.reduce_mean(x, axis=-1, keepdims=True)
        centered = x - m
        variance = tf.reduce_mean(centered * centered, axis=-1, keepdims=True)
        r = 1 / tf.sqrt(variance + tf.constant(spec.epsilon, dtype=x.dtype))
        y = centered * r
        k = 0
        if spec.scale:
            y = params[k] * y
            k += 1
        if spec.center:
            y = y + params[k]
        return y


def SQUAREPLUS(spec, x):  # noqa: N802 (the name every *_impl module exports)
    import tensorflow as tf

    return (x + tf.sqrt(x * x + tf.constant(spec.b, dtype=x.dtype))) / 2
