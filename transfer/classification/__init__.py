"""Classification transfer: linear probes per tap, the feature cache, kNN, fine-tuning."""
