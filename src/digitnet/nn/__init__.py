"""The math: activations, costs, and the network's forward pass and backpropagation."""
