"""Export stage: torch -> ONNX graphs (teacher, ELN, fused labeler), metadata, parity checks
through the runtime's backends, and TensorRT engine building. Filled by the export issue."""
