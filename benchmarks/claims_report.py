"""The claim-by-claim table of docs/results.md, from the run records (recbole_sam.experiments.claims).

    python benchmarks/claims_report.py --runs docs/runs                          # print it
    python benchmarks/claims_report.py --runs docs/runs --write docs/results.md  # replace it there
    python benchmarks/claims_report.py --rho-curve BCE=docs/runs/verdict/ml-100k/BCE \
        CE=docs/runs/verdict/ml-100k/CE --plot docs/img/rho_curve_ml100k.png   # Figure 3 with intervals
"""

import argparse
from pathlib import Path

from recbole_sam.atomic import write_atomically
from recbole_sam.experiments.claims import claims_table, replace_table
from recbole_sam.experiments.rho_curve import curve_markdown, load_curve, plot_rho_curves


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="docs/runs", help="the runs root (verdict/, fresh_dropout/, ...)")
    parser.add_argument("--write", help="a Markdown file whose claims table (between its markers) is replaced")
    parser.add_argument("--rho-curve", nargs="+", metavar="LABEL=FOLDER", help="instead: SAM - plain at every rho")
    parser.add_argument("--plot", help="with --rho-curve: draw the curves into this PNG")
    args = parser.parse_args()
    if args.rho_curve:
        curves = {label: load_curve(folder) for label, _, folder in (item.partition("=") for item in args.rho_curve)}
        for label, curve in curves.items():
            print(f"### {label}\n\n{curve_markdown(curve)}\n")
        if args.plot:
            write_atomically(args.plot, lambda tmp: plot_rho_curves(curves, tmp))
            print(f"wrote {args.plot}")
        return
    table = claims_table(args.runs)
    if not args.write:
        print(table)
        return
    text = replace_table(Path(args.write).read_text(encoding="utf-8"), table)
    write_atomically(args.write, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    print(f"wrote the claims table into {args.write}")


if __name__ == "__main__":
    main()
