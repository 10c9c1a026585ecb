"""Names used across paperlib, each defined once here (this module imports nothing, so the data code can use it
without importing models or training)."""

IGNORE = -100  # label of a position that gets no loss: prompt, padding (PyTorch's cross_entropy ignore_index)
TEMPLATES = ("tiny", "llama2", "llama3", "olmo2")  # prompt formats (paperlib.engine.encoding)
