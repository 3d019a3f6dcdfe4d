"""Pretrained weights files: which the project uses, where ``auto`` finds them, one command to fetch them.

Four networks come with weights the user may add (none ships in a wheel, and the workflow never
downloads anything): VGG19 for the perceptual loss, pytorch-fid's InceptionV3 for FID, AlexNet for
LPIPS and RAFT for optical flow. Each file's URL is the one its own library defines (torchvision's
weight enums, pytorch-fid's ``FID_WEIGHTS_URL``), and it lives where that library would put it:
``torch.hub.get_dir()/checkpoints/`` (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``). A config key set to ``auto`` uses the file there when present.

``posetransfer weights download NAME...`` is the only code that touches the network. It goes
through :func:`torch.hub.download_url_to_file`: a progress bar, a temporary name renamed at the
end, and the SHA-256 prefix of the file name checked (torch.hub's own convention, ``HASH_REGEX``).
"""

from __future__ import annotations

import http.client
import os
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from posetransfer.errors import ConfigError, PosetransferError

MIRROR_ENV = "POSETRANSFER_WEIGHTS_MIRROR"  # a base URL serving the same file names (site mirror, tests)


def _vgg19_url() -> str:
    from torchvision.models import VGG19_Weights

    return VGG19_Weights.IMAGENET1K_V1.url


def _inception_url() -> str:
    from pytorch_fid.inception import FID_WEIGHTS_URL

    return FID_WEIGHTS_URL


def _alexnet_url() -> str:
    from torchvision.models import AlexNet_Weights

    return AlexNet_Weights.IMAGENET1K_V1.url


def _raft_url() -> str:
    from torchvision.models.optical_flow import Raft_Large_Weights

    return Raft_Large_Weights.DEFAULT.url  # the weights raft_large(weights="DEFAULT") loads


@dataclass(frozen=True)
class WeightsFile:
    """One pretrained file: its short name, the network, the config key that uses it, its URL."""

    name: str
    network: str
    config_key: str
    used_for: str
    _url: Callable[[], str]

    @property
    def url(self) -> str:
        return self._url()

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str:
        """The SHA-256 prefix in the file name, as torch.hub's ``check_hash`` reads it."""
        import torch.hub

        found = torch.hub.HASH_REGEX.search(self.filename)
        if found is None:
            raise AssertionError(f"{self.filename} carries no hash")  # a library changed its naming
        return found.group(1)

    @property
    def cached(self) -> Path:
        """Where the file lives, and where ``auto`` looks for it."""
        return checkpoints_dir() / self.filename


WEIGHTS: dict[str, WeightsFile] = {
    spec.name: spec
    for spec in (
        WeightsFile("vgg19", "VGG19", "perceptual.weights", "perceptual loss (train)", _vgg19_url),
        WeightsFile("inception", "InceptionV3", "evaluation.inception_weights", "FID", _inception_url),
        WeightsFile("alexnet", "AlexNet", "evaluation.lpips_weights", "LPIPS", _alexnet_url),
        WeightsFile("raft", "RAFT", "flow.raft_weights", "optical flow with flow.backend: raft", _raft_url),
    )
}


def checkpoints_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``: where torchvision and pytorch-fid keep downloaded weights."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def for_key(config_key: str) -> WeightsFile:
    """The weights file a config key (e.g. ``evaluation.lpips_weights``) names."""
    return next(spec for spec in WEIGHTS.values() if spec.config_key == config_key)


def _is(setting: object, word: str) -> bool:
    return isinstance(setting, str) and setting.strip().lower() == word


def resolve(setting: str | Path | None, name: str) -> tuple[Path | None, str | None]:
    """A weights setting as ``(path, None)``, or ``(None, why)`` where the feature goes without.

    ``None``/``none``: ``(None, None)``, off by the user's choice. ``auto``: the file in
    :func:`checkpoints_dir` when present, else ``(None, why)`` saying where it looked and which
    command fetches it. Any other value is a path that must exist: otherwise a one-line
    ``ConfigError`` naming the file and the key. Nothing is downloaded.
    """
    spec = WEIGHTS[name]
    if setting is None or _is(setting, "none"):
        return None, None
    if _is(setting, "auto"):
        if spec.cached.is_file():
            return spec.cached, None
        return None, (
            f"{spec.config_key} is auto and {spec.cached} is absent "
            f"(`posetransfer weights download {name}` fetches it)"
        )
    path = Path(setting).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{spec.network} weights file not found ({spec.config_key}); set a file, auto or none,"
            f" or run `posetransfer weights download {name}`",
            path,
        )
    return path, None


def check_required(config: dict) -> None:
    """Fail before any job where a chosen backend cannot run without its weights (``flow.backend: raft``)."""
    if config["flow"]["backend"] != "raft":
        return
    path, why = resolve(config["flow"]["raft_weights"], "raft")
    if path is None:
        raise ConfigError(
            f"flow.backend is raft but {why or 'flow.raft_weights is none'}; "
            "or use flow.backend: dis (no weights needed)"
        )


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------


def listing() -> list[str]:
    """One line per weights file: present or missing, its path, the config key that uses it."""
    lines = [f"weights folder: {checkpoints_dir()} (torch.hub.get_dir()/checkpoints; TORCH_HOME moves it)"]
    rows = [
        (spec.name, "present" if spec.cached.is_file() else "missing", spec.config_key, spec.used_for)
        for spec in WEIGHTS.values()
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row, spec in zip(rows, WEIGHTS.values(), strict=True):
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        lines[-1] += spec.filename
    return lines


def url_for(spec: WeightsFile, mirror: str | None = None) -> str:
    """The library's URL, or the same file name under ``mirror`` (else ``$POSETRANSFER_WEIGHTS_MIRROR``)."""
    mirror = mirror or os.environ.get(MIRROR_ENV)
    return spec.url if not mirror else f"{mirror.rstrip('/')}/{spec.filename}"


def download(names: Sequence[str], mirror: str | None = None, progress: bool = True) -> list[Path]:
    """Fetch the named files into :func:`checkpoints_dir`; files already there are kept.

    A failed download leaves nothing behind (torch.hub writes to ``NAME.<uuid>.partial`` and
    renames only after the hash matched) and raises one line naming the file and the reason.
    """
    import torch.hub

    unknown = [name for name in names if name not in WEIGHTS]
    if unknown:
        raise ConfigError(f"unknown weights {unknown[0]!r}; choose from {', '.join(WEIGHTS)}")
    fetched = []
    for name in dict.fromkeys(names):  # each once, in the order given
        spec = WEIGHTS[name]
        target = spec.cached
        if target.is_file():
            fetched.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        url = url_for(spec, mirror)
        try:
            torch.hub.download_url_to_file(url, str(target), hash_prefix=spec.hash_prefix, progress=progress)
        except (OSError, urllib.error.URLError, http.client.HTTPException, RuntimeError, ValueError) as exc:
            raise PosetransferError(f"download of {name} from {url} failed: {_reason(exc)}", target) from exc
        fetched.append(target)
    return fetched


def _reason(exc: BaseException) -> str:
    """A short reason for a failed download (a dropped connection shows as a hash mismatch)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    text = str(exc).strip() or type(exc).__name__
    if text.startswith("invalid hash value"):
        return f"{text}: the file is damaged or the connection dropped; nothing was kept"
    return text


def add_parser(commands) -> None:  # commands: the CLI's argparse sub-parsers
    """``posetransfer weights list|download NAME...``."""
    parser = commands.add_parser(
        "weights",
        help="list or download the pretrained weights files (VGG19, InceptionV3, AlexNet, RAFT)",
        description="Weights live in torch.hub.get_dir()/checkpoints ($TORCH_HOME/hub/checkpoints), "
        "where config keys set to auto find them. The workflow itself never downloads anything.",
    )
    actions = parser.add_subparsers(dest="weights_action", required=True, metavar="ACTION")
    actions.add_parser("list", help="which files are present, and which config keys use them")
    fetch = actions.add_parser("download", help="fetch files from the URLs their libraries define")
    fetch.add_argument("names", nargs="+", choices=list(WEIGHTS), metavar="NAME", help=", ".join(WEIGHTS))
    fetch.add_argument(
        "--mirror",
        default=None,
        help=f"base URL serving the same file names, instead of each library's URL (or ${MIRROR_ENV})",
    )


def main(args) -> int:  # args: the parsed argparse namespace
    if args.weights_action == "list":
        print("\n".join(listing()))
        return 0
    for path in download(args.names, args.mirror):
        print(f"{path}: ready")
    return 0
