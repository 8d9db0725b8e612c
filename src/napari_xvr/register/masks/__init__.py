"""Which X-ray pixels the similarity leaves out: collimators, saturated plateaus, the CT's cut ends."""
