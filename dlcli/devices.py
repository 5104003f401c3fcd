"""What depends on the device: the fast defaults, mixed precision, tf.distribute strategies.

The defaults come from measurements, recorded in docs/performance.md: on a CPU, XLA
(`jit_compile`) made convnets slower and running 32 steps per `tf.function` call
(`steps_per_execution`) made small models markedly faster.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import keras
import tensorflow as tf

from dlcli.config import ExperimentConfig

CPU_STEPS_PER_EXECUTION = 32
GPU_STEPS_PER_EXECUTION = 32


@dataclass(frozen=True)
class SpeedSettings:
    device: str  # "cpu" or "gpu"
    jit_compile: bool | str
    steps_per_execution: int
    cache: bool
    prefetch: bool
    mixed_precision: str | None  # the Keras dtype policy, when on
    distribute: str
    replicas: int

    def as_dict(self) -> dict:
        return asdict(self)


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def speed_settings(config: ExperimentConfig, replicas: int = 1) -> SpeedSettings:
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
        steps = 1 if training.distribute != "none" else GPU_STEPS_PER_EXECUTION if gpu else CPU_STEPS_PER_EXECUTION
    return SpeedSettings(
        device="gpu" if gpu else "cpu",
        jit_compile=jit,
        steps_per_execution=steps,
        cache=training.cache,
        prefetch=training.prefetch,
        mixed_precision=precision_policy(config),
        distribute=training.distribute,
        replicas=replicas,
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


def strategy(config: ExperimentConfig) -> tf.distribute.Strategy:
    """The tf.distribute strategy `training.distribute` asks for (the default one for 'none')."""
    training = config.training
    if training.distribute == "mirrored":
        try:
            return tf.distribute.MirroredStrategy(devices=training.devices)
        except ValueError as error:
            raise config.error(("training", "devices"), f"{error}".splitlines()[0]) from error
    if training.distribute == "multi_worker":
        # The cluster forms, but Keras 3's fit cannot take MultiWorkerMirroredStrategy's
        # distributed batches (keras-team/keras#20585, tensorflow/tensorflow#72388): say so
        # at once instead of failing after the workers have connected.
        raise config.error(
            ("training", "distribute"),
            f"Keras {keras.__version__} cannot train under tf.distribute.MultiWorkerMirroredStrategy "
            "(keras-team/keras#20585); use `mirrored` for the GPUs of one machine",
        )
    return tf.distribute.get_strategy()
