#!/usr/bin/env python3
"""Self cost per function of a callgrind dump, per transaction.

    python3 tests/bench/callgrind_self.py DUMP TRANSACTIONS [ROWS]

Reads a `callgrind.out` file (callgrind's format: `fn=` names a function,
the cost lines after it are its own, the one after `calls=` is a callee's
inclusive cost and is not counted) and prints the total instructions per
transaction, then the functions with the largest self cost. Names are as
the binary has them (Rust's demangled paths)."""

import collections
import re
import sys


def main() -> None:
    dump, transactions = sys.argv[1], int(sys.argv[2])
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    names: dict[str, str] = {}

    def name(spec: str) -> str:
        # `(id) name` defines a compressed name, `(id)` refers to it.
        m = re.match(r"\((\d+)\)(?: (.*))?", spec)
        if not m:
            return spec
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    own: collections.Counter[str] = collections.Counter()
    function = "?"
    after_call = False
    with open(dump, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                function = name(line[3:].strip())
            elif line.startswith("cfn="):
                name(line[4:].strip())
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) >= 2:
                    if after_call:
                        after_call = False
                    else:
                        own[function] += int(parts[1])
    total = sum(own.values())
    print(f"{total / transactions:,.0f} instructions per transaction")
    for function, cost in own.most_common(rows):
        print(f"{cost / transactions:9,.0f} {100 * cost / total:5.1f}%  {function[:120]}")


if __name__ == "__main__":
    main()
