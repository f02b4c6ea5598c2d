"""Recipes shipped with feature-atlas; a package only so that they install with atlas."""
