"""polynn's TensorFlow backend, registered by polynn.plugins.DEFAULT_PLUGINS (TensorFlow loads lazily)."""

from polynn import hookimpl


@hookimpl
def polynn_register_backends(register):
    def load():
        from .backend import TensorFlowBackend

        return TensorFlowBackend()

    register("tensorflow", load, engine="tensorflow", install="polynn[tensorflow]",
             dtypes=("float32", "float64"), devices=("cpu", "gpu"), distributions=("data_parallel",))
