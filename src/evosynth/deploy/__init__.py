"""Deployment: ``export`` (ONNX graphs, TensorRT engines) and ``benchmark`` (measured speed). Reads run folders
through ``storage``; never imports the study."""
