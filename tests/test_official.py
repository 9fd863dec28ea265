"""`hdrvid weights pull` of the authors' checkpoints, served by a local HTTP server through
$HDRVID_OFFICIAL_URL: a checkpoint with the official layout (tests/checkpoints/*.tsv) whose git
blob id, computed here, is patched into the registry; good, corrupt, truncated, failed,
interrupted and offline downloads; `weights import` of the authors' file; `--weights official`."""

import dataclasses
import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import assert_one_line_error, official_layout, randomized

from hdrvid import official
from hdrvid.cli import main
from hdrvid.errors import WeightsError
from hdrvid.exr import read_exr
from hdrvid.predictor import HdrPredictor
from hdrvid.registry import MODELS
from hdrvid.weights import official_cache, read_safetensors

FORMATS = {"lan-hdr": "g", "hdrflow": "state_dict"}  # where each official file keeps its dict


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def checkpoint_bytes(model: str, period: int, seed: int = 0) -> tuple[bytes, dict]:
    """The bytes of a checkpoint laid out as the authors' (every key and shape of
    tests/checkpoints/<model>-<period>e.tsv, under their key, with the extra entries their files
    carry) and its state dict. Drawn through our network, so the entries the official code
    stores twice (HDRFlow's shared BatchNorms) hold the same tensor, as in their files."""
    prefix = "module." if model == "hdrflow" else ""
    net = randomized(MODELS[model].build(period), seed=seed)
    state = {prefix + k: v.detach().clone() for k, v in net.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in state.items()} == official_layout(f"{model}-{period}e")
    buffer = io.BytesIO()
    torch.save({FORMATS[model]: state, "epoch": 30}, buffer)
    return buffer.getvalue(), state


def blob_id(data: bytes) -> str:
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Server:
    """Serves ``files`` (URL path -> (behaviour, bytes)); behaviour "ok", "truncate" (announces
    the full length, sends half, closes) or an HTTP status code. Counts requests."""

    def __init__(self):
        self.files: dict[str, tuple[object, bytes]] = {}
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                behaviour, data = server.files.get(self.path, (404, b""))
                if isinstance(behaviour, int):
                    self.send_error(behaviour)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data if behaviour == "ok" else data[:len(data) // 2])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def serve(server, monkeypatch):
    """serve(model, period, data, behaviour, blob=None): put ``data`` where the registry's entry
    points (through $HDRVID_OFFICIAL_URL) and pin ``blob`` (default: the data's own id) in the
    registry for this test. Returns the patched entry."""
    monkeypatch.setenv("HDRVID_OFFICIAL_URL", server.url)
    server.files.clear()
    server.requests = 0

    def put(model, period, data, behaviour="ok", blob=None):
        spec = MODELS[model]
        entry = dataclasses.replace(spec.official[period], blob=blob or blob_id(data))
        monkeypatch.setitem(MODELS, model, dataclasses.replace(
            spec, official={**spec.official, period: entry}))
        server.files[entry.url().removeprefix(server.url)] = (behaviour, data)
        return entry
    return put


def official_rows(model: str = "hdrflow") -> list[tuple[int, str]]:
    """(exposures, where) of the model's official files in `weights list`."""
    rows = json.loads(run("weights", "list", "--json").stdout)
    return [(r["exposures"], r["where"]) for r in rows
            if r["source"] == "official" and r["model"] == model]


def cache_files() -> list[str]:
    """Everything in the cache of the authors' weights, hidden files included."""
    folder = official_cache()
    return sorted(os.listdir(folder)) if folder.is_dir() else []


@pytest.fixture(scope="module")
def hdrflow_2e():
    return checkpoint_bytes("hdrflow", 2, seed=1)


def test_pull_verifies_converts_and_convert_uses_it(serve, server, hdrflow_2e, clip2, tmp_path):
    data, state = hdrflow_2e
    entry = serve("hdrflow", 2, data)
    assert official_rows() == [(2, "not pulled"), (3, "not pulled")]
    result = run("weights", "pull", "hdrflow", "--exposures", "2", "--source", "official")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path == entry.cached("hdrflow", 2) and cache_files() == [path.name]
    assert "verified and converted" in result.stderr and "MIT" in result.stderr
    converted, meta = read_safetensors(path)
    assert meta["git_blob"] == entry.blob and meta["attributes"] == {"official_warp": True}
    assert meta["official"] == f"{entry.repo}@{entry.commit}:{entry.path}"
    assert all(torch.equal(converted[k.removeprefix("module.")], v) for k, v in state.items())

    assert official_rows() == [(2, "pulled"), (3, "not pulled")]
    models = {(r["name"], r["exposures"]): r["weights"]
              for r in json.loads(run("models", "--json").stdout)}
    assert "official: pulled" in models["hdrflow", 2]
    assert "official: `hdrvid weights pull hdrflow`" in models["hdrflow", 3]
    assert "bundled" in models["hdrflow", 2]

    again = run("weights", "pull", "hdrflow", "--exposures", "2", "--source", "official")
    assert again.exit_code == 0 and "already pulled" in again.stderr
    assert server.requests == 1  # a pulled file is not downloaded again

    predictor = HdrPredictor("hdrflow", 2, "cpu", weights="official", precision="fp32")
    assert predictor.model.official_warp is True
    out = tmp_path / "out"
    result = run("convert", clip2.path, "-o", out, "-m", "hdrflow", "--weights", "official",
                 "--frames", "4", "-q")
    assert result.exit_code == 0, result.output
    frame = read_exr(out / "frame_000002.exr")[0]
    assert np.isfinite(frame).all() and frame.shape[:2] == clip2.truth[2].shape[:2]


def test_lan_hdr_runs_from_the_pulled_file_without_weights_option(serve, clip2, tmp_path):
    result = run("convert", clip2.path, "-o", tmp_path / "o", "-m", "lan-hdr")
    assert_one_line_error(result, "lan-hdr 2-exposure: the authors' weights are not pulled",
                          "`hdrvid weights pull lan-hdr --exposures 2`")
    data, state = checkpoint_bytes("lan-hdr", 2, seed=2)
    serve("lan-hdr", 2, data)
    result = run("weights", "pull", "lan-hdr", "--exposures", "2")
    assert result.exit_code == 0, result.output
    assert "never redistributes" in result.stderr  # LAN-HDR's terms: no licence
    model = HdrPredictor("lan-hdr", 2, "cpu", precision="fp32").model
    assert torch.equal(model.state_dict()["merge.conv1_head.weight"],
                       state["merge.conv1_head.weight"])


def test_wrong_bytes_are_refused_and_nothing_is_kept(serve, hdrflow_2e):
    data, _ = hdrflow_2e
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0x01
    entry = serve("hdrflow", 2, bytes(corrupt), blob=blob_id(data))
    result = run("weights", "pull", "hdrflow", "--exposures", "2", "--source", "official")
    assert_one_line_error(result, entry.url(), f"not the authors' {entry.blob}",
                          f"git blob {blob_id(bytes(corrupt))}", "nothing was kept")
    assert cache_files() == []


@pytest.mark.parametrize("behaviour, message", [
    ("truncate", "the download stopped after"), (500, "HTTP 500"), (404, "HTTP 404")])
def test_failed_downloads_leave_nothing(serve, hdrflow_2e, behaviour, message):
    data, _ = hdrflow_2e
    entry = serve("hdrflow", 2, data, behaviour)
    result = run("weights", "pull", "hdrflow", "--exposures", "2", "--source", "official")
    assert_one_line_error(result, entry.url(), message)
    assert cache_files() == []


def test_an_interrupted_download_leaves_no_partial_file(serve, hdrflow_2e, monkeypatch):
    data, _ = hdrflow_2e
    entry = serve("hdrflow", 2, data)
    monkeypatch.setattr(official, "CHUNK", 1 << 16)
    seen = []

    def interrupt(done, total):  # Ctrl-C after a few chunks arrived
        seen.append(done)
        if len(seen) == 3:
            raise KeyboardInterrupt
    spec = MODELS["hdrflow"]
    with pytest.raises(KeyboardInterrupt):
        official.pull(entry, "hdrflow", 2, spec.build, spec.checkpoint, interrupt)
    assert seen[-1] < len(data) and cache_files() == []


@pytest.mark.parametrize("case", ["wrong layout", "python objects"])
def test_the_right_blob_but_an_unusable_checkpoint_is_refused(serve, case):
    """Blob ids are the authors' record; the loader still trusts nothing: weights_only, and
    every key and shape."""
    if case == "wrong layout":
        data, _ = checkpoint_bytes("hdrflow", 3)  # a 3-exposure file where 2E is pinned
        expected = "not hdrflow 2-exposure weights"
    else:
        buffer = io.BytesIO()
        torch.save({"state_dict": {}, "config": Path("x")}, buffer)
        data, expected = buffer.getvalue(), "refused for safety"
    serve("hdrflow", 2, data)
    result = run("weights", "pull", "hdrflow", "--exposures", "2", "--source", "official")
    assert_one_line_error(result, expected)
    assert cache_files() == []


def test_offline_pull_names_the_url_and_blob_id(tmp_path):
    """The real command in a fresh process with HF_HUB_OFFLINE=1 and the real pins."""
    env = {k: v for k, v in os.environ.items() if k != "HDRVID_OFFICIAL_URL"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run([sys.executable, "-m", "hdrvid", "weights", "pull", "lan-hdr"],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "https://raw.githubusercontent.com/haesoochung/LAN-HDR/b63131ff7c15776e7ce95201c9851" \
           "bb796f4ce67/exps/model_2E_test/checkpoints/ckpt.pt" in line
    assert "f4f274896258a88a61782285cf2efda215a9371c" in line
    assert "hdrvid weights import FILE -m lan-hdr" in line
    assert not (tmp_path / "hf").exists()  # nothing written


def test_import_recognises_the_authors_file(serve, hdrflow_2e, tmp_path):
    data, _ = hdrflow_2e
    entry = serve("hdrflow", 2, data)
    fetched = tmp_path / "checkpoint.pth"
    fetched.write_bytes(data)
    result = run("weights", "import", fetched, "-m", "hdrflow")
    assert result.exit_code == 0, result.output
    assert f"the authors' hdrflow 2-exposure file (git blob {entry.blob})" in result.stderr
    assert cache_files() == [entry.cached("hdrflow", 2).name]
    model = HdrPredictor("hdrflow", 2, "cpu", weights="official", precision="fp32").model
    assert model.official_warp is True

    other = tmp_path / "mine.pth"
    other.write_bytes(checkpoint_bytes("hdrflow", 2, seed=9)[0])
    result = run("weights", "import", other, "-m", "hdrflow")
    assert_one_line_error(result, "mine.pth: not the authors' hdrflow file",
                          "pass -o FILE.safetensors")
    result = run("weights", "import", other, "-m", "hdrflow", "-o", tmp_path / "mine.safetensors")
    assert result.exit_code == 0 and "not the authors'" in result.stderr
    assert read_safetensors(tmp_path / "mine.safetensors")[1].get("git_blob") is None


def test_weights_official_for_a_model_without_official_files_is_an_error():
    with pytest.raises(WeightsError, match="cannot fetch chen21's weights from its authors"):
        HdrPredictor("chen21", 2, "cpu", weights="official")
