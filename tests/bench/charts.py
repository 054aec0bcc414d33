#!/usr/bin/env python3
"""Draws the charts of docs/performance.md from `clsf-bench matrix`'s medians.

    python3 tests/bench/charts.py [DIR]      # default docs/bench

Reads DIR/matrix.csv and writes DIR/<mode>.png for simple, extended and
prepared: throughput and CPU per transaction of the process in front of
PostgreSQL, by clients, one line per path, TLS off (left) and on (right).
Needs matplotlib (`pip install matplotlib`); the benchmark itself does not.
"""

import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

PATHS = [
    ("direct", "(a) PostgreSQL directly", "tab:blue"),
    ("pgbouncer", "(b) pgbouncer, session mode", "tab:orange"),
    ("proxy", "(c) clsf-proxy, nothing protected read", "tab:green"),
    ("proxy-masked", "(d) clsf-proxy, statement rewritten", "tab:red"),
]


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("docs", "bench")
    with open(os.path.join(out, "matrix.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    for mode in ("simple", "extended", "prepared"):
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        tls_values = [t for t in ("off", "on") if any(r["tls"] == t for r in mine)]
        fig, axes = plt.subplots(
            2, len(tls_values), figsize=(5.5 * len(tls_values), 7), squeeze=False
        )
        for col, tls in enumerate(tls_values):
            for path, label, color in PATHS:
                points = sorted(
                    (int(r["clients"]), float(r["tps"]), float(r["cpu_us_per_txn"]))
                    for r in mine
                    if r["tls"] == tls and r["path"] == path
                )
                if not points:
                    continue
                clients = [p[0] for p in points]
                axes[0][col].plot(
                    clients, [p[1] for p in points], marker="o", label=label, color=color
                )
                if path != "direct":
                    axes[1][col].plot(
                        clients, [p[2] for p in points], marker="o", label=label, color=color
                    )
            axes[0][col].set_title(f"{mode} protocol, TLS {tls}")
            axes[0][col].set_ylabel("transactions per second")
            axes[1][col].set_ylabel("CPU µs per transaction (in front of PostgreSQL)")
            for row in (0, 1):
                ax = axes[row][col]
                ax.set_xscale("log", base=2)
                ax.set_xticks(sorted({int(r["clients"]) for r in mine}))
                ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
                ax.set_xlabel("clients")
                ax.set_ylim(bottom=0)
                ax.grid(True, alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.suptitle("pgbench -S, scale 10, medians (clsf-bench matrix)")
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"{mode}.png"), dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    main()
