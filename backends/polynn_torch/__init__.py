"""polynn's PyTorch backend, registered by polynn.plugins.DEFAULT_PLUGINS (torch is imported only on use)."""

from polynn import hookimpl


@hookimpl
def polynn_register_backends(register):
    def load():
        from .backend import TorchBackend

        return TorchBackend()

    register("torch", load, engine="torch", install="polynn[torch]", dtypes=("float32", "float64"),
             devices=("cpu", "cuda"), distributions=("data_parallel",))
