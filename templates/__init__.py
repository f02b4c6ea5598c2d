"""Jinja templates of the atlas site; a package only so that they install with atlas."""
