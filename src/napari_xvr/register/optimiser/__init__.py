"""The optimiser: similarity and its gradients, Levenberg-Marquardt and Adam, how each scale runs."""
