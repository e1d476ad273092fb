"""The differentiable operations: one module per op family, each a set of ``Function``s (forward
and backward side by side) plus the public functional wrappers that ``cnnx.nn.functional`` and the
``Tensor`` methods call."""
