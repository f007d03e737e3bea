"""`fmnist export`: a run's model to ONNX with its framework's own exporter, proven to be the
same model as the trained one by parity's float32 rule on all 10,000 test images (`check`)."""
