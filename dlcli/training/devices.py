"""What depends on the device: the fast defaults, mixed precision, tf.distribute strategies.

The defaults come from measurements, recorded in docs/performance.md: on a CPU, XLA
(`jit_compile`) made convnets slower and running 32 steps per `tf.function` call
(`steps_per_execution`) made small models markedly faster.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass

import keras
import tensorflow as tf

from dlcli.choices import Distribution
from dlcli.config import ExperimentConfig

CPU_STEPS_PER_EXECUTION = 32
GPU_STEPS_PER_EXECUTION = 32


@dataclass(frozen=True)
class SpeedSettings:
    device: str  # "cpu" or "gpu"
    jit_compile: bool | str
    steps_per_execution: int
    cache: str  # auto | memory | disk | none
    prefetch: bool
    mixed_precision: str | None  # the Keras dtype policy, when on
    distribute: str
    replicas: int
    task: str | None = None  # multi_worker: this process's TF_CONFIG task, e.g. "worker1"
    chief: bool = True  # multi_worker: whether this process is the cluster's chief

    def as_dict(self) -> dict:
        return asdict(self)


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def speed_settings(config: ExperimentConfig, replicas: int = 1, task: ClusterTask | None = None) -> SpeedSettings:
    """The config's speed settings with every "auto" decided for this machine's device."""
    training = config.training
    gpu = has_gpu()
    if training.jit_compile == "auto":
        jit: bool | str = "auto" if gpu else False  # XLA on a CPU: 2x slower convnets, measured
    else:
        jit = training.jit_compile
    steps = training.steps_per_execution
    if steps == "auto":
        # Keras 3 runs several steps per call only without tf.distribute (it fails under it)
        steps = 1 if training.distribute != Distribution.none else GPU_STEPS_PER_EXECUTION if gpu else CPU_STEPS_PER_EXECUTION
    return SpeedSettings(
        device="gpu" if gpu else "cpu",
        jit_compile=jit,
        steps_per_execution=steps,
        cache=training.cache,
        prefetch=training.prefetch,
        mixed_precision=precision_policy(config),
        distribute=training.distribute,
        replicas=replicas,
        task=task.label if task else None,
        chief=task.is_chief if task else True,
    )


def precision_policy(config: ExperimentConfig) -> str | None:
    """mixed_float16 on a GPU, mixed_bfloat16 on a CPU that has bfloat16 instructions, else an error."""
    if not config.training.mixed_precision:
        return None
    if has_gpu():
        return "mixed_float16"
    if _cpu_has_bfloat16():
        return "mixed_bfloat16"
    raise config.error(
        ("training", "mixed_precision"),
        "this machine has no GPU and its CPU lacks bfloat16 instructions, so mixed precision "
        "would only be slower; remove `mixed_precision: true`",
    )


def _cpu_has_bfloat16() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(flag in cpuinfo.read() for flag in ("avx512_bf16", "amx_bf16"))
    except OSError:
        return False


@contextlib.contextmanager
def dtype_policy(policy: str | None):
    """Keras's global dtype policy set for the models built inside, restored after."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class _KerasMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy with the `reduce` that Keras 3's `fit` needs.

    Keras averages each step's metrics with `reduce("MEAN", value, axis=0)`, which fails on
    the scalar metrics of a multi-worker cluster, and reduces a whole (x, y) batch to build
    the model, which the collective ops refuse as a nested structure
    (keras-team/keras#20585, tensorflow/tensorflow#72388). Here a scalar is averaged over
    the replicas and a structure is reduced one tensor at a time; everything else is
    TensorFlow's own.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def reduce_one(one):
            local = self.experimental_local_results(one)[0] if isinstance(one, tf.distribute.DistributedValues) else one
            return parent.reduce(reduce_op, one, axis=None if local.shape.rank == 0 else axis)

        return tf.nest.map_structure(reduce_one, value)


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a TF_CONFIG cluster."""

    kind: str  # "chief" or "worker"
    index: int
    workers: int

    @property
    def is_chief(self) -> bool:
        return self.kind == "chief" or (self.kind == "worker" and self.index == 0)

    @property
    def label(self) -> str:
        return f"{self.kind}{self.index}"


def cluster_task(config: ExperimentConfig) -> ClusterTask:
    """The task TF_CONFIG gives this process, or a config error that says how to set it."""
    where = ("training", "distribute")
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise config.error(
            where,
            "multi_worker reads its cluster from the TF_CONFIG environment variable, which is not set; "
            "docs/performance.md shows how to start each worker",
        )
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        kind, index = task["type"], int(task["index"])
        workers = sum(len(cluster.get(role, [])) for role in ("chief", "worker"))
        cluster[kind][index]
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise config.error(
            where,
            f"TF_CONFIG is not a cluster with this task in it ({type(error).__name__}: {error}); expected e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}',
        ) from None
    if kind not in ("chief", "worker"):
        raise config.error(where, f"TF_CONFIG's task type is '{kind}'; multi_worker trains on 'chief' and 'worker' tasks")
    return ClusterTask(kind, index, workers)


def gather_from_workers(values: list[int]) -> list[list[int]]:
    """`values` from every replica of the current strategy's cluster, in replica order.

    A collective operation: every worker must call it, in the same place of its program.
    """
    chosen = tf.distribute.get_strategy()
    per_replica = chosen.run(lambda: tf.constant([values], dtype=tf.int64))
    return chosen.gather(per_replica, axis=0).numpy().tolist()


def _check_devices_present(config: ExperimentConfig) -> None:
    """Each of `training.devices` is one of this machine's: tf.distribute takes /gpu:7 on a machine
    without it, and the replicas then run wherever TensorFlow places them."""
    present = [tf.DeviceSpec.from_string(device.name) for device in tf.config.list_logical_devices()]
    for name in config.training.devices or []:
        try:
            wanted = tf.DeviceSpec.from_string(name)
        except ValueError:
            raise config.error(("training", "devices"), f"{name!r} is not a device's name: write them as /gpu:0 "
                               "or /cpu:0") from None
        if not any(device.device_type == (wanted.device_type or "").upper()
                   and wanted.device_index in (None, device.device_index) for device in present):
            names = ", ".join(f"/{device.device_type.lower()}:{device.device_index}" for device in present)
            raise config.error(("training", "devices"), f"{name} is not a device of this machine (it has {names}); "
                               "name one of them, or leave `devices` out to use all it has")


def strategy(config: ExperimentConfig) -> tf.distribute.Strategy:
    """The tf.distribute strategy `training.distribute` asks for (the default one for 'none')."""
    training = config.training
    if training.distribute == Distribution.mirrored:
        _check_devices_present(config)
        try:
            return tf.distribute.MirroredStrategy(devices=training.devices)
        except ValueError as error:
            raise config.error(("training", "devices"), f"{error}".splitlines()[0]) from error
    if training.distribute == Distribution.multi_worker:
        return _KerasMultiWorkerStrategy()  # from TF_CONFIG: check it first with cluster_task()
    return tf.distribute.get_strategy()
