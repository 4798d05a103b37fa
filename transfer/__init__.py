"""Transfer evaluations of learned encoders: linear probes, kNN, detection and segmentation."""
