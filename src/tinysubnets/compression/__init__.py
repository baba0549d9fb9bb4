"""Compression of a task's subnetwork: post-pruning, quantization, mask coding."""
