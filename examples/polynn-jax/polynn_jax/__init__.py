"""A JAX backend for polynn, registered through the "polynn" entry-point group (JAX loads lazily)."""

from polynn import hookimpl

__version__ = "0.1.0"


@hookimpl
def polynn_register_backends(register):
    def load():
        from .backend import JaxBackend

        return JaxBackend()

    register("jax", load, engine="jax", install="polynn-jax", dtypes=("float32", "float64"), devices=("cpu",))
