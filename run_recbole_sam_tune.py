"""Search recbole-sam hyperparameters with Ray Tune, in the style of RecBole's run_hyper.py.

    python run_recbole_sam_tune.py --model SASRec --dataset ml-100k --params_file properties/tune/sam.hyper
    python run_recbole_sam_tune.py --params_file properties/tune/sam_lr_dropout.hyper --scheduler asha --num_samples 16 --epochs=30

Any other ``--key=value`` is a property of every trial. See docs/tune.md.
"""

from recbole_sam.tune.cli import main

if __name__ == "__main__":
    main()
