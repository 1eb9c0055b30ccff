"""Film grain: measure a plate's grain (analyze) and synthesise matching grain (synth).

Both work in one linear-light space (``linear.LINEAR_SPACE``) so a profile measured on a plate
means the same numbers when it is applied to a clean render. The profile (profile.py) is the
only thing they share: per channel, noise standard deviation against intensity and a grain
size, plus the correlation between channels.
"""
