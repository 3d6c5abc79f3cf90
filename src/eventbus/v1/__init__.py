"""Generated wire schema (protoc output from proto/eventbus/v1; regenerate with proto/generate.py)."""
