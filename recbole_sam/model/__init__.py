"""Models that recbole-sam adds to, or changes in, RecBole (found by ``recbole_sam.registry``)."""
