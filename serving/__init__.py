"""`fmnist serve`: a web page and a JSON API that run a Keras and a Lightning model side by side.

The server runs exported ONNX files in onnxruntime and never imports TensorFlow, Keras, torch or
Lightning (a test holds it to that): a run directory without an export is exported first, in a
child process (`fmnist export`). Only the core (`fmnist.*`), onnxruntime, FastAPI/uvicorn,
Pillow and numpy are imported here.
"""
