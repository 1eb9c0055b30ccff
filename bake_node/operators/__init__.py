"""The built-in operators, listed: ``bake_node.node`` offers these (and any a plugin registers)."""
from .bake import Bake
from .colorize import Colorize
from .deflicker import Deflicker
from .grain import Grain
from .zoo import Zoo

BUILT_IN = (Bake, Colorize, Deflicker, Grain, Zoo)
