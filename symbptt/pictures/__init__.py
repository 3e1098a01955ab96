"""Pictures of the derivation: the unrolled graph with its paths, gradient by path length."""
