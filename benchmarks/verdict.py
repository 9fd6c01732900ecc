"""Does SAM help SASRec? The protocol of issue 9 as one resumable, parallel grid: now
``python run_experiments.py verdict`` (recbole_sam/experiments/verdict.py); this script takes
the same options.

    python benchmarks/verdict.py --dataset ml-100k --out runs/verdict --workers 2
    python benchmarks/verdict.py --dataset Beauty --data-path dataset/ --out runs/verdict --workers 15
"""

import shlex
import sys

from recbole_sam.experiments.verdict_cli import main

if __name__ == "__main__":
    main(["verdict", *sys.argv[1:]], command=shlex.join(["python", *sys.argv]))
