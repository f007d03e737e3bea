"""fmnist-parity: one CNN on Fashion-MNIST in Keras and PyTorch Lightning.

This package is the framework-free core: config schema, data, run directories, metrics, plots
and training's shared rules. It never imports TensorFlow, Keras or torch; the engines live in `keras_model` and
`lightning_model`, the command in `fmnist_cli`.
"""

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE = (28, 28)

__version__ = "0.2.0"
