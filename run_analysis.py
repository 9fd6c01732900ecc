"""Loss landscapes and sharpness of trained checkpoints (SAMRec, RecSys'23, Figure 1).

    python run_analysis.py landscape --checkpoints saved/SASRec-a.pth saved/SASRec-b.pth \
        --labels SASRec SAMRec --grid 21 --range 1.0 --batches 4 --seed 0 --out landscapes/
    python run_analysis.py sharpness --checkpoints saved/SASRec-a.pth saved/SASRec-b.pth \
        --labels SASRec SAMRec --objective bce --rho 0.05 --iters 20 --seed 0 --out sharpness.json
    python run_analysis.py report --inputs sharpness.json --baseline SASRec --out ratios.md

``--objective own`` (the default) measures each model's own training loss; ``bce`` and ``ce``
one next-item loss common to SASRec, CL4SRec and S3Rec checkpoints (see docs/landscapes.md).
Any other ``--key=value`` overrides a setting of every checkpoint's stored config.
"""

from recbole_sam.analysis.cli import main

if __name__ == "__main__":
    main()
