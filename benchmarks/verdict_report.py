"""Tables of the verdict grid: ``python run_experiments.py verdict-report`` (the same options).

    python benchmarks/verdict_report.py --out runs/verdict --dataset ml-100k
"""

import sys

from recbole_sam.experiments.verdict_cli import main

if __name__ == "__main__":
    main(["verdict-report", *sys.argv[1:]])
