"""Where the project's real annotation metadata lives: ``shared/data`` beside the checkout."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IMAGENET_VAL_META = SHARED_DATA / "wsol_metadata" / "ILSVRC" / "test"
IMAGENET_CLASSES = SHARED_DATA / "imagenet" / "val_folder_new.txt"
