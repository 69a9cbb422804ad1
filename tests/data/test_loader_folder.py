"""The image-folder baseline: release transforms, disjoint ranks, resumable order."""

import pytest
import torch
from loader_fixtures import make_samples, small_config, write_folder

from scm_dist.data import build_eval_loader, build_train_loader


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    directory = tmp_path_factory.mktemp("folder")
    write_folder(directory, make_samples(30))
    return directory


def _ids(loader, epoch=None):
    if epoch is not None:
        loader.set_epoch(epoch)
    out = []
    for images, labels in loader:
        model_input = images.to_model("cpu")
        assert model_input.shape == (4, 3, 48, 48) and model_input.dtype == torch.float32
        assert labels.tolist() == [int(i.split("class")[1][0]) for i in loader.last_ids]
        out.append(list(loader.last_ids))
    return out


def test_folder_ranks_disjoint_epochs_differ_resume_exact(folder):
    cfg = small_config(folder, "auto", workers=1)  # no manifest: an image folder
    ranks = [build_train_loader(cfg, rank=r, world_size=2, seed=1) for r in range(2)]
    assert ranks[0].format == "folder" and ranks[0].num_classes == 3
    assert ranks[0].steps_per_epoch == 30 // 8
    epochs = [[_ids(loader, e) for e in range(2)] for loader in ranks]
    for e in range(2):
        seen = [set(sum(epochs[r][e], [])) for r in range(2)]
        assert len(seen[0]) == len(seen[1]) == 12 and not seen[0] & seen[1]
    assert epochs[0][0] != epochs[0][1]
    resumed = build_train_loader(cfg, rank=0, world_size=2, seed=1)
    resumed.load_state_dict({**ranks[0].state_dict(), "epoch": 1, "batches": 1})
    assert _ids(resumed) == epochs[0][1][1:]


def test_folder_cannot_be_evaluated(folder):
    with pytest.raises(ValueError, match="no boxes"):
        build_eval_loader(small_config(folder, "folder"))
