"""The TensorFlow engine: a MultiWorkerMirroredStrategy joined from the job's Cluster, one replica per process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import tensorflow as tf

from polynn.distribution import Cluster, Communicator
from polynn.errors import DistributionError


def _local_gpu(local_rank: int) -> bool:
    """Leave this process the GPU of its local rank only (its replica's device), when there is
    one, or the only GPU it sees (a launcher that gives each process its own, through
    CUDA_VISIBLE_DEVICES); TensorFlow allows that only before it runs anything, as for the strategy."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) == 1:
        return True
    if local_rank >= len(gpus):
        return False
    tf.config.set_visible_devices([gpus[local_rank]], "GPU")
    return True


def _strategy(cluster: Cluster) -> tf.distribute.MultiWorkerMirroredStrategy:
    # The Cluster may come from TF_CONFIG or from initialize()'s job_addresses; a resolver built from
    # it serves both (TFConfigClusterResolver reads the environment only), with every process a
    # "worker" in rank order, so rank 0 (TF_CONFIG's chief, when it names one) leads.
    gpu = _local_gpu(cluster.local_rank)
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": list(cluster.workers)}), task_type="worker", task_id=cluster.rank,
        num_accelerators={"GPU": 1} if gpu else {}, rpc_layer="grpc")
    # AUTO on a GPU: NCCL for the GPU tensors of a model compiled there, a ring for host tensors.
    implementation = (tf.distribute.experimental.CommunicationImplementation.AUTO if gpu
                      else tf.distribute.experimental.CommunicationImplementation.RING)
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation,
                                                              timeout_seconds=cluster.timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)


@contextmanager
def brief_errors() -> Iterator[None]:
    """TensorFlow's op errors re-raised without the Python stack of the failed op's definition in
    their message (the original, chained, keeps it): what polynn's DistributionError quotes is
    then the cause, say "Collective ops is aborted by: Socket closed"."""
    try:
        yield
    except tf.errors.OpError as error:
        kept = [line for line in error.message.splitlines()
                if not line.startswith(("Detected at node", "  File "))]
        raise type(error)(error.node_def, error.op, "\n".join(line for line in kept if line.strip())) from error


class TensorFlowCommunicator(Communicator):
    """Collectives through a MultiWorkerMirroredStrategy of one replica per process: the host
    arrays of polynn's core cross as tensors summed by a replica all-reduce, and the TensorFlow
    runtime's training steps all-reduce their gradients inside its compiled blocks (`strategy`)."""

    engine = "tensorflow"

    def __init__(self, cluster: Cluster, strategy: tf.distribute.Strategy) -> None:
        super().__init__(cluster.rank, cluster.world_size, cluster.local_rank)
        self.strategy = strategy
        self._reducers: dict[tf.DType, tf.types.experimental.GenericFunction] = {}

    @classmethod
    def start(cls, cluster: Cluster) -> TensorFlowCommunicator:
        if len(cluster.workers) != cluster.world_size:
            raise DistributionError(
                f"the tensorflow engine needs every process's address (TF_CONFIG's workers, or job_addresses "
                f"with one 'host:port' per process); {cluster.source} gives {len(cluster.workers)} for "
                f"{cluster.world_size} processes")
        try:
            strategy = _strategy(cluster)
        except RuntimeError as error:
            if "startup" not in str(error) and "initialized" not in str(error):
                raise _failed_to_join(cluster, error) from error
            raise DistributionError(
                f"rank {cluster.rank} of {cluster.world_size} cannot join the job on the tensorflow engine: "
                f"TensorFlow has already run operations in this process, and its collectives (and the GPU "
                f"it uses) can only be set up before the first one ({error}). Call "
                f"polynn.distribution.initialize() first in the script, before any model, data or "
                f"TensorFlow call") from error
        except Exception as error:
            raise _failed_to_join(cluster, error) from error
        return cls(cluster, strategy)

    def _reducer(self, dtype: tf.DType):
        if dtype not in self._reducers:
            strategy = self.strategy

            @tf.function(input_signature=[tf.TensorSpec([None], dtype)], autograph=False)
            def reduce(values):
                def replica_sum(v):
                    # The identity puts the values on the replica's device: the all-reduce's destination.
                    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(v))

                return strategy.experimental_local_results(strategy.run(replica_sum, args=(values,)))[0]

            self._reducers[dtype] = reduce
        return self._reducers[dtype]

    def all_reduce_sum(self, array: np.ndarray) -> None:
        if array.size == 0:
            return
        flat = array.reshape(-1)
        with brief_errors():
            summed = self._reducer(tf.as_dtype(array.dtype))(tf.constant(flat))
            flat[...] = summed.numpy()
        if not np.shares_memory(flat, array):
            array[...] = flat.reshape(array.shape)


def _failed_to_join(cluster: Cluster, error: BaseException) -> DistributionError:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return DistributionError(
        f"rank {cluster.rank} of {cluster.world_size} could not join the job at {', '.join(cluster.workers)} "
        f"(from {cluster.source}) on the tensorflow engine: {text:.400}")
