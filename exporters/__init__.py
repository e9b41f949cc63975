"""Exporters: BN folding and quantization, NIR, ONNX and the Loihi target."""
