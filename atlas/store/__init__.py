"""Storage of results: the picture cache, the dataset findings store, their maintenance.
Torch-free: workers encode, the client stores."""
