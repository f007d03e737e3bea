"""The speed benchmark's torch variants (`benchmarks.variants`), which every torch engine runs:
named here once, without importing torch, for the engines' declarations."""

TORCH_VARIANTS = ("eager", "channels_last", "bf16", "channels_last+bf16", "compile", "channels_last+bf16+compile")
