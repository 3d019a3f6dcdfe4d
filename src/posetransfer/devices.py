"""Where torch runs: the config's ``device`` (auto, cpu or cuda) resolved on this machine."""

from __future__ import annotations

from posetransfer.errors import ConfigError


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without one is a ConfigError."""
    if device == "cpu":
        return device
    import torch  # not at import time: the workflow's config checks load this module

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda (config key device): this machine has no CUDA GPU; use auto or cpu")
    return "cuda" if torch.cuda.is_available() else "cpu"
