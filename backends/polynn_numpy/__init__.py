"""polynn's NumPy reference backend, registered by polynn.plugins.DEFAULT_PLUGINS."""

from polynn import hookimpl


@hookimpl
def polynn_register_backends(register):
    def load():
        from .backend import NumpyBackend

        return NumpyBackend()

    register("numpy", load, engine="numpy", install="polynn", dtypes=("float32", "float64"), devices=("cpu",),
             distributions=("data_parallel",))
