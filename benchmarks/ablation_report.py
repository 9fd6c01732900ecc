"""The table of the corrections' ablation: ``python run_experiments.py ablation-report`` (the same options).

    python benchmarks/ablation_report.py --out runs/ablation --dataset ml-100k
"""

import sys

from recbole_sam.experiments.verdict_cli import main

if __name__ == "__main__":
    main(["ablation-report", *sys.argv[1:]])
