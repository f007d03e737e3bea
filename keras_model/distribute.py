"""One Keras training over several devices: tf.distribute.MirroredStrategy.

One process holds a replica of the model per device; `model.fit` splits each global batch
across them and sums gradients, counts and loss totals over all replicas, so metrics count
every image once. Without enough GPUs the CPU is cut into logical devices, which is how the
multi-device path is tested on a laptop or in CI. Keras on JAX or torch would use
keras.distribution instead; here multi-device Keras needs the TensorFlow backend.
"""

from __future__ import annotations

import contextlib

import keras

from fmnist.config import Config
from fmnist.errors import ConfigError, FmnistError


def distribution_scope(config: Config) -> contextlib.AbstractContextManager:
    """The scope to build and compile the model in: a MirroredStrategy's, or nothing on one device.
    Call it before anything else touches TensorFlow: logical devices are fixed at start-up. The
    strategy was checked by the core (`fmnist.distributed.check_strategy`) before training began."""
    t = config.train
    if t.devices == 1:
        return contextlib.nullcontext()
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            f"train.devices: {t.devices} devices with Keras need the TensorFlow backend"
            f" (tf.distribute.MirroredStrategy); KERAS_BACKEND is {keras.backend.backend()}"
        )
    import tensorflow as tf

    devices = replica_devices(t.devices)
    print(f"Keras: tf.distribute.MirroredStrategy over {', '.join(devices)}", flush=True)
    return tf.distribute.MirroredStrategy(devices).scope()


def replica_devices(count: int) -> list[str]:
    """`count` GPUs when there are that many, else `count` logical CPU devices."""
    import tensorflow as tf

    if len(tf.config.list_physical_devices("GPU")) >= count:
        return [f"/gpu:{i}" for i in range(count)]
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # TensorFlow has started: its devices are what they are
        pass
    found = len(tf.config.list_logical_devices("CPU"))
    if found < count:
        raise FmnistError(
            f"cannot make {count} logical CPU devices: TensorFlow started with {found} already (train in a new process)"
        )
    return [f"/cpu:{i}" for i in range(count)]
