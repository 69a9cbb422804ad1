"""The annotation metadata shipped in data_shards/reference: complete, readable by the
sources' readers, unpacked once into the cache."""

from __future__ import annotations

from data_shards import reference_data
from data_shards.sources.imagenet import read_val_folder_txt, read_wsol_metadata


def test_shipped_imagenet_val_and_cub_test_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("SCM_DIST_CACHE", str(tmp_path))
    imagenet = read_wsol_metadata(reference_data.imagenet_val_metadata())
    assert len(imagenet) == 50000 and {a.label for a in imagenet.values()} == set(range(1000))
    assert sum(len(a.boxes) for a in imagenet.values()) == 80477
    cub = read_wsol_metadata(reference_data.cub_test_metadata())
    assert len(cub) == 5794 and {a.label for a in cub.values()} == set(range(200))
    assert all(len(a.boxes) == 1 for a in cub.values())
    wnids = reference_data.imagenet_wnids()
    assert len(set(wnids)) == 1000 and wnids == sorted(wnids)
    # the written val_folder_new.txt agrees with the metadata: wnid = wnids[label], same boxes
    rows = read_val_folder_txt(reference_data.imagenet_val_folder_txt())
    assert rows.keys() == imagenet.keys()
    for stem, row in rows.items():
        truth = imagenet[stem]
        assert (row.wnid, row.label, row.boxes) == (wnids[truth.label], truth.label, truth.boxes)


def test_unpacked_once_per_content(tmp_path, monkeypatch):
    monkeypatch.setenv("SCM_DIST_CACHE", str(tmp_path))
    folder = reference_data.cub_test_metadata()
    assert folder.parent == tmp_path / "reference"
    stamp = (folder / "image_ids.txt").stat().st_mtime_ns
    assert reference_data.cub_test_metadata() == folder
    assert (folder / "image_ids.txt").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "reference").iterdir()] == [folder.name]  # no staging left
