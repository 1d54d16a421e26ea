"""Summarise py-spy collapsed stacks: where the samples are, by own time and by inclusive time.

python -m bench.topstacks profile/monitor-10000.txt [--filter monitor/]
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>[^:]*)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m['fn']} ({path})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file", type=Path)
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in args.file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [short(f) for f in stack.split(";") if f]
        total += n
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    print(f"{total} samples\n\nown time:")
    for fn, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {fn}")
    print("\ninclusive time:")
    for fn, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {fn}")


if __name__ == "__main__":
    main()
