"""Job 0: write data/banking_train.csv from UCI's Bank Marketing data.

Downloads the UCI zip where the internet is reachable; offline, pass --source
PATH or set BANK_MARKETING_CSV to a local bank-full.csv (UCI's ';' format or
comma CSV). Safe to rerun: the same content is not written twice, and with
neither --source nor --url an existing banking_train.csv is kept as it is.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    from retraining.cli import run_job
except Exception as import_error:  # exit 1 would read as "drift found"
    print(f"error: cannot import the retraining package: {import_error}", file=sys.stderr)
    sys.exit(4)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        help="local bank-full.csv to read instead of downloading "
        "(env BANK_MARKETING_CSV)",
    )
    parser.add_argument(
        "--url",
        help="URL of the UCI bank marketing zip (env LOOP_DATA_URL; default: "
        "UCI's download address). A --source flag wins over --url, and a flag "
        "over an environment variable",
    )
    parser.add_argument(
        "--download-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the download to respond (default 60)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing banking_train.csv with other content, keeping "
        "the old file as a timestamped copy",
    )
    return parser


def main(args: argparse.Namespace, workspace) -> int:
    from retraining.prepare import UCI_ZIP_URL, download_uci_csv, prepare_training_data

    local_copy = args.source or (None if args.url else os.environ.get("BANK_MARKETING_CSV"))
    if not local_copy and not args.url and workspace.train_csv.exists():
        print(
            f"{workspace.train_csv} exists; nothing downloaded. Pass --url or "
            f"--source to prepare it again"
        )
        return 0
    if local_copy:
        source = Path(local_copy).expanduser().resolve()
    else:
        source = download_uci_csv(
            args.url or os.environ.get("LOOP_DATA_URL") or UCI_ZIP_URL,
            workspace.data_dir / "downloads" / "bank-full.csv",
            args.download_timeout,
        )
    result = prepare_training_data(source, workspace.train_csv, force=args.force)
    state = "wrote" if result.written else "up to date, unchanged:"
    print(f"{state} {result.path} ({result.rows} rows from {result.source})")
    return 0


if __name__ == "__main__":
    sys.exit(run_job("0_prepare_data", build_parser, main))
