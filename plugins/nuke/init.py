"""bake-seq's Nuke plugin folder. Nuke runs init.py in every session, GUI or not: plugin paths
only. This folder is already on the plugin path (that is how Nuke found this file), which also
puts bake_nuke on sys.path for scripts and render-only sessions; menus are made in menu.py."""
