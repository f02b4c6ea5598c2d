"""The engine: optimise one batch of pictures. Torch only: no registry, cache or files; it
receives a model adapter, an objective and resolved factories (as lucid's render_vis)."""
