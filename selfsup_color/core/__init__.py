"""Pure, typed colorization maths: colour conversion, quantization, encoding, prior, loss, decoding, metrics."""
