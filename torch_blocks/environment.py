"""What every torch engine declares of a process's environment, named here once without importing
torch, for the engines' declarations (`fmnist.engine.Engine.device_environment`)."""

from fmnist.engine import NO_GPU

#: cuBLAS refuses deterministic mode without a fixed workspace, which it reads when CUDA starts.
CUBLAS_WORKSPACE_CONFIG = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
#: A process of a torch engine that computes on "cpu" sees no GPU; on "cuda" deterministic cuBLAS.
DEVICE_ENVIRONMENT = {"cpu": NO_GPU, "cuda": CUBLAS_WORKSPACE_CONFIG}
