"""The PyTorch Lightning implementation: a `LightningModule` that owns loss, metrics, optimizer,
schedule and logging around the torch engines' shared network (`torch_blocks`), trained by
Lightning's `Trainer`.

Imports torch, Lightning and the shared torch blocks only, never Keras, TensorFlow or another
engine's package; importing the package imports no framework (the engine's declaration,
`lightning_model.engine`, is read without one).
"""
