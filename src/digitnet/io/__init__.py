"""Model files: the safetensors format digitnet saves and loads networks in."""
