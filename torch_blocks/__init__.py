"""The torch building blocks every torch engine shares: the network (`network`), Keras' Adam
(`optim`), the batch path in the shared order (`batches`), bf16 autocast (`precision`), torch's
process settings (`settings`), the plain training loop (`plain_loop`), safe checkpoint reads
(`checkpoint`), the ONNX export (`export`), the parity steps (`parity`), the bf16 probes
(`bf16_probe`) and the benchmark's plain step loop (`speed`).

Imports torch and the core only, never an engine package: `lightning_model` (a LightningModule
around these blocks) and `pytorch_model` (a plain loop over them) both import it, neither imports
the other, so the two engines compute the same model from one code. Importing the package imports
no framework.
"""
