"""Integer quantization of a flattened NIR graph and the fake-quant torch model that runs it."""
