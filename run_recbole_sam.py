"""Train a RecBole model with Sharpness-Aware Minimization, in the style of RecBole's run_recbole.py.

    python run_recbole_sam.py --model SASRec --dataset ml-100k --trainer sam --rho 0.1
    python run_recbole_sam.py --trainer plain --epochs=3 --config_files="a.yaml b.yaml"

Any other ``--key=value`` (or ``--key value``) overrides a RecBole or recbole-sam property.
"""

from recbole_sam.cli import main

if __name__ == "__main__":
    main()
