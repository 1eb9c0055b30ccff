"""bake-seq's Nuke menus (GUI sessions only): Nodes > bake-seq > one entry per operator."""
import nuke

import bake_nuke

bake_nuke.add_menu(nuke.menu("Nodes"))
