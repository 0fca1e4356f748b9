"""Compare the run records of two bench (or compare) folders, timings and paths aside.

    python scripts/compare_records.py BEFORE AFTER [--ignore KEY ...]

Reads every ``<scenario>/<method>_seed<s>.json`` under both folders and prints, per record, each
value that differs (numbers compare exactly). Wall-clock times, the speed-up they give, the
bundle path and the data directory are ignored; ``--ignore`` adds more keys (anywhere in the
record). Exits 1 when a record differs or exists on one side only, so a restructuring can show
that it left every number as it was.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VOLATILE = {"seconds", "speedup_vs_retrain", "bundle", "data_dir"}


def records(folder: Path) -> dict[str, dict]:
    return {str(p.relative_to(folder)): json.loads(p.read_text())
            for p in sorted(folder.glob("*/*_seed*.json"))}


def differences(a, b, ignore: set[str], where: str = "") -> list[str]:
    """Paths (``models.unlearned.test_acc``) at which ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key in ignore:
                continue
            path = f"{where}.{key}" if where else key
            if key not in a or key not in b:
                out.append(f"{path}: only in {'after' if key not in a else 'before'}")
            else:
                out += differences(a[key], b[key], ignore, path)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, ignore, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} -> {b!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--ignore", nargs="*", default=[])
    args = parser.parse_args(argv)
    ignore = VOLATILE | set(args.ignore)
    before, after = records(args.before), records(args.after)
    if not before:
        print(f"no records under {args.before}", file=sys.stderr)
        return 2
    changed = 0
    for name in sorted(set(before) | set(after)):
        if name not in before or name not in after:
            print(f"{name}: only in {'after' if name not in before else 'before'}")
            changed += 1
            continue
        diff = differences(before[name], after[name], ignore)
        if diff:
            changed += 1
            print(f"{name}: {len(diff)} value(s) differ")
            for line in diff[:10]:
                print(f"  {line}")
    print(f"{len(before)} records before, {len(after)} after: {changed} differ")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
