"""Draws docs/figures/*.png from the CSV files rwa-sim writes (see Tools/plot/figures)."""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"RWA": ("tab:red", "o"), "MPRA": ("tab:blue", "s"), "TRA": ("tab:green", "^"), "CPA": ("tab:purple", "D")}


def read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def series(rows, x_key):
    by_scheme = defaultdict(lambda: ([], [], []))
    for row in rows:
        xs, means, cis = by_scheme[row["scheme"]]
        xs.append(float(row[x_key]))
        means.append(100 * float(row["utilization_mean"]))
        cis.append(100 * float(row["utilization_ci95"]))
    return by_scheme


def plot_lines(axis, rows, x_key, x_scale=1.0):
    for scheme, (xs, means, cis) in series(rows, x_key).items():
        color, marker = STYLE.get(scheme, ("black", "x"))
        axis.errorbar([x * x_scale for x in xs], means, yerr=cis, label=scheme, color=color, marker=marker, capsize=3)
    axis.set_ylabel("Utilization (%)")
    axis.set_ylim(0, 105)
    axis.grid(alpha=0.3)
    axis.legend()


def main(folder):
    figure, axis = plt.subplots(figsize=(6, 4))
    plot_lines(axis, read(f"{folder}/fig4.csv"), "buyers")
    axis.set_xlabel("Number of buyers (100 sellers)")
    axis.set_title("Fig. 4: utilization against the number of buyers")
    figure.tight_layout()
    figure.savefig(f"{folder}/fig4.png", dpi=120)

    rows = read(f"{folder}/fig5.csv")
    figure, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for axis, attack, title in zip(
        axes,
        ["buyer-collusion", "seller-collusion", "default"],
        ["(a) buyer collusion", "(b) seller collusion", "(c) default"],
    ):
        plot_lines(axis, [row for row in rows if row["attack"] == attack], "byzantine_ratio", 100)
        axis.set_xlabel("Byzantine ratio (%)")
        axis.set_title(title)
    figure.suptitle("Fig. 5: utilization under attack (200 buyers, 100 sellers)")
    figure.tight_layout()
    figure.savefig(f"{folder}/fig5.png", dpi=120)

    day = read(f"{folder}/day.csv")
    figure, axis = plt.subplots(figsize=(7, 4))
    for mode, color in [("purchase", "tab:red"), ("lease", "tab:orange")]:
        points = [row for row in day if row["mode"] == mode]
        hours = [int(row["hour"]) for row in points]
        means = [100 * float(row["utilization_mean"]) for row in points]
        cis = [100 * float(row["utilization_ci95"]) for row in points]
        axis.errorbar(hours, means, yerr=cis, label=f"RWA {mode}", color=color, marker="o", capsize=2)
    axis.set_xlabel("Hour of the day")
    axis.set_ylabel("Slices in use (%)")
    axis.set_ylim(0, 105)
    axis.set_title("Beyond the paper: purchase against hourly leasing over a day")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(f"{folder}/day.png", dpi=120)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/figures")
