"""``scm-shards``: convert datasets to WebDataset / FFCV shards, make the synthetic set, verify, describe,
fetch a split from a URL and upload one to S3."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from data_shards.convert import ConversionError, ConvertOptions, convert_listing
from data_shards.manifest import describe_split, split_dirs, verify_split
from data_shards.records import SourceListing
from data_shards.schema import FORMATS, MAX_BOXES
from data_shards.sources.common import LayoutError
from data_shards.sources.cub import list_cub
from data_shards.sources.folder import list_folder
from data_shards.sources.imagenet import ANNOTATION_FORMATS, list_imagenet
from data_shards.sources.synthetic import GENERATOR_VERSION, describe_baseline, list_synthetic, resolve_count

log = logging.getLogger("scm-shards")


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return number


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder (one subfolder per split)")
    p.add_argument("--shard-size-mb", type=float, default=256.0, help="target WebDataset shard size")
    p.add_argument("--workers", type=_positive, default=1, help="processes decoding images")
    p.add_argument(
        "--jpeg-quality",
        type=int,
        default=90,
        help="quality of JPEGs that must be re-encoded (CMYK, grey, PNG, --max-side, synth)",
    )
    p.add_argument("--max-boxes", type=_positive, default=MAX_BOXES, help="rows of the FFCV boxes array")
    p.add_argument("--resume", action="store_true", help="keep finished shards of an interrupted run")
    p.add_argument("--seed", type=int, default=0, help="shuffle / generation seed")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="scm-shards", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    conv = sub.add_parser("convert", help="convert a dataset split")
    conv.add_argument("source", choices=("imagenet", "cub", "folder"))
    conv.add_argument("--root", type=Path, required=True, help="dataset root folder")
    conv.add_argument("--split", choices=("train", "val", "test"), required=True)
    conv.add_argument("--format", choices=(*FORMATS, "both"), default="both")
    conv.add_argument("--max-side", type=_positive, default=None, help="shrink larger images to this side")
    conv.add_argument("--limit", type=_positive, default=None, help="convert only the first N images")
    conv.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    conv.add_argument(
        "--skip-bad-boxes",
        action="store_true",
        help="leave out boxes with a non-finite coordinate or outside their image (counted in the "
        "manifest) instead of stopping",
    )
    conv.add_argument(
        "--annotations",
        type=Path,
        default=None,
        help="imagenet val labels/boxes: XML folder, LOC_val_solution.csv, wsol metadata "
        "folder or val_folder_new.txt",
    )
    conv.add_argument("--annotation-format", choices=ANNOTATION_FORMATS, default="auto")
    conv.add_argument("--classes", type=Path, default=None, help="imagenet: file with one wnid per line")
    conv.add_argument("--train-boxes", type=Path, default=None, help="imagenet train: XML folder")
    conv.add_argument("--boxes", type=Path, default=None, help="folder: CSV path,x0,y0,x1,y1")
    _add_output_options(conv)

    synth = sub.add_parser("synth", help="write the built-in synthetic WSOL set (both formats)")
    synth.add_argument("--classes", type=int, default=10)
    synth.add_argument("--train", type=int, default=None, help="training images (default 10000)")
    synth.add_argument("--val", type=int, default=None, help="validation images (default 2000)")
    synth.add_argument("--image-size", type=int, default=128)
    _add_output_options(synth)
    synth.set_defaults(shard_size_mb=4.0)  # small sets: several shards, so ranks and workers each get some

    ver = sub.add_parser("verify", help="check shards against their manifest")
    ver.add_argument("path", type=Path)
    ver.add_argument("--deep", action="store_true", help="also decode every sample")

    fetch = sub.add_parser("fetch", help="download a split from a URL into a folder (verified, resumable)")
    fetch.add_argument("url", help="split URL: s3://bucket/prefix/train or https://host/prefix/train")
    fetch.add_argument("out", type=Path, help="local split folder to write")
    upload = sub.add_parser("upload", help="upload a split (or every split of a folder) to s3:// (resumable)")
    upload.add_argument("path", type=Path, help="a split folder, or the --out folder of convert/synth")
    upload.add_argument("url", help="s3://bucket/prefix (a single split's URL, or the parent of the splits)")

    info = sub.add_parser("info", help="summarise converted shards")
    info.add_argument("path", type=Path)
    info.add_argument("--json", action="store_true", help="print the manifests as JSON")
    return parser


def _listing(args: argparse.Namespace) -> SourceListing:
    if args.source == "imagenet":
        return list_imagenet(
            args.root, args.split, args.annotations, args.annotation_format, args.classes, args.train_boxes
        )
    if args.source == "cub":
        return list_cub(args.root, args.split)
    return list_folder(args.root, args.split, args.boxes)


def _arguments(args: argparse.Namespace) -> dict:
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in sorted(vars(args).items())
        if k not in ("verbose", "resume", "workers")
    }


def _options(args: argparse.Namespace, formats: tuple[str, ...], shuffle: bool) -> ConvertOptions:
    return ConvertOptions(
        formats=formats,
        shard_size_mb=args.shard_size_mb,
        workers=args.workers,
        max_side=getattr(args, "max_side", None),
        jpeg_quality=args.jpeg_quality,
        limit=getattr(args, "limit", None),
        shuffle=shuffle,
        seed=args.seed,
        strict=getattr(args, "strict", False),
        resume=args.resume,
        max_boxes=args.max_boxes,
        skip_bad_boxes=getattr(args, "skip_bad_boxes", False),
    )


def _cmd_convert(args: argparse.Namespace) -> int:
    formats = FORMATS if args.format == "both" else (args.format,)
    listing = _listing(args)
    log.info(
        "%s %s: %d images, %d classes",
        listing.name,
        listing.split,
        len(listing.records),
        len(listing.classes),
    )
    convert_listing(listing, args.out, _options(args, formats, args.split == "train"), _arguments(args))
    print(describe_split(args.out / listing.split))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    counts = {"train": resolve_count(args.train, 10000), "val": resolve_count(args.val, 2000)}
    for split, count in counts.items():
        if count == 0:
            continue
        listing = list_synthetic(
            split, count, args.classes, args.image_size, args.seed, args.jpeg_quality, args.workers
        )
        arguments = _arguments(args) | {"generator_version": GENERATOR_VERSION} | describe_baseline(listing)
        convert_listing(listing, args.out, _options(args, FORMATS, split == "train"), arguments)
        print(describe_split(args.out / split))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    failed = False
    for folder in split_dirs(args.path):
        problems = verify_split(folder, deep=args.deep)
        for problem in problems:
            print(f"{folder}: {problem}", file=sys.stderr)
        print(f"{folder}: {'FAILED, ' + str(len(problems)) + ' problem(s)' if problems else 'OK'}")
        failed |= bool(problems)
    return 1 if failed else 0


def _cmd_info(args: argparse.Namespace) -> int:
    folders = split_dirs(args.path)
    if args.json:
        from data_shards.schema import read_manifest

        print(json.dumps({f.name: read_manifest(f).to_dict() for f in folders}, indent=1))
    else:
        print("\n".join(describe_split(f) for f in folders))
    return 0


def _quiet_aws_libraries() -> None:
    for name in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _cmd_fetch(args: argparse.Namespace) -> int:
    from data_shards.remote import RemoteError
    from data_shards.remote_transfer import fetch_split

    _quiet_aws_libraries()
    try:
        count = fetch_split(args.url, args.out)
    except RemoteError as err:
        print(f"scm-shards fetch: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.out}: {count} file(s) fetched, every file verified against the manifest")
    return 0


def _cmd_upload(args: argparse.Namespace) -> int:
    from data_shards.remote import RemoteError
    from data_shards.remote_transfer import upload_splits

    _quiet_aws_libraries()
    try:
        count = upload_splits(args.path, args.url)
    except RemoteError as err:
        print(f"scm-shards upload: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.url}: {count} file(s) uploaded and verified, manifest last")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scm-shards`` / ``python -m data_shards``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    commands = {
        "convert": _cmd_convert,
        "synth": _cmd_synth,
        "verify": _cmd_verify,
        "info": _cmd_info,
        "fetch": _cmd_fetch,
        "upload": _cmd_upload,
    }
    try:
        return commands[args.command](args)
    except (LayoutError, ConversionError, FileNotFoundError, ValueError) as err:
        print(f"scm-shards {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"scm-shards {args.command}: interrupted; every worker stopped. Rerun the same command "
            "with --resume to keep the finished shards",
            file=sys.stderr,
        )
        return 130
