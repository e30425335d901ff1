"""TensorFlow implementations (forward only; the tape differentiates). TensorFlow is imported on use."""

from __future__ import annotations


class RMSNormalization:
    def __init__(self, backend, spec):
        import tensorflow as tf

        self.tf = tf
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        tf, spec = self.tf, self.spec
        rank = x.shape.rank
        mean_square = tf.reduce_mean(x * x, axis=spec.normalized_axis(rank), keepdims=True)
        r = 1 / tf.sqrt(mean_square + tf.constant(spec.epsilon, dtype=x.dtype))
        return x * r * tf.reshape(params[0], spec.scale_shape(rank))


def SQUAREPLUS(spec, x):  # noqa: N802 (the name every *_impl module exports)
    import tensorflow as tf

    return (x + tf.sqrt(x * x + tf.constant(spec.b, dtype=x.dtype))) / 2
