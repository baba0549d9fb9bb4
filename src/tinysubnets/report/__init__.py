"""Reports from run folders: the paper's tables and figures, FLOPs and bit-operations."""
