"""The SAMRec paper's experiments as resumable grids of recbole-sam runs.

    python run_experiments.py table --datasets ml-100k --seeds 1 2 3             # Tables 1 and 2
    python run_experiments.py rho --rhos 0.001 0.01 0.1 1 10 --seeds 1 2 3       # Figure 3
    python run_experiments.py sparsity --fractions 0.6 0.8 1.0 --seeds 1 2 3     # Figure 2
    python run_experiments.py table --datasets Beauty --data-path dataset/ --set pretrain_epochs=100
    python run_experiments.py rho --seeds 1 2 3 --workers 2                        # 2 runs at once, as Ray tasks
    python run_experiments.py rho --seeds 1 2 3 --workers 8 --address auto        # on a running Ray cluster
    python run_experiments.py verdict --dataset ml-100k --workers 2                # does SAM help SASRec? (+ verdict-report)
    python run_experiments.py ablation --dataset ml-100k --seeds 2 3 4             # the corrections (+ ablation-report)
    python run_experiments.py claims --runs docs/runs --write docs/results.md      # the claim-by-claim table
    python run_experiments.py rho-curve BCE=docs/runs/verdict/ml-100k/BCE --plot rho.png   # Figure 3, paired

Each finished run is a JSON record in <out>/runs/ (default out: runs/<subcommand>; the verdict's
and the ablation's: <out>/<dataset>/<backbone or correction>/runs/); the same command again skips
them. Then <out>/results.csv, results.md and, for rho and sparsity, a PNG.
"""

from recbole_sam.experiments.cli import main

if __name__ == "__main__":
    main()
