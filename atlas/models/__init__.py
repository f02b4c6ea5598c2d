"""Models: the adapter around a module, its layer catalogue, the frozen copy the engine
runs, weight digests, and the model sources (torchvision, timm, files)."""
