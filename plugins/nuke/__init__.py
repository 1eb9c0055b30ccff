"""The Nuke plugin folder (init.py, menu.py, bake_nuke.py), installed with
`bake-seq plugins install nuke --dest ~/.nuke`. This file only makes it package data."""
