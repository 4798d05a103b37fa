"""Detection transfer: Faster R-CNN (FPN or C4 head) on a colorization encoder, scored by COCO box mAP."""
