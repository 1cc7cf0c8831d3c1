"""Deployment: ``export`` (ONNX graphs, TensorRT engines), ``benchmark`` (measured speed) and ``machine`` (what it
was measured on). Reads run folders through ``storage``; never imports the study."""
