"""Multi-label classification fine-tuning, PASCAL VOC2007 style: BCE per class, mAP over classes."""
