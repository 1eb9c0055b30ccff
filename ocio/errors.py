"""The one exception type the colour layer raises for user mistakes."""


class ColourError(Exception):
    """A colour-management problem the user can fix (bad config, unknown colour space).

    The CLI prints ``str(e)`` as a single line, so problem and fix travel together.
    """

    def __init__(self, problem: str, fix: str):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} — {fix}")
