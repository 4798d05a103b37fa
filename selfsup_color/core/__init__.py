"""Pure, typed colorization maths: colour, quantization, encoding, prior, loss, decoding, metrics."""
