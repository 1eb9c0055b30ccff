"""Built-in operators; importing this package registers them with the node contract."""
from . import bake  # noqa: F401
from . import colorize  # noqa: F401
from . import grain  # noqa: F401
from . import zoo  # noqa: F401
