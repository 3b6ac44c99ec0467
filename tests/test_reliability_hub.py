"""What leaves the machine is only the release (#16), the truth stays with the maintainer (#15), the card names
its repo and Hub failures are one line (#17) — against the on-disk stand-in, a real ``HfApi`` aimed at a closed
port (offline) and a local HTTP server that answers 401 (unauthenticated)."""
from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from factories import TSD, make_impressions, write_parquet, write_world
from genco_data import hub
from genco_data.card.card import REPO_PLACEHOLDER
from genco_data.card.options import CardOptions
from genco_data.cli import main
from genco_data.errors import IntegrityError, PublishError
from genco_data.pipeline import BuildConfig, build_release, render_release_card
from genco_data.release import Release, verify_release
from hub_standin import LocalHub

ROOT = Path(__file__).resolve().parents[1]
REPO = "genco-org/creatives"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    write_parquet(make_impressions(400, seed=12), src / "raw" / "part-0.parquet")
    write_world(src / "world", TSD)
    out = tmp_path_factory.mktemp("rel") / "release"
    build_release(BuildConfig(sources=[src], out=out, version="1.0.0", sample_rows=50), progress=False, card=CardOptions(repo_id=REPO))
    return out


@pytest.fixture
def release(built, tmp_path) -> Path:
    out = tmp_path / "release"
    shutil.copytree(built, out)
    return out


@pytest.fixture
def cli_hub(tmp_path, monkeypatch) -> LocalHub:
    stand_in = LocalHub(tmp_path / "cli-hub")
    monkeypatch.setattr(hub, "_default_api", lambda: stand_in)
    return stand_in


def _one_line_error(capsys, verb: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"genco {verb}: error: ") and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------- only the release
def test_the_placeholder_is_the_cards():
    assert hub.REPO_PLACEHOLDER == REPO_PLACEHOLDER


def test_the_plan_is_the_manifest_and_leaves_the_world_out(release, capsys, cli_hub):
    m = Release.open(release).manifest
    plan = hub.plan_publish(release, REPO)
    listed = {f.path: f.sha256 for f in m.files}
    assert {f.path for f in plan.files} == {p for p in listed if not p.startswith("world/")} | {"manifest.json"}
    assert all(f.sha256 == listed[f.path] for f in plan.files if f.path != "manifest.json")
    assert plan.world_kept == 2 and "stays with you" in plan.describe()
    assert main(["publish", str(release), "--repo", REPO, "--dry-run", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert not any(f["path"].startswith("world/") for f in d["files"]) and d["world_kept"] == 2
    listing = [l for l in plan.describe().splitlines() if re.match(r"  [0-9a-f]{64} ", l)]
    assert len(listing) == len(plan.files) and not any(" world/" in l for l in listing)


def test_include_world_publishes_the_truth_and_a_pull_without_it_verifies_as_withheld(release, tmp_path, cli_hub, capsys):
    plan = hub.publish(release, REPO, api=cli_hub, progress=False)
    assert not any(p.startswith("world/") for p in cli_hub.tree(REPO, "v1.0.0"))
    report = hub.pull(REPO, revision="v1.0.0", out=tmp_path / "pulled", api=cli_hub, progress=False)
    assert report["world"] == "withheld" and not (tmp_path / "pulled" / "world").exists()
    assert main(["verify", str(tmp_path / "pulled")]) == 0
    # the world is pinned: the maintainer's copy is the one the public manifest names
    assert Release.open(tmp_path / "pulled").world_files == Release.open(release).world_files
    with_world = hub.plan_publish(release, REPO, include_world=True)
    assert {f.path for f in with_world.files} - {f.path for f in plan.files} == {"world/world.json", "world/world.npz"}
    with pytest.raises(PublishError, match=r"--include-world, but world/ is not in this folder"):
        hub.plan_publish(tmp_path / "pulled", REPO, include_world=True)
    assert main(["publish", str(tmp_path / "pulled"), "--repo", REPO, "--include-world", "--dry-run", "--quiet"]) == 2
    _one_line_error(capsys, "publish")


def test_a_stray_file_or_symlink_is_never_planned(release):
    (release / "figures" / "notes.txt").write_text("not the release")
    with pytest.raises(IntegrityError, match=r"extra file figures/notes\.txt"):
        hub.plan_publish(release, REPO)
    (release / "figures" / "notes.txt").unlink()
    (release / "figures" / "passwd.png").symlink_to("/etc/passwd")
    with pytest.raises(IntegrityError, match=r"figures/passwd\.png is a symlink"):
        hub.publish(release, REPO, dry_run=True)


# ------------------------------------------------------------------------------- the card's repo
def test_a_card_for_another_repo_or_the_placeholder_is_refused_with_the_fix(release, capsys, cli_hub):
    assert main(["publish", str(release), "--repo", "other-org/other", "--dry-run", "--quiet"]) == 2
    err = _one_line_error(capsys, "publish")
    assert f"name {REPO}, not other-org/other; render the card for this repo first: genco card {release} --repo other-org/other" in err
    render_release_card(release)  # no --repo: the placeholder
    with pytest.raises(PublishError, match=rf"snippets name ORG/NAME, not {REPO}"):
        hub.publish(release, REPO, api=cli_hub, progress=False)
    assert cli_hub.calls == []
    assert main(["card", str(release), "--repo", REPO, "--quiet"]) == 0
    assert hub.publish(release, REPO, api=cli_hub, progress=False).action == "published"


def test_card_repo_ids_reads_every_snippet_form():
    text = """
ds = load_dataset("a-org/x", "impressions")
local = load_dataset("path/to/release")
genco pull b-org/y --revision v1
hf_hub_download(repo_id="c-org/z", filename="f")
see https://huggingface.co/datasets/d-org/w and hf://datasets/e-org/v@v1.0.0/data
"""
    assert hub.card_repo_ids(text) == ["a-org/x", "b-org/y", "c-org/z", "d-org/w", "e-org/v"]
    assert hub.card_repo_ids("(`ORG/NAME`: the Hub id)") == ["ORG/NAME"]


@pytest.mark.parametrize("repo", ["genco-org/creatives\n", "a--b/c", "a/b..c", "-a/b", "\u00e9/b", "a/" + "b" * 96, "a/b/c", " a/b"])
def test_repo_ids_are_strict_ascii(release, tmp_path, capsys, repo):
    with pytest.raises(PublishError, match="repo must be ORG/NAME"):
        hub.plan_publish(release, repo)
    assert main(["pull", "--revision", "v1.0.0", "--out", str(tmp_path / "p"), "--quiet", "--", repo]) == 2
    assert "repo must be ORG/NAME" in _one_line_error(capsys, "pull")
    assert not (tmp_path / "p").exists()


def test_a_tag_with_a_trailing_newline_is_refused(release):
    with pytest.raises(PublishError, match="does not name dataset_version"):
        hub.plan_publish(release, REPO, tag="v1.0.0\n")


# ---------------------------------------------------------------------------- one line from the Hub
#: Runs `genco ...` commands in one fresh process (no pytest logging handler: huggingface_hub's warnings reach
#: stderr through Python's last-resort handler, as they do for a user) against real HfApi clients, with the
#: waits of huggingface_hub's retry loop skipped (the retries themselves still happen and still log). argv[1]
#: is a JSON list of [endpoint, [args...]]; each command's stderr is followed by an "@@@ <exit status>" line.
_CLI_AGAINST = """
import json, sys, time
import huggingface_hub.utils._http as http_module
from huggingface_hub import HfApi
from genco_data import hub
from genco_data.cli import main

class SkipSleep:
    def __getattr__(self, name):
        return getattr(time, name)
    @staticmethod
    def sleep(seconds):
        return None

http_module.time = SkipSleep()
for endpoint, args in json.loads(sys.argv[1]):
    hub._default_api = lambda: HfApi(endpoint=endpoint, token=False)
    rc = main(args)
    sys.stderr.flush()
    print(f"@@@ {rc}", file=sys.stderr, flush=True)
"""


def _genco_against(runs: list[tuple[str, list[str]]]) -> list[tuple[int, str]]:
    """(exit status, stderr) of each ``genco`` run."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    env["PYTHONPATH"] = str(ROOT)
    got = subprocess.run([sys.executable, "-c", _CLI_AGAINST, json.dumps(runs)], capture_output=True, text=True, env=env, timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    out, chunk = [], []
    for line in got.stderr.splitlines(keepends=True):
        if line.startswith("@@@ "):
            out.append((int(line.split()[1]), "".join(chunk)))
            chunk = []
        else:
            chunk.append(line)
    return out


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    def _deny(self):
        body = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = _deny

    def log_message(self, *args):  # keep the test's stderr clean
        pass


@pytest.fixture
def unauthorized_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_offline_and_unauthenticated_hub_failures_say_one_line(release, tmp_path, unauthorized_endpoint):
    offline = "http://127.0.0.1:9"  # nothing listens on the discard port: connection refused
    runs = [(offline, ["pull", REPO, "--revision", "v1.0.0", "--out", str(tmp_path / "p1"), "--quiet"]),
            (offline, ["publish", str(release), "--repo", REPO, "--quiet"]),
            (unauthorized_endpoint, ["publish", str(release), "--repo", REPO, "--quiet"]),
            (unauthorized_endpoint, ["pull", REPO, "--revision", "v1.0.0", "--out", str(tmp_path / "p2"), "--quiet"])]
    (rc1, pull_off), (rc2, pub_off), (rc3, pub_401), (rc4, pull_401) = _genco_against(runs)
    for rc, err in ((rc1, pull_off), (rc2, pub_off), (rc3, pub_401), (rc4, pull_401)):
        assert rc == 2 and err.count("\n") == 1 and err.startswith("genco ") and "Traceback" not in err, err
    assert "the Hub cannot be reached" in pull_off  # after 5 retries that huggingface_hub logged, silenced
    assert pub_off.startswith("genco publish: error: publishing genco-org/creatives failed while checking the tag"), pub_off
    assert "check your credentials" in pub_401 or "hf auth login" in pub_401, pub_401
    assert "hf auth login" in pull_401, pull_401
    verify_release(release)
