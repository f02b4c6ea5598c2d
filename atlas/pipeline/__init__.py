"""Building an atlas: plan the work, run it on a backend through one task runner, gather
the manifest. Used by the CLI, ``atlas.build`` and ``atlas.visualize`` alike."""
