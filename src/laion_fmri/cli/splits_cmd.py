"""``laion-fmri splits``: list the bundled splits or show one of them."""

from __future__ import annotations

import argparse
import json

from laion_fmri import splits
from laion_fmri.splits._catalog import UNAVAILABLE_POOLS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "splits",
        help="list the bundled train/test splits or show one",
        description="Inspect the published re:vision splits bundled with the package.",
    )
    actions = p.add_subparsers(dest="splits_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="generations, pools, split names and OOD types")
    show = actions.add_parser("show", help="header and counts of one split")
    show.add_argument("name", help="split name, e.g. tau")
    show.add_argument("--pool", default="shared", help="'shared' or a subject (default: shared)")
    show.add_argument("--variant", type=int, default=0, help="variant id (default: 0)")
    show.add_argument("--version", default=None, metavar="GEN",
                      help="generation of the split files, e.g. gen1 (default: the current one)")
    show.add_argument("--ood-types", nargs="+", metavar="TYPE",
                      help="restrict the test side of 'ood' to these types")
    show.add_argument("--ids", choices=("train", "test"),
                      help="print only the train or test image IDs, one per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.splits_action == "list":
        versions = splits.list_versions()
        for k, (name, text) in enumerate(versions.items()):
            label = "versions" if k == 0 else ""
            print(f"{label:<10} {name}: {text}")
        print(f"pools      {' '.join(splits.list_pools())}")
        for pool, text in UNAVAILABLE_POOLS.items():
            print(f"           ({pool}: {text}; its files are not available, not bundled)")
        print(f"splits     {' '.join(splits.list_splits())}")
        print(f"ood types  {' '.join(splits.list_ood_types())}")
        return 0
    train, test = splits.get_train_test_ids(
        args.name, args.pool, args.variant, args.ood_types, version=args.version
    )
    if args.ids:
        print("\n".join(train if args.ids == "train" else test))
        return 0
    split = splits.load_split(args.name, args.pool, version=args.version)
    print(f"name      {split.name} ({split.split_family})")
    print(f"version   {split.version}")
    print(f"pool      {split.pool}: {split.pool_description}")
    print(f"splitter  {split.splitter}")
    print(f"params    {json.dumps(split.params, ensure_ascii=False)}")
    print(f"variants  {', '.join(str(v.variant_id) for v in split.variants)}")
    print(f"n_train   {len(train)}")
    print(f"n_test    {len(test)}")
    return 0


__all__ = [
    "register",
    "run",
]
