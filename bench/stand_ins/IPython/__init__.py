"""A stand-in for IPython, which lucent imports for notebook display only; the benchmark
shows nothing, so display is a no-op."""
