"""The activation atlas of a layer: sampled activations laid out on a map, gridded into
cells, each cell drawn from its whitened mean activation."""
