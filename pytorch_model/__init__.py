"""The plain PyTorch implementation: the shared torch network (`torch_blocks`) trained by a plain
loop, no Lightning: the `pytorch` engine.

Imports torch and the core (and the torch engines' shared blocks) only; importing the package
imports no framework (the engine's declaration, `pytorch_model.engine`, is read without one).
"""
