"""Every table and figure of docs/results.md, regenerated from scratch on 2 CPU cores.

``python -m experiments.results`` runs the stages of :mod:`experiments.results.stages` in order
(pretraining, linear probes, colorization quality, COCO128 transfer, priors), each as its own
``selfsup-color`` / ``selfsup-transfer`` command, then renders docs/results.md with
:mod:`experiments.results.render`. A stage whose outputs exist is not run again, so an interrupted
run resumes where it stopped (pretraining from its last checkpoint).
"""
