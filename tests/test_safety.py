"""zoo.safety's manifests: every file of an entry but its top-level SHA256SUMS is covered."""

import shutil
from pathlib import Path

import pytest

from zoo.errors import ZooError
from zoo.pretrained import load
from zoo.safety import MANIFEST, verify_manifest, write_manifest

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "saved_models"


def test_a_manifest_in_a_subfolder_is_an_ordinary_file_of_the_entry(tmp_path):
    path = Path(shutil.copytree(SHIPPED_DIR / "spoken_digits", tmp_path / "spoken_digits"))
    (path / "variables" / MANIFEST).write_text("")
    with pytest.raises(ZooError, match=r"not in the manifest: variables/SHA256SUMS"):
        load(path)
    write_manifest(path)
    assert f"  variables/{MANIFEST}\n" in (path / MANIFEST).read_text()
    verify_manifest(path)
    (path / "variables" / MANIFEST).write_text("0" * 64 + "  anything\n")
    with pytest.raises(ZooError, match=r"changed: variables/SHA256SUMS"):
        verify_manifest(path)
