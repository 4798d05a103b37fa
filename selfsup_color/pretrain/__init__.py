"""Pretraining: the LightningModule, the ``selfsup-color`` command, the prior pass, loggers, checkpoints."""
