"""Convert a dataset into RecBole atomic files and its property file under ``<out>/<NAME>/``
(see README.md here); then ``run_recbole_sam.py --dataset NAME --data_path OUT`` trains on it.

    python dataset/prepare.py s3rec --name Beauty --src ../shared/datasets/s3rec --out dataset/
    python dataset/prepare.py amazon --reviews reviews_Beauty_5.json.gz [--meta meta_Beauty.json.gz] --name Beauty
    python dataset/prepare.py yelp --reviews review.json [--business business.json] --name Yelp
"""

import argparse
import sys
from pathlib import Path

from recbole_sam.data.converters import convert_amazon, convert_s3rec, convert_yelp
from recbole_sam.errors import ConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Convert a dataset into RecBole atomic files (.inter, .item).")
    sources = parser.add_subparsers(dest="source", required=True)
    s3rec = sources.add_parser("s3rec", help="S3Rec's processed NAME.txt and NAME_item2attributes.json")
    s3rec.add_argument("--src", required=True, help="folder holding the S3Rec files")
    amazon = sources.add_parser("amazon", help="Amazon 2014 reviews, iterative 5-core")
    amazon.add_argument("--reviews", required=True, help="reviews JSON lines (.json or .json.gz)")
    amazon.add_argument("--meta", help="item metadata: brand and categories become attributes")
    yelp = sources.add_parser("yelp", help="Yelp reviews, iterative 5-core")
    yelp.add_argument("--reviews", required=True, help="review JSON lines (.json or .json.gz)")
    yelp.add_argument("--business", help="business JSON lines: categories become attributes")
    for sub in (s3rec, amazon, yelp):
        sub.add_argument("--name", required=True, help="dataset name, e.g. Beauty (files go to <out>/<name>/)")
        # Default: this folder, which RecBole's data_path 'dataset/' names from the repository root.
        sub.add_argument("--out", default=str(Path(__file__).resolve().parent), help="parent folder of <name>/")
    return parser.parse_args(argv)


def convert(args):
    if args.source == "s3rec":
        return convert_s3rec(args.name, args.src, args.out)
    if args.source == "amazon":
        return convert_amazon(args.name, args.reviews, args.out, meta=args.meta)
    return convert_yelp(args.name, args.reviews, args.out, business=args.business)


def main(argv=None):
    args = parse_args(argv)
    try:
        counts = convert(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {counts['inter_file']}, {counts['item_file']} and {counts['properties_file']}")
    print(f"{counts['users']:,} users, {counts['items']:,} items, {counts['interactions']:,} interactions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
