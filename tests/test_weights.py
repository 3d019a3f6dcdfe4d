"""`posetransfer weights`: URLs from the libraries, downloads against a local HTTP server, `auto`."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from posetransfer import cli, flow, metrics, weights
from posetransfer.config import validate_config
from posetransfer.errors import ConfigError
from posetransfer.model.losses import VGG19_CACHE_FILE, resolve_vgg_weights

GOOD = b"weights bytes " * 1000
TINY = f"tiny-{hashlib.sha256(GOOD).hexdigest()[:8]}.pth"  # torch.hub's naming: the SHA-256 prefix


class _Handler(http.server.BaseHTTPRequestHandler):
    """/TINY: the good file; /drop/NAME: announces 10x the bytes, then hangs up; any other: junk."""

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        body = GOOD if name == TINY else b"not the weights you are looking for"
        self.send_response(200)
        announced = len(body) * (10 if self.path.startswith("/drop/") else 1)
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        self.wfile.write(body)  # a /drop/ response stops here and the connection closes early
        self.close_connection = True

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def tiny(monkeypatch) -> weights.WeightsFile:
    """A weights entry whose file the test server holds (real ones are too big to serve here)."""
    spec = weights.WeightsFile(
        "tiny", "Tiny", "perceptual.weights", "tests", lambda: f"https://example.invalid/{TINY}"
    )
    monkeypatch.setitem(weights.WEIGHTS, "tiny", spec)
    return spec


def test_urls_and_file_names_come_from_the_libraries():
    from pytorch_fid.inception import FID_WEIGHTS_URL
    from torchvision.models import AlexNet_Weights, VGG19_Weights
    from torchvision.models.optical_flow import Raft_Large_Weights

    assert weights.WEIGHTS["vgg19"].url == VGG19_Weights.IMAGENET1K_V1.url
    assert weights.WEIGHTS["vgg19"].filename == VGG19_CACHE_FILE  # what perceptual.weights: auto reads
    assert weights.WEIGHTS["inception"].url == FID_WEIGHTS_URL
    assert weights.WEIGHTS["alexnet"].url == AlexNet_Weights.IMAGENET1K_V1.url
    assert weights.WEIGHTS["raft"].url == Raft_Large_Weights.DEFAULT.url
    assert weights.WEIGHTS["inception"].hash_prefix == "6726825d"
    assert weights.WEIGHTS["alexnet"].hash_prefix == "7be5be79"


def test_download_lands_where_auto_finds_it(server, torch_home, tiny, capsys):
    assert weights.resolve("auto", "tiny")[0] is None
    assert cli.main(["weights", "download", "tiny", "--mirror", server]) == 0
    assert (torch_home / TINY).read_bytes() == GOOD
    assert weights.resolve("auto", "tiny") == (torch_home / TINY, None)
    assert sorted(p.name for p in torch_home.iterdir()) == [TINY]  # no temporary file left
    capsys.readouterr()
    assert cli.main(["weights", "list"]) == 0
    listed = capsys.readouterr().out
    assert any(line.split()[:2] == ["tiny", "present"] for line in listed.splitlines())
    assert any(line.split()[:2] == ["vgg19", "missing"] for line in listed.splitlines())


def test_mirror_from_the_environment(server, torch_home, tiny, monkeypatch):
    monkeypatch.setenv(weights.MIRROR_ENV, server + "/")
    assert weights.download(["tiny"], progress=False) == [torch_home / TINY]


@pytest.mark.parametrize("path", ["", "/drop"], ids=["hash mismatch", "dropped connection"])
def test_failed_download_leaves_no_file_and_says_one_line(server, torch_home, path, capsys):
    assert cli.main(["weights", "download", "vgg19", "--mirror", server + path]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    error = [line for line in lines if line.startswith("posetransfer:")]
    assert len(error) == 1 and "download of vgg19" in error[0] and "invalid hash value" in error[0], lines
    assert str(torch_home / VGG19_CACHE_FILE) in error[0]
    assert not torch_home.exists() or list(torch_home.iterdir()) == []


def test_unreachable_server_is_one_line(torch_home, capsys):
    with socket_closed_port() as port:
        assert cli.main(["weights", "download", "alexnet", "--mirror", f"http://127.0.0.1:{port}"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("posetransfer: error:") and "download of alexnet" in error
    assert list(torch_home.iterdir()) == []


class socket_closed_port:
    """A local port nobody listens on."""

    def __enter__(self) -> int:
        import socket

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        return port

    def __exit__(self, *exc) -> None:
        return None


def test_auto_is_the_default_and_resolves_each_key(torch_home):
    config = validate_config({})
    assert config["evaluation"]["inception_weights"] == "auto"
    assert config["evaluation"]["lpips_weights"] == "auto"
    assert config["flow"]["raft_weights"] == "auto"
    path, reason = metrics.resolve_inception_weights("auto")
    assert (
        path is None and reason.startswith(metrics.FID_UNAVAILABLE) and "weights download inception" in reason
    )
    assert resolve_vgg_weights("auto") is None
    torch_home.mkdir(parents=True)
    for name in weights.WEIGHTS:
        weights.WEIGHTS[name].cached.touch()  # existence is all that `auto` checks
    assert metrics.resolve_inception_weights("auto") == (
        torch_home / weights.WEIGHTS["inception"].filename,
        None,
    )
    assert resolve_vgg_weights("auto") == torch_home / VGG19_CACHE_FILE
    lpips = metrics.resolve_weights_file(
        "auto", metrics.LPIPS_WEIGHTS_KEY, metrics.LPIPS_UNAVAILABLE, "AlexNet"
    )
    assert lpips == (torch_home / weights.WEIGHTS["alexnet"].filename, None)


def test_raft_backend_without_weights_fails_up_front(torch_home):
    config = validate_config({"flow": {"backend": "raft"}})
    with pytest.raises(ConfigError) as raised:
        weights.check_required(config)
    message = str(raised.value)
    assert "flow.backend is raft" in message and "weights download raft" in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"flow\.raft_weights is none"):
        weights.check_required(validate_config({"flow": {"backend": "raft", "raft_weights": None}}))
    weights.check_required(validate_config({}))  # dis needs no weights
    with pytest.raises(ConfigError, match="weights download raft"):
        flow.load_raft("auto")


def test_raft_auto_loads_the_cached_file(torch_home):
    from torchvision.models.optical_flow import raft_large

    torch_home.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(raft_large(weights=None).state_dict(), weights.WEIGHTS["raft"].cached)
    weights.check_required(validate_config({"flow": {"backend": "raft"}}))
    assert not flow.load_raft("auto", "cpu").training
