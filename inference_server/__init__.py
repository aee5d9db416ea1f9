"""The torch-free runtime: backends (ONNX Runtime CPU/CUDA/TensorRT-EP, native TensorRT), the
batch labeler and the HTTP server. It never imports torch or ``training``."""
