"""One grammar everywhere: the build's ``--version`` is checked by the manifest's strict ASCII semver grammar
(:func:`genco_data.format.records.is_semver`): matched whole, ASCII digits only, no leading zeros."""
from __future__ import annotations

from pathlib import Path

import pytest

from factories import TSD, make_impressions, write_parquet
from genco_data import BuildConfig
from genco_data.cli import main
from genco_data.errors import InvalidInputError
from genco_data.format.records import is_semver


BAD_VERSIONS = {
    "trailing newline": "1.0.0\n",
    "leading zero": "01.0.0",
    "leading zero in patch": "1.0.00",
    "non-ASCII digits": "\u0661.0.0",
    "four parts": "1.0.0.0",
    "two parts": "1.0",
    "v prefix": "v1.0.0",
    "space": " 1.0.0",
    "not a string": 100,
}
GOOD_VERSIONS = ["0.0.0", "1.0.0", "0.10.3", "12.4.105"]


@pytest.mark.parametrize("version", BAD_VERSIONS.values(), ids=BAD_VERSIONS.keys())
def test_build_config_refuses_what_the_manifest_refuses(tmp_path, version):
    assert not is_semver(version)
    with pytest.raises(InvalidInputError, match=r"^version must be semver X\.Y\.Z \(ASCII digits, no leading zeros\), got "):
        BuildConfig(sources=[tmp_path], out=tmp_path / "rel", version=version)


@pytest.mark.parametrize("version", GOOD_VERSIONS)
def test_build_config_accepts_what_the_manifest_accepts(tmp_path, version):
    assert is_semver(version)
    assert BuildConfig(sources=[tmp_path], out=tmp_path / "rel", version=version).version == version


@pytest.mark.parametrize("version", ["1.0.0\n", "01.0.0", "\u0661.0.0"], ids=["newline", "leading-zero", "arabic-indic"])
def test_cli_build_refuses_a_lenient_version_in_one_line(tmp_path, capsys, version):
    write_parquet(make_impressions(50, seed=1), tmp_path / "raw.parquet")
    out = tmp_path / "rel"
    args = ["build", str(tmp_path / "raw.parquet"), "--out", str(out), "--version", version, "--test-start-day", TSD.isoformat(), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genco build: error: version must be semver") and "Traceback" not in err
    assert not out.exists()
